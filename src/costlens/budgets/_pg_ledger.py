"""`PostgresLedger`: budgets shared by every instance of an app through one PostgreSQL database.

Locking. A reserve is one READ COMMITTED transaction that first locks the `budget_limits` row of
each of its keys with `SELECT ... ORDER BY key FOR UPDATE`, then reads the spend and reservations
of those keys in a new statement (so with a snapshot taken after the locks were granted: every
reserve that held them before has committed and is seen), checks the limits and inserts the
reservation. Two reserves sharing a key therefore run one after the other (no check-then-charge
race, no lost update), reserves on disjoint keys run in parallel, and because every transaction
takes its key locks in the same (sorted) order, reserves cannot deadlock on them. A key's lock row
is created once, committed on its own (`INSERT ... ON CONFLICT DO NOTHING`), before the first
reserve on it in a process: a row that does not exist yet cannot be locked. Spend and history rows
are always written in (key, bucket) order too; a deadlock or serialisation failure that slips
through anyway rolls the transaction back whole and it is retried (a few times).

The statements of a reserve are sent in pipeline mode: lock, read (and the expiry charge) in one
round trip, then hold and commit in a second. `settle` and `release` are each one statement in
autocommit (a statement is a transaction of its own), idempotent: the reservation's rows are
deleted and charged in the same statement, so a second settle finds nothing. Only when nothing
was held does a second statement look for the mark of an expired reservation (below); the two
tables are never written by one reservation in two transactions except by the expiry move, which
is itself atomic, so whichever statement sees the reservation applies it, exactly once.

Expired reservations count as spend from their expiry (the read adds reservations expired at the
reserve's time); a reserve moves them into `budget_spend`/`budget_history` (one statement:
`DELETE ... RETURNING` feeding the inserts, so a row is moved by exactly one transaction across
processes) at most every 10 s per process, and only if no other process is doing it right now
(`pg_try_advisory_xact_lock`). A mark stays in `budget_expired` for `EXPIRED_KEEP_US` for a late
settle (corrects the charge) or release (refunds it). `budget_limits` also holds the limit each
key was last reserved with: a reserve with another limit logs a warning, once per database and key
in a process. `budget_definitions` holds the latest definition of each budget name.

Migrations are named, append-only and pinned (tests/test_ledger_backends.py), recorded in
`budget_migrations` (the PostgreSQL call store uses `schema_migrations`: they may share a
database), and applied under `pg_advisory_xact_lock`, so processes starting together apply each
once. Connections: a `psycopg_pool` pool opened lazily on first use (constructing a ledger does no
I/O) and replaced in a forked child (the parent's connections are never touched there). Server
failures raise `LedgerUnavailable` naming host:port, never the password; the `url` attribute
and `repr` hide it too.

URL: `postgresql://user:password@host:5432/db?pool_max=16&pool_timeout=5` (`postgres://` too);
`pool_max` and `pool_timeout` (seconds to wait for a connection) are the ledger's own, every
other parameter goes to libpq.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from costlens._errors import ConfigError
from costlens.budgets._errors import LedgerUnavailable, LimitReached
from costlens.budgets._ledger import (
    EXPIRED_KEEP_US,
    HISTORY_BUCKET_US,
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
from costlens.store._migrations import statements

__all__ = ["MIGRATIONS", "PostgresLedger", "from_url"]

T = TypeVar("T")
# What a reserve transaction found: spend before it, keys whose stored limit differed, a refusal.
_Outcome = tuple[list[Spent], list[tuple[BudgetKey, int]], LimitReached | None]
log = logging.getLogger("costlens")

_CREATE = """
CREATE TABLE budget_limits (
    key           TEXT PRIMARY KEY,
    limit_nanousd BIGINT NOT NULL,
    updated_us    BIGINT NOT NULL
);
CREATE TABLE budget_reservations (
    reservation_id TEXT NOT NULL,
    key            TEXT NOT NULL,
    amount_nanousd BIGINT NOT NULL,
    bucket_us      BIGINT NOT NULL,
    at_us          BIGINT NOT NULL,
    expires_us     BIGINT NOT NULL,
    PRIMARY KEY (reservation_id, key)
);
CREATE INDEX budget_reservations_key ON budget_reservations (key, expires_us);
CREATE INDEX budget_reservations_expires ON budget_reservations (expires_us);
CREATE TABLE budget_spend (
    key            TEXT NOT NULL,
    bucket_us      BIGINT NOT NULL,
    amount_nanousd BIGINT NOT NULL,
    PRIMARY KEY (key, bucket_us)
);
CREATE TABLE budget_history (
    key            TEXT NOT NULL,
    bucket_us      BIGINT NOT NULL,
    amount_nanousd BIGINT NOT NULL,
    calls          BIGINT NOT NULL,
    PRIMARY KEY (key, bucket_us)
);
CREATE INDEX budget_history_bucket ON budget_history (bucket_us);
CREATE TABLE budget_alerts (
    key       TEXT NOT NULL,
    period_us BIGINT NOT NULL,
    alert     TEXT NOT NULL,
    fired_us  BIGINT NOT NULL,
    PRIMARY KEY (key, period_us, alert)
);
CREATE INDEX budget_alerts_fired ON budget_alerts (fired_us);
CREATE TABLE budget_expired (
    reservation_id TEXT NOT NULL,
    key            TEXT NOT NULL,
    amount_nanousd BIGINT NOT NULL,
    bucket_us      BIGINT NOT NULL,
    at_us          BIGINT NOT NULL,
    expires_us     BIGINT NOT NULL,
    PRIMARY KEY (reservation_id, key)
);
CREATE INDEX budget_expired_expires ON budget_expired (expires_us);
ALTER TABLE budget_reservations SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0, fillfactor = 70);
ALTER TABLE budget_spend SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0, fillfactor = 50);
ALTER TABLE budget_history SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0, fillfactor = 50)
"""
# Every call inserts and deletes reservation rows and updates the same few spend and history rows:
# left to the default autovacuum (20% of a tiny table, throttled), dead row versions pile up and
# each read walks past thousands of them. These tables are vacuumed after every 1,000 dead rows,
# unthrottled, and keep free room in each page so an update stays on its page (HOT).

_DEFINITIONS = """
CREATE TABLE budget_definitions (
    name       TEXT PRIMARY KEY,
    source     TEXT NOT NULL,
    origin     TEXT NOT NULL,
    definition TEXT NOT NULL,
    defined_us BIGINT NOT NULL,
    removed_us BIGINT
)
"""

#: (name, sql) in the order they apply. APPEND ONLY: never edit, rename or reorder an entry.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001_create_budget_ledger", _CREATE),
    ("0002_budget_definitions", _DEFINITIONS),
)

_CLEANUP_EVERY_US = 10_000_000
# Advisory lock keys ("costlens" in ASCII, and one more): migrations, and the expiry move.
_MIGRATE_LOCK = 0x636F73746C656E73
_CLEANUP_LOCK = _MIGRATE_LOCK + 1

_TRY_CLEANUP = "SELECT pg_try_advisory_xact_lock(%s)"
_LOCK = "SELECT key, limit_nanousd FROM budget_limits WHERE key = ANY(%s) ORDER BY key FOR UPDATE"
_ADD_KEYS = (
    "INSERT INTO budget_limits (key, limit_nanousd, updated_us) "
    "SELECT k, l, %s FROM unnest(%s::text[], %s::bigint[]) AS u(k, l) ORDER BY k ON CONFLICT (key) DO NOTHING"
)
_SET_LIMITS = (
    "UPDATE budget_limits AS b SET limit_nanousd = u.l, updated_us = %s "
    "FROM unnest(%s::text[], %s::bigint[]) AS u(k, l) WHERE b.key = u.k"
)
# Spend counts settled charges and reservations expired by %(at)s that no reserve has moved into
# budget_spend yet: the answer is the same before and after the move.
_USAGE = """
SELECT
  (SELECT COALESCE(SUM(s.amount_nanousd), 0) FROM budget_spend s
    WHERE s.key = k.key AND s.bucket_us >= k.since)::bigint
  + (SELECT COALESCE(SUM(r.amount_nanousd), 0) FROM budget_reservations r
    WHERE r.key = k.key AND r.expires_us <= %(at)s AND r.bucket_us >= k.since)::bigint,
  (SELECT COALESCE(SUM(r.amount_nanousd), 0) FROM budget_reservations r
    WHERE r.key = k.key AND r.expires_us > %(at)s)::bigint
