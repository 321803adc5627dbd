"""The SDK side of a call's life: the request wrappers and stream hooks that feed the pipeline.

Each SDK client funnels every HTTP call through one method, `client.request(cast_to, options,
stream=, stream_cls=)` (true of both the `openai` and the `anthropic` SDKs). We replace that
method *on the instance* (never the class), so tracking is per client, idempotent and reversible.
Provider specifics (URLs, usage JSON, stream events) live in one adapter module per provider; the
call itself (steps, usage, price, record) is `costlens.pipeline`'s.
"""

from __future__ import annotations

import atexit
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from costlens._errors import internal_error
from costlens.context import read_router, read_tags
from costlens.instrument._lean_stream import LeanStream
from costlens.pipeline import Call, Pipeline, Request, StreamCall
from costlens.pipeline._call import utc_of_ns
from costlens.pipeline._request import requested_tier
from costlens.usage import Usage

__all__ = ["Adapter", "Observe", "wrap_async_request", "wrap_sync_request"]

#: Takes what matters from one stream event; True hides the event from the caller.
Observe = Callable[[Call, Any], bool]
#: An adapter's optional `complete_response(call, result)`: facts and usage of the responses it
#: knows best, read at once (True), instead of `facts_of` then `usage_of` (False: not one of them).
QuickRead = Callable[[Call, Any], bool]


class Adapter(Protocol):
    """Provider specifics. One module per provider implements this and registers itself.

    Optional methods, looked up once per tracked client: `prepare_stream(call, stream, is_async)`
    (see `_stream_observer`), `complete_response(call, result) -> bool` (`QuickRead`), and
    `lean_request` / `lean_response` (see `_LeanPath`); and an optional attribute, `lean_streams`:
    the operations whose streams `prepare_stream` reads itself, which a lean pipeline then tracks
    without a `Call` (`_LeanPath.start_stream`).
    """

    name: str

    def matches(self, client: object) -> bool: ...

    def provider_for(self, client: object) -> str: ...

    def parse_request(
        self, options: Any, *, stream: bool, provider: str, tags: dict[str, str]
    ) -> Request | None:
        """The request the SDK is about to send, or None for endpoints costlens does not record
        (file uploads, model lists, ...). Must not change `options`."""

    def write_back(self, request: Request, options: Any) -> None:
        """Make the SDK send `request.body` (changed by the pipeline): the only writer of SDK options."""

    def facts_of(self, result: Any) -> dict[str, Any]:
        """Facts of a complete response: `response_model`, `service_tier`."""

    def usage_of(self, result: Any, provider: str) -> Usage | None:
        """Usage of a complete response from `provider` (whose usage conventions apply, see
        `costlens.instrument._conventions`); raises ValueError/TypeError when it is malformed,
        `OutputMissing` when the output count is absent."""

    def output_text(self, result: Any) -> list[str]:
        """The answer's text, counted when the response came without (valid) usage."""

    def observe(self, call: Call, event: Any) -> bool:
        """Take what matters from one stream event; True hides the event from the caller."""


def _start(
    pipeline_of: Callable[[], Pipeline],
    adapter: Adapter,
    provider: str,
    tags: dict[str, str],
    options: Any,
    stream: bool,
    pipeline: Pipeline | None = None,
) -> Call | None:
    """The call begun on the full path, on `pipeline` (the source's, when not given)."""
    try:
        request = adapter.parse_request(options, stream=stream, provider=provider, tags=tags)
        if request is None:
            return None
        if pipeline is None:
            pipeline = pipeline_of()
    except Exception as exc:
        internal_error("preparing to record an LLM call", exc)
        return None
    call = pipeline.start(request)  # a step's refusal (BudgetExceeded, ...) propagates, on purpose
    if call.request.body is not getattr(options, "json_data", None):
        try:
            adapter.write_back(call.request, options)
        except Exception as exc:
            internal_error("changing the request", exc)
    return call


def _next_attempt(
    pipeline_of: Callable[[], Pipeline], adapter: Adapter, request: Request, options: Any
) -> Call:
    """Start the attempt a step asked for, and make the SDK send its body."""
    call = pipeline_of().start(request)  # a refusal (a budget) propagates, as for a first attempt
    adapter.write_back(call.request, options)
    return call


