"""LiteLLM spend logs: an export of the proxy's `LiteLLM_SpendLogs` table as CSV, a JSON list
(or `{"data": [...]}`), or JSON lines.

Per row: `request_id` (the record id is derived from it, so re-imports and overlapping exports add
nothing), `startTime`/`endTime`/`completionStartTime` (latency and time to first token; naive times
are in the import's time zone, UTC by default), `model` (a `provider/` prefix is the provider when
`custom_llm_provider` is empty), `prompt_tokens`, `completion_tokens`, cache tokens from
`metadata.usage_object` when present, `spend` (kept as the recorded cost unless asked to re-price),
`status`, `call_type`, and tags from `user`, `team_id`, `end_user`, `model_group` and `request_tags`
(`key:value` tags become tags; bare ones are joined into `litellm_tags`). The `api_key` hash,
`messages`, `response` and request bodies are never read.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from costlens.analytics._import import (
    BadRow,
    Counted,
    ImportOptions,
    Parsed,
    derive_id,
    parse_money,
    parse_time,
)
from costlens.analytics._import_openai import load_pages
from costlens.usage import CallRecord, Usage

__all__ = ["litellm_parser"]

Parser = Callable[[Counted], Iterator[Parsed]]
_OPERATIONS = {"completion": "chat", "embedding": "embeddings", "text_completion": "text_completion"}
_TAG_COLUMNS = (
    ("user", "user"),
    ("team_id", "team"),
    ("end_user", "end_user"),
    ("model_group", "model_group"),
)


def litellm_parser(options: ImportOptions, *, as_csv: bool) -> Parser:
    """A parser of a CSV export (`as_csv`) or of a JSON / JSON-lines one."""

    def parse(counted: Counted) -> Iterator[Parsed]:
        rows = _csv_rows(counted) if as_csv else _json_rows(counted)
        for where, line, row in rows:
            if isinstance(row, BadRow):
                yield row
                continue
            try:
                yield _record(row, options)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                yield BadRow(where, str(exc), line)

    return parse


def _csv_rows(counted: Counted) -> Iterator[tuple[str, int | None, Mapping[str, Any] | BadRow]]:
    reader = csv.DictReader(counted.lines())
    start = 2
    for row in reader:
        if None in row or any(v is None for v in row.values()):
            yield (
                f"line {start}",
                start,
                BadRow(f"line {start}", "the row has a different number of fields", start),
            )
        else:
            yield f"line {start}", start, row
        start = reader.line_num + 1


def _json_rows(counted: Counted) -> Iterator[tuple[str, int | None, Mapping[str, Any] | BadRow]]:
    data = counted.raw.read()
    counted.done = len(data)
    try:
        pages = load_pages(data.decode("utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        yield "file", None, BadRow("file", f"not JSON: {exc}")
        return
    rows: list[Any] = []
    for page in pages:
        if isinstance(page, dict) and isinstance(page.get("data"), list):
            rows.extend(page["data"])
        else:
            rows.append(page)
    for i, row in enumerate(rows):
        where = f"row {i}"
        yield where, None, row if isinstance(row, dict) else BadRow(where, "not a spend log object")


def _json_field(value: Any) -> Any:
    """A JSON column: already decoded (JSON export) or text (CSV export); empty means none."""
    if isinstance(value, str):
        return json.loads(value, parse_float=Decimal) if value.strip() else None
    return value


def _int(row: Mapping[str, Any], name: str) -> int:
    value = row.get(name)
    if value in (None, ""):
        return 0
    number = int(str(value))
    if number < 0:
        raise ValueError(f"{name} is negative: {number}")
    return number


def _cache_tokens(metadata: Any) -> tuple[int, int]:
    """(cache read, cache write) tokens from `metadata.usage_object`, when LiteLLM recorded them."""
    usage = metadata.get("usage_object") if isinstance(metadata, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    details = usage.get("prompt_tokens_details") or {}
    read = usage.get("cache_read_input_tokens") or details.get("cached_tokens") or 0
    write = usage.get("cache_creation_input_tokens") or 0
    return int(read), int(write)


def _tags(row: Mapping[str, Any], options: ImportOptions) -> dict[str, str]:
    tags = dict(options.tags)
    for column, tag in _TAG_COLUMNS:
        if row.get(column):
            tags[tag] = str(row[column])
    bare = []
    for item in _json_field(row.get("request_tags")) or []:
        key, sep, value = str(item).partition(":") if ":" in str(item) else str(item).partition("=")
        if sep and key.strip():
            tags[key.strip()] = value.strip()
        else:
            bare.append(str(item))
    if bare:
        tags["litellm_tags"] = ",".join(sorted(bare))
    return tags


def _ms(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else (later - earlier).total_seconds() * 1000


def _record(row: Mapping[str, Any], options: ImportOptions) -> CallRecord:
    request_id = str(row.get("request_id") or "").strip()
    if not request_id:
        raise ValueError("no request_id")
    started = parse_time(str(row["startTime"]), options.timezone)
    ended = parse_time(str(row["endTime"]), options.timezone) if row.get("endTime") else None
    first = row.get("completionStartTime")
    first_token = parse_time(str(first), options.timezone) if first else None
    model = str(row.get("model") or options.model or "")
    if not model:
        raise ValueError("no model")
    prefix, sep, bare = model.partition("/")
    provider = str(row.get("custom_llm_provider") or (prefix if sep else "") or options.provider or "unknown")
    read, write = _cache_tokens(_json_field(row.get("metadata")))
    usage = Usage(_int(row, "prompt_tokens"), _int(row, "completion_tokens"), read, write)
    spend = row.get("spend")
    call_type = str(row.get("call_type") or "completion").removeprefix("a")
    status = str(row.get("status") or "success").lower()
    return CallRecord(
        provider=provider,
        operation=options.operation or _OPERATIONS.get(call_type, call_type),
        request_model=bare if sep and provider == prefix else model,
        started_at=started,
        ended_at=ended,
        latency_ms=_ms(ended, started),
        ttft_ms=_ms(first_token, started),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cost_nanousd=None if spend in (None, "") else parse_money(spend),
        price_known=spend not in (None, ""),
        price_version="" if spend in (None, "") else "litellm",
        status="ok" if status == "success" else "error",
        tags=_tags(row, options),
        id=derive_id("litellm", request_id),
    )