FROM unnest(%(keys)s::text[], %(since)s::bigint[]) WITH ORDINALITY AS k(key, since, n)
ORDER BY k.n
"""
_HOLD = (
    "INSERT INTO budget_reservations (reservation_id, key, amount_nanousd, bucket_us, at_us, expires_us) "
    "SELECT %s, k, %s, b, %s, %s FROM unnest(%s::text[], %s::bigint[]) AS u(k, b)"
)
_UPSERT_SPEND = (
    "INSERT INTO budget_spend (key, bucket_us, amount_nanousd) SELECT key, bucket_us, amount FROM {src} "
    "ORDER BY key, bucket_us ON CONFLICT (key, bucket_us) "
    "DO UPDATE SET amount_nanousd = budget_spend.amount_nanousd + excluded.amount_nanousd"
)
_UPSERT_HISTORY = (
    "INSERT INTO budget_history (key, bucket_us, amount_nanousd, calls) SELECT key, hb, amount, calls "
    "FROM {src} ORDER BY key, hb ON CONFLICT (key, bucket_us) DO UPDATE SET "
    "amount_nanousd = budget_history.amount_nanousd + excluded.amount_nanousd, "
    "calls = budget_history.calls + excluded.calls"
)
# The 5-minute history bucket of at_us (floored, like Python's %; `%%` is psycopg's escaped %).
_HB = f"(at_us - ((at_us %% {HISTORY_BUCKET_US}) + {HISTORY_BUCKET_US}) %% {HISTORY_BUCKET_US})"
# Move every reservation expired by %(at)s into spend and history, keeping a mark of each: one
# statement, so a row is moved (and charged) by exactly one transaction.
_CHARGE_EXPIRED = f"""
WITH gone AS (
  DELETE FROM budget_reservations WHERE expires_us <= %(at)s
  RETURNING reservation_id, key, amount_nanousd, bucket_us, at_us, expires_us
), marks AS (
  INSERT INTO budget_expired SELECT * FROM gone ON CONFLICT DO NOTHING
), spend AS (
  {
    _UPSERT_SPEND.format(
        src="(SELECT key, bucket_us, SUM(amount_nanousd)::bigint AS amount FROM gone GROUP BY 1, 2) g"
    )
}
), history AS (
  {
    _UPSERT_HISTORY.format(
        src=f"(SELECT key, {_HB} AS hb, SUM(amount_nanousd)::bigint AS amount, COUNT(*) AS calls "
        "FROM gone GROUP BY 1, 2) g"
    )
}
)
SELECT COUNT(*) FROM gone
"""
_FORGET_EXPIRED = "DELETE FROM budget_expired WHERE expires_us < %s"
# The rows a settle charges (none for a release).
_HELD = "(SELECT key, {}, %(amount)s::bigint AS amount FROM gone WHERE %(amount)s::bigint IS NOT NULL) g"
# Settle (or release: %(amount)s NULL) a held reservation. Its rows are distinct keys, so every
# spend/history row is written once in the statement.
_SETTLE_HELD = f"""
WITH gone AS (
  DELETE FROM budget_reservations WHERE reservation_id = %(rid)s RETURNING key, bucket_us, at_us
), spend AS (
  {_UPSERT_SPEND.format(src=_HELD.format("bucket_us"))}
), history AS (
  {_UPSERT_HISTORY.format(src=_HELD.format(f"{_HB} AS hb, 1 AS calls"))}
)
SELECT COUNT(*) FROM gone
"""
# A late settle (%(amount)s: the real cost) or release (NULL: a refund) of a reservation charged
# when it expired: add the difference and forget the mark, so a retry changes nothing.
_CORRECT_EXPIRED = f"""
WITH gone AS (
  DELETE FROM budget_expired WHERE reservation_id = %(rid)s
  RETURNING key, bucket_us, at_us,
    COALESCE(%(amount)s::bigint - amount_nanousd, -amount_nanousd) AS amount,
    CASE WHEN %(amount)s::bigint IS NULL THEN -1 ELSE 0 END AS calls
), spend AS (
  {_UPSERT_SPEND.format(src="gone")}
), history AS (
  {_UPSERT_HISTORY.format(src=f"(SELECT key, {_HB} AS hb, amount, calls FROM gone) g")}
)
SELECT COUNT(*) FROM gone
"""
_DEFINE = (
    "INSERT INTO budget_definitions (name, source, origin, definition, defined_us, removed_us) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET source = excluded.source, "
    "origin = excluded.origin, definition = excluded.definition, defined_us = excluded.defined_us, "
    "removed_us = excluded.removed_us"
)
# Transient failures after which a transaction was rolled back whole and may simply run again.
_RETRY = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, pg_errors.LockNotAvailable)
_ATTEMPTS = 5

# Budget keys this process has warned about (ledger, key): the warning is given once.
_warned_limits: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()
# Pools a forked child inherited: kept referenced so that their connections (the parent's
# sockets) are never closed, hence never terminated, from the child.
_inherited: list[ConnectionPool[Any]] = []


class PostgresLedger:
    """A ledger in a PostgreSQL database; its tables are created (migrated) on first use."""

    def __init__(self, url: str, *, pool_max: int = 16, pool_timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("postgresql", "postgres"):
            raise ConfigError(f"not a PostgreSQL URL: {_redact(url)!r}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in ("pool_max", "pool_timeout")}
        try:
            self._pool_max = int(ours.get("pool_max", pool_max))
            self._pool_timeout_s = float(ours.get("pool_timeout", pool_timeout_s))
        except ValueError:
            raise ConfigError(
                f"bad PostgreSQL ledger URL {_redact(url)!r}: pool_max is a whole number, "
                "pool_timeout a number of seconds"
            ) from None
        if self._pool_max < 1 or self._pool_timeout_s <= 0:
            raise ConfigError(f"bad PostgreSQL ledger URL {_redact(url)!r}: pool_max and pool_timeout > 0")
        rest = urlencode([(k, v) for k, v in query if k not in ours])
        self._conninfo = urlunsplit(parts._replace(scheme="postgresql", query=rest))
        self._password = parts.password or ""
        self.url = _redact(url)
        self.where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Any] | None = None
        self._pid = os.getpid()
        self._migrated = False
        self._known: set[str] = set()  # keys whose lock row exists (rows are never deleted)
        self._next_cleanup_us = -1
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresLedger({self.url!r})"

    # -- connections and transactions ---------------------------------------------------------------

    def _get_pool(self) -> ConnectionPool[Any]:
        if self._closed:
            raise LedgerUnavailable(f"{self}: the ledger is closed")
        if self._pid != os.getpid():
            # A forked child: the parent's pool (its lock, threads, sockets) is not ours to use.
            if self._pool is not None:
                _inherited.append(self._pool)
            self._pool, self._lock, self._pid = None, threading.Lock(), os.getpid()
        pool = self._pool
        if pool is None:
            with self._lock:
                pool = self._pool
                if pool is None:
                    pool = ConnectionPool(
                        self._conninfo,
                        min_size=1,
                        max_size=self._pool_max,
                        timeout=self._pool_timeout_s,
                        open=False,
                        name=f"costlens-ledger-{self.where}",
                        kwargs={"connect_timeout": max(1, int(self._pool_timeout_s))},
                    )
                    pool.open(wait=False)
                    self._pool = pool
        if not self._migrated:
            self._migrate(pool)
        return pool

    def _fail(self, exc: BaseException) -> LedgerUnavailable:
        text = str(exc)
        if self._password:
            text = text.replace(self._password, "***")
        return LedgerUnavailable(
            f"PostgreSQL ledger at {self.where} ({self.url}): {type(exc).__name__}: {text}"
        )

    def _run(
        self, fn: Callable[[psycopg.Connection[Any]], T], *, autocommit: bool = False, pipeline: bool = False
    ) -> T:
        """Run `fn` on a pooled connection: in one transaction committed at the end, or (autocommit)
        statement by statement. A deadlock or serialisation failure is retried; a connection found
        dead (the server restarted) makes the pool check its connections and the call run again,
        unless the failure may have come after the commit was sent. Failures -> LedgerUnavailable."""
        for attempt in range(_ATTEMPTS):
            state = {"sent_commit": False}
            try:
                pool = self._get_pool()
                with pool.connection() as conn:
                    conn.autocommit = autocommit
                    try:
                        if pipeline:
                            with conn.pipeline():
                                result = fn(conn)
                                state["sent_commit"] = True
                                conn.commit()
                            return result
                        result = fn(conn)
                        if not autocommit:
                            state["sent_commit"] = True
                            conn.commit()
                        return result
                    except BaseException:
                        if not conn.closed and not autocommit:
                            conn.rollback()
                        raise
            except _RETRY:
                if attempt + 1 == _ATTEMPTS:
                    raise
            except psycopg.OperationalError as exc:
                # A statement failed on a connection that broke (the server restarted since it was
                # pooled). Before a commit was sent nothing was committed, so the call runs again on
                # a fresh connection; autocommit calls are idempotent (settle, release, reads).
                pool_now = self._pool
                if state["sent_commit"] or attempt + 1 == _ATTEMPTS or pool_now is None:
                    raise self._fail(exc) from exc
                try:
                    pool_now.check()
                except Exception as check_exc:
                    raise self._fail(exc) from check_exc
            except (psycopg.Error, PoolTimeout, OSError) as exc:
                if isinstance(exc, pg_errors.UndefinedTable):
                    self._migrated = False  # the tables were dropped: create them again next time
                raise self._fail(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close()

    def _migrate(self, pool: ConnectionPool[Any]) -> None:
        try:
            with pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS budget_migrations "
                    "(name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                applied = {name for (name,) in conn.execute("SELECT name FROM budget_migrations")}
                unknown = applied - {name for name, _ in MIGRATIONS}
                if unknown:
                    raise ConfigError(
                        f"the budget ledger {self.url} has migrations this costlens does not know "
                        f"({', '.join(sorted(unknown))}): upgrade costlens to use it"
                    )
                for name, sql in MIGRATIONS:
                    if name in applied:
                        continue
                    for statement in statements(sql):
                        conn.execute(statement.encode())
                    conn.execute("INSERT INTO budget_migrations (name) VALUES (%s)", (name,))
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            raise self._fail(exc) from exc
        self._migrated = True

    # -- the ledger --------------------------------------------------------------------------------

    def _add_keys(self, keys: Sequence[BudgetKey], at_us: int) -> None:
        """Create the lock row of every key this process has not seen yet, committed on its own
        (a reserve can only lock rows that exist). The first limit written is the caller's."""
        new = sorted((k.id, k.limit_nanousd) for k in keys if k.id not in self._known)
        if not new:
            return
        ids, limits = [i for i, _ in new], [lim for _, lim in new]
        self._run(lambda conn: conn.execute(_ADD_KEYS, (at_us, ids, limits)), autocommit=True)
        self._known.update(ids)

    def reserve(
        self, keys: Sequence[BudgetKey], amount_nanousd: int, ttl_s: float, *, at: datetime | None = None
    ) -> Reservation:
        check_reserve(keys, amount_nanousd, ttl_s)
        at_us = now_us(at)
        rid = new_reservation_id()
        expires = at_us + int(ttl_s * 1_000_000)
        cleanup = not 0 <= self._next_cleanup_us - at_us < _CLEANUP_EVERY_US
        ids = [k.id for k in keys]
        self._add_keys(keys, at_us)

        def run(conn: psycopg.Connection[Any]) -> _Outcome:
            # Pipelined: lock, (try the cleanup lock,) read in one round trip; the rest and the
            # commit in a second. The read's snapshot is taken once the key locks are held.
            locked = conn.execute(_LOCK, (ids,))
            cleaner = conn.execute(_TRY_CLEANUP, (_CLEANUP_LOCK,)) if cleanup else None
            usage = conn.execute(_USAGE, {"at": at_us, "keys": ids, "since": [k.since_us for k in keys]})
            stored = dict(locked.fetchall())
            if len(stored) < len(keys):
                # A lock row is gone (the tables were made again): create it in this transaction.
                # Unlike the usual path this may wait on other reserves in any order; a deadlock
                # is retried whole by _run.
                missing = [k for k in keys if k.id not in stored]
                conn.execute(_ADD_KEYS, (at_us, [k.id for k in missing], [k.limit_nanousd for k in missing]))
                stored.update(conn.execute(_LOCK, (ids,)).fetchall())
                usage = conn.execute(_USAGE, {"at": at_us, "keys": ids, "since": [k.since_us for k in keys]})
            before = [Spent(int(spent), int(reserved)) for spent, reserved in usage.fetchall()]
            if cleaner is not None and cleaner.fetchone() == (True,):
                # Expired reservations count as spend already (see _USAGE); moving them now and then
                # keeps the table small. One statement: exactly once across processes.
                conn.execute(_CHARGE_EXPIRED, {"at": at_us})
                conn.execute(_FORGET_EXPIRED, (at_us - EXPIRED_KEEP_US,))
            changed = [(k, int(stored[k.id])) for k in keys if stored[k.id] != k.limit_nanousd]
            if changed:
                conn.execute(
                    _SET_LIMITS, (at_us, [k.id for k, _ in changed], [k.limit_nanousd for k, _ in changed])
                )
            try:
                check_limits(keys, before, amount_nanousd)
            except LimitReached as full:  # commit the expiry move and the limits all the same
                return before, changed, full
            conn.execute(_HOLD, (rid, amount_nanousd, at_us, expires, ids, [k.bucket_us for k in keys]))
            return before, changed, None

        try:
            before, changed, full = self._run(run, pipeline=True)
        except LedgerUnavailable:
            self._known.difference_update(ids)  # cheap: the rows are made again if they are gone
            raise
        if cleanup:
            self._next_cleanup_us = at_us + _CLEANUP_EVERY_US
        self._warn_limits(changed)
        if full is not None:
            raise full
        return Reservation(rid, tuple(keys), amount_nanousd, at_us, expires, tuple(before))

    def _warn_limits(self, changed: Sequence[tuple[BudgetKey, int]]) -> None:
        """Warn (once per ledger and key in this process) about a limit that differs from the one
        last used on this ledger: two processes, or two budgets files, disagree on a budget."""
        for key, stored in changed:
            with _warned_lock:
                if (self.url, key.id) in _warned_limits:
                    continue
                _warned_limits.add((self.url, key.id))
            log.warning(
                "costlens: budget key %r has limit %s nano-USD here, but %s nano-USD was last used with "
                "the ledger %s (another process or budgets file defines this budget differently, or its "
                "limit was changed); each reserve is checked against the limit of the process making it. "
                "The ledger now records %s.",
                key.id,
                key.limit_nanousd,
                stored,
                self.url,
                key.limit_nanousd,
            )

    def _finish(self, reservation: Reservation, amount: int | None) -> None:
        params = {"rid": reservation.id, "amount": amount}

        def run(conn: psycopg.Connection[Any]) -> None:
            row = conn.execute(_SETTLE_HELD, params).fetchone()
            if row is None or not row[0]:
                # Not held (anymore): expired and charged, or settled/released already. The expiry
                # move commits atomically, so this second statement sees its mark if it happened.
                conn.execute(_CORRECT_EXPIRED, params)

        self._run(run, autocommit=True)

    def settle(self, reservation: Reservation, actual_nanousd: int) -> None:
        """Charge `actual`; a second settle changes nothing. A reservation that expired (and was
        charged its reserved amount) gets the difference `actual - reserved`."""
        if actual_nanousd < 0:
            raise ValueError(f"a settled cost cannot be negative ({actual_nanousd} nano-USD)")
        self._finish(reservation, actual_nanousd)

    def release(self, reservation: Reservation) -> None:
        """Drop the reservation; a second release changes nothing. A reservation that expired (and
        was charged its reserved amount) is refunded."""
        self._finish(reservation, None)

    def usage(self, key: BudgetKey, *, at: datetime | None = None) -> Spent:
        params = {"at": now_us(at), "keys": [key.id], "since": [key.since_us]}
        row = self._run(lambda conn: conn.execute(_USAGE, params).fetchone(), autocommit=True)
        assert row is not None
        return Spent(int(row[0]), int(row[1]))

    def recent_spend(self, key_id: str, since_us: int) -> int:
        """Settled spend from `budget_history`; expired reservations appear once a reserve charged them."""
        sql = (
            "SELECT COALESCE(SUM(amount_nanousd), 0)::bigint FROM budget_history "
            "WHERE key = %s AND bucket_us >= %s"
        )
        row = self._run(
            lambda conn: conn.execute(sql, (key_id, history_bucket(since_us))).fetchone(), autocommit=True
        )
        return int(row[0]) if row else 0

    def fire_once(self, key_id: str, period_us: int, alert: str) -> bool:
        sql = (
            "INSERT INTO budget_alerts (key, period_us, alert, fired_us) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING"
        )
        return bool(
            self._run(
                lambda conn: conn.execute(sql, (key_id, period_us, alert, now_us())).rowcount, autocommit=True
            )
        )

    def key_ids(self, budget: str) -> list[str]:
        sql = (
            "SELECT key FROM budget_spend WHERE key = %(b)s OR starts_with(key, %(p)s) "
            "UNION SELECT key FROM budget_reservations WHERE key = %(b)s OR starts_with(key, %(p)s)"
        )
        params = {"b": budget, "p": budget + "["}
        rows = self._run(lambda conn: conn.execute(sql, params).fetchall(), autocommit=True)
        return sorted(key for (key,) in rows)

    def record_definitions(self, definitions: Sequence[BudgetDefinition]) -> None:
        rows = [
            (d.name, d.source, d.origin, json.dumps(d.definition, sort_keys=True), d.defined_us, d.removed_us)
            for d in sorted(definitions, key=lambda d: d.name)
        ]
        if rows:
            self._run(lambda conn: conn.cursor().executemany(_DEFINE, rows))

    def definitions(self) -> list[BudgetDefinition]:
        sql = (
            "SELECT name, source, origin, definition, defined_us, removed_us FROM budget_definitions "
            "ORDER BY name"
        )
        rows = self._run(lambda conn: conn.execute(sql).fetchall(), autocommit=True)
        out = []
        for name, source, origin, text, defined_us, removed_us in rows:
            try:
                definition = json.loads(text)
            except ValueError:
                continue  # not written by costlens: left out
            if isinstance(definition, dict) and source in ("file", "code"):
                out.append(BudgetDefinition(name, source, origin, definition, int(defined_us), removed_us))
        return out

    def prune(self, before_us: int) -> int:
        """Drop history buckets and fired-alert marks older than `before_us`; returns rows removed."""

        def run(conn: psycopg.Connection[Any]) -> int:
            a = conn.execute("DELETE FROM budget_history WHERE bucket_us < %s", (before_us,)).rowcount
            b = conn.execute("DELETE FROM budget_alerts WHERE fired_us < %s", (before_us,)).rowcount
            return int(a + b)

        return self._run(run)


def _redact(url: str) -> str:
    """The URL without its password (user and everything else kept)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def from_url(url: str) -> PostgresLedger:
    """`postgresql://user:password@host:port/db` (or `postgres://`)."""
    return PostgresLedger(url)
