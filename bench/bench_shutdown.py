"""Benchmark: how many call records a process loses when it is stopped by a signal.

A child process submits records to a `Recorder` on a SQLite store at a steady rate (`--rate`,
default 2,000 records/s) and counts each submission in shared memory; after about a second
(`--run-s` plus a random part of the flush interval, so the kill lands at any point of the
writer's cycle) the parent kills it with SIGTERM or SIGKILL, then counts the records in the store.
Each case runs `--repeat` times; the table shows means and the worst loss.

- async + SIGTERM: the recorder's SIGTERM handler writes the queue, then the process ends by SIGTERM;
- async + SIGTERM with `COSTLENS_SIGTERM=0`: the default action, which runs no `atexit`;
- async + SIGKILL: nothing can run; the loss is what the writer had not written yet;
- sync + SIGTERM / SIGKILL: every record is written before `submit()` returns.

A submission is counted when `submit()` returns, with SIGTERM blocked in between so that the
handler never sees a half-counted record. SIGKILL cannot be blocked: a record being written at that
moment may be stored without being counted (a loss below zero is shown as 0).

Run: `.venv/bin/python bench/bench_shutdown.py [--rate 2000] [--run-s 1.0] [--repeat 3]`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path

from rich.console import Console
from rich.table import Table

from costlens.recorder import Durability, Recorder
from costlens.store import SpendQuery, open_store
from costlens.usage import CallRecord

FLUSH_INTERVAL_S = 0.5  # the recorder's default


@dataclass(frozen=True)
class Case:
    label: str
    durability: Durability
    kill: signal.Signals
    handler: bool = True


CASES = (
    Case("async + SIGTERM (flush handler)", "async", signal.SIGTERM),
    Case("async + SIGTERM, COSTLENS_SIGTERM=0", "async", signal.SIGTERM, handler=False),
    Case("async + SIGKILL", "async", signal.SIGKILL),
    Case("sync + SIGTERM", "sync", signal.SIGTERM),
    Case("sync + SIGKILL", "sync", signal.SIGKILL),
)


def submitter(
    durability: Durability,
    handler: bool,
    url: str,
    spool: str,
    rate: float,
    submitted: Synchronized[int],
    ready: Event,
) -> None:
    """The child: submit `rate` records a second until killed."""
    if not handler:
        os.environ["COSTLENS_SIGTERM"] = "0"
    recorder = Recorder(open_store(url), durability=durability, spool_dir=spool, owns_store=True)
    term = {signal.SIGTERM}
    ready.set()
    t0 = time.perf_counter()
    n = 0
    while True:
        due = int((time.perf_counter() - t0) * rate) + 1
        while n < due:
            signal.pthread_sigmask(signal.SIG_BLOCK, term)
            recorder.submit(CallRecord(provider="openai", operation="chat", request_model="gpt-4o-mini"))
            n += 1
            submitted.value = n
            signal.pthread_sigmask(signal.SIG_UNBLOCK, term)
        time.sleep(0.0005)


@dataclass
class Run:
    submitted: int
    stored: int
    exitcode: int | None

    @property
    def lost(self) -> int:
        return max(self.submitted - self.stored, 0)


def run_once(
    ctx: multiprocessing.context.BaseContext, case: Case, folder: Path, rate: float, run_s: float
) -> Run:
    folder.mkdir(parents=True)
    url = f"sqlite://{folder / 'calls.db'}"
    submitted = ctx.Value("q", 0, lock=False)
    ready = ctx.Event()
    args = (case.durability, case.handler, url, str(folder / "spool"), rate, submitted, ready)
    child = ctx.Process(target=submitter, args=args, daemon=True)  # type: ignore[attr-defined]
    child.start()
    if not ready.wait(30):
        raise RuntimeError(f"{case.label}: the child did not start")
    time.sleep(run_s + random.uniform(0, FLUSH_INTERVAL_S))
    os.kill(child.pid, case.kill)
    child.join(30)
    if child.is_alive():
        child.kill()
        raise RuntimeError(f"{case.label}: the child outlived {case.kill.name}")
    store = open_store(url)
    stored = sum(row.calls for row in store.query(SpendQuery()))
    store.close()
    spooled = list((folder / "spool").glob("*")) if (folder / "spool").exists() else []
    if spooled:
        raise RuntimeError(f"{case.label}: the healthy store should spool nothing, found {spooled}")
    return Run(int(submitted.value), stored, child.exitcode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=2000.0, help="records submitted per second")
    parser.add_argument("--run-s", type=float, default=1.0, help="seconds before the kill (plus jitter)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")

    t0 = time.perf_counter()
    results: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="costlens-bench-shutdown-") as tmp:
        for r in range(args.repeat):
            for i, case in enumerate(CASES):  # interleaved, so drift on the machine hits every case
                run = run_once(ctx, case, Path(tmp) / f"{i}-{r}", args.rate, args.run_s)
                results.setdefault(case.label, []).append(run)

    table = Table(
        title=f"Records lost when the process is killed ({args.rate:,.0f} records/s, "
        f"killed after {args.run_s:.1f}-{args.run_s + FLUSH_INTERVAL_S:.1f} s, "
        f"mean of {args.repeat} runs)"
    )
    for name in ("case", "exit", "submitted", "stored", "lost", "lost (worst)", "lost as time"):
        table.add_column(name, justify="left" if name == "case" else "right")
    for case in CASES:
        runs = results[case.label]
        lost = statistics.mean(run.lost for run in runs)
        exits = sorted({run.exitcode for run in runs}, key=str)
        table.add_row(
            case.label,
            ", ".join(_status(code) for code in exits),
            f"{statistics.mean(run.submitted for run in runs):,.0f}",
            f"{statistics.mean(run.stored for run in runs):,.0f}",
            f"{lost:,.0f}",
            f"{max(run.lost for run in runs):,}",
            f"{lost / args.rate * 1000:,.0f} ms",
        )
    console = Console(width=150)
    console.print(table)
    console.print(f"[dim]{time.perf_counter() - t0:.1f} s in all[/dim]")


def _status(code: int | None) -> str:
    if code is not None and code < 0:
        return signal.Signals(-code).name
    return str(code)


if __name__ == "__main__":
    main()
