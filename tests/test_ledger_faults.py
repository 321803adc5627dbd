"""A reservation whose settle never lands is charged when it expires, never dropped.

The settle fails (the disk is full, the file is locked: `LedgerUnavailable`) or the process dies
before it: the provider may have billed the call, so from its expiry the reservation counts as
spend; a retried settle corrects the charge to the real cost, exactly once. Faults are injected
by a connection that fails one chosen statement, or by a trigger that fails inside the settle's one
statement; processes are real (spawned).
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any, cast

import pytest

from costlens.budgets import BudgetKey, LedgerUnavailable, Spent
from costlens.budgets._ledger import now_us
from costlens.budgets._sqlite_ledger import SQLiteLedger

T0 = datetime(2025, 6, 1, 12, tzinfo=UTC)
LATER = T0 + timedelta(seconds=11)
A = BudgetKey("a", 10**9, 0, 0)
DISK_FULL = "database or disk is full"


class _FailOnce:
    """A connection that raises `DISK_FULL` on the first statement containing `ledger.fail_on`."""

    def __init__(self, conn: sqlite3.Connection, ledger: FaultyLedger) -> None:
        self._conn, self._ledger = conn, ledger

    def _check(self, sql: str) -> None:
        if self._ledger.fail_on is not None and self._ledger.fail_on in sql:
            self._ledger.fail_on = None
            self._ledger.failures += 1
            raise sqlite3.OperationalError(DISK_FULL)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self._conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class FaultyLedger(SQLiteLedger):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.fail_on: str | None = None
        self.failures = 0

    def _conn(self) -> sqlite3.Connection:
        return cast(sqlite3.Connection, _FailOnce(super()._conn(), self))


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as raw:
        rows = raw.execute(sql).fetchall()
    raw.close()
    return rows


def test_a_settle_that_failed_is_charged_at_expiry_and_a_retry_corrects_it(tmp_path: Path) -> None:
    ledger = FaultyLedger(tmp_path / "b.db")
    r = ledger.reserve([A], 1000, 10, at=T0)
    ledger.fail_on = "UPDATE budget_reservations SET settled_nanousd"  # the settle hits a full disk
    with pytest.raises(LedgerUnavailable, match=DISK_FULL):
        ledger.settle(r, 400)
    assert ledger.failures == 1
    assert ledger.usage(A, at=T0) == Spent(0, 1000)  # rolled back whole: still held
    assert ledger.usage(A, at=LATER) == Spent(1000, 0)  # expired: charged, not dropped
    ledger.reserve([A], 1, 60, at=LATER)  # notices the expiry: moves it into spend
    assert ledger.usage(A, at=LATER) == Spent(1000, 1)
    assert ledger.recent_spend("a", now_us(T0)) == 1000
    ledger.settle(r, 400)  # the caller retries once the disk has room
    assert ledger.usage(A, at=LATER).spent_nanousd == 400
    ledger.settle(r, 400)  # and again: nothing changes
    assert ledger.usage(A, at=LATER).spent_nanousd == 400
    assert ledger.recent_spend("a", now_us(T0)) == 400
    ledger.close()


def test_a_settle_retried_before_the_expiry_charges_once(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    ledger = FaultyLedger(path)
    r = ledger.reserve([A, BudgetKey("b", 10**9, 0, 0)], 1000, 10, at=T0)
    # The settle's one statement fails inside SQLite after its trigger charged key "a" (writing the
    # history of "b" hits a full disk): the whole statement rolls back, charges included.
    with sqlite3.connect(path) as raw:
        raw.execute(
            "CREATE TRIGGER disk_full BEFORE INSERT ON budget_history WHEN NEW.key = 'b' "
            f"BEGIN SELECT RAISE(ABORT, '{DISK_FULL}'); END"
        )
    raw.close()
    with pytest.raises(LedgerUnavailable, match=DISK_FULL):
        ledger.settle(r, 400)
    assert ledger.usage(A, at=T0) == Spent(0, 1000)  # nothing charged, still held
    assert _rows(path, "SELECT COUNT(*) FROM budget_spend") == [(0,)]
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TRIGGER disk_full")
    raw.close()
    ledger.settle(r, 400)
    ledger.settle(r, 400)
    ledger.reserve([A], 1, 60, at=LATER)
    assert ledger.usage(A, at=LATER) == Spent(400, 1)
    assert _rows(path, "SELECT key, SUM(calls) FROM budget_history GROUP BY key") == [("a", 1), ("b", 1)]
    ledger.close()


def test_an_expiry_charge_that_fails_half_way_is_retried_whole(tmp_path: Path) -> None:
    ledger = FaultyLedger(tmp_path / "b.db")
    ledger.reserve([A, BudgetKey("b", 10**9, 0, 0)], 1000, 10, at=T0)
    ledger.fail_on = "INSERT OR REPLACE INTO budget_expired"  # after the charges, before the delete
    with pytest.raises(LedgerUnavailable):
        ledger.reserve([A], 1, 60, at=LATER)
    assert ledger.usage(A, at=LATER) == Spent(1000, 0)  # counted once, charged or not
    ledger.reserve([A], 1, 60, at=LATER + timedelta(seconds=1))
    assert ledger.usage(A, at=LATER) == Spent(1000, 1)
    assert _rows(tmp_path / "b.db", "SELECT key, amount_nanousd FROM budget_spend ORDER BY key") == [
        ("a", 1000),
        ("b", 1000),
    ]
    ledger.close()


def _reserve_and_die(path: str) -> None:
    SQLiteLedger(path).reserve([A], 1000, 10, at=T0)
    os._exit(0)  # dies holding it: no settle, no close


def _reserve_after_the_expiry(path: str, start: Barrier) -> None:
    ledger = SQLiteLedger(path)
    ledger.usage(A)  # connected and migrated before the race
    start.wait()
    ledger.settle(ledger.reserve([A], 10, 60, at=LATER), 1)
    ledger.close()


def test_a_process_that_died_holding_a_reservation_is_charged_once(tmp_path: Path) -> None:
    path = str(tmp_path / "b.db")
    ctx = multiprocessing.get_context("spawn")
    died = ctx.Process(target=_reserve_and_die, args=(path,))
    died.start()
    died.join(60)
    assert died.exitcode == 0
    start = ctx.Barrier(3)
    procs = [ctx.Process(target=_reserve_after_the_expiry, args=(path, start)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    ledger = SQLiteLedger(path)
    assert ledger.usage(A, at=LATER) == Spent(1000 + 3, 0)
    assert _rows(Path(path), "SELECT SUM(calls) FROM budget_history") == [(4,)]
    assert _rows(Path(path), "SELECT COUNT(*) FROM budget_expired") == [(1,)]  # kept for a late settle
    ledger.close()