def _complete_response(adapter: Adapter, call: Call, result: Any, quick: QuickRead | None = None) -> None:
    try:
        if quick is None or not quick(call, result):
            call.apply_facts(adapter.facts_of(result))
            call.set_usage(adapter.usage_of, result, call.request.provider)
        if call.keep_response:
            call.response = result
        if call.usage is None or call.output_missing or call.keep_response or call.want_text:
            call.text.extend(adapter.output_text(result))
    except Exception as exc:
        internal_error("reading the usage of an LLM response", exc)
    if not call.finished:  # (`call.finish()`, one frame less on every call)
        call.pipeline.finish(call)


def _observer(adapter: Adapter, call: Call) -> Callable[[Any], bool]:
    observe = adapter.observe

    def watch(event: Any) -> bool:
        if call.first_event_ns is None:
            call.event_seen()
        try:
            return observe(call, event)
        except Exception as exc:
            internal_error("reading a stream event", exc)
            return False

    return watch


# -- streams ---------------------------------------------------------------------------------
# The SDK stream objects iterate `self._iterator`; we swap that iterator for one that watches the
# events, so the stream object the caller holds (and its helpers) stays the SDK's own. A stream that
# is never iterated nor closed is finished (with a counted estimate) when it is garbage-collected,
# or at exit: its record is never lost and its budget reservation is settled.

# Streams whose call may not be finished yet: id of a weak reference to the stream -> (the reference,
# the call). The reference's callback finishes the call when the stream is collected. It is kept here,
# outside the stream's own reference cycle, so the collector runs that callback (as `weakref.finalize`
# does, at a fraction of its cost); the entry leaves when the stream is collected.
_open_streams: dict[int, tuple[weakref.ref[Any], StreamCall]] = {}


def _stream_collected(ref: weakref.ref[Any]) -> None:
    entry = _open_streams.pop(id(ref), None)
    if entry is not None:
        entry[1].finish()


def _finish_open_streams() -> None:
    """At exit: finish every stream still open, then write the records. Registered when this module
    is imported (by `track`), so in the usual order (configure, track, calls) it runs before the
    recorder's own exit hook closes the store."""
    while True:
        try:
            entries = list(_open_streams.values())
            break
        except RuntimeError:  # a stream collected meanwhile (its callback changed the dict): again
            continue
    calls = [call for _, call in entries if not call.finished]
    for call in calls:
        call.finish()
    if calls:
        from costlens.config import flush

        flush(5.0)


atexit.register(_finish_open_streams)


def _watch_lifetime(call: StreamCall, stream: Any) -> None:
    ref = weakref.ref(stream, _stream_collected)
    _open_streams[id(ref)] = (ref, call)


def _stream_observer(adapter: Adapter, call: StreamCall, stream: Any, is_async: bool) -> Observe | None:
    """What each event of this stream goes through: the adapter's `observe`, or what its optional
    `prepare_stream` (which may read the stream at a lower level) returns instead (None: nothing)."""
    prepare = getattr(adapter, "prepare_stream", None)
    if prepare is None:
        return adapter.observe
    try:
        observe: Observe | None = prepare(call, stream, is_async)
    except Exception as exc:
        internal_error("preparing to read a stream", exc)
        return adapter.observe
    return observe


#: An observer as `_watched_sync` / `_watched_async` call it: with a `Call` (see `_hook_sync_stream`).
_Observing = Callable[[Any, Any], bool]


def _watched_sync(
    call: StreamCall, inner: Iterator[Any], observe: _Observing | None, stream: Any, close: Callable[[], None]
) -> Iterator[Any]:
    try:
        if observe is None:
            yield from inner  # the adapter reads the stream below the SDK's chunks: nothing per chunk
        else:
            for event in inner:
                if call.first_event_ns is None:
                    call.event_seen()
                try:
                    hide = observe(call, event)
                except Exception as exc:
                    internal_error("reading a stream event", exc)
                    hide = False
                if not hide:
                    yield event
    except GeneratorExit:
        call.finish()
        raise
    except BaseException as exc:
        call.finish(exc)
        raise
    finally:
        _unhook(stream, close)
    call.finish()


async def _watched_async(
    call: StreamCall,
    inner: AsyncIterator[Any],
    observe: _Observing | None,
    stream: Any,
    close: Callable[[], Any],
) -> AsyncIterator[Any]:
    try:
        async for event in inner:
            if observe is None:
                yield event
                continue
            if call.first_event_ns is None:
                call.event_seen()
            try:
                hide = observe(call, event)
            except Exception as exc:
                internal_error("reading a stream event", exc)
                hide = False
            if not hide:
                yield event
    except GeneratorExit:
        call.finish()
        raise
    except BaseException as exc:
        call.finish(exc)
        raise
    finally:
        _unhook(stream, close)
    call.finish()


