"""The PostgreSQL write path: COPY into a staging table, dedupe on `call_ids`, one move into `calls`.

One write transaction, any number of batches (`append` is one batch, `bulk()` many):

1. `prepare` (outside the write transaction): split the batch in Python (first record wins for a
   repeated id), make sure every tag set has a row in `tagsets` and every month a partition of
   `calls`. Both are committed at once, in their own short transaction: an unused tag set or an
   empty partition is harmless if the write later rolls back, and keeping DDL out of the write
   transaction means a write never holds the ACCESS EXCLUSIVE lock a new partition takes on
   `calls` (readers would queue behind it for a whole import). Partition creation is serialised
   across processes by an advisory lock; known tag sets and partitions are cached per store.
2. `stage` (in the write transaction): COPY the rows into the session's TEMP stage, insert their
   ids into `call_ids` in id order (`ON CONFLICT DO NOTHING`: an id already stored, or being stored
   by a concurrent transaction, which we then wait for, is skipped; sorted so two writers of the
   same batch queue instead of deadlocking), and keep the rows whose id was new in the TEMP pending
   table. Nothing here touches `calls`, so a bulk import can still create partitions (through a
   second connection) between its batches without waiting on itself.
3. `finish`: move the pending rows into `calls` (routed to their monthly partitions) and fold them
   into `rollup_hourly` with `ON CONFLICT DO UPDATE` adding the sums, in key order. Same transaction.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from costlens.store._base import to_micros
from costlens.store._codec import budgets_text, dumps, tags_text
from costlens.store._pg_schema import CALL_COLUMNS, ROLLUP_KEY, ROLLUP_SUMS
from costlens.store._time import HOUR_US
from costlens.usage import USAGE_PARTS, CallRecord

__all__ = ["Prepared", "WriteCaches", "create_temp_tables", "finish", "prepare", "stage"]

Conn = psycopg.Connection[Any]
ConnSource = Callable[[], AbstractContextManager[Conn]]

#: Advisory lock key serialising partition creation across processes ("costlens" + 1).
PARTITION_LOCK = 0x636F73746C656E74
_STAGE, _PENDING = "costlens_stage", "costlens_pending"
_INTEGERS = (
    "started_at_us", "ended_at_us", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_nanousd", "tagset_id", *USAGE_PARTS,
)  # fmt: skip
_TYPES = {
    **dict.fromkeys(_INTEGERS, "BIGINT"),
    **dict.fromkeys(("price_known", "estimated", "stream"), "SMALLINT"),
    "id": 'TEXT COLLATE "C"',
    "latency_ms": "DOUBLE PRECISION",
    "ttft_ms": "DOUBLE PRECISION",
    "http_status": "INTEGER",
}
_COLS = ", ".join(CALL_COLUMNS)
_TEMP_DDL = [
    f"CREATE TEMP TABLE IF NOT EXISTS {name} ("
    + ", ".join(f"{col} {_TYPES.get(col, 'TEXT')}" for col in CALL_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
    for name in (_STAGE, _PENDING)
]
_COPY = f"COPY {_STAGE} ({_COLS}) FROM STDIN"
_KEEP_NEW = f"""WITH fresh AS (
    INSERT INTO call_ids (id) SELECT id FROM {_STAGE} ORDER BY id ON CONFLICT DO NOTHING RETURNING id
)
INSERT INTO {_PENDING} ({_COLS}) SELECT {", ".join("s." + c for c in CALL_COLUMNS)}
FROM {_STAGE} s JOIN fresh f ON f.id = s.id"""
_MOVE = f"INSERT INTO calls ({_COLS}) SELECT {_COLS} FROM {_PENDING}"
_H = HOUR_US
_FOLD = f"""INSERT INTO rollup_hourly ({", ".join(ROLLUP_KEY)}, {", ".join(ROLLUP_SUMS)})
SELECT p.started_at_us - (((p.started_at_us % {_H}) + {_H}) % {_H}), p.provider, p.operation,
    p.request_model, COALESCE(NULLIF(p.response_model, ''), p.request_model), COALESCE(p.service_tier, ''),
    p.status, p.tagset_id, COUNT(*), SUM(p.input_tokens), SUM(p.output_tokens), SUM(p.cache_read_tokens),
    SUM(p.cache_write_tokens), SUM(p.reasoning_tokens), COALESCE(SUM(p.cost_nanousd), 0),
    COUNT(*) FILTER (WHERE p.cost_nanousd IS NULL), COUNT(*) FILTER (WHERE p.status = 'error'),
    SUM(p.estimated){"".join(f", SUM(p.{name})" for name in USAGE_PARTS)}
