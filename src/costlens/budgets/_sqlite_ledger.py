"""`SQLiteLedger`: budgets shared by every thread, asyncio task and process using one SQLite file.

Each reserve, settle and release is one `BEGIN IMMEDIATE` transaction: SQLite grants one writer
at a time across processes, so "check the limit, then reserve" can never interleave with another
reserve. Threads of one process also queue on a lock first, so they wait on each other cheaply
instead of in SQLite's sleeping busy handler. WAL mode; `synchronous = NORMAL` (a commit survives
an application crash; an OS crash may drop the last few).

The ledger lives in its own file by default (`<data dir>/budgets.db`): the recorder's batched
appends to the call store then never hold up a reservation. It may share the store's file: its
tables and its migrations table (`budget_schema_migrations`) have names of their own.
Migrations are append-only and pinned by tests/test_budgets_ledger.py, like the store's.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from costlens._errors import ConfigError
from costlens.budgets._errors import LedgerUnavailable
from costlens.budgets._ledger import (
    BudgetKey,
    Reservation,
    Spent,
    check_limits,
    check_reserve,
    history_bucket,
    new_reservation_id,
    now_us,
)
from costlens.store.sqlite import enable_wal

__all__ = ["MIGRATIONS", "SQLiteLedger", "from_url"]

T = TypeVar("T")

_CREATE = """
CREATE TABLE budget_reservations (
    reservation_id TEXT NOT NULL,
    key            TEXT NOT NULL,
    amount_nanousd BIGINT NOT NULL,
    bucket_us      BIGINT NOT NULL,
    at_us          BIGINT NOT NULL,
    expires_us     BIGINT NOT NULL,
    PRIMARY KEY (reservation_id, key)
) WITHOUT ROWID;
CREATE INDEX budget_reservations_key ON budget_reservations (key, expires_us, amount_nanousd);
CREATE TABLE budget_spend (
    key            TEXT NOT NULL,
    bucket_us      BIGINT NOT NULL,
    amount_nanousd BIGINT NOT NULL,
    PRIMARY KEY (key, bucket_us)
) WITHOUT ROWID;
CREATE TABLE budget_history (
    key            TEXT NOT NULL,
    bucket_us      BIGINT NOT NULL,
    amount_nanousd BIGINT NOT NULL,
    calls          BIGINT NOT NULL,
    PRIMARY KEY (key, bucket_us)
) WITHOUT ROWID;
CREATE TABLE budget_alerts (
    key       TEXT NOT NULL,
    period_us BIGINT NOT NULL,
    alert     TEXT NOT NULL,
    fired_us  BIGINT NOT NULL,
    PRIMARY KEY (key, period_us, alert)
) WITHOUT ROWID;
"""

#: (name, sql) in the order they apply. APPEND ONLY: never edit, rename or reorder an entry.
MIGRATIONS: tuple[tuple[str, str], ...] = (("0001_create_budget_ledger", _CREATE),)
_CLEANUP_EVERY_US = 10_000_000
_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS budget_schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
)
_USAGE = (
    "SELECT (SELECT COALESCE(SUM(amount_nanousd), 0) FROM budget_spend WHERE key = ?1 AND bucket_us >= ?2), "
    "(SELECT COALESCE(SUM(amount_nanousd), 0) FROM budget_reservations WHERE key = ?1 AND expires_us > ?3)"
)
_HOLD = (
    "INSERT INTO budget_reservations (reservation_id, key, amount_nanousd, bucket_us, at_us, expires_us) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_CHARGE = (
    "INSERT INTO budget_spend (key, bucket_us, amount_nanousd) VALUES (?, ?, ?) "
    "ON CONFLICT (key, bucket_us) DO UPDATE SET amount_nanousd = amount_nanousd + excluded.amount_nanousd"
)
_HISTORY = (
    "INSERT INTO budget_history (key, bucket_us, amount_nanousd, calls) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (key, bucket_us) DO UPDATE SET amount_nanousd = amount_nanousd + excluded.amount_nanousd, "
    "calls = calls + 1"
)


class SQLiteLedger:
    """A ledger in one SQLite file; created (with its folder) and migrated on first use."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path).expanduser().absolute()
        self.url = f"sqlite://{self.path}"
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._write = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._migrated = False
        self._closed = False
        self._next_cleanup_us = -1

    def __repr__(self) -> str:
        return f"SQLiteLedger({str(self.path)!r})"

    # -- connections and transactions ---------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # forked: the parent's connections and locks are not ours
            with self._lock:
                if self._pid != os.getpid():
                    self._pid, self._conns, self._local = os.getpid(), [], threading.local()
                    self._write = threading.Lock()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        if not self._migrated:
            self._migrate(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise LedgerUnavailable(f"{self!r} is closed")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            with self._write:  # switching a new file to WAL wants it to itself: not while we write
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
                enable_wal(conn, self._busy_timeout_s)
                conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._conns.append(conn)
        return conn

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one write transaction; storage failures become `LedgerUnavailable`."""
        try:
            conn = self._conn()
            with self._write, _transaction(conn):
                return fn(conn)
        except (sqlite3.Error, OSError) as exc:
            raise LedgerUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self._conn())
        except (sqlite3.Error, OSError) as exc:
            raise LedgerUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with self._write, _transaction(conn):
            conn.execute(_MIGRATIONS_TABLE)
            applied = {name for (name,) in conn.execute("SELECT name FROM budget_schema_migrations")}
            unknown = applied - {name for name, _ in MIGRATIONS}
            if unknown:
                raise ConfigError(
                    f"the budget ledger {self.path} has migrations this costlens does not know "
                    f"({', '.join(sorted(unknown))}): upgrade costlens to use it"
                )
            for name, sql in MIGRATIONS:
                if name in applied:
                    continue
                for statement in (s.strip() for s in sql.split(";\n")):
                    if statement:
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO budget_schema_migrations (name, applied_at) VALUES (?, ?)",
                    (name, datetime.now(UTC).isoformat()),
                )
        self._migrated = True

    # -- the ledger --------------------------------------------------------------------------------

    def reserve(
        self, keys: Sequence[BudgetKey], amount_nanousd: int, ttl_s: float, *, at: datetime | None = None
    ) -> Reservation:
        check_reserve(keys, amount_nanousd, ttl_s)
        at_us = now_us(at)
        rid = new_reservation_id()
        expires = at_us + int(ttl_s * 1_000_000)

        def run(conn: sqlite3.Connection) -> list[Spent]:
            if not 0 <= self._next_cleanup_us - at_us < _CLEANUP_EVERY_US:
                # Expired reservations already count for nothing; deleting them now and then
                # (at most every 10 s per process) only keeps the table small.
                conn.execute("DELETE FROM budget_reservations WHERE expires_us <= ?", (at_us,))
                self._next_cleanup_us = at_us + _CLEANUP_EVERY_US
            before = [Spent(*conn.execute(_USAGE, (key.id, key.since_us, at_us)).fetchone()) for key in keys]
            check_limits(keys, before, amount_nanousd)
            conn.executemany(_HOLD, [(rid, k.id, amount_nanousd, k.bucket_us, at_us, expires) for k in keys])
            return before

        before = self._run(run)
        return Reservation(rid, tuple(keys), amount_nanousd, at_us, expires, tuple(before))

    def settle(self, reservation: Reservation, actual_nanousd: int) -> None:
        if actual_nanousd < 0:
            raise ValueError(f"a settled cost cannot be negative ({actual_nanousd} nano-USD)")
        hb = history_bucket(reservation.at_us)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM budget_reservations WHERE reservation_id = ?", (reservation.id,))
            conn.executemany(_CHARGE, [(k.id, k.bucket_us, actual_nanousd) for k in reservation.keys])
            conn.executemany(_HISTORY, [(k.id, hb, actual_nanousd) for k in reservation.keys])

        self._run(run)

    def release(self, reservation: Reservation) -> None:
        self._run(
            lambda conn: conn.execute(
                "DELETE FROM budget_reservations WHERE reservation_id = ?", (reservation.id,)
            )
        )

    def usage(self, key: BudgetKey, *, at: datetime | None = None) -> Spent:
        at_us = now_us(at)
        row = self._read(lambda conn: conn.execute(_USAGE, (key.id, key.since_us, at_us)).fetchone())
        return Spent(int(row[0]), int(row[1]))

    def recent_spend(self, key_id: str, since_us: int) -> int:
        sql = "SELECT COALESCE(SUM(amount_nanousd), 0) FROM budget_history WHERE key = ? AND bucket_us >= ?"
        return int(
            self._read(lambda conn: conn.execute(sql, (key_id, history_bucket(since_us))).fetchone()[0])
        )

    def fire_once(self, key_id: str, period_us: int, alert: str) -> bool:
        sql = "INSERT OR IGNORE INTO budget_alerts (key, period_us, alert, fired_us) VALUES (?, ?, ?, ?)"
        return bool(self._run(lambda conn: conn.execute(sql, (key_id, period_us, alert, now_us())).rowcount))

    def key_ids(self, budget: str) -> list[str]:
        sql = (
            "SELECT key FROM budget_spend WHERE key = ?1 OR substr(key, 1, ?2) = ?3 "
            "UNION SELECT key FROM budget_reservations WHERE key = ?1 OR substr(key, 1, ?2) = ?3"
        )
        prefix = budget + "["
        rows = self._read(lambda conn: conn.execute(sql, (budget, len(prefix), prefix)).fetchall())
        return sorted(key for (key,) in rows)

    def prune(self, before_us: int) -> int:
        """Drop history buckets and fired-alert marks older than `before_us`; returns rows removed."""

        def run(conn: sqlite3.Connection) -> int:
            a = conn.execute("DELETE FROM budget_history WHERE bucket_us < ?", (before_us,)).rowcount
            b = conn.execute("DELETE FROM budget_alerts WHERE fired_us < ?", (before_us,)).rowcount
            return int(a + b)

        return self._run(run)


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def from_url(url: str) -> SQLiteLedger:
    """`sqlite:///abs/path/budgets.db`."""
    path = url.partition("://")[2]
    if not path or path in ("/:memory:", ":memory:"):
        raise ConfigError(
            f"bad SQLite ledger URL {url!r}: name a file, e.g. sqlite:///var/lib/app/budgets.db "
            "(use memory:// for a ledger in this process only)"
        )
    return SQLiteLedger(path)
