"""`PostgresLedger`: budgets shared by every instance of an app through one PostgreSQL database.

Locking. A reserve is one statement in autocommit, `costlens_reserve` (a plpgsql function of
migration 0003; one round trip): it locks the `budget_limits` row of each of its keys with
`SELECT ... ORDER BY key FOR UPDATE`, then, in a new statement (a snapshot taken after the locks
were granted: every reserve that held them before has committed and is seen), reads each key's
spend in the window and its held amount, checks the limits and inserts the reservation. Two
reserves sharing a key therefore run one after the other (no check-then-charge race, no lost
update), reserves on disjoint keys run in parallel, and since every writer takes its key locks in
the same (sorted) order, they cannot deadlock on them. A key's lock row is created once, committed
on its own (`INSERT ... ON CONFLICT DO NOTHING`), before the first reserve on it in a process (the
function creates a missing one too). Held amounts are a counter on the key row
(`budget_limits.reserved_nanousd`), kept by a row trigger on `budget_reservations` (so by writers of
every version), so a read never sums reservation rows or steps over their dead versions. Spend and
history rows are always written in (key, bucket) order; a deadlock or serialisation failure that
slips through anyway rolls the statement back whole and it is retried (a few times). A reserve
run again after a lost reply finds its id already held and does not hold twice.

`settle` and `release` are one statement each too, `costlens_finish`, idempotent: the
reservation's rows are deleted and charged in the same transaction, so a second settle finds
nothing; if nothing was held it looks for the mark of an expired reservation (below).

Expired reservations count as spend from their expiry (the reserve reads reservations expired at
its time); `costlens_charge_expired` moves them into `budget_spend`/`budget_history` (a
`DELETE ... RETURNING` feeding the inserts, so a row is moved by exactly one transaction across
processes), in a transaction of its own before a reserve, at most every 10 s per process, and only
if no other process is doing it right now (`pg_try_advisory_xact_lock`). A mark stays in
`budget_expired` for `EXPIRED_KEEP_US` for a late settle (corrects the charge) or release (refunds
it). `budget_limits` also holds the limit each key was last reserved with: a reserve with another
limit logs a warning, once per database and key in a process. `budget_definitions` holds the latest
definition of each budget name.

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
from costlens.budgets._errors import LedgerUnavailable
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
    redact_url,
    unavailable,
    warn_limits,
)
from costlens.store._migrations import statements
from costlens.store._sqlcommon import unapplied

__all__ = ["MIGRATIONS", "PostgresLedger", "from_url"]

T = TypeVar("T")

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

# Held amounts as a counter per key (`budget_limits.reserved_nanousd`), kept by a trigger on
# `budget_reservations` (so by every writer, whatever its version), and the reserve, settle/release
# and expiry move as functions: one round trip each. Every writer of reservations locks their key
# rows in key order first. `LOCK TABLE` first: no reservation is written between the count and the
# trigger.
_FUNCTIONS = """
LOCK TABLE budget_limits, budget_reservations IN ACCESS EXCLUSIVE MODE;
ALTER TABLE budget_limits ADD COLUMN reserved_nanousd BIGINT NOT NULL DEFAULT 0;
UPDATE budget_limits AS b SET reserved_nanousd = r.held
FROM (SELECT key, SUM(amount_nanousd)::bigint AS held FROM budget_reservations GROUP BY key) AS r
WHERE b.key = r.key;
CREATE FUNCTION costlens_held() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE budget_limits SET reserved_nanousd = reserved_nanousd + NEW.amount_nanousd WHERE key = NEW.key;
  ELSE
    UPDATE budget_limits SET reserved_nanousd = reserved_nanousd - OLD.amount_nanousd WHERE key = OLD.key;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER budget_reservations_held AFTER INSERT OR DELETE ON budget_reservations
