"""The SQLite write path: staged bulk insert, tag sets, and the hourly rollup kept in step.

A batch is split in Python into what varies per call (ids, times, tokens, cost: the stage table)
and what repeats (provider, model, status, tags...: the dims table, one row per distinct tuple),
both TEMP tables. One `INSERT ... SELECT` then moves the batch into `calls`, skipping ids already
stored (first one wins inside a batch), and one more folds exactly the rows just inserted into
`rollup_hourly`: from the stage when every staged row went in, else from `calls` above the rowid
watermark taken before the move. Binding 16 values per call (24 when a batch has end times,
latencies, trace ids, routes, budget entries or content) instead of 36 is what makes bulk imports
fast. The stage is filled by multi-row INSERTs (`insert_flat`): a batch of 500 calls takes about a
dozen statements in all, where one per call handed the GIL to the process's other threads 500
times and, in a busy process, tripled the writer's CPU per call. Everything runs
inside the caller's transaction.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from costlens.store._base import to_micros
from costlens.store._codec import budgets_text, dumps, tags_text
from costlens.store._sqlite_conn import insert_flat, insert_rows
from costlens.usage import ROW_FIELDS, USAGE_PARTS, CallRecord

__all__ = ["COLUMNS", "TagsetCache", "prepare", "write_batch", "write_rows"]

_CORE = (
    "id", "started_at_us", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_nanousd", "estimated", *USAGE_PARTS,
)  # fmt: skip
# The JSON parts are per call too (a budget entry names its reservation, content is the call's
# own text): as dims, every budgeted call made a dims row and a rollup group of its own.
_EXTRA = ("ended_at_us", "latency_ms", "ttft_ms", "trace_id", "span_id", "route", "budgets", "content")
_VAR = _CORE + _EXTRA
_CORE_WIDTH, _EXTRA_WIDTH = 1 + len(_CORE), len(_EXTRA)  # (the stage's core values start with the dim)
_DIM = (
    "provider", "operation", "request_model", "response_model", "price_known", "price_version", "status",
    "error_type", "http_status", "stream", "service_tier", "tags", "tagset_id",
)  # fmt: skip
#: Every column of `calls` this version writes.
COLUMNS = _VAR + _DIM
_PRICE_KNOWN_AT, _STREAM_AT, _TAGS_AT = _DIM.index("price_known"), _DIM.index("stream"), _DIM.index("tags")
# Where a row's parts are (`costlens.usage.ROW_FIELDS`): the dims but tagset id, in `_DIM`'s order
# (the tags dict where the dims have its text), then the core values and the extras in the stage's.
_ROW_TAGS, _ROW_CORE = ROW_FIELDS.index("tags"), ROW_FIELDS.index("id")
_ROW_EXTRA = _ROW_CORE + len(_CORE)
assert (*_DIM[: _TAGS_AT + 1], *_CORE, *_EXTRA) == ROW_FIELDS, "ROW_FIELDS and the stage columns differ"
_STAGE = "costlens_stage"
_DIMS = "costlens_dims"
_CREATE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (dim INTEGER NOT NULL, {', '.join(_VAR)})",
    f"CREATE TEMP TABLE IF NOT EXISTS {_DIMS} (dim INTEGER PRIMARY KEY, {', '.join(_DIM)})",
)
_INSERT_DIMS = f"INSERT INTO temp.{_DIMS}"


def _staged(column: str) -> str:
    # A batch with no extras stages none (`_INSERT_CORE`): `calls.budgets` is NOT NULL, '[]' when empty.
    return "COALESCE(s.budgets, '[]')" if column == "budgets" else f"s.{column}"


_MOVE = (
    f"INSERT INTO calls ({', '.join(COLUMNS)}) "
    f"SELECT {', '.join([*(_staged(c) for c in _VAR), *('d.' + c for c in _DIM)])} "
    f"FROM temp.{_STAGE} s JOIN temp.{_DIMS} d ON d.dim = s.dim WHERE true ORDER BY s.rowid "
    "ON CONFLICT (id) DO NOTHING"
)
_SUMS = (
    "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "cost_nanousd", "unpriced_calls", "error_calls", "estimated_calls", *USAGE_PARTS,
)  # fmt: skip
_PART_SUMS_CALLS = "".join(f", SUM(c.{name})" for name in USAGE_PARTS)
_PART_SUMS_STAGE = "".join(f", SUM(s.{name}) AS {name}" for name in USAGE_PARTS)
_PART_COLS_STAGE = "".join(f", g.{name}" for name in USAGE_PARTS)
_ROLLUP_KEY = "hour_us, provider, operation, request_model, model, service_tier, status, tagset_id"
_ADD = ", ".join(f"{s} = rollup_hourly.{s} + excluded.{s}" for s in _SUMS)
_FOLD = f"""INSERT INTO rollup_hourly ({_ROLLUP_KEY}, {", ".join(_SUMS)})
SELECT c.started_at_us - (((c.started_at_us % 3600000000) + 3600000000) % 3600000000),
    c.provider, c.operation, c.request_model, COALESCE(NULLIF(c.response_model, ''), c.request_model),
    COALESCE(c.service_tier, ''), c.status, COALESCE(c.tagset_id, 0), COUNT(*),
    SUM(c.input_tokens), SUM(c.output_tokens), SUM(c.cache_read_tokens), SUM(c.cache_write_tokens),
    SUM(c.reasoning_tokens), COALESCE(SUM(c.cost_nanousd), 0),
    SUM(CASE WHEN c.cost_nanousd IS NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END), SUM(c.estimated){_PART_SUMS_CALLS}
