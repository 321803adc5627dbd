"""What an adapter is (`Adapter`), and the full path's steps the wrappers and the gateway share:
begin a call (`_start`, or `_begin` from a request parsed already), read a complete response into
it (`_complete_response`), make the next attempt a step asked for (`_next_attempt`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from costlens._errors import internal_error
from costlens.pipeline import Call, Pipeline, Request
from costlens.usage import Usage

__all__ = ["Adapter", "Observe", "QuickRead"]

#: Takes what matters from one stream event; True hides the event from the caller.
Observe = Callable[[Call, Any], bool]
#: An adapter's optional `complete_response(call, result)`: facts and usage of the responses it
#: knows best, read at once (True), instead of `facts_of` then `usage_of` (False: not one of them).
QuickRead = Callable[[Call, Any], bool]


class Adapter(Protocol):
    """Provider specifics. One module per provider implements this and registers itself.

    Optional methods, looked up once per tracked client: `prepare_stream(call, stream, is_async)`
    (see `_core._stream_observer`), `complete_response(call, result) -> bool` (`QuickRead`), and
    `lean_request` / `lean_response` (see `_lean._LeanPath`); and an optional attribute,
    `lean_streams`: the operations whose streams `prepare_stream` reads itself, which a lean
    pipeline then tracks without a `Call` (`_lean._LeanPath.start_stream`).
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
    return _begin(adapter, pipeline, request, options)


def _begin(adapter: Adapter, pipeline: Pipeline, request: Request, options: Any) -> Call:
    """The call begun on the full path from its parsed request; the SDK sends what the steps made
    of its body."""
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


def _is_stream(result: Any) -> bool:
    # (asked of the class, or of the instance's own attributes: where the SDK makes the iterator on
    # first use, from a copy of the stream, asking the instance would make it before
    # `prepare_stream` changed the stream)
    kind = type(result)
    return (hasattr(kind, "_iterator") or "_iterator" in getattr(result, "__dict__", ())) and hasattr(
        result, "response"
    )
