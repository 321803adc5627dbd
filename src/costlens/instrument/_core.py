"""The SDK side of a call's life: the request wrappers and stream hooks that feed the pipeline.

Each SDK client funnels every HTTP call through one method, `client.request(cast_to, options,
stream=, stream_cls=)` (true of both the `openai` and the `anthropic` SDKs). We replace that
method *on the instance* (never the class), so tracking is per client, idempotent and reversible.
Provider specifics (URLs, usage JSON, stream events) live in one adapter module per provider; the
call itself (steps, usage, price, record) is `costlens.pipeline`'s. What an adapter is, and the
full path's steps, are in `_adapter`; the lean path (no `Call` where nothing needs one) in `_lean`.
"""

from __future__ import annotations

import atexit
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from costlens._errors import internal_error
from costlens.context import read_router
from costlens.instrument._adapter import (
    Adapter,
    Observe,
    QuickRead,
    _complete_response,
    _is_stream,
    _next_attempt,
    _start,
)
from costlens.instrument._lean import LeanStream, _Gated, _Lean, _LeanPath
from costlens.pipeline import Call, Pipeline, StreamCall

__all__ = ["Adapter", "Observe", "wrap_async_request", "wrap_sync_request"]

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
_LEAN = (_Lean, _Gated, LeanStream)  # a call begun on the lean path (`_LeanPath.start`, `start_stream`)


def wrap_sync_request(
    original: RequestFn, adapter: Adapter, provider: str, tags: Mapping[str, str], router: Any = None
) -> RequestFn:
    client_tags = dict(tags)
    pipeline_of = _PipelineSource(router)
    quick: QuickRead | None = getattr(adapter, "complete_response", None)
    lean_path = _LeanPath.of(adapter, provider, client_tags, pipeline_of, quick)

    def request(cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None) -> Any:
        pipeline: Pipeline | Call | None = None  # (read once per call; a `Call` the lean path began)
        if lean_path is not None:
            lean = lean_path.start_stream(options) if stream else lean_path.start(options)
            if isinstance(lean, _LEAN):
                try:
                    result = original(cast_to, options, stream=stream, stream_cls=stream_cls)
                except BaseException as exc:
                    lean_path.failed(lean, options, exc)
                    raise
                return lean_path.done(lean, options, result, _hook_sync_stream)
            pipeline = lean
        if isinstance(pipeline, Call):  # begun already, from the request the gate read (`_LeanPath.start`)
            call: Call | None = pipeline
        else:
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
        pipeline: Pipeline | Call | None = None  # (as in `wrap_sync_request`)
        if lean_path is not None:
            lean = lean_path.start_stream(options) if stream else lean_path.start(options)
            if isinstance(lean, _LEAN):
                try:
                    result = await original(cast_to, options, stream=stream, stream_cls=stream_cls)
                except BaseException as exc:
                    lean_path.failed(lean, options, exc)
                    raise
                return lean_path.done(lean, options, result, _hook_async_stream)
            pipeline = lean
        if isinstance(pipeline, Call):  # begun already, from the request the gate read (`_LeanPath.start`)
            call: Call | None = pipeline
        else:
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