FROM calls c WHERE c.rowid > ?
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
ON CONFLICT ({_ROLLUP_KEY}) DO UPDATE SET {_ADD}"""
# The same fold from the stage: group by (hour, dim) on integers first, then attach the dims.
_FOLD_STAGE = f"""INSERT INTO rollup_hourly ({_ROLLUP_KEY}, {", ".join(_SUMS)})
SELECT g.hour_us, d.provider, d.operation, d.request_model,
    COALESCE(NULLIF(d.response_model, ''), d.request_model), COALESCE(d.service_tier, ''), d.status,
    COALESCE(d.tagset_id, 0), g.calls, g.i, g.o, g.cr, g.cw, g.rs, g.cost, g.unpriced,
    CASE WHEN d.status = 'error' THEN g.calls ELSE 0 END, g.est{_PART_COLS_STAGE}
FROM (SELECT s.started_at_us - (((s.started_at_us % 3600000000) + 3600000000) % 3600000000) AS hour_us,
    s.dim AS dim, COUNT(*) AS calls, SUM(s.input_tokens) AS i, SUM(s.output_tokens) AS o,
    SUM(s.cache_read_tokens) AS cr, SUM(s.cache_write_tokens) AS cw, SUM(s.reasoning_tokens) AS rs,
    COALESCE(SUM(s.cost_nanousd), 0) AS cost,
    SUM(CASE WHEN s.cost_nanousd IS NULL THEN 1 ELSE 0 END) AS unpriced, SUM(s.estimated) AS est
    {_PART_SUMS_STAGE}
    FROM temp.{_STAGE} s GROUP BY 1, 2) g
JOIN temp.{_DIMS} d ON d.dim = g.dim WHERE true
ON CONFLICT ({_ROLLUP_KEY}) DO UPDATE SET {_ADD}"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


class TagsetCache:
    """tags JSON text -> tagset id, for committed tag sets only (ids never change once committed)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, text: str) -> int | None:
        return self._ids.get(text)

    def commit(self, fresh: Mapping[str, int]) -> None:
        with self._lock:
            self._ids.update(fresh)


def prepare(conn: sqlite3.Connection) -> None:
    """Create this connection's TEMP stage tables (idempotent)."""
    for sql in _CREATE:
        conn.execute(sql)


#: The stage INSERT, its values, how many per record, the distinct dims (-> dim number), and the
#: tags dict of every tags text seen.
_Split = tuple[str, list[object], int, dict[tuple[object, ...], int], dict[str, Mapping[str, str]]]


