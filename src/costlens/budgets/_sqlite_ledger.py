"""`SQLiteLedger`: budgets shared by every thread, asyncio task and process using one SQLite file.

Each reserve is one `BEGIN IMMEDIATE` transaction: SQLite grants one writer at a time across
processes, so "check the limit, then reserve" can never interleave with another reserve. A settle
or release is one autocommit statement (a trigger moves the held amount into spend; migration 0005),
which locks the file from its start just the same; a transaction only when the reservation expired.
Threads of one process also queue on a lock first, so they wait on each other cheaply instead of
in SQLite's sleeping busy handler. WAL mode; `synchronous = NORMAL` (a commit survives an
application crash; an OS crash may drop the last few). Connections: one per thread, fork-safe,
shared code with the call store (`costlens.store._sqlite_conn`).

Expired reservations count as spend from their expiry (`_usage_and_limits`); a reserve moves them into
`budget_spend`/`budget_history` in its own transaction (so exactly once across processes), keeping
a mark in `budget_expired` for a late settle (corrects the charge) or release (refunds it).
`budget_limits` holds the limit each key was last reserved with: a reserve with another limit
(two processes or budgets files disagree) logs a warning, once per file and key in a process.
`budget_definitions` holds the latest definition of each budget name that a process put in force
(from its budgets file or from code) or removed, as JSON: what `costlens budgets status` reads to
show budgets defined in code.

The ledger lives in its own file by default (`<data dir>/budgets.db`): the recorder's batched
appends to the call store then never hold up a reservation. It may share the store's file: its
tables and its migrations table (`budget_schema_migrations`) have names of their own.
Migrations are append-only and pinned by tests/test_budgets_ledger.py, like the store's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from costlens._errors import ConfigError
from costlens.budgets._errors import LedgerUnavailable, LimitReached
from costlens.budgets._ledger import (
    EXPIRED_KEEP_US,
    BudgetDefinition,
    BudgetKey,
    Reservation,
    Spent,
    check_limits,
    check_reserve,
    history_bucket,
    new_reservation_id,
    now_us,
)
from costlens.budgets._ledger_common import (
    check_settle,
    definition_rows,
    read_definitions,
    warn_limits,
)
from costlens.store._migrations import sqlite_statements
from costlens.store._sqlcommon import unapplied
from costlens.store._sqlite_conn import ConnectionsClosed, ThreadConnections, insert_rows

__all__ = ["MIGRATIONS", "SQLiteLedger", "from_url"]

T = TypeVar("T")
# What a reserve transaction found: spend before it, keys whose stored limit differed, a refusal.
_Outcome = tuple[list[Spent], list[tuple[BudgetKey, int | None]], LimitReached | None]

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

_EXPIRED = """
CREATE TABLE budget_expired (
    reservation_id TEXT NOT NULL,
    key            TEXT NOT NULL,
    amount_nanousd BIGINT NOT NULL,
    bucket_us      BIGINT NOT NULL,
    at_us          BIGINT NOT NULL,
    expires_us     BIGINT NOT NULL,
    PRIMARY KEY (reservation_id, key)
) WITHOUT ROWID;
CREATE INDEX budget_expired_expires ON budget_expired (expires_us);
"""
# No index on budget_reservations (expires_us): the table holds only calls in flight, so the cleanup
# (every 10 s) scans it cheaply, while an index would cost every reserve and settle a page write.

_LIMITS = """
CREATE TABLE budget_limits (
    key           TEXT NOT NULL PRIMARY KEY,
    limit_nanousd BIGINT NOT NULL,
    updated_us    BIGINT NOT NULL
) WITHOUT ROWID;
"""

_DEFINITIONS = """
CREATE TABLE budget_definitions (
    name       TEXT NOT NULL PRIMARY KEY,
    source     TEXT NOT NULL,
    origin     TEXT NOT NULL,
    definition TEXT NOT NULL,
    defined_us BIGINT NOT NULL,
    removed_us BIGINT
) WITHOUT ROWID;
"""

# A settle in one autocommit statement (`_SETTLE`): setting a held row's `settled_nanousd` charges
# that amount to its key's spend and history and deletes the row, all inside SQLite. A write
# statement takes the write lock when it starts, like BEGIN IMMEDIATE, so it is as safe across
# processes as the transaction it replaces; and it hands the GIL away once instead of five times
# (BEGIN, DELETE, two upserts, COMMIT), each hand-off a context switch in a busy process.
# 300000000 is HISTORY_BUCKET_US (5 minutes): history_bucket(at_us), in SQL.
_SETTLE_TRIGGER = """
ALTER TABLE budget_reservations ADD COLUMN settled_nanousd BIGINT;
CREATE TRIGGER budget_reservation_settled AFTER UPDATE OF settled_nanousd ON budget_reservations
FOR EACH ROW WHEN NEW.settled_nanousd IS NOT NULL BEGIN
    INSERT INTO budget_spend (key, bucket_us, amount_nanousd)
    VALUES (NEW.key, NEW.bucket_us, NEW.settled_nanousd)
    ON CONFLICT (key, bucket_us) DO UPDATE SET amount_nanousd = amount_nanousd + excluded.amount_nanousd;
    INSERT INTO budget_history (key, bucket_us, amount_nanousd, calls)
    VALUES (NEW.key, NEW.at_us - NEW.at_us % 300000000, NEW.settled_nanousd, 1)
    ON CONFLICT (key, bucket_us) DO UPDATE SET amount_nanousd = amount_nanousd + excluded.amount_nanousd,
        calls = calls + excluded.calls;
    DELETE FROM budget_reservations WHERE reservation_id = NEW.reservation_id AND key = NEW.key;
