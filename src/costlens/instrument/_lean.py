"""The lean path: a call on a `lean` pipeline (no step acts, one sink that builds records later, no
text kept) tracked without a `Call` (see `Pipeline.record_later`).

A plain call is read at once and handed over (`_LeanPath`). A stream is read as the caller
iterates it, by the adapter's reader below the SDK's chunks, which fills the call's facts and
usage: `LeanStream` is what that reader needs of a `Call` (`StreamCall`) and no more. A stream that
ends well with its usage is handed to `Pipeline.record_later`; anything else (an error, a stream
closed before its usage came, malformed usage, a reader that needs the SDK's chunks) becomes the
`Call` it would have been from its start (`as_call`), and ends as one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from costlens._errors import internal_error
from costlens.context import read_tags
from costlens.instrument._adapter import (
    Adapter,
    QuickRead,
    _begin,
    _complete_response,
    _is_stream,
    _start,
)
from costlens.pipeline import Call, LeanStep, OutputMissing, Pipeline, Request, StreamCall
from costlens.pipeline._call import usage_refused, utc_of_ns
from costlens.pipeline._request import requested_tier
from costlens.usage import Usage, usage_of_ints

__all__ = ["LeanStream"]

#: `Adapter.lean_request` / `lean_response`, optional: see `_LeanPath`.
LeanRequest = Callable[[Any], "tuple[str, str, dict[str, Any]] | None"]
LeanResponse = Callable[[Any, str], "tuple[str | None, str | None, Usage | tuple[int, ...]] | None"]


class _Lean:
    """A call on a `lean` pipeline, begun without a `Call` (see `Pipeline.record_later`)."""

    __slots__ = ("body", "context", "model", "operation", "pipeline", "start_ns", "started_ns", "tags")

    def __init__(
        self, pipeline: Pipeline, operation: str, model: str, body: dict[str, Any], tags: dict[str, str]
    ) -> None:
        self.pipeline, self.operation, self.model, self.body = pipeline, operation, model, body
        # the client's tags and a `costlens.tags` block's, merged where the record is built
        # (`record_later`): a dict made here would be kept, and counted, until the recorder writes
        self.tags, self.context = tags, read_tags() or None
        self.started_ns = time.time_ns()  # (a `datetime` is made with the record, off the caller's thread)
        self.start_ns = time.perf_counter_ns()


class _Gated:
    """A call on a pipeline that is lean but for one step (`Pipeline.gate`: budgets), admitted by
    that step without a `Call` (`LeanStep.admit_lean`)."""

    __slots__ = ("admitted", "gate", "pipeline", "request", "start_ns", "started_ns", "tags")

    def __init__(
        self,
        pipeline: Pipeline,
        gate: LeanStep,
        request: Request,
        tags: Mapping[str, str],
        started_ns: int,
        start_ns: int,
        admitted: Any,
    ) -> None:
        self.pipeline, self.gate, self.request, self.tags = pipeline, gate, request, tags
        self.started_ns, self.start_ns, self.admitted = started_ns, start_ns, admitted

    def as_call(self) -> Call:
        """The `Call` this call becomes (`Pipeline.resume_gated`), begun at its start."""
        return self.pipeline.resume_gated(
            self.gate, self.admitted, self.request, self.tags, self.started_ns, self.start_ns
        )


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

    def start(self, options: Any) -> _Lean | _Gated | Call | Pipeline | None:
        """The call begun without a `Call` when the pipeline is `lean` (or `gate`s it) and the
        adapter knows the request; else the full path's pipeline (for `_start`: read once per
        call), or None when reading it failed; or the full path's `Call`, begun already from the
        request the gate read (a step's refusal propagates from here, as from `_start`)."""
        try:
            pipeline = self.pipeline_of()
            if pipeline.lean:
                known = self.lean_request(options)
                if known is None:
                    return pipeline
                return _Lean(pipeline, *known, self.tags)
            gate = pipeline.gate()
            if gate is None:
                return pipeline
            begun = self._admit(pipeline, gate, options)
            if not isinstance(begun, Request):
                return begun
        except Exception as exc:
            internal_error("preparing to record an LLM call", exc)
            return None
        return _begin(self.adapter, pipeline, begun, options)

    def _admit(self, pipeline: Pipeline, gate: LeanStep, options: Any) -> _Lean | _Gated | Pipeline | Request:
        """`start` on a pipeline with one step awake that can act without a `Call` (`Pipeline.gate`):
        the call admitted by it (`_Gated`), or lean when it does nothing around this call; else the
        pipeline, for the full path (a request costlens does not record), or the request, for the
        full path to begin (one the step could not admit here: a budget full, a price unknown, a
        ledger down; the step did nothing, and left on the request what the full path needs so as
        not to ask its ledger again). The request is read as the full path reads it
        (`parse_request`: the step may count its prompt); an answer that `lean_response` does not
        read (another operation's) is read by the full path, after."""
        # the start, as a `Call` has it: the admission is part of the call's time
        started_ns, start_ns = time.time_ns(), time.perf_counter_ns()
        request = self.adapter.parse_request(options, stream=False, provider=self.provider, tags=self.tags)
        if request is None:
            return pipeline
        context = read_tags()
        tags = {**self.tags, **context} if context else self.tags
        admitted = gate.admit_lean(request, tags)
        if admitted is None:
            return request
        if admitted is False:  # (no budget applies to this call: a lean call, read as one)
            return _Lean(pipeline, request.operation, request.model, request.body, self.tags)
        if request.body is not options.json_data:  # (capped: `Call.rewrite`, as the full path's `_start`)
            try:
                self.adapter.write_back(request, options)
            except Exception as exc:
                internal_error("changing the request", exc)
        return _Gated(pipeline, gate, request, tags, started_ns, start_ns, admitted)

    def start_stream(self, options: Any) -> LeanStream | Call | Pipeline | None:
        """As `start`, for a stream: begun without a `Call` when the pipeline is `lean` (or `gate`s
        it: the step admits it as a plain call) and the adapter reads this kind of stream itself
        (`LeanStream`); its body asks for the usage."""
        try:
            pipeline = self.pipeline_of()
            lean_now = pipeline.lean  # (asked once: it asks each step whether it is idle)
            gate = None if lean_now else pipeline.gate()
            if (gate is None and not lean_now) or not self.streams:
                return pipeline
            adapter = self.adapter
            request = adapter.parse_request(options, stream=True, provider=self.provider, tags=self.tags)
            if request is None or request.operation not in self.streams:
                return pipeline  # (`_start` reads it again: rare requests only)
            context = read_tags() or None
            admitted = None
            if gate is not None:
                # the start, as a `Call` has it (and `_admit`): the admission is part of the stream's time
                started = time.time_ns(), time.perf_counter_ns()
                admitted = gate.admit_lean(request, {**self.tags, **context} if context else self.tags)
                if admitted is False:  # (no budget applies to this stream: a lean one)
                    gate = admitted = None
            if gate is None or admitted is not None:
                lean = LeanStream(pipeline, request, self.tags, context, gate, admitted)
                if admitted is not None:
                    lean.started_ns, lean.start_ns = started
        except Exception as exc:
            internal_error("preparing to record an LLM call", exc)
            return None
        if gate is not None and admitted is None:  # (the step could not admit it: as in `start`)
            return _begin(adapter, pipeline, request, options)
        if request.body is not getattr(options, "json_data", None):
            try:
                adapter.write_back(request, options)
            except Exception as exc:
                internal_error("changing the request", exc)
        return lean

    def done(
        self,
        lean: _Lean | _Gated | LeanStream,
        options: Any,
        result: Any,
        hook: Callable[[Adapter, StreamCall, Any], Any],
    ) -> Any:
        """What the wrapper returns for a lean call that answered. A plain call that ended well with
        its usage: its facts go to the pipeline; a response that needs more (no or malformed usage,
        another type) goes the full path (`_full`). A stream: hooked (`hook`: `_hook_sync_stream`
        or `_hook_async_stream`); an answer that is not a stream is read by the full path."""
        if not isinstance(lean, _Lean):  # (the plain call, the usual one, is told with one test)
            if isinstance(lean, _Gated):
                return self._done_gated(lean, result)
            if _is_stream(result):
                return hook(self.adapter, lean, result)
            _complete_response(self.adapter, lean.as_call(), result, self.quick)
            return result
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
                    context=lean.context,
                )
                return result
        except Exception as exc:
            internal_error("recording an LLM call", exc)
        call = self._full(lean, options)
        if call is not None:
            _complete_response(self.adapter, call, result, self.quick)
        return result

    def _done_gated(self, gated: _Gated, result: Any) -> Any:
        """`done` for a call the pipeline's gate admitted: one that ended well with its usage is
        priced, settled and handed over (`Pipeline.record_gated`); any other answer is read by the
        full path, as the `Call` it becomes (`_Gated.as_call`)."""
        request = gated.request
        try:
            read = self.lean_response(result, self.provider)
            if read is not None:
                response_model, tier, counts = read
                usage = usage_of_ints(*counts) if isinstance(counts, tuple) else counts
                tier = tier or requested_tier(request.body)
        except Exception as exc:
            internal_error("recording an LLM call", exc)
            read = None
        if read is None:
            _complete_response(self.adapter, gated.as_call(), result, self.quick)
            return result
        gated.pipeline.record_gated(  # (never raises: settled once, here)
            gated.gate, gated.admitted, request, gated.tags, gated.started_ns,
            time.perf_counter_ns() - gated.start_ns, response_model, usage, tier,
        )  # fmt: skip
        return result

    def failed(self, lean: _Lean | _Gated | LeanStream, options: Any, error: BaseException) -> None:
        """A lean call that raised: recorded by the full path, as any failed call."""
        if isinstance(lean, LeanStream):
            lean.finish(error)
            return
        if isinstance(lean, _Gated):
            lean.as_call().finish(error)
            return
        call = self._full(lean, options)
        if call is not None:
            call.finish(error)

    def _full(self, lean: _Lean, options: Any) -> Call | None:
        """The `Call` a lean call becomes: begun as `_start` would have, at the call's start."""
        call = _start(self.pipeline_of, self.adapter, self.provider, self.tags, options, False)
        if call is not None:
            call.started_at, call.start_ns = utc_of_ns(lean.started_ns), lean.start_ns
        return call


