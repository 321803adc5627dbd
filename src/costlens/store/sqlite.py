"""`SQLiteStore`: the zero-config default store (`sqlite:///abs/path.db`), stdlib `sqlite3` only.

WAL mode plus a busy timeout let several threads and processes append to one file; each thread
gets its own connection. Schema and conventions: see `_migrations.py`. The SQL stays close to
what PostgreSQL accepts, so the later backends can reuse its shape.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from costlens._errors import ConfigError
from costlens.store._base import SpendQuery, SpendRow, UnpricedModel, from_micros, parse_key, to_micros
from costlens.store._codec import dumps
from costlens.store._migrations import MIGRATIONS, statements
from costlens.usage import CallRecord, Status

__all__ = ["SQLiteStore", "from_url"]

_COLUMNS = (
    "id", "started_at_us", "ended_at_us", "latency_ms", "ttft_ms", "provider", "operation",
    "request_model", "response_model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_nanousd", "price_known", "price_version",
    "estimated", "status", "error_type", "http_status", "stream", "service_tier", "tags", "route",
    "budgets", "trace_id", "span_id", "content",
)  # fmt: skip
_INSERT_CALL = f"INSERT INTO calls ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_INSERT_TAG = "INSERT INTO call_tags (call_id, key, value) VALUES (?, ?, ?)"
_SELECT_CALLS = f"SELECT {', '.join('c.' + c for c in _COLUMNS)} FROM calls c"
_ID_CHUNK = 500
_CREATE_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
)

# Floor division to whole seconds, right for negative timestamps too (SQLite `/` truncates).
_SECONDS = "((c.started_at_us - (((c.started_at_us % 1000000) + 1000000) % 1000000)) / 1000000)"
_COLUMN_SQL = {
    "model": "COALESCE(NULLIF(c.response_model, ''), c.request_model)",
    "request_model": "c.request_model",
    "provider": "c.provider",
    "operation": "c.operation",
    "status": "c.status",
    "day": f"strftime('%Y-%m-%d', {_SECONDS}, 'unixepoch')",
    "hour": f"strftime('%Y-%m-%dT%H:00Z', {_SECONDS}, 'unixepoch')",
}
_AGGREGATES = """COUNT(*), SUM(c.input_tokens), SUM(c.output_tokens), SUM(c.cache_read_tokens),
    SUM(c.cache_write_tokens), SUM(c.reasoning_tokens), SUM(c.cost_nanousd),
    SUM(CASE WHEN c.cost_nanousd IS NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END), SUM(c.estimated)"""


class _Filter:
    """Builds FROM/WHERE clauses: a LEFT JOIN per tag key, shared by group-by and where."""

    def __init__(self) -> None:
        self.joins: list[str] = []
        self.join_params: list[object] = []
        self.conds: list[str] = []
        self.cond_params: list[object] = []
        self._tag_alias: dict[str, str] = {}

    def expr(self, key: str) -> str:
        kind, name = parse_key(key)
        if kind == "column":
            return _COLUMN_SQL[name]
        alias = self._tag_alias.get(name)
        if alias is None:
            alias = self._tag_alias[name] = f"t{len(self._tag_alias)}"
            self.joins.append(f"LEFT JOIN call_tags {alias} ON {alias}.call_id = c.id AND {alias}.key = ?")
            self.join_params.append(name)
        return f"{alias}.value"

    def add(self, since: datetime | None, until: datetime | None, where: Mapping[str, str] | None) -> None:
        if since is not None:
            self.conds.append("c.started_at_us >= ?")
            self.cond_params.append(to_micros(since))
        if until is not None:
            self.conds.append("c.started_at_us < ?")
            self.cond_params.append(to_micros(until))
        for key, value in (where or {}).items():
            self.conds.append(f"{self.expr(key)} = ?")
            self.cond_params.append(value)

    def sql(self) -> str:
        where = f" WHERE {' AND '.join(self.conds)}" if self.conds else ""
        return " ".join(self.joins) + where

    def params(self) -> list[object]:
        return [*self.join_params, *self.cond_params]


class SQLiteStore:
    """One SQLite file. Connects (creating the folder and file) and migrates on first use."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0, auto_migrate: bool = True) -> None:
        self.path = Path(path).expanduser().absolute()
        self._busy_timeout_s = busy_timeout_s
        self._auto_migrate = auto_migrate
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._pid = os.getpid()
        self._migrated = False
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- connections -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork: the parent's are not ours to use)."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._pid != os.getpid():
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = self._connection()
        if self._auto_migrate and not self._migrated:
            self._migrate(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            if self._pid != os.getpid():
                self._pid, self._conns, self._local = os.getpid(), [], threading.local()
            self._close_dead_threads_conns()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conns.append((threading.current_thread(), conn))
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a committed write survives an application crash; only an OS crash or
        # power loss may drop the last commits (the file never corrupts).
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _close_dead_threads_conns(self) -> None:
        alive = []
        for thread, conn in self._conns:
            if thread.is_alive():
                alive.append((thread, conn))
            else:
                conn.close()
        self._conns = alive

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for _, conn in conns:
            conn.close()

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
                for statement in statements(sql):
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
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            fresh = _fresh(conn, records)
            conn.executemany(_INSERT_CALL, [_to_row(r) for r in fresh])
            conn.executemany(_INSERT_TAG, [(r.id, k, str(v)) for r in fresh for k, v in r.tags.items()])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- reads -------------------------------------------------------------------------------

    def query(self, q: SpendQuery) -> list[SpendRow]:
        f = _Filter()
        exprs = [f.expr(key) for key in q.group_by]
        f.add(q.since, q.until, q.where)
        select = ", ".join([*exprs, _AGGREGATES])
        group = f" GROUP BY {', '.join(exprs)}" if exprs else ""
        sql = f"SELECT {select} FROM calls c {f.sql()}{group}"
        rows = self._conn().execute(sql, f.params()).fetchall()
        n = len(exprs)
        return [
            SpendRow(dict(zip(q.group_by, row[:n], strict=True)), *(int(v or 0) for v in row[n:]))
            for row in rows
            if row[n]  # no GROUP BY: one row even when nothing matched
        ]

    def iter_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, str] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[CallRecord]:
        f = _Filter()
        f.add(since, until, where)
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
        model = _COLUMN_SQL["model"]
        sql = (
            f"SELECT c.provider, {model}, COUNT(*), MIN(c.started_at_us), MAX(c.started_at_us) "
            f"FROM calls c WHERE c.cost_nanousd IS NULL GROUP BY c.provider, {model} "
            f"ORDER BY COUNT(*) DESC, c.provider, {model}"
        )
        return [
            UnpricedModel(provider, name, calls, from_micros(first), from_micros(last))
            for provider, name, calls, first, last in self._conn().execute(sql)
        ]


