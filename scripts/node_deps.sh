#!/usr/bin/env bash
# Installs the Node.js packages the gateway test drives (tests/node: the official `openai` SDK).
# Idempotent and fast when they are present: npm runs only when node_modules is missing or older
# than package.json. Without node/npm it says so and exits 0: that test then skips with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=tests/node
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node_deps: node or npm not found; the Node.js gateway test will be skipped" >&2
    exit 0
fi
stamp="$dir/node_modules/.costlens-stamp"
if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package.json" ] && [ -d "$dir/node_modules/openai" ]; then
    exit 0
fi
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error
touch "$stamp"
