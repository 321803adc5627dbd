"""Append-only, named schema migrations of the PostgreSQL store, and the columns it writes.

Rules (as for SQLite, `_migrations.py`): never edit, rename or reorder an entry once merged (tests
pin every name and the sha256 of its SQL); change the schema by appending a new entry. Each entry is
applied once, in order, under a transaction-level advisory lock, and recorded in
`schema_migrations(name, applied_at)`. The SQL spells every column out (no f-strings over
`USAGE_PARTS`), so a later change to that tuple cannot silently change a pinned migration.

Conventions shared with SQLite: money is BIGINT nano-USD (NULL = price unknown), times are BIGINT
microseconds since the epoch UTC, booleans SMALLINT 0/1, structured fields JSON text (kept byte for
byte, so records round-trip exactly as SQLite's do). `id` is `COLLATE "C"` so that ordering by id
is code-point order, as Python orders strings.

`calls` is partitioned by month of `started_at_us` (monthly partitions are created on demand by the
writer; the DEFAULT partition only catches what a writer did not route, and stays empty in normal
use). A partitioned table's unique keys must contain the partition key, so id uniqueness lives in
`call_ids`: a writer inserts ids there first (`ON CONFLICT DO NOTHING`) and writes `calls` rows only
for the ids that were new, in the same transaction.
"""

from __future__ import annotations

from costlens.usage import USAGE_PARTS

__all__ = ["CALL_COLUMNS", "CREATE_MIGRATIONS", "MIGRATIONS", "ROLLUP_KEY", "ROLLUP_SUMS"]

_CALLS = """
CREATE TABLE calls (
    id                    TEXT COLLATE "C" NOT NULL,
    started_at_us         BIGINT NOT NULL,
    ended_at_us           BIGINT,
    latency_ms            DOUBLE PRECISION,
    ttft_ms               DOUBLE PRECISION,
    provider              TEXT NOT NULL,
    operation             TEXT NOT NULL,
    request_model         TEXT NOT NULL,
    response_model        TEXT,
    input_tokens          BIGINT NOT NULL DEFAULT 0,
    output_tokens         BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens     BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens    BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens      BIGINT NOT NULL DEFAULT 0,
    cost_nanousd          BIGINT,
    price_known           SMALLINT NOT NULL DEFAULT 0,
    price_version         TEXT NOT NULL DEFAULT '',
    estimated             SMALLINT NOT NULL DEFAULT 0,
    status                TEXT NOT NULL DEFAULT 'ok',
    error_type            TEXT,
    http_status           INTEGER,
    stream                SMALLINT NOT NULL DEFAULT 0,
    service_tier          TEXT,
    tags                  TEXT NOT NULL DEFAULT '{}',
    route                 TEXT,
    budgets               TEXT NOT NULL DEFAULT '[]',
    trace_id              TEXT,
    span_id               TEXT,
    content               TEXT,
    cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
    input_audio_tokens    BIGINT NOT NULL DEFAULT 0,
    output_audio_tokens   BIGINT NOT NULL DEFAULT 0,
    citation_tokens       BIGINT NOT NULL DEFAULT 0,
    web_search_requests   BIGINT NOT NULL DEFAULT 0,
    file_search_requests  BIGINT NOT NULL DEFAULT 0,
    tagset_id             BIGINT NOT NULL
) PARTITION BY RANGE (started_at_us);
CREATE TABLE calls_default PARTITION OF calls DEFAULT;
CREATE INDEX calls_started_at_id ON calls (started_at_us, id);
CREATE INDEX calls_unpriced ON calls (provider, request_model) WHERE cost_nanousd IS NULL;
"""

_CALL_IDS = """
CREATE TABLE call_ids (
    id TEXT COLLATE "C" PRIMARY KEY
);
"""

# A tag set is stored once (its JSON text, found by the sha256 of that text: a B-tree entry of the
# text itself would fail past ~2.7 kB) with its pairs in tagset_tags for joins by key.
_TAGSETS = """
CREATE TABLE tagsets (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest BYTEA NOT NULL UNIQUE,
    tags   TEXT NOT NULL
);
CREATE TABLE tagset_tags (
    tagset_id BIGINT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (tagset_id, key)
);
"""

_ROLLUP_HOURLY = """
CREATE TABLE rollup_hourly (
    hour_us               BIGINT NOT NULL,
    provider              TEXT NOT NULL,
    operation             TEXT NOT NULL,
    request_model         TEXT NOT NULL,
    model                 TEXT NOT NULL,
    service_tier          TEXT NOT NULL,
    status                TEXT NOT NULL,
    tagset_id             BIGINT NOT NULL,
    calls                 BIGINT NOT NULL,
    input_tokens          BIGINT NOT NULL,
    output_tokens         BIGINT NOT NULL,
    cache_read_tokens     BIGINT NOT NULL,
    cache_write_tokens    BIGINT NOT NULL,
    reasoning_tokens      BIGINT NOT NULL,
    cost_nanousd          BIGINT NOT NULL,
    unpriced_calls        BIGINT NOT NULL,
    error_calls           BIGINT NOT NULL,
    estimated_calls       BIGINT NOT NULL,
    cache_write_1h_tokens BIGINT NOT NULL,
    input_audio_tokens    BIGINT NOT NULL,
    output_audio_tokens   BIGINT NOT NULL,
    citation_tokens       BIGINT NOT NULL,
    web_search_requests   BIGINT NOT NULL,
    file_search_requests  BIGINT NOT NULL,
    PRIMARY KEY (hour_us, provider, operation, request_model, model, service_tier, status, tagset_id)
);
"""

#: The bookkeeping table itself (created under the migration lock, before any migration runs).
CREATE_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)

#: (name, sql) in the order they apply. APPEND ONLY.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001_calls_partitioned", _CALLS),
    ("0002_call_ids", _CALL_IDS),
    ("0003_tagsets", _TAGSETS),
    ("0004_rollup_hourly", _ROLLUP_HOURLY),
)

#: Every column of `calls`, in the order the writer stages them.
CALL_COLUMNS = (
    "id", "started_at_us", "ended_at_us", "latency_ms", "ttft_ms", "provider", "operation",
    "request_model", "response_model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_nanousd", "price_known", "price_version",
    "estimated", "status", "error_type", "http_status", "stream", "service_tier", "tags", "route",
    "budgets", "trace_id", "span_id", "content", *USAGE_PARTS, "tagset_id",
)  # fmt: skip
ROLLUP_KEY = (
    "hour_us",
    "provider",
    "operation",
    "request_model",
    "model",
    "service_tier",
    "status",
    "tagset_id",
)
#: The rollup's sums, in `SpendRow` order after `keys`.
ROLLUP_SUMS = (
    "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "cost_nanousd", "unpriced_calls", "error_calls", "estimated_calls", *USAGE_PARTS,
)  # fmt: skip