END;
"""

#: (name, sql) in the order they apply. APPEND ONLY: never edit, rename or reorder an entry.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001_create_budget_ledger", _CREATE),
    ("0002_expired_reservations", _EXPIRED),
    ("0003_budget_limits", _LIMITS),
    ("0004_budget_definitions", _DEFINITIONS),
    ("0005_settle_trigger", _SETTLE_TRIGGER),
)
_CLEANUP_EVERY_US = 10_000_000
_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS budget_schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
)
_KEYS_PER_READ = 32


@lru_cache(maxsize=_KEYS_PER_READ)
def _usage_and_limits(keys: int) -> str:
    """One row: (spent, reserved, stored limit) of each of `keys` keys, with the time bound as ?1
    and each key's (id, since) as ?2, ?3, then ?4, ?5, ... (`_usage_and_limits_of`). One statement
    instead of one per key: each statement step hands the GIL to the process's other threads (see
    `insert_rows`). Spent counts settled charges and reservations expired by ?1 that no reserve has
    moved into budget_spend yet: the answer is the same before and after the move."""
    columns = []
    for i in range(keys):
        key, since, at = (f"?{2 * i + 2}", f"?{2 * i + 3}", "?1")
        columns.append(
            f"(SELECT COALESCE(SUM(amount_nanousd), 0) FROM budget_spend WHERE key = {key} "
            f"AND bucket_us >= {since}) + (SELECT COALESCE(SUM(amount_nanousd), 0) FROM budget_reservations "
            f"WHERE key = {key} AND expires_us <= {at} AND bucket_us >= {since}), "
            f"(SELECT COALESCE(SUM(amount_nanousd), 0) FROM budget_reservations WHERE key = {key} "
            f"AND expires_us > {at}), (SELECT limit_nanousd FROM budget_limits WHERE key = {key})"
        )
    return "SELECT " + ", ".join(columns)


def _usage_and_limits_of(
    conn: sqlite3.Connection, keys: Sequence[BudgetKey], at_us: int
) -> list[tuple[int, int, int | None]]:
    """(spent, reserved, stored limit) of each key, in one statement per 32 keys."""
    found: list[tuple[int, int, int | None]] = []
    for start in range(0, len(keys), _KEYS_PER_READ):
        chunk = keys[start : start + _KEYS_PER_READ]
        params: list[object] = [at_us]
        for k in chunk:
            params += (k.id, k.since_us)
        row = conn.execute(_usage_and_limits(len(chunk)), params).fetchone()
        found += [(row[i], row[i + 1], row[i + 2]) for i in range(0, len(row), 3)]
    return found


_SET_LIMIT = (
    "INSERT INTO budget_limits (key, limit_nanousd, updated_us) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET limit_nanousd = excluded.limit_nanousd, updated_us = excluded.updated_us"
)
# Multi-row inserts (`insert_rows`): a head, the values, a tail.
_HOLD = "INSERT INTO budget_reservations (reservation_id, key, amount_nanousd, bucket_us, at_us, expires_us)"
_CHARGE = "INSERT INTO budget_spend (key, bucket_us, amount_nanousd)"
_CHARGE_TAIL = (
    " ON CONFLICT (key, bucket_us) DO UPDATE SET amount_nanousd = amount_nanousd + excluded.amount_nanousd"
)
# (key, bucket, amount, calls): calls is 1 for a charge, 0 for a correction, -1 for a refund
_HISTORY = "INSERT INTO budget_history (key, bucket_us, amount_nanousd, calls)"
_HISTORY_TAIL = (
    " ON CONFLICT (key, bucket_us) DO UPDATE SET amount_nanousd = amount_nanousd + excluded.amount_nanousd, "
    "calls = calls + excluded.calls"
)
_DEFINE = (
    "INSERT INTO budget_definitions (name, source, origin, definition, defined_us, removed_us) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET source = excluded.source, "
    "origin = excluded.origin, definition = excluded.definition, defined_us = excluded.defined_us, "
    "removed_us = excluded.removed_us"
)
_SETTLE = "UPDATE budget_reservations SET settled_nanousd = ? WHERE reservation_id = ?"
_RELEASE = "DELETE FROM budget_reservations WHERE reservation_id = ?"
_ROWS = "reservation_id, key, amount_nanousd, bucket_us, at_us, expires_us"
_EXPIRED_ROWS = f"SELECT {_ROWS} FROM budget_reservations WHERE expires_us <= ?"
_KEEP_EXPIRED = f"INSERT OR REPLACE INTO budget_expired ({_ROWS}) VALUES (?, ?, ?, ?, ?, ?)"
_FIND_EXPIRED = "SELECT key, amount_nanousd, bucket_us, at_us FROM budget_expired WHERE reservation_id = ?"


class SQLiteLedger:
    """A ledger in one SQLite file; created (with its folder) and migrated on first use."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path).expanduser().absolute()
        self.url = f"sqlite://{self.path}"
        self._conns = ThreadConnections(
            self.path,
            busy_timeout_s=busy_timeout_s,
            pragmas=("PRAGMA synchronous = NORMAL",),
            # A ledger's rows are a few dozen bytes, and every commit writes each page it touched to
            # the WAL whole: 1 KiB pages cut a reserve + settle by ~20 us of CPU and ~70 us of wall
            # time against the 4 KiB default (measured). Files made before keep their page size.
            new_file_pragmas=("PRAGMA page_size = 1024",),
            owner=repr(self),
        )
        self._migrated = False
        self._next_cleanup_us = -1

    def __repr__(self) -> str:
        return f"SQLiteLedger({str(self.path)!r})"

    # -- connections and transactions ---------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = self._conns.get()
        if not self._migrated:
            self._migrate(conn)
        return conn

    def _run(self, fn: Callable[[sqlite3.Connection], T], *, transaction: bool = True) -> T:
        """Run `fn` in one write transaction (or, `transaction=False`, as it is: one autocommit
        statement); storage failures become `LedgerUnavailable`.

        This process's threads queue on the connections' lock first (cheaper than SQLite's
        sleeping busy handler); processes queue in SQLite (`BEGIN IMMEDIATE`, busy timeout)."""
        try:
            conn = self._conn()
            with self._conns.lock:
                return _transact(conn, fn) if transaction else fn(conn)
        except (sqlite3.Error, OSError, ConnectionsClosed) as exc:
            raise LedgerUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self._conn())
        except (sqlite3.Error, OSError, ConnectionsClosed) as exc:
            raise LedgerUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._conns.close()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with self._conns.lock:
            _transact(conn, self._apply_migrations)
        self._migrated = True

    def _apply_migrations(self, conn: sqlite3.Connection) -> None:
        conn.execute(_MIGRATIONS_TABLE)
        applied = {name for (name,) in conn.execute("SELECT name FROM budget_schema_migrations")}
        for name, sql in unapplied(MIGRATIONS, applied, f"the budget ledger {self.path}", "use it"):
            for statement in sqlite_statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO budget_schema_migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )

    # -- the ledger --------------------------------------------------------------------------------

    def reserve(
        self, keys: Sequence[BudgetKey], amount_nanousd: int, ttl_s: float, *, at: datetime | None = None
    ) -> Reservation:
        check_reserve(keys, amount_nanousd, ttl_s)
        at_us = now_us(at)
        rid = new_reservation_id()
        expires = at_us + int(ttl_s * 1_000_000)
        cleanup = not 0 <= self._next_cleanup_us - at_us < _CLEANUP_EVERY_US

        def run(conn: sqlite3.Connection) -> _Outcome:
            if cleanup:
                # Expired reservations count as spend already (see _usage_and_limits); moving them into spend
                # now and then (at most every 10 s per process) keeps the table small. In this
                # transaction, so exactly once across processes.
                _charge_expired(conn, at_us)
            rows = _usage_and_limits_of(conn, keys, at_us)
            before = [Spent(int(spent), int(reserved)) for spent, reserved, _ in rows]
            changed = [(k, row[2]) for k, row in zip(keys, rows, strict=True) if row[2] != k.limit_nanousd]
            if changed:
                conn.executemany(_SET_LIMIT, [(k.id, k.limit_nanousd, at_us) for k, _ in changed])
            try:
                check_limits(keys, before, amount_nanousd)
            except LimitReached as full:  # commit the cleanup and the limits all the same
                return before, changed, full
            insert_rows(conn, _HOLD, [(rid, k.id, amount_nanousd, k.bucket_us, at_us, expires) for k in keys])
            return before, changed, None

        before, changed, full = self._run(run)
        if cleanup:
            self._next_cleanup_us = at_us + _CLEANUP_EVERY_US
        warn_limits(str(self.path), changed)
        if full is not None:
            raise full
        return Reservation(rid, tuple(keys), amount_nanousd, at_us, expires, tuple(before))

    def settle(self, reservation: Reservation, actual_nanousd: int) -> None:
        """Charge `actual`; a second settle changes nothing. A reservation that expired (and was
        charged its reserved amount) gets the difference `actual - reserved`."""
        check_settle(actual_nanousd)
        if self._held_once(_SETTLE, (actual_nanousd, reservation.id)):
            return  # charged by the trigger (migration 0005)
        self._run(lambda conn: _correct_expired(conn, reservation.id, lambda r: actual_nanousd - r, 0))

    def release(self, reservation: Reservation) -> None:
        """Drop the reservation; a second release changes nothing. A reservation that expired (and
        was charged its reserved amount) is refunded."""
        if self._held_once(_RELEASE, (reservation.id,)):
            return
        self._run(lambda conn: _correct_expired(conn, reservation.id, lambda r: -r, -1))

    def _held_once(self, sql: str, params: tuple[object, ...]) -> bool:
        """Run one statement on a reservation's held rows, in autocommit (a write statement locks
        the file for itself from its start); True when it found them. Else the reservation was
        settled or released already, or expired, which the caller corrects in a transaction."""
        return self._run(lambda conn: bool(conn.execute(sql, params).rowcount), transaction=False)

    def usage(self, key: BudgetKey, *, at: datetime | None = None) -> Spent:
        at_us = now_us(at)
        spent, reserved, _ = self._read(lambda conn: _usage_and_limits_of(conn, [key], at_us))[0]
        return Spent(int(spent), int(reserved))

    def recent_spend(self, key_id: str, since_us: int) -> int:
        """Settled spend from `budget_history`; expired reservations appear once a reserve charged them."""
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

    def record_definitions(self, definitions: Sequence[BudgetDefinition]) -> None:
        rows = definition_rows(definitions)
        if rows:
            self._run(lambda conn: conn.executemany(_DEFINE, rows))

    def definitions(self) -> list[BudgetDefinition]:
        sql = (
            "SELECT name, source, origin, definition, defined_us, removed_us FROM budget_definitions "
            "ORDER BY name"
        )
        return read_definitions(self._read(lambda conn: conn.execute(sql).fetchall()))

    def prune(self, before_us: int) -> int:
        """Drop history buckets and fired-alert marks older than `before_us`; returns rows removed."""

        def run(conn: sqlite3.Connection) -> int:
            a = conn.execute("DELETE FROM budget_history WHERE bucket_us < ?", (before_us,)).rowcount
            b = conn.execute("DELETE FROM budget_alerts WHERE fired_us < ?", (before_us,)).rowcount
            return int(a + b)

        return self._run(run)


