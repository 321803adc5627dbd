"""Anthropic SDK specifics: `Anthropic` and `AsyncAnthropic` messages, plain, streaming and `.stream()`.

Anthropic reports `input_tokens` *excluding* cache reads and writes; costlens' `Usage.input_tokens`
includes them, so the adapter adds them back. `cache_creation.ephemeral_1h_input_tokens` is the
part of the writes made with a 1-hour lifetime (billed 2x input, 5-minute writes 1.25x),
`server_tool_use.web_search_requests` the searches billed per request and
`output_tokens_details.thinking_tokens` the part of the output spent thinking (the record's
reasoning tokens, billed as output). Streams carry usage in `message_start` (input side) and
`message_delta` (cumulative output), so nothing needs to be injected.
"""

from __future__ import annotations

import sys
from typing import Any

from costlens.instrument._sdk import get as _get
from costlens.instrument._sdk import sent_as_built, sent_body, unwrap, write_back
from costlens.instrument._sdk import to_int as _int
from costlens.pipeline import Call, OutputMissing, Request
from costlens.usage import Usage, with_inference_geo

__all__ = ["AnthropicAdapter", "messages_usage"]

_OPERATIONS = {"/v1/messages": "chat", "/v1/complete": "text_completion"}


def _cache_writes(usage: Any, default_total: int, default_1h: int) -> tuple[int, int]:
    """(all cache writes, 1-hour writes). `cache_creation` splits the writes by lifetime
    (`ephemeral_5m_input_tokens`, `ephemeral_1h_input_tokens`); a body with the split but without
    `cache_creation_input_tokens` has the sum of the two as its writes."""
    total = _get(usage, "cache_creation_input_tokens")
    split = _get(usage, "cache_creation")
    one_hour = default_1h if split is None else _int(_get(split, "ephemeral_1h_input_tokens"))
    if total is not None:
        return _int(total), one_hour
    if split is not None:
        return _int(_get(split, "ephemeral_5m_input_tokens")) + one_hour, one_hour
    return default_total, one_hour


def _tier(usage: Any) -> Any:
    """The price tier a message was billed at: `fast` when it ran in fast mode (`usage.speed`, priced
    by the model's `speed: fast` prices), else `usage.service_tier` (`standard`, `priority`, `batch`);
    with `+us` when it ran on US-only inference (`usage.inference_geo`, 1.1x every token price).
    Read from the response, not the request: a fast-mode request that ran at standard speed is
    billed at standard prices."""
    tier = "fast" if _get(usage, "speed") == "fast" else _get(usage, "service_tier")
    geo = _get(usage, "inference_geo")
    return tier if geo is None else with_inference_geo(tier if isinstance(tier, str) else None, geo)


def _web_searches(usage: Any, default: int = 0) -> int:
    """`server_tool_use.web_search_requests`: searches billed per request ($10 per 1,000)."""
    tools = _get(usage, "server_tool_use")
    found = _get(tools, "web_search_requests")
    return default if found is None else _int(found)


def _thinking(usage: Any, output: int, default: int = 0) -> int:
    """`output_tokens_details.thinking_tokens`: the part of the output the model spent thinking
    (billed as output; at most the output, which a count that drifts past it is held to)."""
    found = _get(_get(usage, "output_tokens_details"), "thinking_tokens")
    return default if found is None else min(_int(found), output)


def messages_usage(usage: Any, *, output_tokens: int | None = None) -> Usage:
    cache_read = _int(_get(usage, "cache_read_input_tokens"))
    cache_write, cache_1h = _cache_writes(usage, 0, 0)
    uncached = _int(_get(usage, "input_tokens"))
    if uncached < 0 or cache_read < 0 or cache_write < 0:
        raise ValueError(f"negative token count in {usage!r}")
    output = _get(usage, "output_tokens") if output_tokens is None else output_tokens
    counted = Usage(
        input_tokens=uncached + cache_read + cache_write,
        output_tokens=_int(output),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=cache_1h,
        reasoning_tokens=_thinking(usage, _int(output)),
        web_search_requests=_web_searches(usage),
    )
    if output is None:
        raise OutputMissing(counted)  # no output count is not 0 output tokens: count it instead
    return counted


