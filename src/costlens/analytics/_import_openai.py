"""OpenAI organization usage and costs exports (the Admin API's `/v1/organization/usage/...` and
`/v1/organization/costs` pages, saved as JSON: one page, a list of pages, one page per line, or the
list of buckets the OpenAI cookbook's `get_data` helper collects from every page).

Usage results are aggregates (`num_model_requests` calls in a time bucket). Each becomes that many
records, so call counts and per-call measures stay right: the tokens are split as evenly as integers
allow (the sums are exact; each record is marked `estimated`), and the calls are spread evenly over
the bucket. A result needs a model (export with `group_by=model`). `batch: true` is the batch tier.
Costs results carry only money: each line item becomes one record with no tokens, operation `cost`,
the cost exact from the JSON number. Import usage or costs for a period, not both: both count the
same spend.
Record ids derive from the bucket and every grouping field a result carries (`project_id`,
`line_item`, `api_key_id`, `user_id`, `model`, `batch`, `service_tier`, `organization_id`, ...), so
results that differ in any of them stay separate records. A file whose last page says `has_more`
is incomplete: it is imported with a warning naming the cursor of the missing pages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from costlens.analytics._import import (
    BadRow,
    Counted,
    ImportNote,
    ImportOptions,
    Parsed,
    derive_id,
    parse_money,
)
from costlens.usage import CallRecord

__all__ = ["load_pages", "openai_costs_parser", "openai_usage_parser"]

Parser = Callable[[Counted], Iterator[Parsed]]
_OPERATIONS = {"completions": "chat", "embeddings": "embeddings"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def load_pages(text: str) -> list[Any]:
    """Every page of a JSON document (a page or a list of pages) or of a JSON-lines file."""
    try:
        doc = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError:
        return [json.loads(line, parse_float=Decimal) for line in text.splitlines() if line.strip()]
    return doc if isinstance(doc, list) else [doc]


def _is_bucket(item: Any) -> bool:
    return isinstance(item, dict) and (item.get("object") == "bucket" or "results" in item)


def _buckets(counted: Counted) -> Iterator[tuple[str, Mapping[str, Any]] | BadRow | ImportNote]:
    data = counted.raw.read()
    counted.done = len(data)
    try:
        pages = load_pages(data.decode("utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        yield BadRow("file", f"not JSON: {exc}")
        return
    if pages and all(_is_bucket(item) for item in pages):  # the cookbook's list of buckets
        pages = [{"object": "page", "data": pages}]
    for p, page in enumerate(pages):
        buckets = page.get("data") if isinstance(page, dict) else None
        if not isinstance(buckets, list):
            yield BadRow(f"page {p}", "not a usage or costs page: no data list")
            continue
        for b, bucket in enumerate(buckets):
            where = f"page {p} data[{b}]"
            if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
                yield BadRow(where, "not a bucket: no results list")
                continue
            yield where, bucket
    last = pages[-1] if pages else None
    if isinstance(last, dict) and last.get("has_more") is True:
        cursor = last.get("next_page")
        yield ImportNote(
            f"the export is incomplete: its last page says has_more (next_page {cursor!r}); fetch the "
            "remaining pages (pass page=<next_page> to the API) and import them too"
        )


#: Result fields that are measures or the result's type, not groups.
_NOT_GROUPS = frozenset({"object", "amount", "quantity"})


def _groups(result: Mapping[str, Any], named: tuple[str, ...]) -> list[str]:
    """Grouping fields beyond `named` that the result carries (text or flags, not null), as key=value,
    so results that differ only in them get different ids; empty for results of the older shape."""
    extra = (
        (key, value)
        for key, value in result.items()
        if key not in named and key not in _NOT_GROUPS and isinstance(value, str | bool)
    )
    return [f"{key}={value}" for key, value in sorted(extra)]


def _bucket_times(bucket: Mapping[str, Any]) -> tuple[datetime, datetime]:
    try:
        start = _EPOCH + timedelta(seconds=int(bucket["start_time"]))
        end = _EPOCH + timedelta(seconds=int(bucket["end_time"]))
    except (KeyError, TypeError, ValueError):
        raise ValueError("the bucket has no valid start_time/end_time") from None
    if end <= start:
        raise ValueError("the bucket ends before it starts")
    return start, end


def _count(result: Mapping[str, Any], name: str) -> int:
    value = result.get(name) or 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} is not a non-negative whole number: {value!r}")
    return value


def _split(total: int, n: int, i: int) -> int:
    """The i-th of n integer parts of `total`, as equal as possible (the parts add up to total)."""
    return total // n + (1 if i < total % n else 0)


def _tags(result: Mapping[str, Any], options: ImportOptions) -> dict[str, str]:
    tags = dict(options.tags)
    for field, tag in (("project_id", "project"), ("user_id", "user"), ("api_key_id", "api_key_id")):
        if result.get(field):
            tags[tag] = str(result[field])
    return tags


def _usage_records(
    result: Mapping[str, Any], start: datetime, end: datetime, options: ImportOptions
) -> Iterator[CallRecord]:
    kind = str(result.get("object", "")).removeprefix("organization.usage.").removesuffix(".result")
    if kind not in _OPERATIONS:
        raise ValueError(f"unsupported usage type {result.get('object')!r}: completions or embeddings")
    model = result.get("model") or options.model
    if not model:
        raise ValueError(
            "the result names no model: export usage grouped by model (group_by=model), or give the "
            "model (--model)"
        )
    n = _count(result, "num_model_requests")
    inp, out = _count(result, "input_tokens"), _count(result, "output_tokens")
    cached = _count(result, "input_cached_tokens")
    if cached > inp:
        raise ValueError(f"input_cached_tokens ({cached}) exceed input_tokens ({inp})")
    # OpenAI counts audio apart from `input_tokens`/`output_tokens` (those are text): added to the
    # totals and kept as their parts, so audio is priced at the audio rates, never dropped
    audio_in, audio_out = _count(result, "input_audio_tokens"), _count(result, "output_audio_tokens")
    inp, out = inp + audio_in, out + audio_out
    tier = "batch" if result.get("batch") else result.get("service_tier") or None
    tags = _tags(result, options)
    groups = ("project_id", "user_id", "api_key_id", "batch", "service_tier")
    identity = [start.isoformat(), end.isoformat(), kind, model, *(result.get(k) for k in groups)]
    identity += _groups(result, (*groups, "model"))
    for i in range(n):
        yield CallRecord(
            provider=options.provider or "openai",
            operation=_OPERATIONS[kind],
            request_model=str(model),
            started_at=start + (end - start) * i / n,
            # the totals are sums of split parts, so every record's parts fit inside its totals
            input_tokens=_split(cached, n, i)
            + _split(audio_in, n, i)
            + _split(inp - cached - audio_in, n, i),
            output_tokens=_split(audio_out, n, i) + _split(out - audio_out, n, i),
            cache_read_tokens=_split(cached, n, i),
            input_audio_tokens=_split(audio_in, n, i),
            output_audio_tokens=_split(audio_out, n, i),
            estimated=True,
            service_tier=tier,
            tags=tags,
            id=derive_id("openai-usage", *identity, i),
        )


def openai_usage_parser(options: ImportOptions) -> Parser:
    def parse(counted: Counted) -> Iterator[Parsed]:
        for item in _buckets(counted):
            if isinstance(item, BadRow | ImportNote):
                yield item
                continue
            where, bucket = item
            for r, result in enumerate(bucket["results"]):
                try:
                    start, end = _bucket_times(bucket)
                    records = list(_usage_records(result, start, end, options))
                except (ValueError, TypeError, AttributeError) as exc:
                    yield BadRow(f"{where}.results[{r}]", str(exc))
                    continue
                yield from records

    return parse


def _cost_record(result: Mapping[str, Any], start: datetime, options: ImportOptions) -> CallRecord:
    if result.get("object") != "organization.costs.result":
        raise ValueError(f"not a costs result: object is {result.get('object')!r}")
    amount = result.get("amount") or {}
    currency = str(amount.get("currency", "usd")).lower()
    if currency != "usd":
        raise ValueError(f"the cost is in {currency!r}: costlens keeps US dollars only")
    nano = parse_money(amount.get("value"))
    item = result.get("line_item") or "(all line items)"
    return CallRecord(
        provider=options.provider or "openai",
        operation="cost",
        request_model=str(item),
        started_at=start,
        cost_nanousd=nano,
        price_known=True,
        price_version="openai-costs-api",
        tags=_tags(result, options),
        id=derive_id(
            "openai-costs",
            start.isoformat(),
            item,
            result.get("project_id"),
            *_groups(result, ("line_item", "project_id")),
        ),
    )


def openai_costs_parser(options: ImportOptions) -> Parser:
    def parse(counted: Counted) -> Iterator[Parsed]:
        for item in _buckets(counted):
            if isinstance(item, BadRow | ImportNote):
                yield item
                continue
            where, bucket = item
            for r, result in enumerate(bucket["results"]):
                try:
                    start, _ = _bucket_times(bucket)
                    yield _cost_record(result, start, options)
                except (ValueError, TypeError, AttributeError) as exc:
                    yield BadRow(f"{where}.results[{r}]", str(exc))

    return parse
