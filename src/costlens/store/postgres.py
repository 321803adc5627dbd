"""`PostgresStore`: call records in PostgreSQL (`postgresql://user@host:port/db`), psycopg 3.

Several application instances share one store. Opening one does no I/O: the first read or write
connects (a small `psycopg_pool` pool, rebuilt in a forked child) and brings the schema up to date
(`_pg_schema.py`: named, append-only migrations under an advisory lock). Writes: `_pg_write.py`
(COPY, dedupe on `call_ids`, monthly partitions created on demand, the hourly rollup kept in the
same transaction). Reads mirror the SQLite store: whole UTC hours come from `rollup_hourly`, the
partial hours at either edge from raw calls, and the exact integer parts are added up, so the
answer equals a raw scan; time buckets in a zone whose offsets are not whole hours scan raw calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import datetime
from typing import Any

from costlens.store._base import SpendQuery, SpendRow, UnpricedModel, from_micros, to_micros
from costlens.store._errors import StoreNotFound
from costlens.store._migrations import statements
from costlens.store._pg_conn import PgPool, StoreUnavailable, parse_url
from costlens.store._pg_schema import CALL_COLUMNS, CREATE_MIGRATIONS, MIGRATIONS
from costlens.store._pg_sql import MODEL, RAW, ROLLUP, Filter, Source, aggregate_sql
from costlens.store._pg_write import Conn, WriteCaches, create_temp_tables, finish, prepare, stage
from costlens.store._rows import record_from_columns
from costlens.store._sqlcommon import spend_rows, unapplied
from costlens.store._time import HOUR_US, hour_aligned, offset_segments
from costlens.usage import USAGE_PARTS, CallRecord

__all__ = ["PostgresStore", "StoreUnavailable", "from_url"]

#: Advisory lock key serialising migrations across processes ("costlens").
MIGRATION_LOCK = 0x636F73746C656E73
_SELECT_CALLS = f"SELECT {', '.join('c.' + c for c in CALL_COLUMNS)}"
_SCAN_SQL = {name: f"c.{name}" for name in (
    "id", "started_at_us", "latency_ms", "ttft_ms", "provider", "request_model", "response_model",
    "service_tier", "status", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_nanousd", "estimated", *USAGE_PARTS,
)}  # fmt: skip
_PAGE = 1000
Segments = tuple[tuple[int, int], ...]
BatchWriter = Callable[[Sequence[CallRecord]], int]


class PostgresStore:
    """One PostgreSQL database. Connects and migrates on first use; thread- and fork-safe."""

    def __init__(self, url: str, *, auto_migrate: bool = True, pool_min: int = 1, pool_max: int = 4) -> None:
        target = parse_url(url)
        #: The URL as given (password included, for reopening it); show `mask_url(url)` instead.
        self.url = url
        self._masked = target.masked
        self._auto_migrate = auto_migrate
        self._migrated = False
        self._caches = WriteCaches()
        self._pool = PgPool(target, configure=create_temp_tables, min_size=pool_min, max_size=pool_max)

    def __repr__(self) -> str:
        return f"PostgresStore({self._masked!r})"

    # -- connections and schema ----------------------------------------------------------------

    @contextmanager
    def _conn(self) -> Iterator[Conn]:
        """A pooled connection to an up-to-date schema."""
        if self._auto_migrate and not self._migrated:
            self.migrate()
        with self._pool.connection() as conn:
            yield conn

    def migrate(self) -> None:
        """Apply pending migrations; one process at a time (the others wait, then see them done)."""
        with self._pool.connection() as conn:
            if _pending(conn):
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    conn.execute(CREATE_MIGRATIONS)
                    for name, sql in _pending(conn):
                        for statement in statements(sql):
                            conn.execute(statement)
                        conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
        self._migrated = True

    def check_exists(self) -> None:
        """For readers: StoreNotFound unless the database holds a costlens schema (creates nothing)."""
        where = f"{self._pool.target.where}/{self._pool.target.dbname}"
        try:
            with self._pool.direct() as conn:
                row = conn.execute("SELECT to_regclass('schema_migrations'), to_regclass('calls')").fetchone()
        except StoreUnavailable as exc:
            if exc.missing_database:
                raise StoreNotFound(self._masked, where) from None
            raise
        if row is None or (row[0] is None and row[1] is None):
            raise StoreNotFound(self._masked, where)

    def close(self) -> None:
        self._pool.close()

    # -- writes --------------------------------------------------------------------------------

    def append(self, records: Sequence[CallRecord]) -> None:
        """Write records in one transaction; ids already stored (or repeated) are skipped."""
        if not records:
            return
        with self._conn() as conn:
            prepared = prepare(records, self._caches, lambda: nullcontext(conn))
            with conn.transaction():
                if stage(conn, prepared):
                    finish(conn)

    @contextmanager
    def bulk(self) -> Iterator[BatchWriter]:
        """One write transaction for many batches (imports): all of them commit, or none.

        The block receives `write(batch) -> number of new records`. Partitions and tag sets a batch
        needs are created through a second connection (committed at once, harmless if the import
        rolls back), since the import's own transaction must not take DDL locks on `calls`.
        """
        with self._conn() as conn, ExitStack() as side_stack:
            side: list[Conn] = []

            def connect() -> AbstractContextManager[Conn]:
                if not side:
                    side.append(side_stack.enter_context(self._pool.direct()))
                return nullcontext(side[0])

            new = 0

            def write(batch: Sequence[CallRecord]) -> int:
                nonlocal new
                fresh = stage(conn, prepare(batch, self._caches, connect))
                new += fresh
                return fresh

            with conn.transaction():
                yield write
                if new:
                    finish(conn)

    # -- reads ---------------------------------------------------------------------------------

    def query(self, q: SpendQuery) -> list[SpendRow]:
        lo = None if q.since is None else to_micros(q.since)
        hi = None if q.until is None else to_micros(q.until)
        with self._conn() as conn:
            segments = _segments(conn, q, lo, hi)
            whole_lo = None if lo is None else -(-lo // HOUR_US) * HOUR_US
            whole_hi = None if hi is None else hi // HOUR_US * HOUR_US
            empty = whole_lo is not None and whole_hi is not None and whole_lo >= whole_hi
            if not q.use_rollups or empty or (q.time_keys and not hour_aligned(segments)):
                return spend_rows(q, _aggregate(conn, RAW, q, lo, hi, segments))
            rows = _aggregate(conn, ROLLUP, q, whole_lo, whole_hi, segments)
            if lo is not None and whole_lo is not None and lo < whole_lo:
                rows += _aggregate(conn, RAW, q, lo, whole_lo, segments)
            if hi is not None and whole_hi is not None and whole_hi < hi:
                rows += _aggregate(conn, RAW, q, whole_hi, hi, segments)
        return spend_rows(q, rows)

    def scan(self, q: SpendQuery, fields: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Per-call values (see `costlens.store._base.scan_calls`), streamed from `calls`."""
        lo = None if q.since is None else to_micros(q.since)
        hi = None if q.until is None else to_micros(q.until)
        with self._conn() as conn:
            f = Filter(RAW, _segments(conn, q, lo, hi), q.timezone)
            exprs = [f.expr(key) for key in q.group_by] + [_SCAN_SQL[name] for name in fields]
            f.add(lo, hi, q.where)
            with conn.transaction(), conn.cursor(name="costlens_scan") as cur:
                cur.execute(f"SELECT {', '.join(exprs)} {f.sql()}", f.params())
                while batch := cur.fetchmany(5000):
                    yield from batch

    def iter_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, str] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[CallRecord]:
        """Pages of `_PAGE` records, each its own short query after the last one seen (keyset
        paging: no transaction or cursor is held open between pages)."""
        lo = None if since is None else to_micros(since)
        hi = None if until is None else to_micros(until)
        left = limit
        after: tuple[int, str] | None = None
        while left is None or left > 0:
            size = _PAGE if left is None else min(_PAGE, left)
            page = self._page(lo, hi, where, after, size, newest_first)
            yield from (_from_row(row) for row in page)
            if len(page) < size:
                return
            after = (page[-1][0], page[-1][1])
            left = None if left is None else left - len(page)

    def _page(
        self,
        lo: int | None,
        hi: int | None,
        where: Mapping[str, str] | None,
        after: tuple[int, str] | None,
        size: int,
        newest_first: bool,
    ) -> list[tuple[Any, ...]]:
        f = Filter(RAW)
        if after is not None:  # the plain bound lets the planner skip whole partitions
            lo, hi = (lo, after[0] + 1) if newest_first else (after[0], hi)
        f.add(lo, hi, where)
        order = "DESC" if newest_first else "ASC"
        if after is not None:
            f.conds.append(f"(c.started_at_us, c.id) {'<' if newest_first else '>'} (%s, %s)")
            f.cond_params.extend(after)
        sql = (
            f"SELECT c.started_at_us, c.id, {_SELECT_CALLS.removeprefix('SELECT ')} {f.sql()} "
            f"ORDER BY c.started_at_us {order}, c.id {order} LIMIT {size}"
        )
        with self._conn() as conn:
            return conn.execute(sql, f.params()).fetchall()

    def unpriced_models(self) -> list[UnpricedModel]:
        sql = (
            f"SELECT c.provider, {MODEL}, COUNT(*), MIN(c.started_at_us), MAX(c.started_at_us) "
            f"FROM calls c WHERE c.cost_nanousd IS NULL GROUP BY c.provider, {MODEL} "
            f'ORDER BY COUNT(*) DESC, c.provider COLLATE "C", {MODEL} COLLATE "C"'
        )
        with self._conn() as conn:
            found = conn.execute(sql).fetchall()
        return [
            UnpricedModel(provider, name, int(calls), from_micros(first), from_micros(last))
            for provider, name, calls, first, last in found
        ]


