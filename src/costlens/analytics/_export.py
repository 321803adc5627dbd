"""Export of call records: CSV (spreadsheets), JSON lines (lossless, re-importable) and Parquet.

Records stream from the store oldest first, so exports of any size run in constant memory. Money
is exact everywhere: `cost_nanousd` is an integer, `cost_usd` a decimal string in CSV and a
`decimal128(38, 9)` in Parquet. Prompt and response content is left out unless asked for.
pyarrow (the `export` extra) is imported only for Parquet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from costlens.store import SpendQuery, Store, nanousd_to_usd
from costlens.store._codec import dumps, record_to_dict
from costlens.usage import USAGE_PARTS, CallRecord

__all__ = ["CSV_COLUMNS", "EXPORT_FORMATS", "export_records", "iter_export"]

EXPORT_FORMATS = ("csv", "jsonl", "parquet")
CSV_COLUMNS = (
    "id", "started_at", "ended_at", "latency_ms", "ttft_ms", "provider", "operation", "request_model",
    "response_model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_usd", "cost_nanousd", "price_known", "price_version", "estimated", "status",
    "error_type", "http_status", "stream", "service_tier", "tags", "trace_id", "span_id", *USAGE_PARTS,
)  # fmt: skip
_BATCH = 50_000
Progress = Callable[[int, int], None]


def iter_export(
    store: Store,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, str] | None = None,
    *,
    include_content: bool = False,
) -> Iterator[CallRecord]:
    """The records an export writes, oldest first (content dropped unless `include_content`)."""
    for record in store.iter_records(since=since, until=until, where=where):
        if not include_content:
            record.content = None
        yield record


def _csv_row(record: CallRecord) -> list[object]:
    cost = record.cost_nanousd
    values: dict[str, object] = {
        "started_at": record.started_at.isoformat(),
        "ended_at": None if record.ended_at is None else record.ended_at.isoformat(),
        "cost_usd": None if cost is None else format(nanousd_to_usd(cost), "f"),
        "tags": dumps(record.tags),
    }
    row = []
    for name in CSV_COLUMNS:
        value = values[name] if name in values else getattr(record, name)
        row.append("" if value is None else int(value) if isinstance(value, bool) else value)
    return row


def _write_csv(records: Iterable[CallRecord], out: IO[str], tick: Callable[[], None]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    n = 0
    for record in records:
        writer.writerow(_csv_row(record))
        n += 1
        if n % _BATCH == 0:
            tick()
    return n


def _write_jsonl(records: Iterable[CallRecord], out: IO[str], tick: Callable[[], None]) -> int:
    n = 0
    for record in records:
        out.write(dumps(record_to_dict(record)) + "\n")
        n += 1
        if n % _BATCH == 0:
            tick()
    return n


def export_records(
    store: Store,
    out: str | Path | IO[Any],
    format: str = "jsonl",
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, str] | None = None,
    include_content: bool = False,
    progress: Progress | None = None,
) -> int:
    """Write the matching records to `out` (a path, or an open file: text for csv/jsonl, binary for
    parquet) in `format`; returns how many were written. `progress(done, total)` is called now
    and then."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {format!r}: use {', '.join(EXPORT_FORMATS)}")
    total = sum(row.calls for row in store.query(SpendQuery((), since, until, dict(where or {}))))
    records = iter_export(store, since, until, where, include_content=include_content)
    done = [0]

    def counted() -> Iterator[CallRecord]:
        for record in records:
            done[0] += 1
            yield record

    def tick() -> None:
        if progress is not None:
            progress(done[0], total)

    if format == "parquet":
        from costlens.analytics._parquet import write_parquet

        n = write_parquet(counted(), out, tick)
    elif isinstance(out, str | Path):
        with Path(out).open("w", encoding="utf-8", newline="") as f:
            n = (_write_csv if format == "csv" else _write_jsonl)(counted(), f, tick)
    else:
        text = out if isinstance(out, io.TextIOBase) or hasattr(out, "encoding") else io.TextIOWrapper(out)
        n = (_write_csv if format == "csv" else _write_jsonl)(counted(), text, tick)
        text.flush()
    tick()
    return n
