"""Benchmark: SQLite writes while another thread wants the GIL (a busy event loop, worker threads).

Python's `sqlite3` releases the GIL around every statement step. A writer that runs one statement
per row (`executemany`) hands the GIL to the process's other threads once per row, and in a busy
process each hand-off costs a context switch and up to CPython's 5 ms switch interval before the
writer gets it back. costlens writes with multi-row statements (`insert_rows`): a handful per batch.

Side by side in one run, each idle and then with one thread spinning Python (the worst case of a
GIL-hungry neighbour), for:

- the SQLite store's `append` of 300-record batches (what the recorder thread does), and
- the SQLite ledger's reserve + settle with 2 keys (what every budgeted call does),

with costlens' writes and with the baseline of one statement per row (the same code with
`insert_rows` swapped for `executemany`, and the ledger's one-statement settle swapped for the
transaction it replaced: BEGIN, DELETE, an upsert per key into spend and into history, COMMIT):
the writer thread's CPU per record or pair (`time.thread_time`), its wall time, and its voluntary
context switches (/proc).

Run: `.venv/bin/python bench/bench_contention.py [--batches 20] [--pairs 100]`.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

import costlens.budgets._sqlite_ledger as sqlite_ledger
import costlens.store._sqlwrite as sqlwrite
from costlens.budgets import BudgetKey
from costlens.budgets._ledger import Reservation, history_bucket
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

BATCH = 300


def _one_statement_per_row(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[object]], tail: str = ""
) -> None:
    if rows:
        conn.executemany(f"{head} VALUES ({', '.join('?' * len(rows[0]))}){tail}", rows)


def _settle_in_a_transaction(
    self: sqlite_ledger.SQLiteLedger, reservation: Reservation, actual_nanousd: int
) -> None:
    """The settle before migration 0005's trigger: its own transaction, one statement per key."""
    hb = history_bucket(reservation.at_us)

    def run(conn: sqlite3.Connection) -> None:
        if conn.execute(sqlite_ledger._RELEASE, (reservation.id,)).rowcount:
            keys = reservation.keys
            _one_statement_per_row(
                conn, sqlite_ledger._CHARGE, [(k.id, k.bucket_us, actual_nanousd) for k in keys],
                sqlite_ledger._CHARGE_TAIL,
            )  # fmt: skip
            _one_statement_per_row(
                conn, sqlite_ledger._HISTORY, [(k.id, hb, actual_nanousd, 1) for k in keys],
                sqlite_ledger._HISTORY_TAIL,
            )  # fmt: skip

    self._run(run)


@contextmanager
def _baseline(on: bool) -> Iterator[None]:
    """Swap costlens' multi-row writes for one statement per row and its one-statement settle for a
    transaction (the baseline), or leave them."""
    saved = sqlwrite.insert_rows, sqlite_ledger.insert_rows, sqlite_ledger.SQLiteLedger.settle
    if on:
        sqlwrite.insert_rows = sqlite_ledger.insert_rows = _one_statement_per_row
        sqlite_ledger.SQLiteLedger.settle = _settle_in_a_transaction  # type: ignore[method-assign]
    try:
        yield
    finally:
        sqlwrite.insert_rows, sqlite_ledger.insert_rows, sqlite_ledger.SQLiteLedger.settle = saved


def _switches() -> int:
    with open(f"/proc/self/task/{threading.get_native_id()}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


def _measure(work: Callable[[], int], busy: bool) -> tuple[float, float, float]:
    """(CPU µs, wall µs, context switches) per unit of `work` (which returns its units), run in a
    thread of its own, with or without a thread spinning Python meanwhile."""
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            for i in range(100):
                x += i

    result: list[float] = []

    def writer() -> None:
        switches, cpu, wall = _switches(), time.thread_time(), time.perf_counter()
        units = work()
        result[:] = [
            (time.thread_time() - cpu) / units * 1e6,
            (time.perf_counter() - wall) / units * 1e6,
            (_switches() - switches) / units,
        ]

    spinner = threading.Thread(target=spin) if busy else None
    if spinner is not None:
        spinner.start()
    thread = threading.Thread(target=writer)
    thread.start()
    thread.join()
    stop.set()
    if spinner is not None:
        spinner.join()
    return result[0], result[1], result[2]


def _record() -> CallRecord:
    started = datetime.now(UTC)
    return CallRecord(
        provider="openai", operation="chat", request_model="gpt-4o-mini", started_at=started,
        ended_at=started + timedelta(milliseconds=1), latency_ms=1.0, response_model="gpt-4o-mini-2024-07-18",
        input_tokens=9, output_tokens=2, cost_nanousd=2550, price_known=True, price_version="bench",
    )  # fmt: skip


def store_work(folder: Path, batches: int) -> Callable[[], int]:
    store = SQLiteStore(folder / f"calls-{time.perf_counter_ns()}.db")
    base = _record()
    n = [0]

    def batch() -> list[CallRecord]:
        n[0] += 1
        return [replace(base, id=f"{n[0]:016x}{i:016x}") for i in range(BATCH)]

    for _ in range(3):  # migrations, statement caches
        store.append(batch())
    prepared = [batch() for _ in range(batches)]

    def work() -> int:
        for records in prepared:
            store.append(records)
        return batches * BATCH

    return work


def ledger_work(folder: Path, pairs: int) -> Callable[[], int]:
    ledger = sqlite_ledger.SQLiteLedger(folder / f"budgets-{time.perf_counter_ns()}.db")
    keys = [BudgetKey("all", 10**18, 0, 0), BudgetKey("per-model[model=gpt-4o-mini]", 10**18, 0, 0)]
    for _ in range(200):
        ledger.settle(ledger.reserve(keys, 1000, 60), 900)

    def work() -> int:
        for _ in range(pairs):
            ledger.settle(ledger.reserve(keys, 1000, 60), 900)
        return pairs

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help=f"store batches of {BATCH} per figure")
    parser.add_argument(
        "--pairs", type=int, default=100, help="ledger pairs per figure with a busy neighbour"
    )
    args = parser.parse_args()
    table = Table(title="SQLite writes with and without a GIL-hungry thread (writer thread's own figures)")
    for column in ("what", "writes", "neighbour", "CPU µs", "wall µs", "context switches"):
        table.add_column(column, justify="left" if column in ("what", "writes", "neighbour") else "right")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for what, make, idle_units, busy_units in (
            (f"store append, per record ({BATCH}-record batches)", store_work, args.batches, args.batches),
            ("ledger reserve + settle, 2 keys, per pair", ledger_work, args.pairs * 30, args.pairs),
        ):
            for baseline in (False, True):
                with _baseline(baseline):
                    for busy, units in ((False, idle_units), (True, busy_units)):
                        cpu, wall, switches = _measure(make(folder, units), busy)
                        table.add_row(
                            what,
                            "one statement per row" if baseline else "costlens",
                            "spinning" if busy else "idle",
                            f"{cpu:,.1f}",
                            f"{wall:,.0f}",
                            f"{switches:.2f}",
                        )
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
