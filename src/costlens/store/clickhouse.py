"""`ClickHouseStore`: call records in ClickHouse (`clickhouse://[user[:password]@]host[:port]/db`).

Supported servers: ClickHouse 18.16 (Debian's package, what the tests run) through current
releases, over the native protocol (port 9000 by default, not the HTTP port 8123) with
`clickhouse-driver`. The SQL keeps to the subset both ends accept, so it avoids: `DateTime64` and
`DateTime` for call times (microseconds live in `Int64`, which also holds times before 1970),
`LowCardinality` (experimental in 18.16), `Map` and `JSON` (tags are two parallel arrays; route,
budgets and content are JSON text), `Decimal` (sums are split, below), `ALTER ... UPDATE/DELETE`
mutations, window functions, `LIMIT BY`-style dedupe, and server-side time zones (see `_ch_sql`).

Design:

* One `calls` table, `ReplacingMergeTree(version)`, `PARTITION BY` month, `ORDER BY
  (started_at_us, id)`: every read filters on time, which the primary index prunes, and
  `iter_records`' order is the table's own.
* Duplicates (the recorder's spool replays a batch; two writers race) are removed twice. On
  write, the batch's ids are looked up in `call_ids` (ordered by id, so the lookup is cheap at any
  size) and known ones skipped, which keeps the table clean and makes "the first record stored
  for an id wins" hold for sequential writers. On read, every query uses `FINAL`, which collapses
  rows sharing (started_at_us, id) to the first written (highest `version`), so two writers
  racing with the same batch still count once, before and after ClickHouse merges parts. A
  replay repeats the record, so it repeats both key columns; two *different* records racing
  under one id with different start times are the one case neither step catches.
  `optimize_move_to_prewhere` is off for these reads: a PREWHERE on a non-key column would
  filter rows before `FINAL` picks the surviving one.
* Money is integer nano-USD in `Nullable(Int64)` (NULL: no known price, kept apart from 0). Sums
  are taken as two Int64 sums, of `intDiv(cost, 2**32)` and of `modulo(cost, 2**32)`, recombined
  exactly in Python: neither can overflow below ~2**31 calls, whatever the costs, so a total past
  Int64 is still exact (no `Decimal128`, experimental in 18.16). Token sums are plain Int64.
* An hourly rollup, `rollup_hourly` (`SummingMergeTree`, keyed like the SQLite/PostgreSQL rollup:
  UTC hour, provider, operation, request model, model, service tier, status, and the tag arrays
  as `calls` holds them), with the integer sums (calls, token kinds, usage parts, cost as the two
  Int64 halves, unpriced/error/estimated counts). Reads with `use_rollups` take whole UTC hours
  from it with their own `sum()`/`GROUP BY` (unmerged parts, or correction rows not yet merged,
  never change an answer) and the partial hours at either edge from `calls FINAL`; a zone whose
  offsets are not whole hours reads `calls FINAL` only. `use_rollups=False` is the FINAL scan.
* Write order. The store sends one INSERT into `calls` per chunk; two materialised views on
  `calls` (migration `0002_rollup_hourly`) write the same rows' ids into `call_ids` and their
  per-hour sums into the rollup. ClickHouse pushes a block to the views only after writing it to
  `calls`, so the rollup can never count a record `calls` lacks, and it counts exactly the rows
  `calls` received: the records that passed the write-side id check (a chunk's failure before
  `calls` is written leaves nothing anywhere; its replay writes all three). Chosen over three
  client INSERTs (calls, call_ids, rollup) because that would leave a failure window between
  round trips, where a lost connection is common: a failure after `call_ids` makes the replay
  skip the records (the rollup short for good), a failure before it makes the replay count them
  twice. With the views the window is inside one server-side INSERT (the server dying between
  pushing to one view and the next), and writers from before 0002, or `INSERT ... SELECT` into
  `calls`, keep the rollup complete too. The migration creates the views before back-filling the
  rollup from `calls FINAL` as a difference (calls less what the rollup already holds), so a
  record written in between is counted once, and a rerun adds nothing.
* Exactness. A record replayed sequentially (the spool's case) is found in `call_ids` and
  skipped, so neither `calls` nor the rollup sees it again: both answers stay exact. Under a
  true race (two writers pass the check at the same instant, or the server dies mid-INSERT as
  above) `calls` holds the record twice and the rollup counts it twice: `use_rollups=False` stays
  exact (FINAL keeps one row per (started_at_us, id)), the rollup answer is high by the raced
  records until `repair_rollups(since, until)` rewrites the difference from `calls FINAL` for
  those hours (correction rows, possibly negative; a second run finds nothing). Two different
  records racing under one id *and* different start times are counted twice by both answers.
* One `clickhouse_driver.Client` per thread (the client is not thread-safe), made on first use
  (opening the store does no I/O) and made again in a forked child. Streaming reads get a
  connection of their own, so a loop over `iter_records` may query the store inside it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from costlens._errors import ConfigError
from costlens.store._base import SCAN_FIELDS, SpendQuery, SpendRow, UnpricedModel, from_micros, to_micros
from costlens.store._ch_conn import ClickHouseUnavailable, Clients, network_errors
from costlens.store._ch_schema import (
    COLUMNS,
    COST_SPLIT,
    CREATE_MIGRATIONS,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    ROLLUP_KEY,
    ROLLUP_SUMS,
    decode,
    encode_columns,
    rollup_delta_sql,
)
from costlens.store._ch_sql import MODEL, ROLLUP_COLUMNS, Reader, Segments
from costlens.store._errors import StoreNotFound
from costlens.store._sqlcommon import unapplied
from costlens.store._time import HOUR_US, hour_aligned, offset_segments
from costlens.usage import USAGE_PARTS, CallRecord

__all__ = ["ClickHouseStore", "ClickHouseUnavailable", "from_url"]

_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Cost sums are split at 2**32 (see the module docstring), with Int64 literal divisors.
_SPLIT = COST_SPLIT
_FINAL = {"optimize_move_to_prewhere": 0}
#: The migration from which `calls` feeds `call_ids` and `rollup_hourly` itself (materialised views).
_FEEDS = "0002_rollup_hourly"
_INSERT_CHUNK = 100_000
_SUMS = (
    "count()",
    "sum(input_tokens)", "sum(output_tokens)", "sum(cache_read_tokens)", "sum(cache_write_tokens)",
    "sum(reasoning_tokens)",
    f"sum(intDiv(ifNull(cost_nanousd, 0), toInt64({_SPLIT})))",
    f"sum(modulo(ifNull(cost_nanousd, 0), toInt64({_SPLIT})))",
    "countIf(isNull(cost_nanousd))", "countIf(status = 'error')", "sum(estimated)",
    *(f"sum({name})" for name in USAGE_PARTS),
)  # fmt: skip
_ROLLUP_SUMS = tuple(f"sum({column})" for column in ROLLUP_SUMS)
#: (table, time column, group-key columns, sums, settings) of the two sources a query adds up.
_Source = tuple[str, str, Mapping[str, str] | None, tuple[str, ...], Mapping[str, Any]]
_RAW: _Source = ("calls FINAL", "started_at_us", None, _SUMS, _FINAL)
_ROLLUP: _Source = ("rollup_hourly", "hour_us", ROLLUP_COLUMNS, _ROLLUP_SUMS, {})
_SCAN_SQL = {name: name for name in SCAN_FIELDS}
T = TypeVar("T")


class ClickHouseStore:
    """One ClickHouse database; tables are created (migrated) on first use unless `auto_migrate=False`."""

    def __init__(
        self,
        host: str = "localhost",
        port: int = 9000,
        database: str = "default",
        *,
        user: str = "default",
        password: str = "",
        connect_timeout_s: float = 5.0,
        auto_migrate: bool = True,
    ) -> None:
        if not _DB_NAME.match(database):
            raise ConfigError(f"bad ClickHouse database name {database!r}: use letters, digits and _")
        self.host, self.port, self.database, self.user = host, port, database, user
        self._password = password  # kept out of repr and messages
        self._timeout = connect_timeout_s
        self._auto_migrate = auto_migrate
        self._migrated = False
        self._feeds: bool | None = None  # whether `calls` feeds `call_ids` and the rollup
        self._db = f"`{database}`"
        self._last_ns = 0
        self._version_lock = threading.Lock()
        self._clients = Clients(self._new_client)

    def __repr__(self) -> str:
        return f"ClickHouseStore({self.url!r})"

    @property
    def url(self) -> str:
        """The store's URL without its password."""
        auth = (
            f"{self.user}{':***' if self._password else ''}@"
            if self.user != "default" or self._password
            else ""
        )
        return f"clickhouse://{auth}{self.host}:{self.port}/{self.database}"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # -- connections -------------------------------------------------------------------------

    def _new_client(self) -> Any:
        from clickhouse_driver import Client

        return Client(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self._password,
            connect_timeout=self._timeout,
            client_name="costlens",
        )

    def _call(self, work: Callable[[Any], T]) -> T:
        """Run `work(client)` on this thread's client; an unreachable server says where and what to do."""
        client = self._clients.get()
        try:
            return work(client)
        except network_errors() as exc:
            client.disconnect()  # the next call reconnects
            raise ClickHouseUnavailable(self.where, exc) from exc

    def _execute(self, sql: str, params: Any = None, **kw: Any) -> Any:
        return self._call(lambda client: client.execute(sql, params, **kw))

    def _stream(self, sql: str, params: Mapping[str, Any], settings: Mapping[str, Any]) -> Iterator[Any]:
        """Rows of a long read, on a connection of its own, closed when the caller stops reading."""
        client = self._new_client()
        try:
            yield from client.execute_iter(sql, params, settings={**settings, "max_block_size": 10_000})
        except network_errors() as exc:
            raise ClickHouseUnavailable(self.where, exc) from exc
        finally:
            client.disconnect()

    def close(self) -> None:
        self._clients.close()

    # -- schema ------------------------------------------------------------------------------

    def pending_migrations(self) -> list[str]:
        applied = self._applied()
        return [name for name, _ in MIGRATIONS if name not in applied]

    def _applied(self) -> set[str]:
        if not self._tables():
            return set()
        rows = self._execute(f"SELECT DISTINCT name FROM {self._db}.{MIGRATIONS_TABLE}")
        applied = {name for (name,) in rows}
        unapplied(MIGRATIONS, applied, f"the ClickHouse store {self.url}")  # refuses a newer store's
        return applied

    def _tables(self) -> set[str]:
        rows = self._execute("SELECT name FROM system.tables WHERE database = %(db)s", {"db": self.database})
        return {name for (name,) in rows}

    def migrate(self) -> None:
        """Create the database and apply pending migrations, each recorded in `schema_migrations`.

        Every statement is `IF NOT EXISTS`, so two processes migrating at once both succeed; the
        name they may both record is merged away (the migrations table is a ReplacingMergeTree)."""
        self._execute(f"CREATE DATABASE IF NOT EXISTS {self._db}")
        self._execute(CREATE_MIGRATIONS.format(db=self._db))
        applied = self._applied()
        for name, statements in MIGRATIONS:
            if name in applied:
                continue
            for statement in statements:
                self._execute(statement.format(db=self._db))
            self._execute(
                f"INSERT INTO {self._db}.{MIGRATIONS_TABLE} (name, applied_at_us) VALUES",
                [(name, time.time_ns() // 1000)],
            )
        self._migrated = True
        self._feeds = True

    def _has_feeds(self) -> bool:
        """Whether the schema has the rollup and its views (always, once this store has migrated)."""
        if self._feeds is None:
            self._feeds = _FEEDS in self._applied()
        return self._feeds

    def repair_rollups(self, since: datetime | None = None, until: datetime | None = None) -> int:
        """Make `rollup_hourly` equal `calls FINAL` over the whole UTC hours touching [since, until)
        (all of them by default); returns how many rollup keys needed a correction (0: consistent).

        Writes correction rows (the difference per key, possibly negative), so nothing is deleted
        and a second run finds nothing. Run it with no writes in flight over those hours: a write
        whose `calls` rows are visible but whose view output is not yet would be counted twice."""
        self._ready()
        if not self._has_feeds():
            return 0
        calls_where, rollup_where = [], []
        if since is not None:
            lo = to_micros(since) // HOUR_US * HOUR_US
            calls_where.append(f"started_at_us >= toInt64({lo})")
            rollup_where.append(f"hour_us >= toInt64({lo})")
        if until is not None:
            hi = -(-to_micros(until) // HOUR_US) * HOUR_US
            calls_where.append(f"started_at_us < toInt64({hi})")
            rollup_where.append(f"hour_us < toInt64({hi})")
        sql = rollup_delta_sql(
            *(f"WHERE {' AND '.join(w)}" if w else "" for w in (calls_where, rollup_where))
        )
        delta = self._execute(sql.format(db=self._db), settings=_FINAL)
        if delta:
            names = ", ".join((*ROLLUP_KEY, *ROLLUP_SUMS))
            self._execute(f"INSERT INTO {self._db}.rollup_hourly ({names}) VALUES", delta)
        return len(delta)

    def check_exists(self) -> None:
        """For readers: `StoreNotFound` unless the database holds costlens tables (creates nothing)."""
        if not {"calls", MIGRATIONS_TABLE} & self._tables():
            raise StoreNotFound(self.url, f"ClickHouse database {self.database} on {self.where}")

    def _ready(self) -> None:
        if self._auto_migrate and not self._migrated:
            self.migrate()

    # -- writes ------------------------------------------------------------------------------

    def append(self, records: Sequence[CallRecord]) -> None:
        if records:
            self._ready()
            self._insert(self._fresh(records, set()))

    @contextmanager
    def bulk(self) -> Iterator[Callable[[Sequence[CallRecord]], int]]:
        """Many batches written together when the block ends without an error (an import).

        ClickHouse has no transactions, so the new records are held here and inserted at the end:
        an exception inside the block writes nothing. `write(batch)` returns how many were new."""
        self._ready()
        pending: list[CallRecord] = []
        seen: set[str] = set()

        def write(batch: Sequence[CallRecord]) -> int:
            fresh = self._fresh(batch, seen)
            pending.extend(fresh)
            return len(fresh)

        yield write
        self._insert(pending)

    def _fresh(self, records: Sequence[CallRecord], seen: set[str]) -> list[CallRecord]:
        """The records whose id is neither stored nor earlier in `seen`/the batch (first one wins)."""
        fresh: list[CallRecord] = []
        for record in records:
            if record.id not in seen:
                seen.add(record.id)
                fresh.append(record)
        if not fresh:
            return fresh
        batch_ids = {
            "name": "batch_ids",
            "structure": [("id", "String")],
            "data": [{"id": r.id} for r in fresh],
        }
        stored = self._execute(
            f"SELECT DISTINCT id FROM {self._db}.call_ids WHERE id IN (SELECT id FROM batch_ids)",
            external_tables=[batch_ids],
        )
        known = {row[0] for row in stored}
        return [r for r in fresh if r.id not in known] if known else fresh

    def _version(self) -> int:
        """Smaller for later writes, so ReplacingMergeTree (which keeps the highest) keeps the first."""
        with self._version_lock:
            self._last_ns = max(time.time_ns(), self._last_ns + 1)
            return 2**63 - self._last_ns

    def _insert(self, records: Sequence[CallRecord]) -> None:
        """One INSERT into `calls` per chunk; its views write `call_ids` and the rollup (see the
        module docstring). A schema from before the views gets `call_ids` written here, after
        `calls`: a failure in between leaves a duplicate FINAL removes, not a loss."""
        names = ", ".join((*COLUMNS, "version"))
        feeds = self._has_feeds()
        for start in range(0, len(records), _INSERT_CHUNK):
            chunk = records[start : start + _INSERT_CHUNK]
            columns = encode_columns(chunk, self._version())
            self._execute(f"INSERT INTO {self._db}.calls ({names}) VALUES", columns, columnar=True)
            if not feeds:
                self._execute(
                    f"INSERT INTO {self._db}.call_ids (id, started_at_us) VALUES",
                    [columns[0], columns[1]],
                    columnar=True,
                )

    # -- reads -------------------------------------------------------------------------------

    def _reader(self, q: SpendQuery) -> Reader:
        lo = None if q.since is None else to_micros(q.since)
        hi = None if q.until is None else to_micros(q.until)
        reader = Reader(self._segments(q, lo, hi), q.timezone)
        reader.add_range(lo, hi)
        reader.add_where(q.where)
        return reader

    def _segments(self, q: SpendQuery, lo: int | None, hi: int | None, table: str = "calls") -> Segments:
        """The zone's UTC offsets over the queried range (where it is open, the stored range: of
        `calls`, or of the rollup's hours when only the rollup is read)."""
        if not q.time_keys or q.timezone == "UTC":
            return ((0, 0),)
        if lo is None or hi is None:
            time_col, width = ("hour_us", HOUR_US - 1) if table == "rollup_hourly" else ("started_at_us", 0)
            [(first, last, rows)] = self._execute(
                f"SELECT min({time_col}), max({time_col}), count() FROM {self._db}.{table}"
            )
            lo = lo if lo is not None else (first if rows else 0)
            hi = hi if hi is not None else (last + width if rows else 0)
        return offset_segments(q.timezone, lo, hi)

    def query(self, q: SpendQuery) -> list[SpendRow]:
        """Sums per group. With `use_rollups`, whole UTC hours come from `rollup_hourly` and the
        partial hours at either edge from `calls FINAL`; a zone whose offsets are not whole hours
        (or change inside an hour) reads `calls FINAL` only, as `use_rollups=False` always does."""
        self._ready()
        lo = None if q.since is None else to_micros(q.since)
        hi = None if q.until is None else to_micros(q.until)
        merged: dict[tuple[str | None, ...], list[int]] = {}
        whole_lo = None if lo is None else -(-lo // HOUR_US) * HOUR_US
        whole_hi = None if hi is None else hi // HOUR_US * HOUR_US
        empty = whole_lo is not None and whole_hi is not None and whole_lo >= whole_hi
        if q.use_rollups and not empty and self._has_feeds():
            segments = self._segments(q, lo, hi, "rollup_hourly" if lo is None and hi is None else "calls")
            if not q.time_keys or hour_aligned(segments):
                self._sum(merged, _ROLLUP, q, segments, whole_lo, whole_hi)
                if lo is not None and whole_lo is not None and lo < whole_lo:
                    self._sum(merged, _RAW, q, segments, lo, whole_lo)
                if hi is not None and whole_hi is not None and whole_hi < hi:
                    self._sum(merged, _RAW, q, segments, whole_hi, hi)
                return _spend_rows(q, merged)
        self._sum(merged, _RAW, q, self._segments(q, lo, hi), lo, hi)
        return _spend_rows(q, merged)

    def _sum(
        self,
        merged: dict[tuple[str | None, ...], list[int]],
        source: _Source,
        q: SpendQuery,
        segments: Segments,
        lo: int | None,
        hi: int | None,
    ) -> None:
        """Add one source's sums per group over [lo, hi) into `merged` (exact integers)."""
        table, time_col, columns, sums_sql, settings = source
        if columns is None:
            reader = Reader(segments, q.timezone, time_col=time_col)
        else:
            reader = Reader(segments, q.timezone, time_col=time_col, columns=columns)
        reader.add_range(lo, hi)
        reader.add_where(q.where)
        exprs, decode_keys = reader.keys(q.group_by)
        select = [f"{expr} AS k{i}" for i, expr in enumerate(exprs)]
        group = f"GROUP BY {', '.join(f'k{i}' for i in range(len(exprs)))}" if exprs else ""
        sql = f"SELECT {', '.join([*select, *sums_sql])} FROM {self._db}.{table} {reader.where_sql()} {group}"
        n = len(exprs)
        for row in self._execute(sql, reader.params, settings=settings):
            if not row[n]:  # no GROUP BY: one row even when nothing matched
                continue
            calls, *tokens, cost_hi, cost_lo, unpriced, errors, estimated = row[n : n + 11]
            sums = [calls, *tokens, cost_hi * _SPLIT + cost_lo, unpriced, errors, estimated, *row[n + 11 :]]
            key = decode_keys(row)
            # Parts of one group add up: rollup and edges; (local hour, offset) pairs sharing a label.
            old = merged.get(key)
            merged[key] = (
                [int(v) for v in sums] if old is None else [a + b for a, b in zip(old, sums, strict=True)]
            )

    def scan(self, q: SpendQuery, fields: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Per-call values (see `costlens.store._base.scan_calls`), straight from `calls`."""
        for name in fields:
            if name not in _SCAN_SQL:
                raise ValueError(f"unknown scan field {name!r}: use one of {', '.join(SCAN_FIELDS)}")
        self._ready()
        reader = self._reader(q)
        exprs, decode_keys = reader.keys(q.group_by)
        n = len(exprs)
        columns = [*exprs, *(_SCAN_SQL[name] for name in fields)] or ["1"]
        sql = f"SELECT {', '.join(columns)} FROM {self._db}.calls FINAL {reader.where_sql()}"
        for row in self._stream(sql, reader.params, _FINAL):
            yield decode_keys(row) + tuple(row[n:])

    def iter_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, str] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[CallRecord]:
        self._ready()
        reader = Reader()
        reader.add_range(
            None if since is None else to_micros(since), None if until is None else to_micros(until)
        )
        reader.add_where(where)
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT {', '.join(COLUMNS)} FROM {self._db}.calls FINAL {reader.where_sql()} "
            f"ORDER BY started_at_us {order}, id {order}"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for row in self._stream(sql, reader.params, _FINAL):
            yield decode(row)

    def unpriced_models(self) -> list[UnpricedModel]:
        self._ready()
        sql = (
            f"SELECT provider, {MODEL} AS m, count(), min(started_at_us), max(started_at_us) "
            f"FROM {self._db}.calls FINAL WHERE isNull(cost_nanousd) GROUP BY provider, m"
        )
        found = [
            UnpricedModel(provider, model, calls, from_micros(first), from_micros(last))
            for provider, model, calls, first, last in self._execute(sql, settings=_FINAL)
        ]
        return sorted(found, key=lambda m: (-m.calls, m.provider, m.model))


def _spend_rows(q: SpendQuery, merged: Mapping[tuple[str | None, ...], list[int]]) -> list[SpendRow]:
    return [SpendRow(dict(zip(q.group_by, key, strict=True)), *sums) for key, sums in merged.items()]


def from_url(url: str) -> ClickHouseStore:
    """`clickhouse://[user[:password]@]host[:port]/database` (native port, 9000 by default)."""
    parts = urlsplit(url)
    database = parts.path.lstrip("/") or "default"
    if not parts.hostname or "/" in database:
        safe = url if parts.password is None else url.replace(parts.password, "***")
        raise ConfigError(
            f"bad ClickHouse store URL {safe!r}: write clickhouse://host:9000/database "
            "(optionally clickhouse://user:password@host:9000/database)"
        )
    try:
        port = parts.port or 9000
    except ValueError:
        raise ConfigError(
            f"bad port in the ClickHouse store URL: {parts.netloc.rpartition('@')[2]!r}"
        ) from None
    return ClickHouseStore(
        parts.hostname,
        port,
        unquote(database),
        user=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
    )
