"""Append-only, named schema migrations of the SQLite store.

Rules: never edit, rename or reorder an entry once it is merged (tests pin every name and the
sha256 of its SQL); change the schema by appending a new entry. Each entry is applied once, in
order, and recorded in `schema_migrations(name, applied_at)`.

Conventions, kept portable to PostgreSQL: money is BIGINT nano-USD (NULL = price unknown),
timestamps are BIGINT microseconds since the epoch UTC (index-friendly, exact), booleans are
SMALLINT 0/1, structured fields are JSON text. Statements are separated by `;` at the end of a line.

Tags (since 0004): each distinct tag set (the `calls.tags` JSON text) is stored once in `tagsets`,
its key/value pairs in `tagset_tags`, and every call points at its set (`calls.tagset_id`), so
grouping and filtering by a tag is a join on a small table instead of JSON parsing, and a call with
tags costs no extra rows. (0002's per-call `call_tags` copy is migrated into them and dropped.)

Rollups (since 0005): `rollup_hourly` holds exact integer sums per UTC hour and per (provider,
operation, request model, model, service tier, status, tag set), maintained in the same transaction
as every append. `WITHOUT ROWID` is SQLite's clustered primary key; other backends drop the clause.
"""

from __future__ import annotations

import hashlib
import sqlite3

__all__ = ["MIGRATIONS", "migration_hash", "statements"]

_CREATE_CALLS = """
CREATE TABLE calls (
    id                 TEXT PRIMARY KEY,
    started_at_us      BIGINT NOT NULL,
    ended_at_us        BIGINT,
    latency_ms         DOUBLE PRECISION,
    ttft_ms            DOUBLE PRECISION,
    provider           TEXT NOT NULL,
    operation          TEXT NOT NULL,
    request_model      TEXT NOT NULL,
    response_model     TEXT,
    input_tokens       BIGINT NOT NULL DEFAULT 0,
    output_tokens      BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens   BIGINT NOT NULL DEFAULT 0,
    cost_nanousd       BIGINT,
    price_known        SMALLINT NOT NULL DEFAULT 0,
    price_version      TEXT NOT NULL DEFAULT '',
    estimated          SMALLINT NOT NULL DEFAULT 0,
    status             TEXT NOT NULL DEFAULT 'ok',
    error_type         TEXT,
    http_status        INTEGER,
    stream             SMALLINT NOT NULL DEFAULT 0,
    service_tier       TEXT,
    tags               TEXT NOT NULL DEFAULT '{}',
    route              TEXT,
    budgets            TEXT NOT NULL DEFAULT '[]',
    trace_id           TEXT,
    span_id            TEXT,
    content            TEXT
);
CREATE INDEX calls_started_at ON calls (started_at_us);
"""

_CREATE_CALL_TAGS = """
CREATE TABLE call_tags (
    call_id TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (call_id, key)
);
CREATE INDEX call_tags_key_value ON call_tags (key, value);
"""

_UNPRICED_INDEX = """
CREATE INDEX calls_unpriced ON calls (provider, request_model) WHERE cost_nanousd IS NULL;
"""

_TAGSETS = """
CREATE TABLE tagsets (
    id   INTEGER PRIMARY KEY,
    tags TEXT NOT NULL UNIQUE
);
CREATE TABLE tagset_tags (
    tagset_id BIGINT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (tagset_id, key)
);
CREATE INDEX tagset_tags_key_value ON tagset_tags (key, value);
ALTER TABLE calls ADD COLUMN tagset_id BIGINT;
INSERT INTO tagsets (tags) SELECT DISTINCT tags FROM calls ORDER BY tags;
UPDATE calls SET tagset_id = (SELECT t.id FROM tagsets t WHERE t.tags = calls.tags);
INSERT OR IGNORE INTO tagset_tags (tagset_id, key, value)
    SELECT DISTINCT c.tagset_id, ct.key, ct.value FROM calls c JOIN call_tags ct ON ct.call_id = c.id;
DROP TABLE call_tags;
"""

