"""The ClickHouse store's tables, migrations and row codec (see `costlens.store.clickhouse`).

Kept to SQL that ClickHouse 18.16 (Debian's package) and current releases both accept: plain
`String`/`Int64`/`Nullable`/`Array` columns (no `LowCardinality`, `Map`, `DateTime64`, `JSON`),
`ReplacingMergeTree` with a version column, and only `CREATE ... IF NOT EXISTS` statements, so a
migration run twice (two processes at once: ClickHouse has no DDL transactions) is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from costlens.store._base import to_micros
from costlens.store._ch_sql import MODEL, floor_div
from costlens.store._codec import budgets_text, dumps
from costlens.store._rows import record_from_columns
from costlens.store._time import HOUR_US
from costlens.usage import USAGE_PARTS, CallRecord

__all__ = [
    "COLUMNS",
    "COST_SPLIT",
    "INT64_MAX",
    "MIGRATIONS",
    "MIGRATIONS_TABLE",
    "ROLLUP_KEY",
    "ROLLUP_SUMS",
    "decode",
    "encode_columns",
    "rollup_delta_sql",
]

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
# `id` column of `calls` (which is ordered by time). Written after `calls` (by the client before
# 0002, by the view `call_ids_feed` since): a crash in between leaves a row this table lacks, and
# the replay's duplicate is then merged away by `calls`' key.
_CALL_IDS = """
CREATE TABLE IF NOT EXISTS {db}.call_ids (
    id String,
    started_at_us Int64
) ENGINE = ReplacingMergeTree
ORDER BY id
"""

#: Cost sums are split at 2**32 (see `costlens.store.clickhouse`). Divisors are Int64 literals: 18.16
#: types `modulo(Int64, <bare literal>)` by the literal's width, and the remainder would wrap.
COST_SPLIT = 2**32
_SPLIT = f"toInt64({COST_SPLIT})"

#: The hourly rollup's key, as the reads group it: `model` is already the response model else the
#: requested one, `tier` the service tier with NULL as ''; tags are the calls' own two arrays.
ROLLUP_KEY = (
    "hour_us", "provider", "operation", "request_model", "model", "tier", "status", "tag_keys", "tag_values",
)  # fmt: skip
#: (rollup column, its per-call value in `calls`): summed in this order, `SpendRow`'s order.
_ROLLUP_VALUES = (
    ("sum_calls", "toInt64(1)"),
    ("sum_input_tokens", "input_tokens"),
    ("sum_output_tokens", "output_tokens"),
    ("sum_cache_read_tokens", "cache_read_tokens"),
    ("sum_cache_write_tokens", "cache_write_tokens"),
    ("sum_reasoning_tokens", "reasoning_tokens"),
    ("sum_cost_hi", f"intDiv(ifNull(cost_nanousd, 0), {_SPLIT})"),
    ("sum_cost_lo", f"modulo(ifNull(cost_nanousd, 0), {_SPLIT})"),
    ("sum_unpriced", "toInt64(isNull(cost_nanousd))"),
    ("sum_errors", "toInt64(status = 'error')"),
    ("sum_estimated", "toInt64(estimated)"),
    *((f"sum_{name}", name) for name in USAGE_PARTS),
)
ROLLUP_SUMS = tuple(column for column, _ in _ROLLUP_VALUES)
#: The key of a `calls` row, as the rollup's columns (aliases are new names, never a column's).
_KEY_OF_CALL = (
    f"({floor_div('started_at_us', divisor=HOUR_US)} * toInt64({HOUR_US})) AS hour_us",
    "provider", "operation", "request_model", f"{MODEL} AS model", "ifNull(service_tier, '') AS tier",
    "status", "tag_keys", "tag_values",
)  # fmt: skip
_GROUP = ", ".join(ROLLUP_KEY)
_SUMS_DDL = "".join(f",\n    {column} Int64" for column in ROLLUP_SUMS)

# Whole UTC hours of calls, summed per key; merges add up rows with equal keys, and reads always
# sum() and GROUP BY themselves, so unmerged parts never change an answer. Every row written holds
# at least one call, so none is all zeros (which SummingMergeTree would drop); correction rows
# written by a repair may be negative, and a key whose sums reach zero is rightly dropped.
_ROLLUP = f"""
CREATE TABLE IF NOT EXISTS {{db}}.rollup_hourly (
    hour_us Int64,
    provider String,
    operation String,
    request_model String,
    model String,
    tier String,
    status String,
    tag_keys Array(String),
    tag_values Array(String){_SUMS_DDL}
) ENGINE = SummingMergeTree(({", ".join(ROLLUP_SUMS)}))
PARTITION BY toYYYYMM(toDateTime(intDiv(hour_us, 1000000)))
ORDER BY ({_GROUP})
"""

# Both views run inside every INSERT into `calls`, after ClickHouse has written the block there (it
# pushes a block to the views only once the table's own part is written): `call_ids` and the rollup
# receive exactly the rows that `calls` received, which are the records that passed the write-side
# id check, with no second round trip from the client.
_CALL_IDS_VIEW = """
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.call_ids_feed TO {db}.call_ids
AS SELECT id, started_at_us FROM {db}.calls
"""
_ROLLUP_VIEW = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.rollup_hourly_feed TO {{db}}.rollup_hourly
AS SELECT {", ".join(_KEY_OF_CALL)},
    {", ".join(f"sum({value}) AS {column}" for column, value in _ROLLUP_VALUES)}
FROM {{db}}.calls
GROUP BY {_GROUP}
"""


