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
* No rollup tables: a materialised view would count racing duplicates, and ClickHouse scans raw
  calls quickly, so `use_rollups` changes nothing (the answer is the same either way).
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
    CREATE_MIGRATIONS,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    decode,
    encode_columns,
)
from costlens.store._ch_sql import MODEL, Reader, Segments
from costlens.store._errors import StoreNotFound
from costlens.store._time import offset_segments
from costlens.usage import USAGE_PARTS, CallRecord

__all__ = ["ClickHouseStore", "ClickHouseUnavailable", "from_url"]

_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Cost sums are split at 2**32 (see the module docstring). Divisors are Int64 literals: 18.16 types
# `modulo(Int64, <bare literal>)` by the literal's width, and the remainder would wrap.
_SPLIT = 2**32
_FINAL = {"optimize_move_to_prewhere": 0}
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
        unknown = applied - {name for name, _ in MIGRATIONS}
        if unknown:
            raise ConfigError(
                f"the ClickHouse store {self.url} has migrations this costlens does not know "
                f"({', '.join(sorted(unknown))}): upgrade costlens to read it"
            )
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
        names = ", ".join((*COLUMNS, "version"))
        for start in range(0, len(records), _INSERT_CHUNK):
            chunk = records[start : start + _INSERT_CHUNK]
            columns = encode_columns(chunk, self._version())
            # `calls` first: a failure before `call_ids` leaves a duplicate FINAL removes, not a loss.
            self._execute(f"INSERT INTO {self._db}.calls ({names}) VALUES", columns, columnar=True)
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

    def _segments(self, q: SpendQuery, lo: int | None, hi: int | None) -> Segments:
        """The zone's UTC offsets over the queried range (the stored range where it is open)."""
        if not q.time_keys or q.timezone == "UTC":
            return ((0, 0),)
        if lo is None or hi is None:
            [(first, last, calls)] = self._execute(
                f"SELECT min(started_at_us), max(started_at_us), count() FROM {self._db}.calls"
            )
            lo = lo if lo is not None else (first if calls else 0)
            hi = hi if hi is not None else (last if calls else 0)
        return offset_segments(q.timezone, lo, hi)

    def query(self, q: SpendQuery) -> list[SpendRow]:
        """Sums per group (`use_rollups` changes nothing here: there are no rollups to use)."""
        self._ready()
        reader = self._reader(q)
        exprs, decode_keys = reader.keys(q.group_by)
        select = [f"{expr} AS k{i}" for i, expr in enumerate(exprs)]
        group = f"GROUP BY {', '.join(f'k{i}' for i in range(len(exprs)))}" if exprs else ""
        sql = (
            f"SELECT {', '.join([*select, *_SUMS])} FROM {self._db}.calls FINAL {reader.where_sql()} {group}"
        )
        n = len(exprs)
        merged: dict[tuple[str | None, ...], list[int]] = {}
        for row in self._execute(sql, reader.params, settings=_FINAL):
            if not row[n]:  # no GROUP BY: one row even when nothing matched
                continue
            calls, *tokens, hi, lo, unpriced, errors, estimated = row[n : n + 11]
            sums = [calls, *tokens, hi * _SPLIT + lo, unpriced, errors, estimated, *row[n + 11 :]]
            key = decode_keys(row)
            # Distinct (local hour, offset) pairs may share a label (rare): add them up.
            if key in merged:
                merged[key] = [a + b for a, b in zip(merged[key], sums, strict=True)]
            else:
                merged[key] = [int(v) for v in sums]
        return [SpendRow(dict(zip(q.group_by, key, strict=True)), *sums) for key, sums in merged.items()]

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
