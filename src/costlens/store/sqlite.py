"""`SQLiteStore`: the zero-config default store (`sqlite:///abs/path.db`), stdlib `sqlite3` only.

WAL mode plus a busy timeout let several threads and processes append to one file; each thread
gets its own connection (`_sqlite_conn.ThreadConnections`, shared with the budget ledger).
Schema and conventions: see `_migrations.py`. The SQL stays close to what PostgreSQL accepts, so
the later backends can reuse its shape.

Reads over long ranges use the hourly rollup: whole UTC hours come from `rollup_hourly`, the
partial hours at either edge from raw calls, and the parts are added up (exact integer sums,
so the answer equals a raw scan). Time buckets in a zone whose offsets are not whole hours (India,
Nepal, Lord Howe) cannot be built from UTC hours, so those queries scan raw calls.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from costlens._errors import ConfigError
from costlens.store._base import SpendQuery, SpendRow, UnpricedModel, from_micros, to_micros
from costlens.store._errors import StoreNotFound, StoreUnusable
from costlens.store._migrations import MIGRATIONS, sqlite_statements
from costlens.store._rows import record_from_columns
from costlens.store._sql import RAW, ROLLUP, Filter, Source, aggregate_sql
from costlens.store._sqlcommon import spend_rows, unapplied
from costlens.store._sqlite_conn import ThreadConnections, enable_wal
from costlens.store._sqlwrite import TagsetCache, prepare, write_batch, write_rows
from costlens.store._time import HOUR_US, hour_aligned, offset_segments
from costlens.usage import USAGE_PARTS, CallRecord

__all__ = ["SQLiteStore", "enable_wal", "from_url"]

_COLUMNS = (
    "id", "started_at_us", "ended_at_us", "latency_ms", "ttft_ms", "provider", "operation",
    "request_model", "response_model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_nanousd", "price_known", "price_version",
    "estimated", "status", "error_type", "http_status", "stream", "service_tier", "tags", "route",
    "budgets", "trace_id", "span_id", "content", *USAGE_PARTS,
)  # fmt: skip
_SELECT_CALLS = f"SELECT {', '.join('c.' + c for c in _COLUMNS)}"
_CREATE_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
)
_SCAN_SQL = {
    "id": "c.id",
    "started_at_us": "c.started_at_us",
    "latency_ms": "c.latency_ms",
    "ttft_ms": "c.ttft_ms",
    "provider": "c.provider",
    "request_model": "c.request_model",
    "response_model": "c.response_model",
    "service_tier": "c.service_tier",
    "status": "c.status",
    "input_tokens": "c.input_tokens",
    "output_tokens": "c.output_tokens",
    "cache_read_tokens": "c.cache_read_tokens",
    "cache_write_tokens": "c.cache_write_tokens",
    "reasoning_tokens": "c.reasoning_tokens",
    "cost_nanousd": "c.cost_nanousd",
    "estimated": "c.estimated",
    **{name: f"c.{name}" for name in USAGE_PARTS},
}
Segments = tuple[tuple[int, int], ...]
_SQLITE_HEADER = b"SQLite format 3\x00"
_BULK_CACHE_KIB = -131072  # negative: KiB, as SQLite's cache_size pragma takes it
_DEFAULT_CACHE_KIB = -2000
#: Writes a batch inside an open transaction (`write_batch` for records, `write_rows` for rows).
_Writer = Callable[[sqlite3.Connection, Any, TagsetCache, dict[str, int]], int]


class SQLiteStore:
    """One SQLite file. Connects (creating the folder and file) and migrates on first use."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0, auto_migrate: bool = True) -> None:
        self.path = Path(path).expanduser().absolute()
        self._auto_migrate = auto_migrate
        self._migrated = False
        self._tagsets = TagsetCache()
        # WAL + NORMAL: a committed write survives an application crash; only an OS crash or
        # power loss may drop the last commits (the file never corrupts).
        self._conns = ThreadConnections(
            self.path,
            busy_timeout_s=busy_timeout_s,
            pragmas=("PRAGMA synchronous = NORMAL", "PRAGMA temp_store = MEMORY"),
            setup=prepare,
            owner=repr(self),
        )

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- connections -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork: the parent's are not ours to use).

        After `close()`: `ConnectionsClosed`, a `RuntimeError`. A file that cannot be a store (a
        folder, a file that is not SQLite, a path through a file): `StoreUnusable`, naming it."""
        try:
            return self._conns.get()
        except (sqlite3.DatabaseError, OSError) as exc:
            problem = unusable(self.path)
            if problem is None:
                raise
            raise StoreUnusable(str(self.path), problem) from exc

    def check_exists(self) -> None:
        """For readers: `StoreNotFound` unless the file exists (creates nothing), `StoreUnusable`
        unless it can be a store. `open_store(url, create=False)` calls it."""
        problem = unusable(self.path)
        if problem is not None:
            raise StoreUnusable(str(self.path), problem)
        if not self.path.exists():
            raise StoreNotFound(f"sqlite://{self.path}", str(self.path))

    def _conn(self) -> sqlite3.Connection:
        conn = self._connection()
        if self._auto_migrate and not self._migrated:
            self._migrate(conn)
        return conn

    def close(self) -> None:
        self._conns.close()

    # -- schema ------------------------------------------------------------------------------

    def migrate(self) -> None:
        self._migrate(self._connection())

    def _migrate(self, conn: sqlite3.Connection) -> None:
        if not _pending(conn):
            self._migrated = True
            return
        conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
        try:
            conn.execute(_CREATE_MIGRATIONS)
            for name, sql in _pending(conn):
                for statement in sqlite_statements(sql):
                    conn.execute(statement)
                applied_at = datetime.now(UTC).isoformat()
                conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", (name, applied_at)
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._migrated = True

    # -- writes ------------------------------------------------------------------------------

    def append(self, records: Sequence[CallRecord]) -> None:
        if not records:
            return
        with self._transaction() as write:
            write(records)

    def append_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """`append` of records as rows (`costlens.usage.ROW_FIELDS`): the recorder hands this store
        the deferred calls' records so, made as rows on its thread."""
        if not rows:
            return
        with self._transaction(write_rows) as write:
            write(rows)

    @contextmanager
    def bulk(self) -> Iterator[Callable[[Sequence[CallRecord]], int]]:
        """One write transaction for many batches (imports): all of them commit, or none.

        The block receives `write(batch) -> number of new records`; an exception rolls back every
        batch. Ids already stored (or repeated) are skipped, and the hourly rollup is updated in the
        same transaction. For its duration the connection's page cache is raised to 128 MiB (the only
        import-only setting; durability stays as configured).
        """
        conn = self._conn()
        conn.execute(f"PRAGMA cache_size = {_BULK_CACHE_KIB}")
        try:
            with self._transaction() as write:
                yield write
        finally:
            conn.execute(f"PRAGMA cache_size = {_DEFAULT_CACHE_KIB}")

    @contextmanager
    def _transaction(self, writer: _Writer = write_batch) -> Iterator[Callable[[Sequence[Any]], int]]:
        conn = self._conn()
        fresh: dict[str, int] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield lambda batch: writer(conn, batch, self._tagsets, fresh)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._tagsets.commit(fresh)

    # -- reads -------------------------------------------------------------------------------

    def query(self, q: SpendQuery) -> list[SpendRow]:
        conn = self._conn()
        lo = None if q.since is None else to_micros(q.since)
        hi = None if q.until is None else to_micros(q.until)
        segments = self._segments(conn, q, lo, hi)
        whole_lo = None if lo is None else -(-lo // HOUR_US) * HOUR_US
        whole_hi = None if hi is None else hi // HOUR_US * HOUR_US
        empty = whole_lo is not None and whole_hi is not None and whole_lo >= whole_hi
        if not q.use_rollups or empty or (q.time_keys and not hour_aligned(segments)):
            return spend_rows(q, self._aggregate(conn, RAW, q, lo, hi, segments))
        rows = self._aggregate(conn, ROLLUP, q, whole_lo, whole_hi, segments)
        if lo is not None and whole_lo is not None and lo < whole_lo:
            rows += self._aggregate(conn, RAW, q, lo, whole_lo, segments)
        if hi is not None and whole_hi is not None and whole_hi < hi:
            rows += self._aggregate(conn, RAW, q, whole_hi, hi, segments)
        return spend_rows(q, rows)

    def _segments(self, conn: sqlite3.Connection, q: SpendQuery, lo: int | None, hi: int | None) -> Segments:
        """The zone's UTC offsets over the queried range (the stored range where it is open)."""
        if not q.time_keys or q.timezone == "UTC":
            return ((0, 0),)
        if lo is None or hi is None:
            # Two subqueries: SQLite answers a lone MIN or MAX from the index, not both in one SELECT.
            first, last = conn.execute(
                "SELECT (SELECT MIN(started_at_us) FROM calls), (SELECT MAX(started_at_us) FROM calls)"
            ).fetchone()
            lo = lo if lo is not None else (first if first is not None else 0)
            hi = hi if hi is not None else (last if last is not None else 0)
        return offset_segments(q.timezone, lo, hi)

    def _aggregate(
        self,
        conn: sqlite3.Connection,
        source: Source,
        q: SpendQuery,
        lo: int | None,
        hi: int | None,
        segments: Segments,
    ) -> list[tuple[Any, ...]]:
        sql, params = aggregate_sql(source, q.group_by, lo, hi, q.where, segments, q.timezone)
        return conn.execute(sql, params).fetchall()

    def scan(self, q: SpendQuery, fields: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Per-call values (see `costlens.store._base.scan_calls`), straight from `calls`."""
        conn = self._conn()
        lo = None if q.since is None else to_micros(q.since)
        hi = None if q.until is None else to_micros(q.until)
        f = Filter(RAW, self._segments(conn, q, lo, hi), q.timezone)
        exprs = [f.expr(key) for key in q.group_by] + [_SCAN_SQL[name] for name in fields]
        f.add(lo, hi, q.where)
        cursor = conn.execute(f"SELECT {', '.join(exprs)} {f.sql()}", f.params())
        try:
            while batch := cursor.fetchmany(5000):
                yield from batch
        finally:
            cursor.close()

    def iter_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, str] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[CallRecord]:
        f = Filter(RAW)
        f.add(None if since is None else to_micros(since), None if until is None else to_micros(until), where)
        order = "DESC" if newest_first else "ASC"
        sql = f"{_SELECT_CALLS} {f.sql()} ORDER BY c.started_at_us {order}, c.id {order}"
        params = f.params()
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        cursor = self._conn().execute(sql, params)
        try:
            while batch := cursor.fetchmany(1000):
                yield from (_from_row(row) for row in batch)
        finally:
            cursor.close()

    def unpriced_models(self) -> list[UnpricedModel]:
        model = RAW.columns["model"]
        sql = (
            f"SELECT c.provider, {model}, COUNT(*), MIN(c.started_at_us), MAX(c.started_at_us) "
            f"FROM calls c WHERE c.cost_nanousd IS NULL GROUP BY c.provider, {model} "
            f"ORDER BY COUNT(*) DESC, c.provider, {model}"
        )
        return [
            UnpricedModel(provider, name, calls, from_micros(first), from_micros(last))
            for provider, name, calls, first, last in self._conn().execute(sql)
        ]


def unusable(path: Path) -> str | None:
    """What makes `path` unusable as a SQLite store, or None (a missing file is usable: it is created)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            break
    if path.is_dir():
        return "it is a folder, not a SQLite database file (name a file inside it, e.g. costlens.db)"
    if not path.exists():
        return None
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if head and head != _SQLITE_HEADER:
        return "it is not a SQLite database (another kind of file?)"
    return None


def _pending(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Migrations not applied yet; ConfigError if the file was migrated by a newer costlens."""
    try:
        applied = {name for (name,) in conn.execute("SELECT name FROM schema_migrations")}
    except sqlite3.OperationalError:  # no table yet: nothing applied
        return list(MIGRATIONS)
    return unapplied(MIGRATIONS, applied)


def _from_row(row: Sequence[Any]) -> CallRecord:
    v = dict(zip(_COLUMNS, row, strict=True))
    return record_from_columns(v, json.loads(v["tags"]))


def from_url(url: str) -> SQLiteStore:
    """`sqlite:///abs/path.db` (`sqlite:////abs/path.db` and `~` work too)."""
    path = url.partition("://")[2]
    if not path or path in ("/:memory:", ":memory:"):
        raise ConfigError(
            f"bad SQLite store URL {url!r}: name a file, e.g. sqlite:///home/me/costlens.db "
            "(use memory:// for an in-process store)"
        )
    return SQLiteStore(path)