FROM {_PENDING} p GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
ON CONFLICT ({", ".join(ROLLUP_KEY)}) DO UPDATE SET
{", ".join(f"{s} = rollup_hourly.{s} + excluded.{s}" for s in ROLLUP_SUMS)}"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_DAY_US = 24 * HOUR_US


class WriteCaches:
    """What this store knows exists in the database: partitions (by month number) and tag set ids."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.months: set[int] = set()
        self.tagsets: dict[str, int] = {}


@dataclass(frozen=True, slots=True)
class Prepared:
    """One batch, ready to COPY: rows in `CALL_COLUMNS` order, ids unique."""

    rows: list[tuple[object, ...]]


def create_temp_tables(conn: Conn) -> None:
    """The session's stage and pending tables (run once per pooled connection, in autocommit)."""
    for sql in _TEMP_DDL:
        conn.execute(sql)


def _month(micros: int) -> int:
    """Months since year 0 (`year * 12 + month - 1`) of a UTC time."""
    when = _EPOCH + timedelta(microseconds=micros)
    return when.year * 12 + when.month - 1


def prepare(records: Sequence[CallRecord], caches: WriteCaches, connect: ConnSource) -> Prepared:
    """Split a batch and make sure its tag sets and partitions exist (committed at once)."""
    unique: dict[str, CallRecord] = {}
    for record in records:
        unique.setdefault(record.id, record)
    texts: dict[int, str] = {}  # id(tags dict) -> text; the records keep their dicts alive meanwhile
    tag_sets: dict[str, Mapping[str, object]] = {}
    months_by_day: dict[int, int] = {}
    starts: list[int] = []
    for record in unique.values():
        text = texts.get(id(record.tags))
        if text is None:
            text = texts[id(record.tags)] = tags_text(record.tags)
            tag_sets.setdefault(text, record.tags)
        at = to_micros(record.started_at)
        starts.append(at)
        day = at // _DAY_US
        if day not in months_by_day:
            months_by_day[day] = _month(at)
    ensure_partitions(set(months_by_day.values()), caches, connect)
    ids = ensure_tagsets(tag_sets, caches, connect)
    rows = [
        _row(r, at, ids[texts[id(r.tags)]], texts[id(r.tags)])
        for r, at in zip(unique.values(), starts, strict=True)
    ]
    return Prepared(rows)


def _row(r: CallRecord, started_us: int, tagset_id: int, tags: str) -> tuple[object, ...]:
    route, budgets, content = r.route, r.budgets, r.content
    return (
        r.id, started_us, None if r.ended_at is None else to_micros(r.ended_at), r.latency_ms, r.ttft_ms,
        r.provider, r.operation, r.request_model, r.response_model, r.input_tokens, r.output_tokens,
        r.cache_read_tokens, r.cache_write_tokens, r.reasoning_tokens, r.cost_nanousd,
        1 if r.price_known else 0, r.price_version, 1 if r.estimated else 0, r.status, r.error_type,
        r.http_status, 1 if r.stream else 0, r.service_tier, tags,
        None if route is None else dumps(route), budgets_text(budgets), r.trace_id,
        r.span_id, None if content is None else dumps(content), r.cache_write_1h_tokens,
        r.input_audio_tokens, r.output_audio_tokens, r.citation_tokens, r.web_search_requests,
        r.file_search_requests, tagset_id,
    )  # fmt: skip