def _unhook(stream: Any, close: Callable[[], Any]) -> None:
    """The stream is read to its end (or failed, or closed): take costlens' `close` off it. That
    wrapper holds the stream's own `close`, a bound method: a reference cycle that would keep the
    stream, its response and ~100 more objects until the next garbage collection (under load, a
    collection every few streams). Without it a finished stream is freed when its last reference
    goes, as a raw one is; its call is finished, so the SDK's `close` alone is all it needs."""
    attrs = getattr(stream, "__dict__", None)
    if attrs is not None and attrs.get("close") is close:
        del attrs["close"]


def _hook_sync_stream(adapter: Adapter, call: StreamCall, stream: Any) -> Any:
    observe = _stream_observer(adapter, call, stream, False)
    if observe is not None and isinstance(call, LeanStream):
        call = call.as_call()  # (a reader of the SDK's chunks fills a `Call`)
    original_close = stream.close

    def close() -> None:
        try:
            original_close()
        finally:
            call.finish()

    stream._iterator = _watched_sync(call, stream._iterator, observe, stream, close)
    stream.close = close
    _watch_lifetime(call, stream)
    return stream


def _hook_async_stream(adapter: Adapter, call: StreamCall, stream: Any) -> Any:
    observe = _stream_observer(adapter, call, stream, True)
    if observe is not None and isinstance(call, LeanStream):
        call = call.as_call()  # (as in `_hook_sync_stream`)
    original_close = stream.close

    async def close() -> None:
        try:
            await original_close()
        finally:
            call.finish()

    stream._iterator = _watched_async(call, stream._iterator, observe, stream, close)
    stream.close = close
    _watch_lifetime(call, stream)
    return stream


def _is_stream(result: Any) -> bool:
    return hasattr(result, "_iterator") and hasattr(result, "response")


# -- the request wrappers ---------------------------------------------------------------------


_PIPELINE_OVERRIDE: ContextVar[Pipeline | None] = ContextVar("costlens_pipeline_override", default=None)


@contextmanager
def using_pipeline(pipeline: Pipeline) -> Iterator[Pipeline]:
    """Tracked calls made in this block (this thread or task, and what it starts) go through
    `pipeline` instead of the process's: an experiment run adds its cost cap and captures its
    records this way without touching what other threads do."""
    token = _PIPELINE_OVERRIDE.set(pipeline)
    try:
        yield pipeline
    finally:
        _PIPELINE_OVERRIDE.reset(token)


class _PipelineSource:
    """The pipeline a client's calls go through: the process's, plus (for a client tracked with a
    router, or inside `router.create()`) that router's step in the `route` slot. The derived
    pipeline is kept until the process's pipeline or the router changes."""

    __slots__ = ("_base", "_get", "_routed", "_router", "_used")

    def __init__(self, router: Any) -> None:
        from costlens.config import get_pipeline  # here, not at import: the composition root is heavier

        self._get = get_pipeline
        self._router = router
        self._base: Pipeline | None = None
        self._used: Any = None
        self._routed: Pipeline | None = None

    def __call__(self) -> Pipeline:
        base = _PIPELINE_OVERRIDE.get() or self._get()
        router: Any = read_router() or self._router
        if router is None:
            return base
        if base is not self._base or router is not self._used or self._routed is None:
            self._routed = base.with_step("route", router.step(base))
            self._base, self._used = base, router
        return self._routed


RequestFn = Callable[..., Any]
#: `Adapter.lean_request` / `lean_response`, optional: see `_LeanPath`.
LeanRequest = Callable[[Any], "tuple[str, str, dict[str, Any]] | None"]
LeanResponse = Callable[[Any, str], "tuple[str | None, str | None, Usage | tuple[int, ...]] | None"]


class _Lean:
    """A call on a `lean` pipeline, begun without a `Call` (see `Pipeline.record_later`)."""

    __slots__ = ("body", "model", "operation", "pipeline", "start_ns", "started_ns", "tags")

    def __init__(
        self, pipeline: Pipeline, operation: str, model: str, body: dict[str, Any], tags: dict[str, str]
    ) -> None:
        self.pipeline, self.operation, self.model, self.body = pipeline, operation, model, body
        context = read_tags()
        self.tags = {**tags, **context} if context else dict(tags)
        self.started_ns = time.time_ns()  # (a `datetime` is made with the record, off the caller's thread)
        self.start_ns = time.perf_counter_ns()


