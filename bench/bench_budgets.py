"""Cost of budgets: reserve + settle on the SQLite ledger (and with budget leases), and a budgeted vs an
unbudgeted tracked call.

Ledger figures are one reserve + one settle transaction pair, sequential, on a fresh file in a temp
folder (WAL, synchronous=NORMAL), with 1 and 3 nested keys; then 16 threads contending for one key.
Call figures interleave the variants call by call against the fake provider in its own process and
report the paired median difference, as bench_tracking.py does.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import openai
from rich.console import Console
from rich.table import Table

import costlens
from bench_tracking import MESSAGES, _interleaved, _p, _paired_added
from costlens.budgets import Budget, BudgetKey, LeasedLedger, Ledger, MemoryLedger
from costlens.budgets._sqlite_ledger import SQLiteLedger
from costlens.config import configure_budgets, reset_budgets
from costlens.testing import fake_provider_process

PAIRS = 5000
CALLS = 2000
THREADS = 16
PER_THREAD = 300


def _keys(n: int) -> list[BudgetKey]:
    windows = [Budget(f"b{i}", limit_usd=10**6, window=w) for i, w in enumerate(("day", "month", "24h"))]
    at = datetime.now(UTC)
    return [BudgetKey(b.name, b.limit_nanousd, *_since_bucket(b, at)) for b in windows[:n]]


def _since_bucket(budget: Budget, at: datetime) -> tuple[int, int]:
    pos = budget.window.position(at)
    return pos.since_us, pos.bucket_us


def reserve_settle(ledger: Ledger, keys: list[BudgetKey], n: int) -> list[float]:
    out = []
    for _ in range(200):  # warm up: connection, migrations, page cache
        ledger.settle(ledger.reserve(keys, 1000, 60), 900)
    for _ in range(n):
        t0 = time.perf_counter_ns()
        r = ledger.reserve(keys, 1000, 60)
        ledger.settle(r, 900)
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def contended(ledger: Ledger) -> float:
    """Reserve+settle pairs per second, 16 threads on one key."""
    keys = _keys(1)
    start = threading.Barrier(THREADS + 1)

    def work() -> None:
        start.wait()
        for _ in range(PER_THREAD):
            ledger.settle(ledger.reserve(keys, 1000, 60), 900)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return THREADS * PER_THREAD / (time.perf_counter() - t0)


def call_variants(base_url: str) -> dict[str, Callable[[], object]]:
    def client(**tags: str) -> openai.OpenAI:
        made = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)
        return costlens.track(made, provider="openai", **tags)

    plain, budgeted = client(), client(project="bench", feature="chat")

    def call(c: openai.OpenAI) -> Callable[[], object]:
        return lambda: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=16)  # type: ignore[arg-type]

    return {"tracked, no budget applies": call(plain), "tracked + 2 nested budgets (SQLite)": call(budgeted)}


def main() -> None:
    console = Console()
    table = Table(title="Budget ledger: one reserve + one settle (sequential, µs)")
    for col in ("ledger", "keys", "pairs", "p50 µs", "p90 µs"):
        table.add_column(col, justify="left" if col == "ledger" else "right")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 3):
            ledger = SQLiteLedger(Path(tmp) / f"bench{n}.db")
            values = reserve_settle(ledger, _keys(n), PAIRS)
            table.add_row(
                "SQLite", str(n), str(PAIRS), f"{statistics.median(values):.0f}", f"{_p(values, 90):.0f}"
            )
            ledger.close()
        leased = LeasedLedger(SQLiteLedger(Path(tmp) / "leased.db"), slice_nanousd=10**9)
        values = reserve_settle(leased, _keys(3), PAIRS)
        table.add_row(
            "SQLite, leases ($1 slices)",
            "3",
            str(PAIRS),
            f"{statistics.median(values):.0f}",
            f"{_p(values, 90):.0f}",
        )
        leased.close()
        values = reserve_settle(MemoryLedger(), _keys(3), PAIRS)
        table.add_row("memory", "3", str(PAIRS), f"{statistics.median(values):.0f}", f"{_p(values, 90):.0f}")
        console.print(table)
        for name, shared in (
            ("SQLite", SQLiteLedger(Path(tmp) / "contended.db")),
            (
                "SQLite with leases",
                LeasedLedger(SQLiteLedger(Path(tmp) / "contended2.db"), slice_nanousd=10**9),
            ),
        ):
            rate = contended(shared)
            shared.close()
            console.print(f"{name}, {THREADS} threads on one key: {rate:,.0f} reserve+settle pairs/s")

        costlens.configure(store=f"sqlite:///{Path(tmp) / 'calls.db'}", durability="async")
        configure_budgets(
            [
                Budget("project", limit_usd=10**6, window="day", scope={"project": "bench"}),
                Budget("chat", limit_usd=10**6, window="month", scope={"feature": "chat"}),
            ],
            ledger=f"sqlite://{Path(tmp) / 'budgets.db'}",
        )
        with fake_provider_process() as fake:
            calls = _interleaved(call_variants(fake.openai_base_url), CALLS)
        costlens.flush()
        reset_budgets()
        costlens.configure(store="memory://")

    calls_table = Table(title="Per-call latency, budgeted vs not (sequential calls to the local fake)")
    for col in ("variant", "calls", "p50 µs", "p90 µs", "added µs (paired median)"):
        calls_table.add_column(col, justify="left" if col == "variant" else "right")
    baseline = calls["tracked, no budget applies"]
    for name, values in calls.items():
        added = _paired_added(values, baseline)
        row = (f"{statistics.median(values):.0f}", f"{_p(values, 90):.0f}", f"{added:+.0f}")
        calls_table.add_row(name, str(len(values)), *row)
    console.print(calls_table)
    console.print("Goal: reserve+settle p50 ≤ 150 µs on SQLite.")


if __name__ == "__main__":
    main()