# -- partitions and tag sets (their own short transactions) -----------------------------------


def _bounds(month: int) -> tuple[str, str, str]:
    """Partition name and its FROM/TO bounds (microseconds, UTC) for a month number."""
    year, index = divmod(month, 12)
    start = to_micros(datetime(year, index + 1, 1, tzinfo=UTC))
    if month + 1 >= 10000 * 12:  # December 9999: no next month to end at
        return f"calls_{year:04d}_{index + 1:02d}", str(start), "MAXVALUE"
    nyear, nindex = divmod(month + 1, 12)
    end = to_micros(datetime(nyear, nindex + 1, 1, tzinfo=UTC))
    return f"calls_{year:04d}_{index + 1:02d}", str(start), str(end)


def ensure_partitions(months: set[int], caches: WriteCaches, connect: ConnSource) -> None:
    """Create the monthly partitions of `calls` that these months lack (one process at a time)."""
    with caches.lock:
        missing = sorted(months - caches.months)
    if not missing:
        return
    with connect() as conn, conn.transaction():
        # A bounded wait: a reader holding `calls` open in this very thread would otherwise block
        # the new partition forever; an error says so instead.
        conn.execute("SET LOCAL lock_timeout = '60s'")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
        existing = {
            name
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'calls'::regclass"
            )
        }
        for month in missing:
            name, start, end = _bounds(month)
            if name not in existing:
                conn.execute(f"CREATE TABLE {name} PARTITION OF calls FOR VALUES FROM ({start}) TO ({end})")
    with caches.lock:
        caches.months.update(missing)


def ensure_tagsets(
    tag_sets: Mapping[str, Mapping[str, object]], caches: WriteCaches, connect: ConnSource
) -> dict[str, int]:
    """The id of every tag set (by JSON text), creating the missing ones with their key/value rows."""
    with caches.lock:
        ids = {text: caches.tagsets[text] for text in tag_sets if text in caches.tagsets}
    missing = sorted(text for text in tag_sets if text not in ids)
    if not missing:
        return ids
    digests = [hashlib.sha256(text.encode()).digest() for text in missing]
    with connect() as conn, conn.transaction():
        created = conn.execute(
            "INSERT INTO tagsets (digest, tags) SELECT d, t FROM unnest(%s::bytea[], %s::text[]) AS u(d, t) "
            "ORDER BY d ON CONFLICT (digest) DO NOTHING RETURNING id, tags",
            (digests, missing),
        ).fetchall()
        pairs = [(tid, key, str(value)) for tid, text in created for key, value in tag_sets[text].items()]
        if pairs:
            conn.execute(
                "INSERT INTO tagset_tags (tagset_id, key, value) "
                "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[])",
                ([p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs]),
            )
        found = conn.execute("SELECT tags, id FROM tagsets WHERE digest = ANY(%s)", (digests,)).fetchall()
    fresh = {text: int(tid) for text, tid in found}
    with caches.lock:
        caches.tagsets.update(fresh)
    return {**ids, **fresh}


# -- inside the write transaction --------------------------------------------------------------


def stage(conn: Conn, prepared: Prepared) -> int:
    """COPY one batch in and keep the rows whose id is new; returns how many were new."""
    if not prepared.rows:
        return 0
    with conn.cursor() as cur:
        with cur.copy(_COPY) as copy:
            for row in prepared.rows:
                copy.write_row(row)
        cur.execute(_KEEP_NEW)
        fresh = cur.rowcount
        cur.execute(f"TRUNCATE {_STAGE}")
    return max(fresh, 0)


def finish(conn: Conn) -> None:
    """Move the kept rows into `calls` and fold them into `rollup_hourly`."""
    with conn.cursor() as cur:
        cur.execute(_MOVE)
        cur.execute(_FOLD)
        cur.execute(f"TRUNCATE {_PENDING}")