def _split(records: Sequence[CallRecord]) -> _Split:
    """The stage INSERT and its values, record after record (core values, plus the extras that some
    call of the batch has), how many per record, distinct dims (-> dim number), and the tags dict
    of every tags text seen. The hot loop of every write: kept lean on purpose.

    No object is kept per record (the values go straight into one list): a batch's objects count
    towards the garbage collector's next run until the batch is written, and a busy process pays
    for each run in every generation it walks (see `costlens.recorder`)."""
    cores: list[object] = []  # `_CORE_WIDTH` values per record
    extras: list[object] = []  # `_EXTRA_WIDTH` values per record
    dims: dict[tuple[object, ...], int] = {}
    texts: dict[int, str] = {}  # id(tags dict) -> text; the records keep their dicts alive meanwhile
    by_items: dict[tuple[tuple[str, object], ...], str] = {}
    tag_dicts: dict[str, Mapping[str, str]] = {}
    for r in records:
        tags = r.tags
        text = texts.get(id(tags))
        if text is None:
            try:  # (`_text_of` inline: each tracked call has a tags dict of its own)
                text = by_items.get(items := tuple(tags.items()))
                if text is None:
                    text = by_items[items] = tags_text(tags)
            except TypeError:  # an unhashable tag value
                text = tags_text(tags)
            texts[id(tags)] = text
            tag_dicts.setdefault(text, tags)
        dim_key = (
            r.provider, r.operation, r.request_model, r.response_model, r.price_known, r.price_version,
            r.status, r.error_type, r.http_status, r.stream, r.service_tier, text,
        )  # fmt: skip
        dim = dims.get(dim_key)
        if dim is None:
            dim = dims[dim_key] = len(dims)
        started = r.started_at
        micros = (started - _EPOCH) // _MICRO if started.tzinfo else to_micros(started)
        cores += (
            dim, r.id, micros, r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens,
            r.reasoning_tokens, r.cost_nanousd, 1 if r.estimated else 0, r.cache_write_1h_tokens,
            r.input_audio_tokens, r.output_audio_tokens, r.citation_tokens, r.web_search_requests,
            r.file_search_requests,
        )  # fmt: skip
        extras += (
            r.ended_at, r.latency_ms, r.ttft_ms, r.trace_id, r.span_id, r.route, r.budgets or None, r.content
        )  # fmt: skip
    return (*_stage_values(cores, extras, len(records), _COLUMN_VALUES), dims, tag_dicts)


def _split_rows(rows: Sequence[tuple[Any, ...]]) -> _Split:
    """`_split` of rows (`costlens.usage.ROW_FIELDS`: a deferred call's record is made as one for
    this store): the same values, sliced out of each row in C instead of read field by field (a
    test checks both give the same for the same records)."""
    cores: list[object] = []
    extras: list[object] = []
    dims: dict[tuple[object, ...], int] = {}
    texts: dict[int, str] = {}
    by_items: dict[tuple[tuple[str, object], ...], str] = {}
    tag_dicts: dict[str, Mapping[str, str]] = {}
    for row in rows:
        tags = row[_ROW_TAGS]
        text = texts.get(id(tags))
        if text is None:
            try:  # (as in `_split`)
                text = by_items.get(items := tuple(tags.items()))
                if text is None:
                    text = by_items[items] = tags_text(tags)
            except TypeError:
                text = tags_text(tags)
            texts[id(tags)] = text
            tag_dicts.setdefault(text, tags)
        dim_key = (*row[:_ROW_TAGS], text)
        dim = dims.get(dim_key)
        if dim is None:
            dim = dims[dim_key] = len(dims)
        cores.append(dim)
        cores += row[_ROW_CORE:_ROW_EXTRA]
        extras += row[_ROW_EXTRA:]
    return (*_stage_values(cores, extras, len(rows), _ROW_COLUMN_VALUES), dims, tag_dicts)


def _stage_values(
    cores: list[object], extras: list[object], count: int, converters: Sequence[_Convert]
) -> tuple[str, list[object], int]:
    """The stage INSERT, its values and how many per record, from `count` records' core values and
    extras (`_CORE_WIDTH` and `_EXTRA_WIDTH` per record).

    The extras some call of the batch has (`list.count` runs in C) are bound, each converted column
    by column (one comprehension per column, not a function call per call)."""
    present: list[int] = []
    columns: list[list[object]] = []
    for i in range(_EXTRA_WIDTH):
        column = extras[i::_EXTRA_WIDTH]
        if column.count(None) != len(column):
            present.append(i)
            columns.append(converters[i](column))
    width = _CORE_WIDTH + len(columns)
    values: list[object] = cores
    if columns:  # core values and extras interleaved, record after record (slices copy in C)
        values = [None] * (count * width)  # (every slot is filled below)
        for i in range(_CORE_WIDTH):
            values[i::width] = cores[i::_CORE_WIDTH]
        for i, column in enumerate(columns, _CORE_WIDTH):
            values[i::width] = column
    return _stage_head(tuple(present)), values, width


def _micros_column(column: Sequence[datetime | None]) -> list[int | None]:
    return [
        None if when is None else (when - _EPOCH) // _MICRO if when.tzinfo else to_micros(when)
        for when in column
    ]