class AnthropicAdapter:
    name = "anthropic"

    def matches(self, client: object) -> bool:
        anthropic = sys.modules.get("anthropic")
        if anthropic is None:
            return False
        return isinstance(client, anthropic.Anthropic | anthropic.AsyncAnthropic)

    def provider_for(self, client: object) -> str:
        return "anthropic"

    def parse_request(
        self, options: Any, *, stream: bool, provider: str, tags: dict[str, str]
    ) -> Request | None:
        if str(getattr(options, "method", "")).lower() != "post":
            return None
        operation = _OPERATIONS.get(str(options.url).split("?", 1)[0])
        body = sent_body(options) if operation is not None else None
        if body is None or operation is None:
            return None
        return Request(provider, operation, str(body.get("model") or ""), body, stream, tags)

    def write_back(self, request: Request, options: Any) -> None:
        write_back(request, options)

    def lean_request(self, options: Any) -> tuple[str, str, dict[str, Any]] | None:
        """(operation, model, body) of a message sent as the caller built it (no `extra_body`), for
        a `lean` pipeline (see `costlens.instrument._lean`); None: take the full path. The body is
        the SDK's own `json_data`, read for its model and requested tier only."""
        known = sent_as_built(options, "/v1/messages")
        return None if known is None else ("chat", *known)

    def lean_response(self, result: Any, provider: str) -> tuple[str | None, str | None, Usage] | None:
        """(response model, tier, usage) of the SDK's message with valid usage, as `facts_of` and
        `usage_of` read them; None for anything else (no usage, no output count, malformed counts,
        another response type): the full path then reads it, and says what is wrong."""
        if getattr(result, "type", None) != "message":  # (the SDK's `Message`; a raw response has none)
            return None
        raw = getattr(result, "usage", None)
        if raw is None:
            return None
        try:
            usage = messages_usage(raw)
        except (OutputMissing, ValueError, TypeError, AttributeError):
            return None
        model, tier = getattr(result, "model", None), _tier(raw)
        return (
            (model if type(model) is str else str(model)) if model else None,
            (tier if type(tier) is str else str(tier)) if tier else None,
            usage,
        )

    def facts_of(self, result: Any) -> dict[str, Any]:
        result = unwrap(result)
        return {"response_model": _get(result, "model"), "service_tier": _tier(_get(result, "usage"))}

    def usage_of(self, result: Any, provider: str) -> Usage | None:
        raw = _get(unwrap(result), "usage")
        return None if raw is None else messages_usage(raw)

    def output_text(self, result: Any) -> list[str]:
        blocks = _get(unwrap(result), "content") or ()
        return [t for b in blocks if isinstance(t := _get(b, "text") or _get(b, "thinking"), str)]

    def observe(self, call: Call, event: Any) -> bool:
        # Runs for every event of a stream: the SDK's event models are read with `getattr` here, not
        # through `_get` (a call per field: 1,141 of the 4,416 bytecodes tracking added to a 21-event
        # stream; 4,161 added now). The delta is read only for a delta event: a model without the
        # field answers through pydantic's `__getattr__`, which raises (and then is caught) each time
        as_dict = isinstance(event, dict)
        kind = event.get("type") if as_dict else getattr(event, "type", None)
        if kind == "content_block_delta":
            delta = event.get("delta") if as_dict else getattr(event, "delta", None)
            if isinstance(delta, dict):
                text = delta.get("text") or delta.get("thinking")
            else:
                text = getattr(delta, "text", None) or getattr(delta, "thinking", None)
            if isinstance(text, str):
                call.text.append(text)
        elif kind == "message_start":
            message = _get(event, "message")
            usage = _get(message, "usage")
            call.apply_facts({"response_model": _get(message, "model"), "service_tier": _tier(usage)})
            if usage is not None:
                call.set_usage(messages_usage, usage)
        elif kind == "message_delta":
            self._observe_delta(call, _get(event, "usage"))
        return False

    @staticmethod
    def _observe_delta(call: Call, usage: Any) -> None:
        """`message_delta` has the final cumulative output count; input counts there are optional."""
        if usage is None:
            return
        start = call.usage or Usage()

        def merged() -> Usage:
            cache_read = _get(usage, "cache_read_input_tokens")
            uncached = _get(usage, "input_tokens")
            cache_read = start.cache_read_tokens if cache_read is None else _int(cache_read)
            cache_write, cache_1h = _cache_writes(
                usage, start.cache_write_tokens, start.cache_write_1h_tokens
            )
            uncached = start.uncached_input_tokens if uncached is None else _int(uncached)
            if min(cache_read, cache_write, uncached) < 0:
                raise ValueError(f"negative token count in {usage!r}")
            output = _get(usage, "output_tokens")
            merged_usage = Usage(
                input_tokens=uncached + cache_read + cache_write,
                output_tokens=_int(output),
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
                cache_write_1h_tokens=cache_1h,
                reasoning_tokens=_thinking(usage, _int(output), min(start.reasoning_tokens, _int(output))),
                web_search_requests=_web_searches(usage, start.web_search_requests),
            )
            if output is None:
                raise OutputMissing(merged_usage)
            return merged_usage

        call.set_usage(merged)
