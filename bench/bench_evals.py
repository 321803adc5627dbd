"""Benchmark: the experiment runner beside a plain thread pool of raw `openai` calls, in one run.

Run: `.venv/bin/python bench/bench_evals.py [--items 400] [--concurrency 8]`. The fake provider runs
in its own process so its work does not share our GIL. Each variant sends the same requests (one
strategy, `--items` test items, one call each) with the same concurrency:

- `raw thread pool`: `ThreadPoolExecutor.map` over an untracked `openai.OpenAI` client, and an exact
  string compare: the least an evaluation loop can do.
- `costlens eval run (fresh)`: `run_experiment` with everything on: tracked client, a SQLite store,
  the run's cost cap (a budget checked before and settled after every call), the fsynced journal,
  the verdict cache, tags, the scorer and the statistics at the end.
  The BPE table the cap's estimate needs loads once per process (~0.6 s); it is loaded before the
  timings and printed apart.
- `costlens eval run (resumed)`: the same run again, finished: every item is answered from the
  journal, no call is made (what a resume after a crash costs for the finished part).

The table shows wall time, items per second and the runner's overhead per item over the raw loop.
There is no fixed goal: the figure to watch is overhead per item against the latency of a real
provider call (hundreds of milliseconds), and that resumed runs make no calls.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
from rich.console import Console
from rich.table import Table

import costlens
from costlens.evals import spec_from_dict
from costlens.evals._runner import run_experiment
from costlens.evals._stats import summarize_run
from costlens.testing import fake_provider_process
from costlens.tokens import count_text

ANSWER = "tok tok tok tok tok"


def _dataset(folder: Path, n: int) -> Path:
    # the fake answers max_tokens copies of "tok": every item is right, so both loops do the same work
    rows = [
        {"id": f"q{i}", "input": f"Question {i}: say hello", "expected": ANSWER, "split": "test"}
        for i in range(n)
    ]
    path = folder / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _raw(base_url: str, n: int, concurrency: int) -> int:
    client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)

    def one(i: int) -> bool:
        reply = client.chat.completions.create(
            model="gpt-4.1-nano",
            messages=[{"role": "user", "content": f"Question {i}: say hello"}],
            max_tokens=5,
        )
        return (reply.choices[0].message.content or "").strip() == ANSWER

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(one, range(n)))


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    n = args.items
    with tempfile.TemporaryDirectory() as tmp, fake_provider_process() as fake:
        folder = Path(tmp)
        costlens.configure(store=f"sqlite:///{folder / 'costs.db'}")
        spec = spec_from_dict(
            {
                "name": "bench",
                "dataset": {"path": str(_dataset(folder, n))},
                "scorer": "normalized",
                "concurrency": args.concurrency,
                "max_cost_usd": "100",
                "defaults": {"params": {"max_tokens": 5}},
                "strategies": [{"name": "nano", "model": "gpt-4.1-nano"}],
            }
        )
        tracked = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-bench", max_retries=0)
        clients = {"openai": tracked}
        runs = folder / "runs"
        _raw(fake.openai_base_url, 20, args.concurrency)  # warm both sides: imports, connections
        # The cap's pre-call estimate counts prompt tokens: the BPE table loads once per process.
        tokenizer_s = _timed(lambda: count_text("warm up", "gpt-4.1-nano"))
        raw_s = _timed(lambda: _raw(fake.openai_base_url, n, args.concurrency))
        fresh_s = _timed(lambda: run_experiment(spec, clients=clients, runs_dir=runs))
        result = run_experiment(spec, clients=clients, runs_dir=runs)
        resumed_s = _timed(lambda: run_experiment(spec, clients=clients, runs_dir=runs))
        summary = summarize_run(result)[0]
        costlens.flush()

    table = Table(title=f"{n} items, 1 strategy, concurrency {args.concurrency}, fake provider on loopback")
    for column in ("variant", "wall s", "items/s", "overhead ms/item vs raw"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    table.add_row("raw thread pool (openai SDK, no tracking)", f"{raw_s:.2f}", f"{n / raw_s:,.0f}", "—")
    for name, seconds in (("costlens eval run (fresh)", fresh_s), ("costlens eval run (resumed)", resumed_s)):
        overhead = (seconds - raw_s) / n * 1000
        table.add_row(name, f"{seconds:.2f}", f"{n / seconds:,.0f}", f"{overhead:+.2f}")
    console = Console()
    console.print(table)
    console.print(
        f"fresh run: {summary.n} items, {summary.errors} errors, accuracy {summary.accuracy:.3f}, "
        f"cost ${summary.total_cost}; resumed: answered from the journal, no calls; "
        f"one-off BPE table load before the runs (not in the table): {tokenizer_s:.2f} s"
    )


if __name__ == "__main__":
    main()