def _charge_expired(conn: sqlite3.Connection, at_us: int) -> None:
    """Move reservations expired by `at_us` into spend and history, keeping a mark of each for a
    late settle or release; forget marks older than `EXPIRED_KEEP_US`. Call inside a transaction."""
    rows = conn.execute(_EXPIRED_ROWS, (at_us,)).fetchall()
    if rows:
        insert_rows(
            conn, _CHARGE, [(key, bucket, amount) for _, key, amount, bucket, _, _ in rows], _CHARGE_TAIL
        )
        insert_rows(
            conn,
            _HISTORY,
            [(key, history_bucket(at), amount, 1) for _, key, amount, _, at, _ in rows],
            _HISTORY_TAIL,
        )
        conn.executemany(_KEEP_EXPIRED, rows)
        conn.execute("DELETE FROM budget_reservations WHERE expires_us <= ?", (at_us,))
    conn.execute("DELETE FROM budget_expired WHERE expires_us < ?", (at_us - EXPIRED_KEEP_US,))


def _correct_expired(
    conn: sqlite3.Connection, reservation_id: str, delta: Callable[[int], int], calls: int
) -> None:
    """A late settle or release of a reservation charged when it expired: add `delta(reserved)` to
    each of its keys (and `calls` to history), and forget the mark so a retry changes nothing."""
    rows = conn.execute(_FIND_EXPIRED, (reservation_id,)).fetchall()
    if not rows:
        return  # settled or released already, or expired long ago: nothing to do
    conn.execute("DELETE FROM budget_expired WHERE reservation_id = ?", (reservation_id,))
    insert_rows(
        conn, _CHARGE, [(key, bucket, delta(amount)) for key, amount, bucket, _ in rows], _CHARGE_TAIL
    )
    insert_rows(
        conn,
        _HISTORY,
        [(key, history_bucket(at), delta(amount), calls) for key, amount, _, at in rows],
        _HISTORY_TAIL,
    )


def _transact(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn(conn)` in one `BEGIN IMMEDIATE` transaction, rolled back if it raises. A plain function,
    not a `@contextmanager`: that cost ~5 us on each of a budgeted call's two transactions."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def from_url(url: str) -> SQLiteLedger:
    """`sqlite:///abs/path/budgets.db`."""
    path = url.partition("://")[2]
    if not path or path in ("/:memory:", ":memory:"):
        raise ConfigError(
            f"bad SQLite ledger URL {url!r}: name a file, e.g. sqlite:///var/lib/app/budgets.db "
            "(use memory:// for a ledger in this process only)"
        )
    return SQLiteLedger(path)