class _LeanPath:
    """A wrapped client's lean path (see `Pipeline.record_later`), made once per client and shared
    by the sync and async wrappers: `start` before the call, then `done` or `failed`."""

    __slots__ = (
        "adapter", "lean_request", "lean_response", "pipeline_of", "provider", "quick", "streams", "tags"
    )  # fmt: skip

    def __init__(
        self,
        adapter: Adapter,
        provider: str,
        tags: dict[str, str],
        pipeline_of: Callable[[], Pipeline],
        quick: QuickRead | None,
        lean_request: LeanRequest,
        lean_response: LeanResponse,
    ) -> None:
        self.adapter, self.provider, self.tags, self.pipeline_of = adapter, provider, tags, pipeline_of
        self.quick, self.lean_request, self.lean_response = quick, lean_request, lean_response
        # the operations whose streams the adapter reads below the SDK's chunks (`prepare_stream`)
        self.streams: frozenset[str] = getattr(adapter, "lean_streams", frozenset())

    @classmethod
    def of(
        cls,
        adapter: Adapter,
        provider: str,
        tags: dict[str, str],
        pipeline_of: Callable[[], Pipeline],
        quick: QuickRead | None,
    ) -> _LeanPath | None:
        """None for an adapter without both `lean_request` and `lean_response`."""
        lean_request: LeanRequest | None = getattr(adapter, "lean_request", None)
        lean_response: LeanResponse | None = getattr(adapter, "lean_response", None)
        if lean_request is None or lean_response is None:
            return None
        return cls(adapter, provider, tags, pipeline_of, quick, lean_request, lean_response)

    def start(self, options: Any) -> _Lean | Pipeline | None:
        """The call begun without a `Call` when the pipeline is `lean` and the adapter knows the
        request; else the full path's pipeline (for `_start`: read once per call), or None when
        reading it failed."""
        try:
            pipeline = self.pipeline_of()
            if not pipeline.lean:
                return pipeline
            known = self.lean_request(options)
            if known is None:
                return pipeline
            return _Lean(pipeline, *known, self.tags)
        except Exception as exc:
            internal_error("preparing to record an LLM call", exc)
            return None

    def start_stream(self, options: Any) -> LeanStream | Pipeline | None:
        """As `start`, for a stream: begun without a `Call` when the pipeline is `lean` and the
        adapter reads this kind of stream itself (`LeanStream`); its body asks for the usage."""
        try:
            pipeline = self.pipeline_of()
            if not pipeline.lean or not self.streams:
                return pipeline
            adapter = self.adapter
            request = adapter.parse_request(options, stream=True, provider=self.provider, tags=self.tags)
            if request is None or request.operation not in self.streams:
                return pipeline  # (`_start` reads it again: rare requests only)
            context = read_tags()
            lean = LeanStream(pipeline, request, {**self.tags, **context} if context else dict(self.tags))
        except Exception as exc:
            internal_error("preparing to record an LLM call", exc)
            return None
        if request.body is not getattr(options, "json_data", None):
            try:
                adapter.write_back(request, options)
            except Exception as exc:
                internal_error("changing the request", exc)
        return lean

    def streamed(self, lean: LeanStream, result: Any, hook: Callable[[Adapter, StreamCall, Any], Any]) -> Any:
        """What a lean stream's call returned, hooked (`hook`: `_hook_sync_stream` or
        `_hook_async_stream`); an answer that is not a stream is read and recorded by the full path."""
        if _is_stream(result):
            return hook(self.adapter, lean, result)
        _complete_response(self.adapter, lean.as_call(), result, self.quick)
        return result

    def done(self, lean: _Lean, options: Any, result: Any) -> None:
        """Hand the facts of a call that ended well with its usage to the pipeline; a response that
        needs more (no or malformed usage, another type) goes the full path (`_full`)."""
        provider = self.provider
        try:
            read = self.lean_response(result, provider)
            if read is not None:
                response_model, tier, usage = read
                lean.pipeline.record_later(
                    provider,
                    lean.operation,
                    lean.model,
                    lean.started_ns,
                    time.perf_counter_ns() - lean.start_ns,
                    response_model,
                    usage,
                    tier or requested_tier(lean.body),
                    lean.tags,
                )
                return
        except Exception as exc:
            internal_error("recording an LLM call", exc)
        call = self._full(lean, options)
        if call is not None:
            _complete_response(self.adapter, call, result, self.quick)

    def failed(self, lean: _Lean, options: Any, error: BaseException) -> None:
        """A lean call that raised: recorded by the full path, as any failed call."""
        call = self._full(lean, options)
        if call is not None:
            call.finish(error)

    def _full(self, lean: _Lean, options: Any) -> Call | None:
        """The `Call` a lean call becomes: begun as `_start` would have, at the call's start."""
        call = _start(self.pipeline_of, self.adapter, self.provider, self.tags, options, False)
        if call is not None:
            call.started_at, call.start_ns = utc_of_ns(lean.started_ns), lean.start_ns
        return call