FOR EACH ROW EXECUTE FUNCTION costlens_held();
CREATE FUNCTION costlens_spend(p_keys text[], p_buckets bigint[], p_at bigint[], p_amounts bigint[],
    p_calls bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO budget_spend AS s (key, bucket_us, amount_nanousd)
  SELECT k, b, SUM(a)::bigint FROM unnest(p_keys, p_buckets, p_amounts) AS u(k, b, a)
  GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (key, bucket_us) DO UPDATE SET amount_nanousd = s.amount_nanousd + excluded.amount_nanousd;
  INSERT INTO budget_history AS h (key, bucket_us, amount_nanousd, calls)
  SELECT k, t - ((t % 300000000) + 300000000) % 300000000, SUM(a)::bigint, COUNT(*) * p_calls
  FROM unnest(p_keys, p_at, p_amounts) AS u(k, t, a) GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (key, bucket_us) DO UPDATE SET amount_nanousd = h.amount_nanousd + excluded.amount_nanousd,
    calls = h.calls + excluded.calls;
END $$;
CREATE FUNCTION costlens_reserve(p_rid text, p_keys text[], p_limits bigint[], p_since bigint[],
    p_buckets bigint[], p_enforce boolean[], p_amount bigint, p_at bigint, p_expires bigint, p_retry boolean,
    OUT ok boolean, OUT spent bigint[], OUT reserved bigint[], OUT stored bigint[])
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  IF (SELECT COUNT(*) FROM (SELECT 1 FROM budget_limits WHERE key = ANY(p_keys) ORDER BY key FOR UPDATE) AS l)
      < cardinality(p_keys) THEN
    INSERT INTO budget_limits (key, limit_nanousd, updated_us)
    SELECT k, l, p_at FROM unnest(p_keys, p_limits) AS u(k, l) ORDER BY k ON CONFLICT (key) DO NOTHING;
    PERFORM 1 FROM budget_limits WHERE key = ANY(p_keys) ORDER BY key FOR UPDATE;
  END IF;
  SELECT array_agg(q.sp ORDER BY q.n), array_agg(q.rs ORDER BY q.n), array_agg(q.lim ORDER BY q.n),
    COALESCE(bool_and(NOT q.e OR q.sp + q.rs + p_amount <= q.l), true)
  INTO spent, reserved, stored, ok
  FROM (
    SELECT k.n, k.e, k.l, b.limit_nanousd AS lim,
      COALESCE((SELECT SUM(s.amount_nanousd) FROM budget_spend AS s
        WHERE s.key = k.key AND s.bucket_us >= k.since), 0)::bigint + COALESCE(x.lapsed, 0)::bigint AS sp,
      b.reserved_nanousd - COALESCE(x.expired, 0)::bigint AS rs
    FROM unnest(p_keys, p_since, p_enforce, p_limits) WITH ORDINALITY AS k(key, since, e, l, n)
    JOIN budget_limits AS b ON b.key = k.key
    CROSS JOIN LATERAL (
      SELECT SUM(r.amount_nanousd) AS expired,
        SUM(r.amount_nanousd) FILTER (WHERE r.bucket_us >= k.since) AS lapsed
      FROM budget_reservations AS r WHERE r.key = k.key AND r.expires_us <= p_at
    ) AS x
  ) AS q;
  IF stored IS DISTINCT FROM p_limits THEN
    UPDATE budget_limits AS b SET limit_nanousd = u.l, updated_us = p_at
    FROM unnest(p_keys, p_limits) AS u(k, l) WHERE b.key = u.k AND b.limit_nanousd <> u.l;
  END IF;
  IF p_retry AND EXISTS (SELECT 1 FROM budget_reservations WHERE reservation_id = p_rid) THEN
    ok := true;  -- a retry of a reserve applied before (its reply was lost): held once
  ELSIF ok THEN
    INSERT INTO budget_reservations (reservation_id, key, amount_nanousd, bucket_us, at_us, expires_us)
    SELECT p_rid, k, p_amount, b, p_at, p_expires FROM unnest(p_keys, p_buckets) AS u(k, b);
  END IF;
END $$;
CREATE FUNCTION costlens_finish(p_rid text, p_amount bigint) RETURNS integer LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  keys text[];
  buckets bigint[];
  ats bigint[];
  amounts bigint[];
BEGIN
  PERFORM 1 FROM budget_limits
  WHERE key IN (SELECT key FROM budget_reservations WHERE reservation_id = p_rid) ORDER BY key FOR UPDATE;
  WITH gone AS (DELETE FROM budget_reservations WHERE reservation_id = p_rid RETURNING key, bucket_us, at_us)
  SELECT array_agg(key), array_agg(bucket_us), array_agg(at_us) INTO keys, buckets, ats FROM gone;
  IF keys IS NOT NULL THEN
    IF p_amount IS NOT NULL THEN
      PERFORM costlens_spend(keys, buckets, ats, array_fill(p_amount, ARRAY[cardinality(keys)]), 1);
    END IF;
    RETURN 1;
  END IF;
  WITH gone AS (
    DELETE FROM budget_expired WHERE reservation_id = p_rid RETURNING key, bucket_us, at_us, amount_nanousd
  )
  SELECT array_agg(key), array_agg(bucket_us), array_agg(at_us),
    array_agg(COALESCE(p_amount - amount_nanousd, -amount_nanousd))
  INTO keys, buckets, ats, amounts FROM gone;
  IF keys IS NULL THEN
    RETURN 0;
  END IF;
  PERFORM costlens_spend(keys, buckets, ats, amounts, CASE WHEN p_amount IS NULL THEN -1 ELSE 0 END);
  RETURN 2;
END $$;
CREATE FUNCTION costlens_charge_expired(p_at bigint, p_keep_before bigint, p_lock bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  keys text[];
  buckets bigint[];
  ats bigint[];
  amounts bigint[];
BEGIN
  IF NOT pg_try_advisory_xact_lock(p_lock) THEN
    RETURN -1;
  END IF;
  PERFORM 1 FROM budget_limits
  WHERE key IN (SELECT key FROM budget_reservations WHERE expires_us <= p_at) ORDER BY key FOR UPDATE;
  WITH gone AS (
    DELETE FROM budget_reservations WHERE expires_us <= p_at
    RETURNING reservation_id, key, amount_nanousd, bucket_us, at_us, expires_us
  ), marks AS (
    INSERT INTO budget_expired SELECT * FROM gone ON CONFLICT DO NOTHING
  )
  SELECT array_agg(key), array_agg(bucket_us), array_agg(at_us), array_agg(amount_nanousd)
  INTO keys, buckets, ats, amounts FROM gone;
  IF keys IS NOT NULL THEN
    PERFORM costlens_spend(keys, buckets, ats, amounts, 1);
  END IF;
  DELETE FROM budget_expired WHERE expires_us < p_keep_before;
  RETURN COALESCE(cardinality(keys), 0);
END $$
"""

#: (name, sql) in the order they apply. APPEND ONLY: never edit, rename or reorder an entry.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001_create_budget_ledger", _CREATE),
    ("0002_budget_definitions", _DEFINITIONS),
    ("0003_held_counters_and_functions", _FUNCTIONS),
)

_CLEANUP_EVERY_US = 10_000_000
# Advisory lock keys ("costlens" in ASCII, and one more): migrations, and the expiry move.
_MIGRATE_LOCK = 0x636F73746C656E73
_CLEANUP_LOCK = _MIGRATE_LOCK + 1

_ADD_KEYS = (
    "INSERT INTO budget_limits (key, limit_nanousd, updated_us) "
    "SELECT k, l, %s FROM unnest(%s::text[], %s::bigint[]) AS u(k, l) ORDER BY k ON CONFLICT (key) DO NOTHING"
)
# Spend counts settled charges and reservations expired by %(at)s that no reserve has moved into
# budget_spend yet: the answer is the same before and after the move.
_USAGE = """
SELECT
  (SELECT COALESCE(SUM(s.amount_nanousd), 0) FROM budget_spend s
    WHERE s.key = %(key)s AND s.bucket_us >= %(since)s)::bigint
  + (SELECT COALESCE(SUM(r.amount_nanousd), 0) FROM budget_reservations r
    WHERE r.key = %(key)s AND r.expires_us <= %(at)s AND r.bucket_us >= %(since)s)::bigint,
  (SELECT COALESCE(SUM(r.amount_nanousd), 0) FROM budget_reservations r
    WHERE r.key = %(key)s AND r.expires_us > %(at)s)::bigint
"""
_RESERVE = "SELECT * FROM costlens_reserve(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
_FINISH = "SELECT costlens_finish(%s, %s)"
_CHARGE_EXPIRED = "SELECT costlens_charge_expired(%s, %s, %s)"
_DEFINE = (
    "INSERT INTO budget_definitions (name, source, origin, definition, defined_us, removed_us) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET source = excluded.source, "
    "origin = excluded.origin, definition = excluded.definition, defined_us = excluded.defined_us, "
    "removed_us = excluded.removed_us"
)
# Transient failures after which a transaction was rolled back whole and may simply run again.
_RETRY = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, pg_errors.LockNotAvailable)
_ATTEMPTS = 5

# Pools a forked child inherited: kept referenced so that their connections (the parent's
# sockets) are never closed, hence never terminated, from the child.
_inherited: list[ConnectionPool[Any]] = []


class PostgresLedger:
    """A ledger in a PostgreSQL database; its tables are created (migrated) on first use."""

    def __init__(self, url: str, *, pool_max: int = 16, pool_timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("postgresql", "postgres"):
            raise ConfigError(f"not a PostgreSQL URL: {redact_url(url)!r}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in ("pool_max", "pool_timeout")}
        try:
            self._pool_max = int(ours.get("pool_max", pool_max))
            self._pool_timeout_s = float(ours.get("pool_timeout", pool_timeout_s))
        except ValueError:
            raise ConfigError(
                f"bad PostgreSQL ledger URL {redact_url(url)!r}: pool_max is a whole number, "
                "pool_timeout a number of seconds"
            ) from None
        if self._pool_max < 1 or self._pool_timeout_s <= 0:
            raise ConfigError(f"bad PostgreSQL ledger URL {redact_url(url)!r}: pool_max and pool_timeout > 0")
        rest = urlencode([(k, v) for k, v in query if k not in ours])
        self._conninfo = urlunsplit(parts._replace(scheme="postgresql", query=rest))
        self._password = parts.password or ""
        self.url = redact_url(url)
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
                        kwargs={"connect_timeout": max(1, int(self._pool_timeout_s)), "autocommit": True},
                    )
                    pool.open(wait=False)
                    self._pool = pool
        if not self._migrated:
            self._migrate(pool)
        return pool

    def _fail(self, exc: BaseException) -> LedgerUnavailable:
        return unavailable(f"PostgreSQL ledger at {self.where} ({self.url})", self._password, exc)

    def _run(self, fn: Callable[[psycopg.Connection[Any]], T], *, transaction: bool = False) -> T:
        """Run `fn` on a pooled connection in autocommit (each statement a transaction of its own),
        or in one transaction committed at the end. A deadlock or serialisation failure is retried;
        a connection found dead (the server restarted) makes the pool check its connections and the
        call run again, unless a commit may have been sent. Every statement run in autocommit is
        safe to run twice (reserve by its id; settle, release and the expiry move are idempotent).
        Failures -> LedgerUnavailable."""
        for attempt in range(_ATTEMPTS):
            sent_commit = False
            try:
                with self._get_pool().connection() as conn:
                    if not transaction:
                        return fn(conn)
                    with conn.transaction():
                        result = fn(conn)
                        sent_commit = True
                    return result
            except _RETRY as exc:
                if attempt + 1 == _ATTEMPTS:
                    raise self._fail(exc) from exc
            except psycopg.OperationalError as exc:
                pool_now = self._pool
                if sent_commit or attempt + 1 == _ATTEMPTS or pool_now is None:
                    raise self._fail(exc) from exc
                try:
                    pool_now.check()
                except Exception as check_exc:
                    raise self._fail(exc) from check_exc
            except (psycopg.Error, PoolTimeout, OSError) as exc:
                if isinstance(exc, pg_errors.UndefinedTable | pg_errors.UndefinedFunction):
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
                for name, sql in unapplied(MIGRATIONS, applied, f"the budget ledger {self.url}", "use it"):
                    for statement in _statements(sql):
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
        self._run(lambda conn: conn.execute(_ADD_KEYS, (at_us, ids, limits)))
        self._known.update(ids)

    def reserve(
        self, keys: Sequence[BudgetKey], amount_nanousd: int, ttl_s: float, *, at: datetime | None = None
    ) -> Reservation:
        check_reserve(keys, amount_nanousd, ttl_s)
        at_us = now_us(at)
        rid = new_reservation_id()
        expires = at_us + int(ttl_s * 1_000_000)
        ids = [k.id for k in keys]
        limits = [k.limit_nanousd for k in keys]
        self._add_keys(keys, at_us)
        if not 0 <= self._next_cleanup_us - at_us < _CLEANUP_EVERY_US:
            # Expired reservations count as spend already (costlens_reserve reads them); moving them
            # now and then keeps the table small. A transaction of its own (it locks other keys).
            params = (at_us, at_us - EXPIRED_KEEP_US, _CLEANUP_LOCK)
            self._run(lambda conn: conn.execute(_CHARGE_EXPIRED, params))
            self._next_cleanup_us = at_us + _CLEANUP_EVERY_US
        since, buckets = [k.since_us for k in keys], [k.bucket_us for k in keys]
        args = (rid, ids, limits, since, buckets, [k.enforce for k in keys], amount_nanousd, at_us, expires)
        tries = 0

        def run(conn: psycopg.Connection[Any]) -> Any:
            # One statement in autocommit: lock, read, check and hold in costlens_reserve, one round
            # trip. Run again (after a lost reply), it looks for its id first: held once.
            nonlocal tries
            tries += 1
            return conn.execute(_RESERVE, (*args, tries > 1)).fetchone()

        try:
            row = self._run(run)
        except LedgerUnavailable:
            self._known.difference_update(ids)  # cheap: the rows are made again if they are gone
            raise
        assert row is not None
        ok, spent, reserved, stored = row
        # no keys: PostgreSQL aggregates nothing into NULL arrays
        spent, reserved, stored = spent or [], reserved or [], stored or []
        before = [Spent(int(s), int(r)) for s, r in zip(spent, reserved, strict=True)]
        warn_limits(self.url, [(k, v) for k, v in zip(keys, stored, strict=True) if v != k.limit_nanousd])
        if not ok:
            check_limits(keys, before, amount_nanousd)
        return Reservation(rid, tuple(keys), amount_nanousd, at_us, expires, tuple(before))

    def settle(self, reservation: Reservation, actual_nanousd: int) -> None:
        """Charge `actual`; a second settle changes nothing. A reservation that expired (and was
        charged its reserved amount) gets the difference `actual - reserved`."""
        check_settle(actual_nanousd)
        self._run(lambda conn: conn.execute(_FINISH, (reservation.id, actual_nanousd)))

    def release(self, reservation: Reservation) -> None:
        """Drop the reservation; a second release changes nothing. A reservation that expired (and
        was charged its reserved amount) is refunded."""
        self._run(lambda conn: conn.execute(_FINISH, (reservation.id, None)))

    def usage(self, key: BudgetKey, *, at: datetime | None = None) -> Spent:
        params = {"at": now_us(at), "key": key.id, "since": key.since_us}
        row = self._run(lambda conn: conn.execute(_USAGE, params).fetchone())
        assert row is not None
        return Spent(int(row[0]), int(row[1]))

    def recent_spend(self, key_id: str, since_us: int) -> int:
        """Settled spend from `budget_history`; expired reservations appear once a reserve charged them."""
        sql = (
            "SELECT COALESCE(SUM(amount_nanousd), 0)::bigint FROM budget_history "
            "WHERE key = %s AND bucket_us >= %s"
        )
        row = self._run(lambda conn: conn.execute(sql, (key_id, history_bucket(since_us))).fetchone())
        return int(row[0]) if row else 0

    def fire_once(self, key_id: str, period_us: int, alert: str) -> bool:
        sql = (
            "INSERT INTO budget_alerts (key, period_us, alert, fired_us) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING"
        )
        return bool(self._run(lambda conn: conn.execute(sql, (key_id, period_us, alert, now_us())).rowcount))

    def key_ids(self, budget: str) -> list[str]:
        sql = (
            "SELECT key FROM budget_spend WHERE key = %(b)s OR starts_with(key, %(p)s) "
            "UNION SELECT key FROM budget_reservations WHERE key = %(b)s OR starts_with(key, %(p)s)"
        )
        params = {"b": budget, "p": budget + "["}
        rows = self._run(lambda conn: conn.execute(sql, params).fetchall())
        return sorted(key for (key,) in rows)

    def record_definitions(self, definitions: Sequence[BudgetDefinition]) -> None:
        rows = definition_rows(definitions)
        if rows:
            self._run(lambda conn: conn.cursor().executemany(_DEFINE, rows), transaction=True)

    def definitions(self) -> list[BudgetDefinition]:
        sql = (
            "SELECT name, source, origin, definition, defined_us, removed_us FROM budget_definitions "
            "ORDER BY name"
        )
        return read_definitions(self._run(lambda conn: conn.execute(sql).fetchall()))

    def prune(self, before_us: int) -> int:
        """Drop history buckets and fired-alert marks older than `before_us`; returns rows removed."""

        def run(conn: psycopg.Connection[Any]) -> int:
            a = conn.execute("DELETE FROM budget_history WHERE bucket_us < %s", (before_us,)).rowcount
            b = conn.execute("DELETE FROM budget_alerts WHERE fired_us < %s", (before_us,)).rowcount
            return int(a + b)

        return self._run(run, transaction=True)


def _statements(sql: str) -> list[str]:
    """`statements(sql)`, but a `;` at the end of a line inside a `$$` body does not end one."""
    out: list[str] = []
    for part in statements(sql):
        if out and out[-1].count("$$") % 2:
            out[-1] += ";\n" + part
        else:
            out.append(part)
    return out


def from_url(url: str) -> PostgresLedger:
    """`postgresql://user:password@host:port/db` (or `postgres://`)."""
    return PostgresLedger(url)
