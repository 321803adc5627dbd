"""Anthropic SDK specifics: `Anthropic` and `AsyncAnthropic` messages, plain, streaming and `.stream()`.

Anthropic reports `input_tokens` *excluding* cache reads and writes; costlens' `Usage.input_tokens`
includes them, so the adapter adds them back. `cache_creation.ephemeral_1h_input_tokens` is the
part of the writes made with a 1-hour lifetime (billed 2x input, 5-minute writes 1.25x),
`server_tool_use.web_search_requests` the searches billed per request and
`output_tokens_details.thinking_tokens` the part of the output spent thinking (the record's
reasoning tokens, billed as output). Streams carry usage in `message_start` (input side) and
`message_delta` (cumulative output), so nothing needs to be injected. A stream is read at the level
of its server-sent events (`prepare_stream`): two events of a stream are parsed, the others pass.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

from costlens._errors import internal_error
from costlens.instrument._adapter import Observe
from costlens.instrument._sdk import get as _get
from costlens.instrument._sdk import sent_as_built, sent_body, unwrap, write_back
from costlens.instrument._sdk import to_int as _int
from costlens.instrument._sse import faster_decoder
from costlens.pipeline import Call, OutputMissing, Request, StreamCall
from costlens.usage import Usage, usage_of_ints, with_inference_geo

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


#: `messages_usage`'s start for a whole message: nothing yet (a stream's delta starts from `message_start`).
_NOTHING = Usage()


def _usual_usage(usage: dict[str, Any], start: Usage) -> Usage | None:
    """A usage dict in its usual shape, read as `messages_usage` reads it (with its `start`), with a
    tenth of its calls: every count present an exact non-negative int, the cache writes
    given as a total, no thinking or search counts. None for anything else: the general reader
    reads it then (and says what is wrong). A test holds the two to the same answers."""
    get = usage.get
    if get("output_tokens_details") is not None or get("server_tool_use") is not None:
        return None
    split = get("cache_creation")
    cache_write = get("cache_creation_input_tokens")
    if cache_write is None:
        if split is not None:  # (the writes given by lifetime only: added up by the general reader)
            return None
        cache_write = start.cache_write_tokens
    one_hour: Any
    if split is None:
        one_hour = start.cache_write_1h_tokens
    else:  # (anything but a dict: the general reader)
        one_hour = split.get("ephemeral_1h_input_tokens", 0) if type(split) is dict else None
    uncached = get("input_tokens", start.uncached_input_tokens)
    cache_read = get("cache_read_input_tokens", start.cache_read_tokens)
    output = get("output_tokens")
    if (
        int is type(uncached) is type(cache_read) is type(cache_write) is type(one_hour) is type(output)
        and (uncached | cache_read | cache_write | output) >= 0
    ):
        return usage_of_ints(
            uncached + cache_read + cache_write, output, cache_read, cache_write,
            min(start.reasoning_tokens, output), c1=one_hour, ws=start.web_search_requests,
        )  # fmt: skip
    return None


def messages_usage(usage: Any, start: Usage = _NOTHING) -> Usage:
    """A message's usage (the SDK's model, or a dict). `start`: for a stream's `message_delta`, the
    counts its `message_start` gave; a count the delta lacks keeps its value there (for a whole
    message, nothing: a count it lacks is 0). No output count raises `OutputMissing`."""
    if type(usage) is dict:  # (a stream's event, parsed by costlens)
        usual = _usual_usage(usage, start)
        if usual is not None:
            return usual
    cache_read = _get(usage, "cache_read_input_tokens")
    uncached = _get(usage, "input_tokens")
    cache_read = start.cache_read_tokens if cache_read is None else _int(cache_read)
    cache_write, cache_1h = _cache_writes(usage, start.cache_write_tokens, start.cache_write_1h_tokens)
    uncached = start.uncached_input_tokens if uncached is None else _int(uncached)
    if min(cache_read, cache_write, uncached) < 0:
        raise ValueError(f"negative token count in {usage!r}")
    output = _get(usage, "output_tokens")
    out = _int(output)
    # (every count an exact int by now, checked by `_int`: the quick constructor checks the rest)
    counted = usage_of_ints(
        uncached + cache_read + cache_write, out, cache_read, cache_write,
        _thinking(usage, out, min(start.reasoning_tokens, out)),
        c1=cache_1h, ws=_web_searches(usage, start.web_search_requests),
    )  # fmt: skip
    if output is None:
        raise OutputMissing(counted)  # no output count is not 0 output tokens: count it instead
    return counted


def _texts_of_deltas(events: list[str]) -> list[str]:
    """The answer's text (and thinking) from a message stream's raw `content_block_delta` events:
    parsed only when it is needed (usage missing, content kept, a verifier)."""
    texts: list[str] = []
    for data in events:
        try:
            delta = json.loads(data).get("delta")
        except (ValueError, AttributeError):
            continue  # (a torn event: the SDK raised on it already)
        if isinstance(delta, dict):
            text = delta.get("text") or delta.get("thinking")
            if isinstance(text, str):
                texts.append(text)
    return texts


def _read_event(call: StreamCall, kind: str, data: str) -> None:
    """A `message_start` or `message_delta` event's data, parsed for the call's facts and usage."""
    try:
        body = json.loads(data)
    except ValueError:
        return  # (not JSON: the SDK raises on the same data, and the call ends with that error)
    if type(body) is not dict:
        return  # (nor an event: the SDK's model refuses it)
    try:
        if kind == "message_start":
            _observe_start(call, body.get("message"))
        else:
            _observe_delta(call, body.get("usage"))
    except Exception as exc:
        internal_error("reading a stream event", exc)


class _EventReader:
    """A message stream's SSE decoder, wrapped: each event is looked at on its way to the SDK. Its
    name is enough for most (a text delta's data is kept raw, for `_texts_of_deltas`); the two that
    carry usage are parsed. It holds the call, not the stream: no reference cycle."""

    __slots__ = ("_call", "_decoder", "_kept")

    def __init__(self, decoder: Any, call: StreamCall, kept: list[str]) -> None:
        self._decoder, self._call, self._kept = decoder, call, kept

    def iter_bytes(self, iterator: Iterator[bytes]) -> Iterator[Any]:
        call, kept = self._call, self._kept
        for sse in self._decoder.iter_bytes(iterator):
            if call.first_event_ns is None:
                call.event_seen()
            kind = sse.event
            if kind == "content_block_delta":
                kept.append(sse.data)
            elif kind == "message_start" or kind == "message_delta":
                _read_event(call, kind, sse.data)
            yield sse

    async def aiter_bytes(self, iterator: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        # (`iter_bytes`' body, for an async stream: a method per event would cost a call per event)
        call, kept = self._call, self._kept
        async for sse in self._decoder.aiter_bytes(iterator):
            if call.first_event_ns is None:
                call.event_seen()
            kind = sse.event
            if kind == "content_block_delta":
                kept.append(sse.data)
            elif kind == "message_start" or kind == "message_delta":
                _read_event(call, kind, sse.data)
            yield sse


def _observe_start(call: StreamCall, message: Any) -> None:
    """`message_start`: the response model, the tier and the input side of the usage."""
    usage = _get(message, "usage")
    call.set_facts(_get(message, "model"), _tier(usage))
    if usage is not None:
        call.set_usage(_started, usage)


def _started(usage: Any) -> Usage:
    """`message_start`'s usage: its input counts are final, its output count (0 or 1) is not. Until
    `message_delta` brings the final one the output is missing, so a stream that ends before it
    (closed early, cut) has its output counted from the text it streamed, flagged estimated,
    instead of the 1 token `message_start` announced."""
    raise OutputMissing(messages_usage(usage))


def _observe_delta(call: StreamCall, usage: Any) -> None:
    """`message_delta` has the final cumulative output count; input counts there are optional."""
    if usage is not None:
        call.set_usage(messages_usage, usage, call.usage or _NOTHING)


class AnthropicAdapter:
    name = "anthropic"
    #: The streams `prepare_stream` reads below the SDK's events: on a lean pipeline they need no
    #: `Call` (`costlens.instrument._lean`).
    lean_streams = frozenset({"chat"})

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

    def prepare_stream(self, call: StreamCall, stream: Any, is_async: bool) -> Observe | None:
        """Before the caller iterates a message stream: read it at the level of its server-sent
        events, below the SDK's event models (`_EventReader`, which wraps the stream's decoder).
        Each event then costs a look at its name; `message_start` and `message_delta` are parsed
        (the SDK parses them again to build its models), text deltas kept raw. Reading the SDK's
        models instead (`observe`, per event, with a `Call` and a generator step per event) added
        ~+134 µs to a 21-event stream. Returns None (nothing to do per event), or `self.observe`
        where the stream is read event by event: another operation, or an SDK whose stream has no
        decoder, or whose iterator was made already (it reads a copy of the stream made then)."""
        decoder = getattr(stream, "_decoder", None)
        made = hasattr(type(stream), "_iterator") and "_iterator" in vars(stream)
        if (
            call.request.operation != "chat"
            or made
            or not hasattr(decoder, "aiter_bytes" if is_async else "iter_bytes")
        ):
            return self.observe
        kept: list[str] = []
        # (the same events for less where the decoder is the SDK's own: `costlens.instrument._sse`)
        stream._decoder = _EventReader(faster_decoder(decoder) or decoder, call, kept)
        call.text_later = partial(_texts_of_deltas, kept)
        return None

    def observe(self, call: Call, event: Any) -> bool:
        # The SDK's event models, one by one (a stream `prepare_stream` does not read; the gateway's
        # events, as dicts), read with `getattr`, not `_get` (a call per field: 1,141 of the 4,416
        # bytecodes tracking added to a 21-event stream then). The delta is read only for a delta
        # event: a model without the field answers through pydantic's `__getattr__`, which raises
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
            _observe_start(call, _get(event, "message"))
        elif kind == "message_delta":
            _observe_delta(call, _get(event, "usage"))
        return False