def wrap_sync_request(
    original: RequestFn, adapter: Adapter, provider: str, tags: Mapping[str, str], router: Any = None
) -> RequestFn:
    client_tags = dict(tags)
    pipeline_of = _PipelineSource(router)
    quick: QuickRead | None = getattr(adapter, "complete_response", None)
    lean_path = _LeanPath.of(adapter, provider, client_tags, pipeline_of, quick)

    def request(cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None) -> Any:
        pipeline: Pipeline | None = None  # (read once per call)
        if lean_path is not None:
            lean = lean_path.start_stream(options) if stream else lean_path.start(options)
            if isinstance(lean, _Lean):
                try:
                    result = original(cast_to, options, stream=stream, stream_cls=stream_cls)
                except BaseException as exc:
                    lean_path.failed(lean, options, exc)
                    raise
                lean_path.done(lean, options, result)
                return result
            if isinstance(lean, LeanStream):
                try:
                    result = original(cast_to, options, stream=stream, stream_cls=stream_cls)
                except BaseException as exc:
                    lean.finish(exc)
                    raise
                return lean_path.streamed(lean, result, _hook_sync_stream)
            pipeline = lean
        call = _start(pipeline_of, adapter, provider, client_tags, options, stream, pipeline)
        if call is None:
            return original(cast_to, options, stream=stream, stream_cls=stream_cls)
        while True:  # one pass per attempt: a step (fallbacks, a cascade) may ask for another
            try:
                result = original(cast_to, options, stream=stream, stream_cls=stream_cls)
            except BaseException as exc:
                call.finish(exc)
                if call.next_attempt is None:
                    raise
            else:
                if stream and _is_stream(result):
                    return _hook_sync_stream(adapter, call, result)
                _complete_response(adapter, call, result, quick)
                if call.next_attempt is None:
                    return result
            request, after_s = call.next_attempt
            if after_s:
                time.sleep(after_s)
            call = _next_attempt(pipeline_of, adapter, request, options)

    return request


def wrap_async_request(
    original: RequestFn, adapter: Adapter, provider: str, tags: Mapping[str, str], router: Any = None
) -> RequestFn:
    client_tags = dict(tags)
    pipeline_of = _PipelineSource(router)
    quick: QuickRead | None = getattr(adapter, "complete_response", None)
    lean_path = _LeanPath.of(adapter, provider, client_tags, pipeline_of, quick)

    async def request(cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None) -> Any:
        pipeline: Pipeline | None = None  # (read once per call)
        if lean_path is not None:  # (as in `wrap_sync_request`)
            lean = lean_path.start_stream(options) if stream else lean_path.start(options)
            if isinstance(lean, _Lean):
                try:
                    result = await original(cast_to, options, stream=stream, stream_cls=stream_cls)
                except BaseException as exc:
                    lean_path.failed(lean, options, exc)
                    raise
                lean_path.done(lean, options, result)
                return result
            if isinstance(lean, LeanStream):
                try:
                    result = await original(cast_to, options, stream=stream, stream_cls=stream_cls)
                except BaseException as exc:
                    lean.finish(exc)
                    raise
                return lean_path.streamed(lean, result, _hook_async_stream)
            pipeline = lean
        call = _start(pipeline_of, adapter, provider, client_tags, options, stream, pipeline)
        if call is None:
            return await original(cast_to, options, stream=stream, stream_cls=stream_cls)
        while True:  # one pass per attempt: a step (fallbacks, a cascade) may ask for another
            try:
                result = await original(cast_to, options, stream=stream, stream_cls=stream_cls)
            except BaseException as exc:
                call.finish(exc)
                if call.next_attempt is None:
                    raise
            else:
                if stream and _is_stream(result):
                    return _hook_async_stream(adapter, call, result)
                _complete_response(adapter, call, result, quick)
                if call.next_attempt is None:
                    return result
            request, after_s = call.next_attempt
            if after_s:
                import asyncio  # here: importing asyncio costs ~30 ms, and only a retry needs it

                await asyncio.sleep(after_s)
            call = _next_attempt(pipeline_of, adapter, request, options)

    return request
