"""Parquet export with pyarrow (the `export` extra): typed columns, exact decimal money, tags as a map."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from costlens.store._codec import dumps
from costlens.usage import USAGE_PARTS, CallRecord

__all__ = ["parquet_schema", "write_parquet"]

_ROWS_PER_GROUP = 50_000
_TOKENS = (
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    *USAGE_PARTS,
)  # fmt: skip


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError("Parquet export needs pyarrow: pip install 'llm-costlens[export]'") from None
    return pyarrow


def parquet_schema() -> Any:
    pa = _pyarrow()
    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("id", pa.string()),
            ("started_at", ts),
            ("ended_at", ts),
            ("latency_ms", pa.float64()),
            ("ttft_ms", pa.float64()),
            ("provider", pa.string()),
            ("operation", pa.string()),
            ("request_model", pa.string()),
            ("response_model", pa.string()),
            *((name, pa.int64()) for name in _TOKENS),
            ("cost_usd", pa.decimal128(38, 9)),
            ("cost_nanousd", pa.int64()),
            ("price_known", pa.bool_()),
            ("price_version", pa.string()),
            ("estimated", pa.bool_()),
            ("status", pa.string()),
            ("error_type", pa.string()),
            ("http_status", pa.int32()),
            ("stream", pa.bool_()),
            ("service_tier", pa.string()),
            ("tags", pa.map_(pa.string(), pa.string())),
            ("route", pa.string()),
            ("budgets", pa.string()),
            ("trace_id", pa.string()),
            ("span_id", pa.string()),
            ("content", pa.string()),
        ]
    )


def _columns(batch: list[CallRecord]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {}

    def put(name: str, values: list[Any]) -> None:
        cols[name] = values

    for name in ("id", "started_at", "ended_at", "latency_ms", "ttft_ms", "provider", "operation"):
        put(name, [getattr(r, name) for r in batch])
    for name in ("request_model", "response_model", *_TOKENS, "cost_nanousd", "price_known"):
        put(name, [getattr(r, name) for r in batch])
    put("cost_usd", [None if r.cost_nanousd is None else Decimal(r.cost_nanousd).scaleb(-9) for r in batch])
    for name in (
        "price_version",
        "estimated",
        "status",
        "error_type",
        "http_status",
        "stream",
        "service_tier",
    ):
        put(name, [getattr(r, name) for r in batch])
    put("tags", [list(r.tags.items()) for r in batch])
    put("route", [None if r.route is None else dumps(r.route) for r in batch])
    put("budgets", [dumps(r.budgets) for r in batch])
    for name in ("trace_id", "span_id"):
        put(name, [getattr(r, name) for r in batch])
    put("content", [None if r.content is None else dumps(r.content) for r in batch])
    return cols


def write_parquet(records: Iterable[CallRecord], out: str | Path | IO[Any], tick: Callable[[], None]) -> int:
    """Write records in row groups of 50,000; returns how many."""
    pa = _pyarrow()
    schema = parquet_schema()
    sink = str(out) if isinstance(out, str | Path) else out
    n = 0
    with pa.parquet.ParquetWriter(sink, schema) as writer:
        batch: list[CallRecord] = []
        for record in records:
            batch.append(record)
            if len(batch) >= _ROWS_PER_GROUP:
                writer.write_table(pa.Table.from_pydict(_columns(batch), schema=schema))
                n += len(batch)
                batch = []
                tick()
        if batch or n == 0:
            writer.write_table(pa.Table.from_pydict(_columns(batch), schema=schema))
            n += len(batch)
    return n