class LeanStream:
    """A lean pipeline's stream in flight: its request, start, and what its events said."""

    __slots__ = (
        "admitted",
        "context",
        "finished",
        "first_event_ns",
        "gate",
        "output_missing",
        "pipeline",
        "request",
        "response_model",
        "service_tier",
        "start_ns",
        "started_ns",
        "tags",
        "text_later",
        "usage",
        "usage_invalid",
    )

    def __init__(
        self,
        pipeline: Pipeline,
        request: Request,
        tags: dict[str, str],
        context: Mapping[str, str] | None = None,
        gate: LeanStep | None = None,
        admitted: Any = None,
    ) -> None:
        # the client's tags and a `costlens.tags` block's, merged where the record is built (as `_Lean`)
        self.pipeline, self.request, self.tags, self.context = pipeline, request, tags, context
        # a stream the pipeline's gate admitted (`Pipeline.gate`: budgets), settled when it ends
        self.gate, self.admitted = gate, admitted
        self.started_ns = time.time_ns()  # (a `datetime` is made with the record)
        self.start_ns = time.perf_counter_ns()
        self.first_event_ns: int | None = None
        self.response_model: str | None = None
        self.service_tier: str | None = None  # (as answered; the one asked for is read at the end)
        self.usage: Usage | None = None
        self.output_missing = self.usage_invalid = self.finished = False
        self.text_later: Callable[[], list[str]] | None = None

    def event_seen(self) -> None:
        if self.first_event_ns is None:
            self.first_event_ns = time.perf_counter_ns()

    def set_facts(self, response_model: object, service_tier: object) -> None:
        """As `Call.set_facts`: None or empty leaves a fact unchanged."""
        if response_model:
            self.response_model = response_model if type(response_model) is str else str(response_model)
        if service_tier:
            self.service_tier = service_tier if type(service_tier) is str else str(service_tier)

    def set_usage(self, build: Callable[..., Usage | None], *args: Any) -> None:
        """As `Call.set_usage`."""
        try:
            self.usage = build(*args)
            self.output_missing = False
        except OutputMissing as partial:
            self.usage, self.output_missing = partial.usage, True
        except (ValueError, TypeError, AttributeError) as exc:
            self.usage_invalid = True
            usage_refused(self.request.provider, self.request.model, exc)

    def finish(self, error: BaseException | None = None) -> None:
        """End the stream once: handed over when it ended well with its usage, else as a `Call`."""
        if self.finished:
            return
        self.finished = True
        usage = self.usage
        if error is None and usage is not None and not self.output_missing:
            request, first = self.request, self.first_event_ns
            end_ns = time.perf_counter_ns()
            self.text_later = None  # (it holds this object and the events: a cycle, broken here)
            if self.gate is not None:  # priced, settled by the step, handed over
                context = self.context
                self.pipeline.record_gated(  # (never raises: a `Call` now would settle it twice)
                    self.gate, self.admitted, request, {**self.tags, **context} if context else self.tags,
                    self.started_ns, end_ns - self.start_ns, self.response_model, usage,
                    self.service_tier or requested_tier(request.body),
                    ttft_ns=None if first is None else first - self.start_ns, stream=True,
                )  # fmt: skip
                return
            try:
                self.pipeline.record_later(
                    request.provider,
                    request.operation,
                    request.model,
                    self.started_ns,
                    end_ns - self.start_ns,
                    self.response_model,
                    usage,
                    self.service_tier or requested_tier(request.body),
                    self.tags,
                    ttft_ns=None if first is None else first - self.start_ns,
                    stream=True,
                    context=self.context,
                )
                return
            except Exception as exc:
                internal_error("recording an LLM call", exc)
        call = self.as_call()
        self.text_later = None
        self.pipeline.finish(call, error)

    def as_call(self) -> Call:
        """The `Call` this stream is, begun at its start, with what its events said so far."""
        context = self.context
        tags = {**self.tags, **context} if context else self.tags
        if self.gate is not None:  # admitted already: the step's after-half waits for its end
            call = self.pipeline.resume_gated(
                self.gate, self.admitted, self.request, tags, self.started_ns, self.start_ns
            )
        else:
            call = Call(self.pipeline, self.request, tags)
            call.started_at, call.start_ns = utc_of_ns(self.started_ns), self.start_ns
        call.first_event_ns = self.first_event_ns
        call.set_facts(self.response_model, self.service_tier)
        call.usage, call.output_missing, call.usage_invalid = (
            self.usage,
            self.output_missing,
            self.usage_invalid,
        )
        later = self.text_later
        if later is not None:  # (the reader's events, parsed into this stand-in's facts: copied over)

            def text_later() -> list[str]:
                texts = later()
                call.set_facts(self.response_model, self.service_tier)
                return texts

            call.text_later = text_later
        return call
