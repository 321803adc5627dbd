"""OpenAI-shaped bodies and SSE events: chat completions, Responses, embeddings, legacy completions.

Shapes follow the public API reference (and what openai-python parses), field order included.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping
from typing import Any

from costlens.testing._config import Call

__all__ = [
    "SSE",
    "chat_completion",
    "chat_stream",
    "completion",
    "completion_stream",
    "embeddings",
    "error_body",
    "response_object",
    "responses_stream",
]

#: One server-sent event: (event name or None, JSON-able data or the raw "[DONE]" sentinel).
SSE = tuple[str | None, Any]

DONE: SSE = (None, "[DONE]")
_TIERS = frozenset({"default", "flex", "priority", "scale"})

_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country not supported."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access."),
    409: ("invalid_request_error", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def error_body(status: int, message: str | None = None, *, code: str | None = None) -> dict[str, Any]:
    """`{"error": {message, type, param, code}}`, the shape of every OpenAI error."""
    kind, default_code, default = _ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "")
    )
    text = message or default or f"HTTP {status}"
    return {"error": {"message": text, "type": kind, "param": None, "code": code or default_code}}


def service_tier(body: Mapping[str, Any]) -> str:
    """The tier the response reports: the requested one, "default" for auto or unknown."""
    tier = body.get("service_tier")
    return tier if isinstance(tier, str) and tier in _TIERS else "default"


def _fingerprint(call: Call) -> str:
    return "fp_" + hashlib.sha256(call.model.encode()).hexdigest()[:10]


def chat_usage(call: Call) -> dict[str, Any] | None:
    t = call.tokens
    prompt_details: dict[str, int] = {"cached_tokens": t.cached, "audio_tokens": 0}
    if t.cache_write:
        prompt_details["cache_write_tokens"] = t.cache_write
    usage = {
        "prompt_tokens": t.input,
        "completion_tokens": t.output,
        "total_tokens": t.input + t.output,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": t.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    return call.render_usage(usage)


def _finish_reason(call: Call) -> str:
    return "length" if call.truncated else "stop"


def _chat_envelope(call: Call, obj: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + call.make_id("chat", 29),
        "object": obj,
        "created": call.created,
        "model": call.model,
    }


def chat_completion(call: Call) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": call.text, "refusal": None, "annotations": []}
    out = _chat_envelope(call, "chat.completion")
    out["choices"] = [
        {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(call)}
    ]
    usage = chat_usage(call)
    if usage is not None:
        out["usage"] = usage
    out["service_tier"] = service_tier(call.body)
    out["system_fingerprint"] = _fingerprint(call)
    return out


def include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def chat_stream(call: Call) -> list[SSE]:
    """Role chunk, one chunk per word, finish chunk, then (only with include_usage) the usage chunk."""
    with_usage = include_usage(call.body)

    def chunk(choices: list[dict[str, Any]], usage: Any = None) -> SSE:
        out = _chat_envelope(call, "chat.completion.chunk")
        out["service_tier"] = service_tier(call.body)
        out["system_fingerprint"] = _fingerprint(call)
        out["choices"] = choices
        if with_usage:
            out["usage"] = usage
        return (None, out)

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    events = [chunk(choice({"role": "assistant", "content": "", "refusal": None}))]
    events += [chunk(choice({"content": piece})) for piece in call.pieces]
    events.append(chunk(choice({}, _finish_reason(call))))
    usage = chat_usage(call)
    if with_usage and usage is not None:
        events.append(chunk([], usage))
    events.append(DONE)
    return events


def _completion_envelope(call: Call, text: str, finish: str | None) -> dict[str, Any]:
    return {
        "id": "cmpl-" + call.make_id("cmpl", 29),
        "object": "text_completion",
        "created": call.created,
        "model": call.model,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        "system_fingerprint": _fingerprint(call),
    }


def _completion_usage(call: Call) -> dict[str, Any] | None:
    t = call.tokens
    return call.render_usage(
        {"prompt_tokens": t.input, "completion_tokens": t.output, "total_tokens": t.input + t.output}
    )


def completion(call: Call) -> dict[str, Any]:
    """Legacy `/v1/completions`."""
    out = _completion_envelope(call, call.text, _finish_reason(call))
    usage = _completion_usage(call)
    if usage is not None:
        out["usage"] = usage
    return out


def completion_stream(call: Call) -> list[SSE]:
    events: list[SSE] = [(None, _completion_envelope(call, piece, None)) for piece in call.pieces]
    events.append((None, _completion_envelope(call, "", _finish_reason(call))))
    usage = _completion_usage(call)
    if include_usage(call.body) and usage is not None:
        last = _completion_envelope(call, "", None)
        last["choices"] = []
        last["usage"] = usage
        events.append((None, last))
    events.append(DONE)
    return events


def responses_usage(call: Call) -> dict[str, Any] | None:
    t = call.tokens
    usage = {
        "input_tokens": t.input,
        "input_tokens_details": {"cached_tokens": t.cached, "cache_write_tokens": t.cache_write},
        "output_tokens": t.output,
        "output_tokens_details": {"reasoning_tokens": t.reasoning},
        "total_tokens": t.input + t.output,
    }
    return call.render_usage(usage)


def _reasoning_item(call: Call) -> dict[str, Any]:
    return {"id": "rs_" + call.make_id("rs", 48, hex_only=True), "type": "reasoning", "summary": []}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message_item(call: Call, *, done: bool) -> dict[str, Any]:
    return {
        "id": "msg_" + call.make_id("msg", 48, hex_only=True),
        "type": "message",
        "status": "completed" if done else "in_progress",
        "content": [_text_part(call.text)] if done else [],
        "role": "assistant",
    }


def _output_items(call: Call, *, done: bool) -> list[dict[str, Any]]:
    items = [_reasoning_item(call)] if call.tokens.reasoning > 0 else []
    return [*items, _message_item(call, done=done)]


def response_object(call: Call, *, done: bool = True) -> dict[str, Any]:
    """A Responses API `response` object; `done=False` is the in-progress snapshot streams start with."""
    body = call.body
    return {
        "id": "resp_" + call.make_id("resp", 48, hex_only=True),
        "object": "response",
        "created_at": call.created,
        "status": "completed" if done else "in_progress",
        "background": False,
        "completed_at": call.created if done else None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": call.model,
        "output": _output_items(call, done=True) if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": service_tier(body),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": responses_usage(call) if done else None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def responses_stream(call: Call) -> list[SSE]:
    """The event sequence of a one-message Responses stream, `sequence_number` counting from 0."""
    raw: list[dict[str, Any]] = [
        {"type": "response.created", "response": response_object(call, done=False)},
        {"type": "response.in_progress", "response": response_object(call, done=False)},
    ]
    items = _output_items(call, done=True)
    if len(items) == 2:
        raw.append({"type": "response.output_item.added", "output_index": 0, "item": items[0]})
        raw.append({"type": "response.output_item.done", "output_index": 0, "item": items[0]})
    raw += _message_events(call, output_index=len(items) - 1)
    raw.append({"type": "response.completed", "response": response_object(call)})
    return [(event["type"], {**event, "sequence_number": n}) for n, event in enumerate(raw)]


def _message_events(call: Call, *, output_index: int) -> list[dict[str, Any]]:
    item_id = "msg_" + call.make_id("msg", 48, hex_only=True)
    where = {"item_id": item_id, "output_index": output_index, "content_index": 0}
    events: list[dict[str, Any]] = [
        {
            "type": "response.output_item.added",
            "output_index": output_index,
            "item": _message_item(call, done=False),
        },
        {"type": "response.content_part.added", **where, "part": _text_part("")},
    ]
    events += [
        {"type": "response.output_text.delta", **where, "delta": p, "logprobs": []} for p in call.pieces
    ]
    events += [
        {"type": "response.output_text.done", **where, "text": call.text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": _text_part(call.text)},
        {
            "type": "response.output_item.done",
            "output_index": output_index,
            "item": _message_item(call, done=True),
        },
    ]
    return events


def embedding_inputs(body: Mapping[str, Any]) -> list[Any]:
    """The list of things to embed: a string, a token list, or a list of either."""
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        return [raw]
    return list(raw) if isinstance(raw, list) else [raw]


def _vector(item: Any, dims: int) -> list[float]:
    """Deterministic values k/256 in (-1, 1): exact in float32, so JSON and base64 decode identically."""
    digest = hashlib.sha256(repr(item).encode()).digest()
    while len(digest) < dims:
        digest += hashlib.sha256(digest).digest()
    return [(2 * b - 255) / 256 for b in digest[:dims]]


def embeddings(call: Call) -> dict[str, Any]:
    dims = call.body.get("dimensions")
    dims = dims if isinstance(dims, int) and dims > 0 else 8
    as_base64 = call.body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(embedding_inputs(call.body)):
        vector: Any = _vector(item, dims)
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": vector})
    out: dict[str, Any] = {"object": "list", "data": data, "model": call.model}
    usage = call.render_usage({"prompt_tokens": call.tokens.input, "total_tokens": call.tokens.input})
    if usage is not None:
        out["usage"] = usage
    return out
