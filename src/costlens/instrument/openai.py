"""OpenAI SDK specifics: `OpenAI`, `AsyncOpenAI`, `AzureOpenAI` and any OpenAI-compatible server.

Covers chat completions, the Responses API and embeddings, plain and streaming. For a chat stream
whose caller did not ask for usage we ask for it (`stream_options.include_usage`) and hide the
extra usage-only chunk, so the caller sees exactly what the SDK would have given.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from costlens.instrument._conventions import UsageConvention, convention_for
from costlens.instrument._sdk import get as _get
from costlens.instrument._sdk import sent_as_built, sent_body, unwrap, write_back
from costlens.instrument._sdk import to_int as _int
from costlens.instrument._sse import faster_decoder
from costlens.pipeline import Call, OutputMissing, Request, StreamCall
from costlens.usage import Usage, usage_of_ints

__all__ = ["OpenAIAdapter", "provider_from_base_url"]

_OPERATIONS = {
    "/chat/completions": "chat",
    "/responses": "responses",
    "/embeddings": "embeddings",
    "/completions": "text_completion",
}

# Host suffix -> provider id, for OpenAI-compatible servers. Anything else is named by its host,
# and pricing then matches the model across providers.
_HOSTS = {
    "api.openai.com": "openai",
    "openai.azure.com": "azure",
    "cognitiveservices.azure.com": "azure",
    "api.groq.com": "groq",
    "api.together.xyz": "together",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral",
    "generativelanguage.googleapis.com": "google",
    "openrouter.ai": "openrouter",
    "api.x.ai": "x-ai",
    "api.fireworks.ai": "fireworks",
    "api.perplexity.ai": "perplexity",
    "api.cerebras.ai": "cerebras",
}


def provider_from_base_url(base_url: str) -> str:
    host = (urlsplit(base_url).hostname or "").lower()
    for suffix, provider in _HOSTS.items():
        if host == suffix or host.endswith("." + suffix):
            return provider
    return host or "openai"


def _usage(
    prompt: Any,
    completion: Any,
    cached: Any,
    cache_write: Any,
    reasoning: Any,
    *,
    audio_in: Any = None,
    audio_out: Any = None,
    citation: Any = None,
    web_searches: int = 0,
    file_searches: int = 0,
    excludes_reasoning: bool = False,
    total: Any = None,
) -> Usage:
    """A Usage from OpenAI-style counts. An absent output count is not 0 tokens: `OutputMissing`
    carries what was reported and the output is counted instead (the record is flagged estimated).

    `excludes_reasoning` (a provider convention, see `_conventions`): the output is the completion
    count plus reasoning and citation tokens, instead of OpenAI's "completion includes reasoning".
    A response whose own `total` says so is read the same way (`_total_excludes_reasoning`)."""
    reasoning_tokens = _int(reasoning)
    citation_tokens = _int(citation)
    audio_out_tokens = _int(audio_out)
    if not excludes_reasoning and reasoning_tokens:
        excludes_reasoning = _total_excludes_reasoning(prompt, completion, reasoning_tokens, total)
    if completion is None:
        output = reasoning_tokens + citation_tokens + audio_out_tokens
    elif excludes_reasoning:
        output = _int(completion) + reasoning_tokens + citation_tokens
    else:
        output = _int(completion)
    usage = Usage(
        input_tokens=_int(prompt),
        output_tokens=output,
        cache_read_tokens=_int(cached),
        cache_write_tokens=_int(cache_write),
        reasoning_tokens=reasoning_tokens,
        input_audio_tokens=_int(audio_in),
        output_audio_tokens=audio_out_tokens,
        citation_tokens=citation_tokens,
        web_search_requests=web_searches,
        file_search_requests=file_searches,
    )
    if completion is None:
        raise OutputMissing(usage)
    return usage


def _total_excludes_reasoning(prompt: Any, completion: Any, reasoning: int, total: Any) -> bool:
    """Whether a response counts its reasoning outside its completion, by its own total.

    OpenAI's total is prompt + completion (reasoning inside the completion); a provider or proxy
    that reports reasoning beside the completion (Gemini behind some OpenAI-compatible layers, a
    completion of 0 with 60 reasoning tokens) has prompt + completion + reasoning as its total.
    With reasoning above 0 the two cannot both hold, so the total decides, per response, for any
    provider; without a total (or one that matches neither) OpenAI's rule stands."""
    if type(total) is not int or type(prompt) is not int or type(completion) is not int:
        return False
    return reasoning > 0 and total == prompt + completion + reasoning


