"""Append-only, named schema migrations of the SQLite store.

Rules: never edit, rename or reorder an entry once it is merged (tests pin every name and the
sha256 of its SQL); change the schema by appending a new entry. Each entry is applied once, in
order, and recorded in `schema_migrations(name, applied_at)`.

Conventions, kept portable to PostgreSQL: money is BIGINT nano-USD (NULL = price unknown),
timestamps are BIGINT microseconds since the epoch UTC (index-friendly, exact), booleans are
SMALLINT 0/1, structured fields are JSON text. Tags are also copied to `call_tags` so that
grouping and filtering by a tag is an indexed join instead of JSON parsing.
Statements are separated by `;` at the end of a line.
"""

from __future__ import annotations

import hashlib

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

#: (name, sql) in the order they apply. APPEND ONLY.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001_create_calls", _CREATE_CALLS),
    ("0002_create_call_tags", _CREATE_CALL_TAGS),
    ("0003_index_unpriced_calls", _UNPRICED_INDEX),
)


def statements(sql: str) -> list[str]:
    """Split a migration into statements (each ends with `;` at the end of a line)."""
    return [part.strip() for part in sql.split(";\n") if part.strip()]


def migration_hash(sql: str) -> str:
    """sha256 of the SQL, whitespace-normalised, so a test can pin what each migration does."""
    return hashlib.sha256(" ".join(sql.split()).encode()).hexdigest()
