"""The ClickHouse store's tables, migrations and row codec (see `costlens.store.clickhouse`).

Kept to SQL that ClickHouse 18.16 (Debian's package) and current releases both accept: plain
`String`/`Int64`/`Nullable`/`Array` columns (no `LowCardinality`, `Map`, `DateTime64`, `JSON`),
`ReplacingMergeTree` with a version column, and only `CREATE ... IF NOT EXISTS` statements, so a
migration run twice (two processes at once: ClickHouse has no DDL transactions) is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from costlens.store._base import from_micros, to_micros
from costlens.store._codec import dumps
from costlens.usage import USAGE_PARTS, CallRecord, Status

__all__ = ["COLUMNS", "INT64_MAX", "MIGRATIONS", "MIGRATIONS_TABLE", "decode", "encode_columns"]

INT64_MAX = 2**63 - 1
MIGRATIONS_TABLE = "schema_migrations"

#: Column order of `calls` as read back by `decode` (the write adds `version`).
COLUMNS = (
    "id", "started_at_us", "ended_at_us", "latency_ms", "ttft_ms", "provider", "operation",
    "request_model", "response_model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_nanousd", "price_known", "price_version",
    "estimated", "status", "error_type", "http_status", "stream", "service_tier", "tag_keys",
    "tag_values", "route", "budgets", "trace_id", "span_id", "content", *USAGE_PARTS,
)  # fmt: skip

_PARTS_DDL = "".join(f",\n    {name} Int64" for name in USAGE_PARTS)

# `version` makes the *first* write of an id win when duplicates merge: ReplacingMergeTree keeps the
# row with the highest version, and a row's version is 2**63 minus its write time in nanoseconds.
# ORDER BY (started_at_us, id) is the dedupe key (a replayed record repeats both) and serves the
# time-range filters every read has; the month partition lets old months be dropped whole. The
# partition key is on the microsecond column itself, so its min/max index prunes parts directly.
_CALLS = f"""
CREATE TABLE IF NOT EXISTS {{db}}.calls (
    id String,
    started_at_us Int64,
    ended_at_us Nullable(Int64),
    latency_ms Nullable(Float64),
    ttft_ms Nullable(Float64),
    provider String,
    operation String,
    request_model String,
    response_model Nullable(String),
    input_tokens Int64,
    output_tokens Int64,
    cache_read_tokens Int64,
    cache_write_tokens Int64,
    reasoning_tokens Int64,
    cost_nanousd Nullable(Int64),
    price_known UInt8,
    price_version String,
    estimated UInt8,
    status String,
    error_type Nullable(String),
    http_status Nullable(Int32),
    stream UInt8,
    service_tier Nullable(String),
    tag_keys Array(String),
    tag_values Array(String),
    route Nullable(String),
    budgets String,
    trace_id Nullable(String),
    span_id Nullable(String),
    content Nullable(String){_PARTS_DDL},
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(toDateTime(intDiv(started_at_us, 1000000)))
ORDER BY (started_at_us, id)
"""

# Which ids are stored, ordered by id so that a batch's lookup reads a few granules, not the whole
# `id` column of `calls` (which is ordered by time). Written after `calls`: a crash in between
# leaves a row this table lacks, and the replay's duplicate is then merged away by `calls`' key.
_CALL_IDS = """
CREATE TABLE IF NOT EXISTS {db}.call_ids (
    id String,
    started_at_us Int64
) ENGINE = ReplacingMergeTree
ORDER BY id
"""

#: (name, statements): append-only; a released migration is never edited, only followed by another.
MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (("0001_calls", (_CALLS, _CALL_IDS)),)

CREATE_MIGRATIONS = f"""
CREATE TABLE IF NOT EXISTS {{db}}.{MIGRATIONS_TABLE} (
    name String,
    applied_at_us Int64
) ENGINE = ReplacingMergeTree
ORDER BY name
"""


def _text(value: Any) -> str | None:
    return None if value is None else dumps(value)


def encode_columns(records: Sequence[CallRecord], version: int) -> list[list[Any]]:
    """`records` as columns (COLUMNS order, then `version`) for a columnar INSERT."""
    for record in records:
        if record.cost_nanousd is not None and abs(record.cost_nanousd) > INT64_MAX:
            raise ValueError(
                f"record {record.id}: cost_nanousd {record.cost_nanousd} does not fit a 64-bit integer "
                "(more than 9.2 billion USD for one call?)"
            )
    cols: list[list[Any]] = [
        [r.id for r in records],
        [to_micros(r.started_at) for r in records],
        [None if r.ended_at is None else to_micros(r.ended_at) for r in records],
        [r.latency_ms for r in records],
        [r.ttft_ms for r in records],
        [r.provider for r in records],
        [r.operation for r in records],
        [r.request_model for r in records],
        [r.response_model for r in records],
        [r.input_tokens for r in records],
        [r.output_tokens for r in records],
        [r.cache_read_tokens for r in records],
        [r.cache_write_tokens for r in records],
        [r.reasoning_tokens for r in records],
        [r.cost_nanousd for r in records],
        [int(r.price_known) for r in records],
        [r.price_version for r in records],
        [int(r.estimated) for r in records],
        [r.status for r in records],
        [r.error_type for r in records],
        [r.http_status for r in records],
        [int(r.stream) for r in records],
        [r.service_tier for r in records],
        [list(r.tags) for r in records],
        [list(r.tags.values()) for r in records],
        [_text(r.route) for r in records],
        [dumps(r.budgets) for r in records],
        [r.trace_id for r in records],
        [r.span_id for r in records],
        [_text(r.content) for r in records],
        *([getattr(r, name) for r in records] for name in USAGE_PARTS),
        [version] * len(records),
    ]
    return cols


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def decode(row: Sequence[Any]) -> CallRecord:
    """One `calls` row (COLUMNS order) back into the record that was written."""
    v = dict(zip(COLUMNS, row, strict=True))
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
        tags=dict(zip(v["tag_keys"], v["tag_values"], strict=True)),
        route=_loads(v["route"]),
        budgets=json.loads(v["budgets"]),
        trace_id=v["trace_id"],
        span_id=v["span_id"],
        content=_loads(v["content"]),
        **{name: v[name] for name in USAGE_PARTS},
    )