#: A chat completion's counts, each an exact int, in `usage_of_ints`' order (input, output, cache
#: read, cache write, reasoning, input audio, output audio), checked against `Usage`'s rules.
Counts = tuple[int, int, int, int, int, int, int]


#: Classes seen to be pydantic models (`_is_model`): `isinstance` of pydantic's `BaseModel` goes
#: through its ABC metaclass, several times slower than a set lookup, on every call.
_MODELS: set[type] = set()
_MODELS_KEPT = 64  # (a process that makes classes on the fly does not grow it without bound)


def _is_model(obj: object) -> bool:
    """`isinstance(obj, BaseModel)`, remembering the class (check `type(obj) in _MODELS` first)."""
    if isinstance(obj, BaseModel):
        if len(_MODELS) < _MODELS_KEPT:
            _MODELS.add(type(obj))
        return True
    return False


def chat_counts(usage: Any) -> Counts | None:
    """The counts of the SDK's usage model (or a stream's usage JSON) when every count is an int (or
    absent) and they obey `Usage`'s rules: `chat_usage`'s common case, without the `Usage` (a lean
    call's record builds it on the recorder's thread). None: anything else (`chat_usage` reads it)."""
    # the SDK's model, or a stream's JSON (no `BaseModel | dict`: that builds a union on every call)
    kind = type(usage)
    if kind in _MODELS:
        read: Callable[[Any, str, Any], Any] = getattr
    elif kind is dict:
        read = dict.get
    elif _is_model(usage):
        read = getattr
    else:
        return None
    prompt = read(usage, "prompt_tokens", None)
    completion = read(usage, "completion_tokens", None)
    p_details = read(usage, "prompt_tokens_details", None)
    c_details = read(usage, "completion_tokens_details", None)
    if read is dict.get:  # a stream's JSON (`dict.get`, a C call): details not an object read as absent
        p_details = p_details if type(p_details) is dict else None
        c_details = c_details if type(c_details) is dict else None
    cached = cache_write = audio_in = reasoning = audio_out = None
    if p_details is not None:
        cached = read(p_details, "cached_tokens", None)
        audio_in = read(p_details, "audio_tokens", None)
        cache_write = read(p_details, "cache_write_tokens", None)
    if c_details is not None:
        reasoning = read(c_details, "reasoning_tokens", None)
        audio_out = read(c_details, "audio_tokens", None)
    if not (
        type(prompt) is int and type(completion) is int
        and (cached is None or type(cached) is int) and (cache_write is None or type(cache_write) is int)
        and (audio_in is None or type(audio_in) is int) and (reasoning is None or type(reasoning) is int)
        and (audio_out is None or type(audio_out) is int)
    ):  # fmt: skip
        return None
    total = read(usage, "total_tokens", None) if reasoning else None
    if reasoning and _total_excludes_reasoning(prompt, completion, reasoning, total):
        completion += reasoning  # (the output is what was billed: answer and reasoning)
    cr, cw, r, ia, oa = cached or 0, cache_write or 0, reasoning or 0, audio_in or 0, audio_out or 0
    if (prompt | completion | cr | cw | r | ia | oa) < 0 or cr + cw + ia > prompt or r + oa > completion:
        return None  # (`chat_usage` says which rule is broken)
    return prompt, completion, cr, cw, r, ia, oa


def chat_usage(usage: Any, convention: UsageConvention | None = None) -> Usage:
    """Usage of chat completions (`prompt_tokens` include cached and audio ones, `completion_tokens`
    reasoning and audio), read through the provider's `convention` where it has one."""
    if convention is None:
        counts = chat_counts(usage)
        if counts is not None:
            return usage_of_ints(*counts)
        if isinstance(usage, BaseModel) or type(usage) is dict:  # a count not an int, or a rule broken
            read: Callable[[Any, str, Any], Any] = getattr if isinstance(usage, BaseModel) else dict.get
            p_details = read(usage, "prompt_tokens_details", None)
            c_details = read(usage, "completion_tokens_details", None)
            if read is dict.get:
                p_details = p_details if type(p_details) is dict else None
                c_details = c_details if type(c_details) is dict else None
            return _usage(
                read(usage, "prompt_tokens", None),
                read(usage, "completion_tokens", None),
                _get(p_details, "cached_tokens"),
                _get(p_details, "cache_write_tokens"),
                _get(c_details, "reasoning_tokens"),
                audio_in=_get(p_details, "audio_tokens"),
                audio_out=_get(c_details, "audio_tokens"),
                total=read(usage, "total_tokens", None),
            )
    p_details = _get(usage, "prompt_tokens_details")
    c_details = _get(usage, "completion_tokens_details")
    reasoning = _get(c_details, "reasoning_tokens")
    citation = searches = None
    if convention is not None:
        if convention.reasoning_field is not None and reasoning is None:
            reasoning = _get(usage, convention.reasoning_field)
        if convention.citation_field is not None:
            citation = _get(usage, convention.citation_field)
        if convention.search_field is not None:
            searches = _get(usage, convention.search_field)
    return _usage(
        _get(usage, "prompt_tokens"),
        _get(usage, "completion_tokens"),
        _get(p_details, "cached_tokens"),
        _get(p_details, "cache_write_tokens"),
        reasoning,
        audio_in=_get(p_details, "audio_tokens"),
        audio_out=_get(c_details, "audio_tokens"),
        citation=citation,
        web_searches=_int(searches),
        excludes_reasoning=convention is not None and convention.completion_excludes_reasoning,
        total=_get(usage, "total_tokens"),
    )


