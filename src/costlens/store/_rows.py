"""Stored call columns back into the `CallRecord` that was written, shared by the SQL stores.

Every backend stores the same columns under the same names (times as microseconds, flags as
integers, JSON text for route/budgets/content); only tags differ (JSON text in SQLite and
PostgreSQL, two parallel arrays in ClickHouse), so the backend decodes those and passes the dict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from costlens.store._base import from_micros
from costlens.usage import USAGE_PARTS, CallRecord, Status

__all__ = ["loads_or_none", "record_from_columns"]


def loads_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def record_from_columns(v: Mapping[str, Any], tags: dict[str, str]) -> CallRecord:
    """The record whose stored columns (by name) are `v`, with its tags already decoded."""
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
        tags=tags,
        route=loads_or_none(v["route"]),
        budgets=json.loads(v["budgets"]),
        trace_id=v["trace_id"],
        span_id=v["span_id"],
        content=loads_or_none(v["content"]),
        **{name: v[name] for name in USAGE_PARTS},
    )