def rollup_delta_sql(calls_where: str = "", rollup_where: str = "") -> str:
    """Rows that make `rollup_hourly` equal `calls FINAL` (per key: what the calls sum to, less what
    the rollup holds; keys already equal left out), in ROLLUP_KEY + ROLLUP_SUMS order.

    Inserted, they back-fill an empty rollup or correct a drifted one; run twice in a row, the
    second run finds nothing. The `*_where` are whole WHERE clauses (on `started_at_us` / `hour_us`).
    Aliases are positional names (`d0`...), so no alias shadows a column it sums."""
    n = len(ROLLUP_SUMS)
    from_calls = ", ".join(f"sum({value}) AS d{i}" for i, (_, value) in enumerate(_ROLLUP_VALUES))
    from_rollup = ", ".join(f"-sum({column}) AS d{i}" for i, column in enumerate(ROLLUP_SUMS))
    return (
        f"SELECT {_GROUP}, {', '.join(f'sum(d{i}) AS e{i}' for i in range(n))} FROM ("
        f"SELECT {', '.join(_KEY_OF_CALL)}, {from_calls} FROM {{db}}.calls FINAL {calls_where} "
        f"GROUP BY {_GROUP} "
        f"UNION ALL SELECT {_GROUP}, {from_rollup} FROM {{db}}.rollup_hourly {rollup_where} "
        f"GROUP BY {_GROUP}"
        f") GROUP BY {_GROUP} HAVING {' OR '.join(f'e{i} != 0' for i in range(n))}"
    )


_BACKFILL = f"INSERT INTO {{db}}.rollup_hourly ({_GROUP}, {', '.join(ROLLUP_SUMS)}) {rollup_delta_sql()}"

#: (name, statements): append-only; a released migration is never edited, only followed by another.
#: 0002: the rollup and the views feeding it and `call_ids` first, then the back-fill: a record
#: written between the two is counted by the view and found on both sides of the delta (no change).
MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("0001_calls", (_CALLS, _CALL_IDS)),
    ("0002_rollup_hourly", (_ROLLUP, _CALL_IDS_VIEW, _ROLLUP_VIEW, _BACKFILL)),
)

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
        [budgets_text(r.budgets) for r in records],
        [r.trace_id for r in records],
        [r.span_id for r in records],
        [_text(r.content) for r in records],
        *([getattr(r, name) for r in records] for name in USAGE_PARTS),
        [version] * len(records),
    ]
    return cols


def decode(row: Sequence[Any]) -> CallRecord:
    """One `calls` row (COLUMNS order) back into the record that was written."""
    v = dict(zip(COLUMNS, row, strict=True))
    return record_from_columns(v, dict(zip(v["tag_keys"], v["tag_values"], strict=True)))
