"""LiteLLM spend logs: an export of the proxy's `LiteLLM_SpendLogs` table as CSV, a JSON list
(or `{"data": [...]}`), or JSON lines.

Per row: `request_id` (the record id is derived from it, so re-imports and overlapping exports add
nothing), `startTime`/`endTime`/`completionStartTime` (latency and time to first token; naive times
are in the import's time zone, UTC by default), `model` (a `provider/` prefix is the provider when
`custom_llm_provider` is empty; without either the provider is inferred from the model name: its
prefix, then costlens's price catalogue), `prompt_tokens`, `completion_tokens`, cache (and
reasoning) tokens from `metadata.usage_object` or, in rows without one, from
`metadata.additional_usage_values`, `spend` (kept as the recorded cost unless asked to re-price),
`status`, `call_type` (the async `a` prefix is dropped only from LiteLLM's async call types:
`acompletion` is `completion`, `anthropic_messages` stays), and tags from `user`, `team_id`,
`end_user`, `model_group`, `request_tags` (`key:value` tags become tags; bare ones are joined into
`litellm_tags`), `metadata.user_api_key_alias` (`api_key_alias`), `metadata.user_api_key_team_alias`
(`team_alias`) and every key of `metadata.spend_logs_metadata`. The `api_key` hash, `messages`,
`response` and request bodies are never read.

The daily aggregate tables (`LiteLLM_DailyUserSpend`, `LiteLLM_DailyTeamSpend`,
`LiteLLM_DailyTagSpend`, `LiteLLM_DailyEndUserSpend`, `LiteLLM_DailyOrganizationSpend`), which are
what remains when per-request logs are off, are the `litellm-daily` format: one record per row, at
the day's start, operation `aggregate`, with the row's exact tokens and spend and tags saying what it
is (`aggregate=litellm-daily`, `litellm_table`, `requests`, `successful_requests`,
`failed_requests`, and `user` / `team` / `litellm_tag` / `end_user` / `organization`). Reports count
such a record as one call; its tokens and spend are exact. Import one table for a period (they
count the same spend), and a day once it is over (LiteLLM updates today's rows in place; a row
already imported is not imported again).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
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
from costlens.store._time import get_zone
from costlens.usage import CallRecord, Usage

__all__ = ["DAILY_ENTITIES", "infer_provider", "litellm_daily_parser", "litellm_parser"]

Parser = Callable[[Counted], Iterator[Parsed]]
_OPERATIONS = {
    "completion": "chat",
    "embedding": "embeddings",
    "text_completion": "text_completion",
    "anthropic_messages": "chat",
    "responses": "responses",
}
# LiteLLM call types whose async twin is the same name with an `a` prefix (litellm.types.utils.CallTypes).
_ASYNC_TWINS = frozenset({
    "completion", "embedding", "text_completion", "image_generation", "moderation", "transcription",
    "speech", "rerank", "responses", "image_edit", "create_batch", "retrieve_batch", "create_file",
    "file_content", "create_fine_tuning_job", "realtime", "search", "ocr", "video_generation",
    "get_assistants", "create_assistants", "delete_assistant", "create_thread", "get_thread",
    "add_message", "get_messages", "run_thread", "run_thread_stream",
    "generate_content", "generate_content_stream",
})  # fmt: skip
# Model-name prefixes that say the provider (checked before the price catalogue).
_PREFIXES = (
    (("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "davinci", "babbage", "dall-e", "whisper",
      "tts-", "omni-moderation", "text-moderation", "computer-use-", "codex-"), "openai"),
    (("claude",), "anthropic"),
    (("gemini", "gemma", "text-bison", "chat-bison"), "google"),
    (("mistral", "mixtral", "codestral", "pixtral", "ministral", "magistral", "devstral"), "mistral"),
    (("command", "embed-english", "embed-multilingual"), "cohere"),
    (("grok",), "x-ai"),
    (("deepseek",), "deepseek"),
)  # fmt: skip
#: Entity column of each daily table -> (tag, table name).
DAILY_ENTITIES = {
    "user_id": ("user", "LiteLLM_DailyUserSpend"),
    "team_id": ("team", "LiteLLM_DailyTeamSpend"),
    "tag": ("litellm_tag", "LiteLLM_DailyTagSpend"),
    "end_user_id": ("end_user", "LiteLLM_DailyEndUserSpend"),
    "organization_id": ("organization", "LiteLLM_DailyOrganizationSpend"),
}
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


def _usage_parts(metadata: Any) -> tuple[int, int, int]:
    """(cache read, cache write, reasoning) tokens from `metadata.usage_object`, or else from
    `metadata.additional_usage_values` (the usage minus its three totals, as older LiteLLM keeps it)."""
    if not isinstance(metadata, dict):
        return 0, 0, 0
    usage = metadata.get("usage_object")
    if not isinstance(usage, dict):
        usage = metadata.get("additional_usage_values")
    if not isinstance(usage, dict):
        return 0, 0, 0
    details = usage.get("prompt_tokens_details") or {}
    out_details = usage.get("completion_tokens_details") or {}
    read = usage.get("cache_read_input_tokens") or details.get("cached_tokens") or 0
    write = usage.get("cache_creation_input_tokens") or details.get("cache_creation_tokens") or 0
    reasoning = out_details.get("reasoning_tokens") or 0 if isinstance(out_details, dict) else 0
    return int(read), int(write), int(reasoning)


def infer_provider(model: str) -> str | None:
    """The provider of a bare model name: a known prefix, else the price catalogue's match, else None."""
    name = model.strip().lower()
    for prefixes, provider in _PREFIXES:
        if name.startswith(prefixes):
            return provider
    from costlens.pricing import get_catalogue

    try:
        price = get_catalogue().resolve(None, model)
    except Exception:  # a lookup failure only means "unknown"
        return None
    return None if price is None else price.provider or None