# Responses API output items billed per call by OpenAI: web search ($10 per 1,000 calls) and
# file search ($2.50 per 1,000 calls), https://platform.openai.com/docs/pricing#built-in-tools.
_TOOL_CALL_ITEMS = {"web_search_call": "web", "file_search_call": "file"}


def _tool_calls(output: Any) -> tuple[int, int]:
    """(web searches, file searches) among the output items of a Responses API response."""
    web = files = 0
    for item in output or ():
        kind = _TOOL_CALL_ITEMS.get(_get(item, "type"))
        if kind == "web":
            web += 1
        elif kind == "file":
            files += 1
    return web, files


def responses_usage(usage: Any, output: Any = None) -> Usage:
    """Usage of the Responses API; `output` (the response's output items) gives the tool calls."""
    in_details = _get(usage, "input_tokens_details")
    web, files = _tool_calls(output)
    return _usage(
        _get(usage, "input_tokens"),
        _get(usage, "output_tokens"),
        _get(in_details, "cached_tokens"),
        _get(in_details, "cache_write_tokens"),
        _get(_get(usage, "output_tokens_details"), "reasoning_tokens"),
        web_searches=web,
        file_searches=files,
        total=_get(usage, "total_tokens"),
    )


def embeddings_usage(usage: Any) -> Usage:
    return Usage(input_tokens=_int(_get(usage, "prompt_tokens")))


def usage_of_response(parsed: Any, provider: str) -> Usage | None:
    """The usage of a parsed OpenAI-shaped response, read with `provider`'s conventions."""
    if isinstance(parsed, BaseModel):  # the SDK's own model: the hot path
        raw_usage = getattr(parsed, "usage", None)
        if raw_usage is None:
            return None
        kind = getattr(parsed, "object", None)
        if kind == "chat.completion":
            return chat_usage(raw_usage, convention_for(provider, "chat"))
    raw_usage = _get(parsed, "usage")
    if raw_usage is None:
        return None
    operation = _operation_of(parsed)
    if operation == "responses":
        return responses_usage(raw_usage, _get(parsed, "output"))
    if operation == "embeddings":
        return embeddings_usage(raw_usage)
    return chat_usage(raw_usage, convention_for(provider, operation))


def _output_texts(parsed: Any) -> list[str]:
    """The answer's text, counted when a response came without usage."""
    texts = [
        _get(_get(choice, "message"), "content") or _get(choice, "text")
        for choice in _get(parsed, "choices") or ()
    ]
    output_text = getattr(parsed, "output_text", None)
    if isinstance(output_text, str):
        texts.append(output_text)
    return [t for t in texts if isinstance(t, str)]


def _operation_of(parsed: Any) -> str:
    """Which usage shape a parsed response carries, from its `object` field."""
    kind = _get(parsed, "object")
    if kind == "response":
        return "responses"
    if kind == "list":
        return "embeddings"
    return "chat"


def _ask_for_stream_usage(request: Request) -> None:
    """Ask a chat stream for its usage when the caller did not (the extra chunk is hidden later)."""
    stream_options = request.body.get("stream_options")
    if isinstance(stream_options, dict) and stream_options.get("include_usage"):
        return
    request.body = {**request.body, "stream_options": {**(stream_options or {}), "include_usage": True}}
    request.usage_added = True


