"""`/api/calls`, `/api/routing/decisions`, `/api/prices/...`: recorded calls (`Store.iter_records`, as
`costlens calls tail`), the routing decisions kept on them, and prices (`describe_price`, as
`costlens prices show`; `Store.unpriced_models`, as `costlens prices missing`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from costlens.server._api_models import CallsPage, Message, PriceOut, UnpricedModelOut
from costlens.server._api_params import (
    bad,
    cursor_text,
    jsonable,
    parse_cursor,
    parse_range,
)
from costlens.server._context import ServerContext
from costlens.store import Store
from costlens.usage import CallRecord

__all__ = ["call_out", "page_of_calls", "router"]

_NAME = r"^[^\x00-\x1f\x7f]{1,200}$"
_STATUSES = "^(ok|error|blocked)$"


def _route(record: CallRecord) -> dict[str, Any] | None:
    route = record.route
    if not route:
        return None

    def text(*names: str) -> str | None:
        for name in names:
            value = route.get(name)
            if value:
                return str(value)
        return None

    return {
        "policy": text("policy"),
        "requested": text("from") or record.request_model,
        "chosen": text("to", "model", "chosen") or record.response_model or record.request_model,
        "reason": text("reason"),
        "raw": jsonable(dict(route)),
    }


def call_out(record: CallRecord) -> dict[str, Any]:
    """One call as the API returns it (money exact, null when unpriced; its routing decision)."""
    from costlens.store import nanousd_to_usd

    return {
        "id": record.id,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "provider": record.provider,
        "operation": record.operation,
        "model": record.response_model or record.request_model,
        "request_model": record.request_model,
        "response_model": record.response_model,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cache_read_tokens": record.cache_read_tokens,
        "cache_write_tokens": record.cache_write_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cost_usd": None if record.cost_nanousd is None else format(nanousd_to_usd(record.cost_nanousd), "f"),
        "price_known": record.price_known,
        "estimated": record.estimated,
        "status": record.status,
        "error_type": record.error_type,
        "http_status": record.http_status,
        "stream": record.stream,
        "service_tier": record.service_tier,
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "tags": dict(record.tags),
        "route": _route(record),
    }


def page_of_calls(
    store: Store,
    size: int,
    cursor: tuple[int, str] | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, str] | None = None,
    keep: Callable[[CallRecord], bool] | None = None,
) -> tuple[list[CallRecord], str | None]:
    """The `size` matching calls just older than `cursor`, newest first, ordered by (started_at, id)
    as the store orders them, and the cursor of the next page (None at the end). A thin layer over
    `Store.iter_records(newest_first=True)` (what `costlens calls tail` reads)."""
    from costlens.store._base import from_micros, to_micros

    end = until
    if cursor is not None:
        after = from_micros(cursor[0] + 1)
        end = after if end is None or after < end else end

    def older(record: CallRecord) -> bool:
        if cursor is None:
            return True
        at = to_micros(record.started_at)
        return at < cursor[0] or (at == cursor[0] and record.id < cursor[1])

    kept: list[CallRecord] = []
    for record in store.iter_records(since=since, until=end, where=dict(where or {}), newest_first=True):
        if older(record) and (keep is None or keep(record)):
            kept.append(record)
            if len(kept) > size:
                break
    shown = kept[:size]
    following = None
    if len(kept) > size and shown:
        last = shown[-1]
        following = cursor_text(to_micros(last.started_at), last.id)
    return shown, following


def router(ctx: ServerContext) -> Any:
    api = APIRouter()
    not_found: dict[int | str, dict[str, Any]] = {404: {"model": Message}}

    @api.get("/calls", response_model=CallsPage, tags=["calls"])
    def calls(
        limit: Annotated[int, Query(ge=1, le=500, description="Calls per page.")] = 50,
        cursor: Annotated[
            str | None, Query(max_length=230, description="The previous page's next_cursor.")
        ] = None,
        model: Annotated[str | None, Query(pattern=_NAME)] = None,
        provider: Annotated[str | None, Query(pattern=_NAME)] = None,
        status: Annotated[str | None, Query(pattern=_STATUSES)] = None,
        tag: Annotated[list[str], Query(description="key=value tag filters (repeat).")] = [],  # noqa: B006
        since: Annotated[str | None, Query(max_length=64)] = None,
        until: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Any:
        """Recorded calls, newest first, paged by cursor, each with its routing decision."""
        where = _tags(tag)
        where.update({k: v for k, v in (("model", model), ("provider", provider), ("status", status)) if v})
        start, end = parse_range(since, until)
        shown, following = page_of_calls(
            ctx.store, limit, parse_cursor(cursor), since=start, until=end, where=where
        )
        return {"calls": [call_out(r) for r in shown], "next_cursor": following}

    @api.get("/routing/decisions", response_model=CallsPage, tags=["routing"])
    def decisions(
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=230)] = None,
        policy: Annotated[str | None, Query(pattern=_NAME, description="Only this routing policy.")] = None,
        since: Annotated[str | None, Query(max_length=64)] = None,
        until: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Any:
        """Recent calls that were routed (a `route` on the record), newest first."""
        start, end = parse_range(since, until)

        def routed(record: CallRecord) -> bool:
            route = record.route
            return bool(route) and (policy is None or str((route or {}).get("policy")) == policy)

        shown, following = page_of_calls(
            ctx.store, limit, parse_cursor(cursor), since=start, until=end, keep=routed
        )
        return {"calls": [call_out(r) for r in shown], "next_cursor": following}

    @api.get("/prices/unpriced", response_model=list[UnpricedModelOut], tags=["prices"])
    def unpriced() -> Any:
        """Models seen in recorded calls that have no known price (`costlens prices missing`)."""
        return [
            {"provider": m.provider, "model": m.model, "calls": m.calls, "first_seen": m.first_seen,
             "last_seen": m.last_seen}
            for m in ctx.store.unpriced_models()
        ]  # fmt: skip

    @api.get("/prices/{model:path}", response_model=PriceOut, tags=["prices"], responses=not_found)
    def price(
        model: str,
        provider: Annotated[str | None, Query(pattern=_NAME)] = None,
        at: Annotated[str | None, Query(max_length=64, description="Price in force then (ISO).")] = None,
    ) -> Any:
        """One model's price: rates per 1M tokens, tiers, history (`costlens prices show`)."""
        from costlens.pricing import describe_price
        from costlens.server._api_params import parse_time

        if not model or len(model) > 200 or any(ord(c) < 32 for c in model):
            bad("model", "give a model name such as gpt-4o-mini", model, where="path")
        when = parse_time(at, "at")
        try:
            found = describe_price(model, provider=provider, at=when)
        except LookupError:
            found = None
        if not found or found.get("known") is False:
            hint = (found or {}).get("hint") or "add it to a prices overrides file"
            raise HTTPException(404, f"no price known for model {model!r}: {hint}")
        return jsonable(found)

    return api


def _tags(values: list[str]) -> dict[str, str]:
    """`name=value` tag filters (`tag:name=value` also reads), as store filter keys."""
    from costlens.store import parse_key

    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        name = key.strip().removeprefix("tag:")
        if not sep or not name:
            bad("tag", f"{item!r}: write name=value, e.g. tag=feature=search", item)
        try:
            parse_key(f"tag:{name}")
        except ValueError as exc:
            bad("tag", str(exc), item)
        out[f"tag:{name}"] = value
    return out