def _pending(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Migrations not applied yet; ConfigError if the file was migrated by a newer costlens."""
    try:
        applied = {name for (name,) in conn.execute("SELECT name FROM schema_migrations")}
    except sqlite3.OperationalError:  # no table yet: nothing applied
        return list(MIGRATIONS)
    unknown = applied - {name for name, _ in MIGRATIONS}
    if unknown:
        raise ConfigError(
            f"the store has migrations this costlens does not know ({', '.join(sorted(unknown))}): "
            "upgrade costlens to read it"
        )
    return [(name, sql) for name, sql in MIGRATIONS if name not in applied]


def _fresh(conn: sqlite3.Connection, records: Sequence[CallRecord]) -> list[CallRecord]:
    """The records whose id is neither stored nor repeated earlier in the batch (idempotent append)."""
    ids = list({r.id for r in records})
    stored: set[str] = set()
    for i in range(0, len(ids), _ID_CHUNK):
        chunk = ids[i : i + _ID_CHUNK]
        sql = f"SELECT id FROM calls WHERE id IN ({', '.join('?' * len(chunk))})"
        stored.update(row[0] for row in conn.execute(sql, chunk))
    fresh = []
    for record in records:
        if record.id not in stored:
            stored.add(record.id)
            fresh.append(record)
    return fresh


def _json_or_none(value: object) -> str | None:
    return None if value is None else dumps(value)


def _to_row(r: CallRecord) -> tuple[object, ...]:
    return (
        r.id, to_micros(r.started_at), None if r.ended_at is None else to_micros(r.ended_at),
        r.latency_ms, r.ttft_ms, r.provider, r.operation, r.request_model, r.response_model,
        r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens, r.reasoning_tokens,
        r.cost_nanousd, int(r.price_known), r.price_version, int(r.estimated), r.status, r.error_type,
        r.http_status, int(r.stream), r.service_tier, dumps(r.tags), _json_or_none(r.route),
        dumps(r.budgets), r.trace_id, r.span_id, _json_or_none(r.content),
    )  # fmt: skip


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _from_row(row: Sequence[Any]) -> CallRecord:
    v = dict(zip(_COLUMNS, row, strict=True))
    return CallRecord(
        id=v["id"],
        started_at=from_micros(v["started_at_us"]),
        ended_at=None if v["ended_at_us"] is None else from_micros(v["ended_at_us"]),
        latency_ms=v["latency_ms"],
        ttft_ms=v["ttft_ms"],
        provider=v["provider"],
        operation=v["operation"],
        request_model=v["request_model"],
        response_model=v["response_model"],
        input_tokens=v["input_tokens"],
        output_tokens=v["output_tokens"],
        cache_read_tokens=v["cache_read_tokens"],
        cache_write_tokens=v["cache_write_tokens"],
        reasoning_tokens=v["reasoning_tokens"],
        cost_nanousd=v["cost_nanousd"],
        price_known=bool(v["price_known"]),
        price_version=v["price_version"],
        estimated=bool(v["estimated"]),
        status=cast(Status, v["status"]),
        error_type=v["error_type"],
        http_status=v["http_status"],
        stream=bool(v["stream"]),
        service_tier=v["service_tier"],
        tags=json.loads(v["tags"]),
        route=_loads(v["route"]),
        budgets=json.loads(v["budgets"]),
        trace_id=v["trace_id"],
        span_id=v["span_id"],
        content=_loads(v["content"]),
    )


def from_url(url: str) -> SQLiteStore:
    """`sqlite:///abs/path.db` (`sqlite:////abs/path.db` and `~` work too)."""
    path = url.partition("://")[2]
    if not path or path in ("/:memory:", ":memory:"):
        raise ConfigError(
            f"bad SQLite store URL {url!r}: name a file, e.g. sqlite:///home/me/costlens.db "
            "(use memory:// for an in-process store)"
        )
    return SQLiteStore(path)