def _segments(conn: Conn, q: SpendQuery, lo: int | None, hi: int | None) -> Segments:
    """The zone's UTC offsets over the queried range (the stored range, from the rollup, where open)."""
    if not q.time_keys or q.timezone == "UTC":
        return ((0, 0),)
    if lo is None or hi is None:
        row = conn.execute("SELECT MIN(hour_us), MAX(hour_us) FROM rollup_hourly").fetchone()
        first, last = row if row is not None else (None, None)
        lo = lo if lo is not None else (first if first is not None else 0)
        hi = hi if hi is not None else (last + HOUR_US - 1 if last is not None else 0)
    return offset_segments(q.timezone, lo, hi)


def _aggregate(
    conn: Conn, source: Source, q: SpendQuery, lo: int | None, hi: int | None, segments: Segments
) -> list[tuple[Any, ...]]:
    agg = aggregate_sql(source, q.group_by, lo, hi, q.where, segments, q.timezone)
    return [agg.decode(row) for row in conn.execute(agg.sql, agg.params)]


def _pending(conn: Conn) -> list[tuple[str, str]]:
    """Migrations not applied yet; ConfigError if the database was migrated by a newer costlens."""
    row = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    if row is None or row[0] is None:
        return list(MIGRATIONS)
    applied = {name for (name,) in conn.execute("SELECT name FROM schema_migrations")}
    return unapplied(MIGRATIONS, applied)


def _from_row(row: Sequence[Any]) -> CallRecord:
    v = dict(zip(CALL_COLUMNS, row[2:], strict=True))  # after the two paging keys
    return record_from_columns(v, json.loads(v["tags"]))


def from_url(url: str) -> PostgresStore:
    """`postgresql://user:password@host:5432/db` (or `postgres://`); libpq parameters after `?`."""
    return PostgresStore(url)
