"""Anthropic Messages API bodies and SSE events.

Anthropic's `input_tokens` EXCLUDES cache reads and writes, while costlens counts total input:
this module is where the fake converts.
"""

from __future__ import annotations

from typing import Any

from costlens.testing._config import Call
from costlens.testing._openai import SSE

__all__ = ["count_tokens", "error_body", "message", "message_stream"]

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(status: int, message: str | None = None, request_id: str | None = None) -> dict[str, Any]:
    """`{"type": "error", "error": {type, message}, "request_id"}`, the shape of every Anthropic error."""
    kind, default = _ERRORS.get(status, ("api_error" if status >= 500 else "invalid_request_error", ""))
    out: dict[str, Any] = {
        "type": "error",
        "error": {"type": kind, "message": message or default or f"HTTP {status}"},
    }
    if request_id:
        out["request_id"] = request_id
    return out


def _usage(call: Call, *, output_tokens: int) -> dict[str, Any]:
    t = call.tokens
    usage: dict[str, Any] = {
        "input_tokens": t.uncached_input,
        "cache_creation_input_tokens": t.cache_write,
        "cache_read_input_tokens": t.cached,
        "cache_creation": {
            "ephemeral_5m_input_tokens": t.cache_write - t.cache_write_1h,
            "ephemeral_1h_input_tokens": t.cache_write_1h,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
    speed = call.body.get("speed")
    if speed in ("standard", "fast"):  # the speed the request ran at (`speed: "fast"`: fast mode)
        usage["speed"] = speed
    geo = call.body.get("inference_geo")
    if isinstance(geo, str):  # where inference ran (`"us"`: US-only inference, billed 1.1x)
        usage["inference_geo"] = geo
    if t.reasoning:
        usage["output_tokens_details"] = {"thinking_tokens": t.reasoning}
    return usage


def _stop_reason(call: Call) -> str:
    return "max_tokens" if call.truncated else "end_turn"


def _message(
    call: Call, *, content: list[dict[str, Any]], stop: str | None, output_tokens: int
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "msg_01" + call.make_id("msg", 22),
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
    }
    usage = call.render_usage(_usage(call, output_tokens=output_tokens))
    if usage is not None:
        out["usage"] = usage
    return out


def message(call: Call) -> dict[str, Any]:
    content = [{"type": "text", "text": call.text}]
    return _message(call, content=content, stop=_stop_reason(call), output_tokens=call.tokens.output)


def message_stream(call: Call) -> list[SSE]:
    """message_start, content_block_start, ping, one text_delta per word, stops, cumulative message_delta."""
    t = call.tokens
    start = _message(call, content=[], stop=None, output_tokens=min(1, t.output))
    raw: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    raw += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        for piece in call.pieces
    ]
    raw.append({"type": "content_block_stop", "index": 0})
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": _stop_reason(call), "stop_sequence": None},
    }
    # Like the live API, message_delta carries cumulative totals (input and cache counts included).
    usage = call.render_usage(
        {
            "input_tokens": t.uncached_input,
            "cache_creation_input_tokens": t.cache_write,
            "cache_read_input_tokens": t.cached,
            "output_tokens": t.output,
        }
    )
    if usage is not None:
        if t.reasoning:
            usage["output_tokens_details"] = {"thinking_tokens": t.reasoning}
        delta["usage"] = usage
    raw += [delta, {"type": "message_stop"}]
    return [(event["type"], event) for event in raw]


def count_tokens(call: Call) -> dict[str, Any]:
    """`/v1/messages/count_tokens`: the derived (or configured) input, cache included."""
    return {"input_tokens": call.tokens.input}