_ROLLUP_HOURLY = """
CREATE TABLE rollup_hourly (
    hour_us            BIGINT NOT NULL,
    provider           TEXT NOT NULL,
    operation          TEXT NOT NULL,
    request_model      TEXT NOT NULL,
    model              TEXT NOT NULL,
    service_tier       TEXT NOT NULL,
    status             TEXT NOT NULL,
    tagset_id          BIGINT NOT NULL,
    calls              BIGINT NOT NULL,
    input_tokens       BIGINT NOT NULL,
    output_tokens      BIGINT NOT NULL,
    cache_read_tokens  BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    cost_nanousd       BIGINT NOT NULL,
    unpriced_calls     BIGINT NOT NULL,
    error_calls        BIGINT NOT NULL,
    estimated_calls    BIGINT NOT NULL,
    PRIMARY KEY (hour_us, provider, operation, request_model, model, service_tier, status, tagset_id)
) WITHOUT ROWID;
INSERT INTO rollup_hourly (
    hour_us, provider, operation, request_model, model, service_tier, status, tagset_id, calls,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_nanousd,
    unpriced_calls, error_calls, estimated_calls
)
SELECT c.started_at_us - (((c.started_at_us % 3600000000) + 3600000000) % 3600000000),
    c.provider, c.operation, c.request_model, COALESCE(NULLIF(c.response_model, ''), c.request_model),
    COALESCE(c.service_tier, ''), c.status, COALESCE(c.tagset_id, 0), COUNT(*),
    SUM(c.input_tokens), SUM(c.output_tokens), SUM(c.cache_read_tokens), SUM(c.cache_write_tokens),
    SUM(c.reasoning_tokens), COALESCE(SUM(c.cost_nanousd), 0),
    SUM(CASE WHEN c.cost_nanousd IS NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END), SUM(c.estimated)
FROM calls c
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
"""

# The finer usage parts (`costlens.usage.USAGE_PARTS`): 1-hour cache writes (part of
# cache_write_tokens), uncached audio input and audio output, citation tokens (parts of the input
# and output totals), and server-side tool requests billed per request. Old rows and rollups are 0.
_USAGE_PARTS = """
ALTER TABLE calls ADD COLUMN cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN input_audio_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN output_audio_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN citation_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN web_search_requests BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN file_search_requests BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollup_hourly ADD COLUMN cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollup_hourly ADD COLUMN input_audio_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollup_hourly ADD COLUMN output_audio_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollup_hourly ADD COLUMN citation_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollup_hourly ADD COLUMN web_search_requests BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollup_hourly ADD COLUMN file_search_requests BIGINT NOT NULL DEFAULT 0;
"""

#: (name, sql) in the order they apply. APPEND ONLY.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001_create_calls", _CREATE_CALLS),
    ("0002_create_call_tags", _CREATE_CALL_TAGS),
    ("0003_index_unpriced_calls", _UNPRICED_INDEX),
    ("0004_tagsets", _TAGSETS),
    ("0005_rollup_hourly", _ROLLUP_HOURLY),
    ("0006_usage_parts", _USAGE_PARTS),
)


def statements(sql: str) -> list[str]:
    """Split a migration into statements (each ends with `;` at the end of a line)."""
    return [part.strip() for part in sql.split(";\n") if part.strip()]


def sqlite_statements(sql: str) -> list[str]:
    """`statements()` for SQLite, with a trigger's body kept whole: its own statements end in `;` at
    the end of a line too, so parts are joined until SQLite calls the statement complete."""
    out: list[str] = []
    pending = ""
    for part in statements(sql):
        pending = f"{pending};\n{part}" if pending else part
        if sqlite3.complete_statement(pending + ";"):
            out.append(pending)
            pending = ""
    if pending:
        out.append(pending)
    return out


def migration_hash(sql: str) -> str:
    """sha256 of the SQL, whitespace-normalised, so a test can pin what each migration does."""
    return hashlib.sha256(" ".join(sql.split()).encode()).hexdigest()
