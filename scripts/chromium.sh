#!/usr/bin/env bash
# Headless Chromium for the dashboard's browser tests (tests/test_server_dashboard.py).
#
# Installs Debian's `chromium` package with apt-get when /usr/bin/chromium is missing: as root, or
# through `sudo -n` (never prompts). Idempotent and instant when Chromium is already there. When it
# cannot install, it says why and exits 0: the browser tests then skip with that reason.
set -u

CHROMIUM=/usr/bin/chromium
say() { echo "chromium: $*" >&2; }

[ -x "$CHROMIUM" ] && exit 0

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else return 1
    fi
}

if ! command -v apt-get >/dev/null 2>&1; then
    say "$CHROMIUM is missing and apt-get is not available; the browser tests will skip"
    exit 0
fi
if ! as_root true 2>/dev/null; then
    say "$CHROMIUM is missing and installing it needs root (or passwordless sudo); the browser tests will skip"
    exit 0
fi

LOG="$(mktemp -t costlens-chromium.XXXXXX.log)"
say "installing Debian chromium (log: $LOG)"
install() { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >>"$LOG" 2>&1; }
if ! install; then
    as_root apt-get update -q >>"$LOG" 2>&1 && install
fi

if [ -x "$CHROMIUM" ]; then
    rm -f "$LOG"
else
    say "apt-get could not install chromium (see $LOG); the browser tests will skip"
fi
exit 0