def _json_column(column: Sequence[object]) -> list[str | None]:
    return [None if value is None else dumps(value) for value in column]


def _budgets_column(column: Sequence[object]) -> list[str]:
    return [budgets_text(entries) for entries in column]


def _as_is(column: list[object]) -> list[object]:
    return column


_Convert = Callable[[list[Any]], list[Any]]
#: How each extra column (in `_EXTRA` order) is bound: end times as microseconds, the JSON parts as
#: text (`calls.budgets` is NOT NULL: '[]' when a call has none), the rest as they are.
_COLUMN_VALUES: tuple[_Convert, ...] = (
    _micros_column,
    _as_is,
    _as_is,
    _as_is,
    _as_is,
    _json_column,
    _budgets_column,
    _json_column,
)
#: The same for rows, whose end time is in microseconds already.
_ROW_COLUMN_VALUES = (_as_is, *_COLUMN_VALUES[1:])


@functools.cache
def _stage_head(extras: tuple[int, ...]) -> str:
    """The stage INSERT naming the core columns and the extras at these positions.

    An extra that no call of the batch has is left out (NULL by default) instead of bound as None:
    Python's `sqlite3` binds an int or a str directly, but looks an adapter up for None, which on
    CPython 3.11 fails with a formatted AttributeError: ~0.6 µs per None against ~0.1 µs per int,
    and most calls have five (no trace, span, route, content or time to first token)."""
    return f"INSERT INTO temp.{_STAGE} (dim, {', '.join([*_CORE, *(_EXTRA[i] for i in extras)])})"


def _tagset_id(
    conn: sqlite3.Connection, text: str, tags: Mapping[str, str], cache: TagsetCache, fresh: dict[str, int]
) -> int:
    """The id of a tag set, creating it (and its tagset_tags rows) inside the open transaction."""
    found = cache.get(text)
    if found is None:
        found = fresh.get(text)
    if found is not None:
        return found
    row = conn.execute("SELECT id FROM tagsets WHERE tags = ?", (text,)).fetchone()
    if row is not None:
        fresh[text] = row[0]
        return int(row[0])
    cursor = conn.execute("INSERT INTO tagsets (tags) VALUES (?)", (text,))
    new_id = cursor.lastrowid
    assert new_id is not None
    conn.executemany(
        "INSERT INTO tagset_tags (tagset_id, key, value) VALUES (?, ?, ?)",
        [(new_id, key, str(value)) for key, value in tags.items()],
    )
    fresh[text] = new_id
    return new_id


def write_batch(
    conn: sqlite3.Connection, records: Sequence[CallRecord], cache: TagsetCache, fresh: dict[str, int]
) -> int:
    """Insert the records whose id is new, fold them into the rollup; returns how many were new.

    Runs inside the caller's open transaction; tag sets created here go to `fresh` (commit them to
    the cache only after the transaction commits).
    """
    return _write_split(conn, _split(records), len(records), cache, fresh) if records else 0


def write_rows(
    conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], cache: TagsetCache, fresh: dict[str, int]
) -> int:
    """`write_batch` of rows (`costlens.usage.ROW_FIELDS`)."""
    return _write_split(conn, _split_rows(rows), len(rows), cache, fresh) if rows else 0


def _write_split(
    conn: sqlite3.Connection, split: _Split, count: int, cache: TagsetCache, fresh: dict[str, int]
) -> int:
    head, stage, width, dims, tag_dicts = split
    dim_rows = []
    for key, dim in dims.items():
        text = str(key[_TAGS_AT])
        row = list(key)
        row[_PRICE_KNOWN_AT], row[_STREAM_AT] = int(bool(row[_PRICE_KNOWN_AT])), int(bool(row[_STREAM_AT]))
        dim_rows.append((dim, *row, _tagset_id(conn, text, tag_dicts[text], cache, fresh)))
    insert_rows(conn, _INSERT_DIMS, dim_rows)
    insert_flat(conn, head, stage, width)
    watermark = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM calls").fetchone()[0]
    inserted = conn.execute(_MOVE).rowcount
    if inserted == count:
        conn.execute(_FOLD_STAGE)
    elif inserted:
        conn.execute(_FOLD, (watermark,))
    conn.execute(f"DELETE FROM temp.{_STAGE}")
    conn.execute(f"DELETE FROM temp.{_DIMS}")
    return int(inserted)