def _call_type(value: Any) -> str:
    name = str(value or "completion")
    return name[1:] if name.startswith("a") and name[1:] in _ASYNC_TWINS else name


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _tags(row: Mapping[str, Any], options: ImportOptions, metadata: Any = None) -> dict[str, str]:
    tags = dict(options.tags)
    if isinstance(metadata, dict):
        extra = metadata.get("spend_logs_metadata")
        if isinstance(extra, dict):
            tags.update({str(k): _text(v) for k, v in extra.items() if v is not None and str(k)})
        for key, tag in (("user_api_key_alias", "api_key_alias"), ("user_api_key_team_alias", "team_alias")):
            if metadata.get(key):
                tags[tag] = str(metadata[key])
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
    provider = str(
        row.get("custom_llm_provider")
        or (prefix if sep else "")
        or options.provider
        or infer_provider(model)
        or "unknown"
    )
    metadata = _json_field(row.get("metadata"))
    read, write, reasoning = _usage_parts(metadata)
    output = _int(row, "completion_tokens")
    usage = Usage(_int(row, "prompt_tokens"), output, read, write, min(reasoning, output))
    spend = row.get("spend")
    call_type = _call_type(row.get("call_type"))
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
        reasoning_tokens=usage.reasoning_tokens,
        cost_nanousd=None if spend in (None, "") else parse_money(spend),
        price_known=spend not in (None, ""),
        price_version="" if spend in (None, "") else "litellm",
        status="ok" if status == "success" else "error",
        tags=_tags(row, options, metadata),
        id=derive_id("litellm", request_id),
    )


def litellm_daily_parser(options: ImportOptions, *, as_csv: bool) -> Parser:
    """A parser of an export of one of LiteLLM's daily aggregate tables (CSV, JSON or JSON lines)."""

    def parse(counted: Counted) -> Iterator[Parsed]:
        rows = _csv_rows(counted) if as_csv else _json_rows(counted)
        for where, line, row in rows:
            if isinstance(row, BadRow):
                yield row
                continue
            try:
                yield _daily_record(row, options)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                yield BadRow(where, str(exc), line)

    return parse


def _daily_record(row: Mapping[str, Any], options: ImportOptions) -> CallRecord:
    entity = next((column for column in DAILY_ENTITIES if column in row), None)
    if entity is None:
        raise ValueError(f"no entity column: a daily table has one of {', '.join(DAILY_ENTITIES)}")
    tag, table = DAILY_ENTITIES[entity]
    day = str(row.get("date") or "").strip()
    if not day:
        raise ValueError("no date")
    started = datetime.fromisoformat(day[:10]).replace(tzinfo=get_zone(options.timezone)).astimezone(UTC)
    model = str(row.get("model") or options.model or "")
    if not model:
        raise ValueError("no model")
    prefix, sep, bare = model.partition("/")
    provider = str(
        row.get("custom_llm_provider")
        or (prefix if sep else "")
        or options.provider
        or infer_provider(model)
        or "unknown"
    )
    usage = Usage(
        _int(row, "prompt_tokens"),
        _int(row, "completion_tokens"),
        _int(row, "cache_read_input_tokens"),
        _int(row, "cache_creation_input_tokens"),
    )
    spend = row.get("spend")
    counts = {name: _int(row, name) for name in ("api_requests", "successful_requests", "failed_requests")}
    tags = dict(options.tags)
    tags.update(aggregate="litellm-daily", litellm_table=table, requests=str(counts["api_requests"]))
    tags.update({name: str(value) for name, value in counts.items() if name != "api_requests"})
    if row.get(entity):
        tags[tag] = str(row[entity])
    for column, name in (("model_group", "model_group"), ("mcp_namespaced_tool_name", "mcp_tool")):
        if row.get(column):
            tags[name] = str(row[column])
    natural = str(row.get("id") or "").strip()
    identity = (
        [natural]
        if natural
        else [day, row.get(entity), row.get("api_key"), model, row.get("custom_llm_provider"),
              row.get("mcp_namespaced_tool_name")]
    )  # fmt: skip
    return CallRecord(
        provider=provider,
        operation=options.operation or "aggregate",
        request_model=bare if sep and provider == prefix else model,
        started_at=started,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cost_nanousd=None if spend in (None, "") else parse_money(spend),
        price_known=spend not in (None, ""),
        price_version="" if spend in (None, "") else "litellm",
        status="error" if 0 < counts["api_requests"] == counts["failed_requests"] else "ok",
        tags=tags,
        id=derive_id("litellm-daily", table, *identity),
    )
