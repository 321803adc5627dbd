"""costlens vs litellm, side by side in one run, against the same local fake provider.

litellm is not a dependency (large, network at import, pins an older openai): it is installed into a
throwaway venv under bench/out/ and driven in a child process. Each side measures its own raw
`openai` client in the same process, interleaved call by call, so the figures compare the overhead
each tool adds to a plain call. If litellm cannot be installed, the script says so and exits 0.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import openai
from rich.console import Console
from rich.table import Table

import costlens
from costlens.testing import fake_provider_process

CALLS = 1000
VENV = Path(__file__).resolve().parent / "out" / "litellm-venv"
MESSAGES = [{"role": "user", "content": "Say hello"}]

CHILD = """
import json, os, sys, time, statistics
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"   # no network at import
t0 = time.perf_counter()
import litellm
import_s = time.perf_counter() - t0
import openai
base, n = sys.argv[1], int(sys.argv[2])
msgs = [{"role": "user", "content": "Say hello"}]
raw = openai.OpenAI(base_url=base, api_key="k", max_retries=0)
def call_raw():
    raw.chat.completions.create(model="gpt-4o-mini", messages=msgs)
def call_litellm():
    r = litellm.completion(model="openai/gpt-4o-mini", messages=msgs, api_base=base, api_key="k")
    litellm.completion_cost(completion_response=r)
for _ in range(30):
    call_raw(); call_litellm()
out = {"raw": [], "litellm": []}
for _ in range(n):
    for name, fn in (("raw", call_raw), ("litellm", call_litellm)):
        t = time.perf_counter_ns(); fn(); out[name].append((time.perf_counter_ns() - t) / 1000)
out["import_s"] = import_s
from importlib.metadata import version
out["version"] = version("litellm")
print(json.dumps(out))
"""


def ensure_litellm(console: Console) -> Path | None:
    python = VENV / "bin" / "python"
    if python.exists():
        return python
    console.print("installing litellm into a throwaway venv (bench/out/litellm-venv)...")
    venv.create(VENV, with_pip=True)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "litellm"], capture_output=True, text=True
    )
    if done.returncode != 0:
        console.print(f"[yellow]litellm could not be installed; skipping[/]: {done.stderr[-500:]}")
        return None
    return python


def costlens_side(base_url: str) -> dict[str, list[float]]:
    raw = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0)
    tracked = costlens.track(openai.OpenAI(base_url=base_url, api_key="k", max_retries=0), provider="openai")
    variants = {"raw": raw, "costlens": tracked}
    for client in variants.values():
        for _ in range(30):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    out: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(CALLS):
        for name, client in variants.items():
            t = time.perf_counter_ns()
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
            out[name].append((time.perf_counter_ns() - t) / 1000)
    return out


def _added(values: list[float], raw: list[float]) -> float:
    return statistics.median(v - r for v, r in zip(values, raw, strict=True))


def main() -> None:
    console = Console()
    python = ensure_litellm(console)
    if python is None:
        return
    with fake_provider_process() as fake, tempfile.TemporaryDirectory() as tmp:
        costlens.configure(store=f"sqlite:///{Path(tmp) / 'bench.db'}", durability="async")
        ours = costlens_side(fake.openai_base_url)
        costlens.flush()
        child = subprocess.run(
            [str(python), "-c", CHILD, fake.openai_base_url, str(CALLS)],
            capture_output=True,
            text=True,
            check=True,
        )
        theirs = json.loads(child.stdout.strip().splitlines()[-1])
    table = Table(
        title=f"Tracking and costing a chat call: costlens vs litellm {theirs['version']} ({CALLS} calls)"
    )
    for col in ("variant", "p50 µs", "added vs its own raw openai, paired median µs", "money type"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    table.add_row("raw openai (costlens process)", f"{statistics.median(ours['raw']):.0f}", "+0", "")
    table.add_row(
        "costlens.track",
        f"{statistics.median(ours['costlens']):.0f}",
        f"{_added(ours['costlens'], ours['raw']):+.0f}",
        "Decimal / int nano-USD",
    )
    table.add_row("raw openai (litellm venv)", f"{statistics.median(theirs['raw']):.0f}", "+0", "")
    table.add_row(
        "litellm.completion + completion_cost",
        f"{statistics.median(theirs['litellm']):.0f}",
        f"{_added(theirs['litellm'], theirs['raw']):+.0f}",
        "float",
    )
    console.print(table)
    console.print(
        f"import litellm: {theirs['import_s'] * 1000:.0f} ms (with LITELLM_LOCAL_MODEL_COST_MAP=True)"
    )


if __name__ == "__main__":
    sys.exit(main())