def _usage_follows(data: str) -> bool:
    """Whether an SSE event's JSON has a `"usage": {` key (every other chunk of a stream that asked
    for usage has `"usage": null`): a few string operations, no JSON parse. A quote inside a JSON
    string is escaped, so an unescaped `"usage"` followed by a colon is a key."""
    at = data.find('"usage"')
    if at < 0 or data.startswith(":null", at + 7):
        return False
    rest = data[at + 7 : at + 40].lstrip()
    return rest.startswith(":") and rest[1:].lstrip().startswith("{")


def _read_usage_event(call: StreamCall, data: str) -> bool:
    """Take the usage (and facts) of a chunk whose `"usage"` is an object (`_usage_follows`); True
    when it is a usage-only chunk (no choices): the one costlens asked for, which the caller does
    not see."""
    try:
        chunk = json.loads(data)
    except ValueError:
        return False
    if not isinstance(chunk, dict) or not isinstance(chunk.get("usage"), dict):
        return False
    _chunk_facts(call, chunk)
    request = call.request
    call.set_usage(chat_usage, chunk["usage"], convention_for(request.provider, request.operation))
    return not chunk.get("choices")


def _chunk_facts(call: StreamCall, chunk: dict[str, Any]) -> None:
    if call.response_model is None:
        call.set_facts(chunk.get("model"), chunk.get("service_tier"))


def _texts_of_events(call: StreamCall, events: list[str]) -> list[str]:
    """The answer's text from a chat (or text completion) stream's raw events: parsed only when it
    is needed (usage missing, content kept, a verifier)."""
    texts: list[str] = []
    for data in events:
        try:
            chunk = json.loads(data)
        except ValueError:
            continue  # "[DONE]", or a torn event
        if not isinstance(chunk, dict):
            continue
        _chunk_facts(call, chunk)
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(text, str):
                texts.append(text)
    return texts


# `"usage": null` as a key of the chunk, with any spacing; a quote inside a JSON string is escaped,
# so these never match text the model wrote.
_NULL_USAGE_LAST = ',"usage":null}'
_CUT_LAST = -len(_NULL_USAGE_LAST)
_NULL_USAGE = re.compile(r'\s*,\s*"usage"\s*:\s*null\b|"usage"\s*:\s*null\s*,?\s*')


def _screen(call: StreamCall, sse: Any, hide: bool) -> str | None:
    """One server-sent event of a chat stream, before the SDK parses it: its data as the SDK will
    read it, or None to drop it. Most events cost a substring search; only the usage chunk is parsed.

    With `hide` (costlens asked for the usage), the usage-only chunk is dropped, and the
    `"usage": null` key of every other chunk is cut: it appears only because costlens asked, and
    without it the SDK builds the chunk it would have built (the same fields set)."""
    data: str = sse.data
    if data.endswith(_NULL_USAGE_LAST):  # OpenAI's layout: the key comes last; cut without a search
        if not hide:
            return data
        bare = data[:_CUT_LAST] + "}"
        try:
            sse._data = bare
        except AttributeError:
            return data
        return bare
    at = data.find('"usage"')
    if at < 0:
        return data
    if _usage_follows(data):
        return None if _read_usage_event(call, data) and hide else data
    if not hide:
        return data
    compact = data[at - 1 : at] == "," and data.startswith(":null", at + 7)
    bare = data[: at - 1] + data[at + 12 :] if compact else _NULL_USAGE.sub("", data)
    try:
        sse._data = bare  # the SDK's `ServerSentEvent` keeps its data here (`.data`, `.json()`)
    except AttributeError:
        return data
    return bare


def _unwrap(stream: Any) -> None:
    """Take `filtered` off the stream once the SDK has called it (it reads `_iter_events` once, as
    its iteration starts): the function holds the stream's own `_iter_events` (a bound method), a
    reference cycle that would keep the stream and its response until the next garbage collection."""
    vars(stream).pop("_iter_events", None)


class OpenAIAdapter:
    name = "openai"
    #: The streams `prepare_stream` reads below the SDK's chunks: on a lean pipeline they need no
    #: `Call` (`costlens.instrument._lean`).
    lean_streams = frozenset({"chat", "text_completion"})

    def prepare_stream(
        self, call: StreamCall, stream: Any, is_async: bool
    ) -> Callable[[Call, Any], bool] | None:
        """Before the caller iterates a chat or text completion stream: read it at the level of its
        server-sent events, where each event costs a substring search and nothing is parsed twice.
        The usage chunk (the only one with `"usage": {`) is parsed here; the usage-only chunk
        costlens asked for is dropped before the SDK would build it; the other events are kept raw
        and parsed for their text only when needed (`Call.text_later`). The SDK's `Stream.__stream__`
        reads events from `self._iter_events()`, looked up when iteration starts: we wrap it on the
        instance. `_screen`'s usual case (costlens asked for the usage, and the chunk's `"usage":
        null` comes last) is written inline there: a call per event was a third of the bytecodes
        costlens added to a stream (524 of 1,619 per 20-event stream; 1,079 in all now). The
        events themselves are decoded by `SSEReader` where the SDK's decoder is its own (the same
        events, in less than half the SDK's time: `costlens.instrument._sse`). Returns
        the per-chunk observer the stream still needs (None: none), or `self.observe` when this
        stream is read chunk by chunk (another SDK version, another API)."""
        request = call.request
        events = getattr(stream, "_iter_events", None)
        if request.operation not in ("chat", "text_completion") or not callable(events):
            return self.observe
        reader = faster_decoder(getattr(stream, "_decoder", None))
        if reader is not None:  # (the same events for less: `costlens.instrument._sse`)
            stream._decoder = reader
        hide = request.usage_added
        kept: list[str] = []
        call.text_later = lambda: _texts_of_events(call, kept)
        if is_async:

            async def filtered_async() -> AsyncIterator[Any]:
                _unwrap(stream)
                async for sse in events():
                    if call.first_event_ns is None:
                        call.event_seen()
                    data = sse.data
                    if hide and data.endswith(_NULL_USAGE_LAST):  # (`_screen`'s usual case, inline)
                        try:  # noqa: SIM105 (`contextlib.suppress` is a context manager per event)
                            sse._data = data = data[:_CUT_LAST] + "}"
                        except AttributeError:  # (kept uncut, as `_screen` keeps it)
                            pass
                    elif (data := _screen(call, sse, hide)) is None:
                        continue
                    kept.append(data)
                    yield sse

            stream._iter_events = filtered_async
        else:

            def filtered() -> Iterator[Any]:
                _unwrap(stream)
                for sse in events():
                    if call.first_event_ns is None:
                        call.event_seen()
                    data = sse.data
                    if hide and data.endswith(_NULL_USAGE_LAST):  # (`_screen`'s usual case, inline)
                        try:  # noqa: SIM105 (`contextlib.suppress` is a context manager per event)
                            sse._data = data = data[:_CUT_LAST] + "}"
                        except AttributeError:  # (kept uncut, as `_screen` keeps it)
                            pass
                    elif (data := _screen(call, sse, hide)) is None:
                        continue
                    kept.append(data)
                    yield sse

            stream._iter_events = filtered
        return None

    def matches(self, client: object) -> bool:
        openai = sys.modules.get("openai")
        if openai is None:
            return False
        return isinstance(client, openai.OpenAI | openai.AsyncOpenAI)

    def provider_for(self, client: object) -> str:
        openai = sys.modules["openai"]
        if isinstance(client, openai.AzureOpenAI | openai.AsyncAzureOpenAI):
            return "azure"
        return provider_from_base_url(str(getattr(client, "base_url", "")))

    def parse_request(
        self, options: Any, *, stream: bool, provider: str, tags: dict[str, str]
    ) -> Request | None:
        if str(getattr(options, "method", "")).lower() != "post":
            return None
        operation = _OPERATIONS.get(str(options.url))
        body = sent_body(options) if operation is not None else None
        if body is None or operation is None:
            return None
        request = Request(provider, operation, str(body.get("model") or ""), body, stream, tags)
        if stream and operation in ("chat", "text_completion"):
            _ask_for_stream_usage(request)
        return request

    def write_back(self, request: Request, options: Any) -> None:
        write_back(request, options)

    def facts_of(self, result: Any) -> dict[str, Any]:
        parsed = result if isinstance(result, BaseModel) else unwrap(result)  # (a frame less, usually)
        if isinstance(parsed, BaseModel):
            return {
                "response_model": getattr(parsed, "model", None),
                "service_tier": getattr(parsed, "service_tier", None),
            }
        return {"response_model": _get(parsed, "model"), "service_tier": _get(parsed, "service_tier")}

    def complete_response(self, call: Call, result: Any) -> bool:
        """Facts and usage of the SDK's chat completion, the common response, read at once (what
        `facts_of` and `usage_of` give, without the dict between them); False for other responses."""
        if not isinstance(result, BaseModel) or getattr(result, "object", None) != "chat.completion":
            return False
        call.set_facts(getattr(result, "model", None), getattr(result, "service_tier", None))
        raw_usage = getattr(result, "usage", None)
        if raw_usage is None:
            call.usage, call.output_missing = None, False
        else:
            call.set_usage(chat_usage, raw_usage, convention_for(call.request.provider, "chat"))
        return True

    def lean_request(self, options: Any) -> tuple[str, str, dict[str, Any]] | None:
        """(operation, model, body) of a chat completion sent as the caller built it (no
        `extra_body`), for a `lean` pipeline; None: take the full path. The body is the SDK's own
        `json_data`, read for its model and requested tier only (`sent_body`'s checks of the values
        are for the full path, which counts the prompt)."""
        known = sent_as_built(options, "/chat/completions")
        return None if known is None else ("chat", *known)

    def lean_response(
        self, result: Any, provider: str
    ) -> tuple[str | None, str | None, Usage | Counts] | None:
        """(response model, service tier, usage) of the SDK's chat completion with valid usage, as
        `complete_response` reads them; None for anything else (no usage, malformed usage, another
        response type): the full path then reads it, and says what is wrong. The usage is its
        checked counts (`chat_counts`) where the provider has no usage convention: the `Usage` is
        then made by whoever builds the record (`Pipeline.record_later`)."""
        if type(result) not in _MODELS and not _is_model(result):
            return None
        if getattr(result, "object", None) != "chat.completion":
            return None
        raw_usage = getattr(result, "usage", None)
        if raw_usage is None:
            return None
        convention = convention_for(provider, "chat")
        usage: Usage | Counts | None
        if convention is None:
            usage = chat_counts(raw_usage)
            if usage is None:
                return None
        else:
            try:
                usage = chat_usage(raw_usage, convention)
            except (OutputMissing, ValueError, TypeError, AttributeError):
                return None
        model, tier = getattr(result, "model", None), getattr(result, "service_tier", None)
        return (
            (model if type(model) is str else str(model)) if model else None,
            (tier if type(tier) is str else str(tier)) if tier else None,
            usage,
        )

    def usage_of(self, result: Any, provider: str) -> Usage | None:
        if isinstance(result, BaseModel) and getattr(result, "object", None) == "chat.completion":
            # the SDK's chat completion, on every plain call: `usage_of_response`'s first branch inline
            raw_usage = getattr(result, "usage", None)
            return None if raw_usage is None else chat_usage(raw_usage, convention_for(provider, "chat"))
        return usage_of_response(unwrap(result), provider)

    def output_text(self, result: Any) -> list[str]:
        return _output_texts(unwrap(result))

    def observe(self, call: Call, event: Any) -> bool:
        if call.request.operation == "responses":
            self._observe_responses(call, event)
            return False
        return self._observe_chat(call, event)

    @staticmethod
    def _observe_chat(call: Call, chunk: Any) -> bool:
        # Once per chunk: the SDK's chunk models are read by attribute (`_get` serves dicts too).
        get = getattr if isinstance(chunk, BaseModel) else _get
        if call.response_model is None:
            call.apply_facts(
                {
                    "response_model": get(chunk, "model", None),
                    "service_tier": get(chunk, "service_tier", None),
                }
            )
        choices = get(chunk, "choices", None) or ()
        for choice in choices:
            delta = get(choice, "delta", None)
            text = get(delta, "content", None) if delta is not None else get(choice, "text", None)
            if isinstance(text, str):
                call.text.append(text)
        usage = get(chunk, "usage", None)
        request = call.request
        if usage is not None:
            call.set_usage(chat_usage, usage, convention_for(request.provider, request.operation))
        if not request.usage_added:
            return False
        if not choices and usage is not None:
            return True  # the usage-only chunk the caller did not ask for
        fields_set = getattr(chunk, "__pydantic_fields_set__", None)
        if usage is None and fields_set is not None:
            fields_set.discard("usage")  # `"usage": null` appears only because we asked for usage
        return False

    @staticmethod
    def _observe_responses(call: Call, event: Any) -> None:
        kind = _get(event, "type")
        if kind == "response.output_text.delta":
            delta = _get(event, "delta")
            if isinstance(delta, str):
                call.text.append(delta)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            response = _get(event, "response")
            call.apply_facts(
                {"response_model": _get(response, "model"), "service_tier": _get(response, "service_tier")}
            )
            usage = _get(response, "usage")
            if usage is not None:
                call.set_usage(responses_usage, usage, _get(response, "output"))
