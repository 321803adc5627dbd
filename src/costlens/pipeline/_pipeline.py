"""`Pipeline`: a call's life. `start(request)` runs tags and the steps' before-halves and returns the
`Call`; the caller makes the call; `finish(call, error)` settles usage (or a counted estimate) and
price, runs the steps' after-halves in reverse, then hands the record to the sinks.

A sink with a `defer` method (the recorder's `record_sink`) may build records itself, later: when it
is the only sink and keeps no text, a call that ended well with its usage and whose record no step
read is handed to it as facts (`Call.ended`), and `ended[0](ended)` builds and prices the record
(`ended[0].rows(facts)` many records at once, as rows, for a store that takes rows: SQLite's).
The recorder does that on its writer thread, a batch at a time: measured under 16 threads and 100
asyncio tasks, building and pricing each record between the SDK's calls cost about 20 µs more per
call than the same work done together, where the CPU's caches stay warm. A failure there is logged
(and, in strict mode, raised by the next flush) and the record is kept, unpriced.

A pipeline is immutable: `with_step` / `with_sinks` return a new one, so the process-wide pipeline
(kept by `costlens.config`) is swapped in one assignment and a call in flight ends on the pipeline
it started on. A test builds its own pipeline and touches no global.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from costlens._errors import ConfigError, internal_error, late_error
from costlens.context import read_tags
from costlens.pipeline._call import (
    _STARTED_AT,
    UNPRICED,
    Call,
    Ended,
    made_budgets,
    priced_with,
    record_of,
    record_of_ended,
    utc_of_ns,
)
from costlens.pipeline._price import Pricer
from costlens.pipeline._request import Request
from costlens.pipeline._step import SLOTS, LeanStep, Step
from costlens.usage import CallRecord, Usage, micros_of, new_ids, usage_of_ints

__all__ = ["Pipeline", "Sink"]

#: Receives every finished call's record (the recorder is one); must not raise.
Sink = Callable[[CallRecord], None]


class Pipeline:
    """Steps in their slots, and the sinks that receive every finished record."""

    __slots__ = (
        "_content_chars", "_defer", "_flows", "_gate", "_gate_others", "_idle", "_late", "_lean", "_pricer",
        "_sinks", "_steps",
    )  # fmt: skip

    def __init__(
        self,
        steps: Mapping[str, Step | None] | None = None,
        sinks: Sequence[Sink] = (),
        *,
        content_chars: int = 0,
    ) -> None:
        """`content_chars` > 0 keeps the prompt and answer text on each record, each side cut to that
        many characters (`store_content=True`); 0 keeps none and extracts no text for it."""
        steps = dict(steps or {})
        unknown = sorted(set(steps) - set(SLOTS))
        if unknown:
            raise ConfigError(f"unknown pipeline slot(s) {unknown}; the slots are {list(SLOTS)}")
        self._steps: dict[str, Step] = {s: step for s in SLOTS if (step := steps.get(s)) is not None}
        self._flows = tuple(step.flow for step in self._steps.values())
        self._sinks = tuple(sinks)
        self._pricer = Pricer()
        if content_chars < 0:
            raise ConfigError(f"content_chars must be 0 (keep no text) or positive, got {content_chars}")
        self._content_chars = content_chars
        # the sink that builds records later, if it is the only one and no text is kept (see above)
        defer = getattr(self._sinks[0], "defer", None) if len(self._sinks) == 1 else None
        self._defer: Callable[[Ended], None] | None = defer if callable(defer) and not content_chars else None
        self._late = _Builder(self._late_record, self._late_rows)  # (made once: every deferred call holds it)
        # One deferring sink, no text kept, and no step or only steps that can say they are idle: a
        # call that ends well with its usage then needs no `Call` at all (`lean`, `record_later`).
        idle = [getattr(step, "is_idle", None) for step in self._steps.values()]
        self._idle: tuple[Callable[[], bool], ...] = tuple(check for check in idle if callable(check))
        self._lean = self._defer if len(self._idle) == len(idle) else None
        # One step that can act around a call without a `Call` (`LeanStep`: budgets), every other
        # one able to say it is idle: calls that only that step acts on skip the `Call` too (`gate`).
        gates: list[Any] = [s for s in self._steps.values() if callable(getattr(s, "admit_lean", None))]
        self._gate: LeanStep | None = None
        self._gate_others: tuple[Callable[[], bool], ...] = ()
        if len(gates) == 1 and self._defer is not None:
            others = [getattr(step, "is_idle", None) for step in self._steps.values() if step is not gates[0]]
            if all(callable(check) for check in others):
                self._gate, self._gate_others = gates[0], tuple(c for c in others if c is not None)

    # -- building -------------------------------------------------------------------------------

    @property
    def steps(self) -> dict[str, Step]:
        return dict(self._steps)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return self._sinks

    def step(self, slot: str) -> Step | None:
        return self._steps.get(slot)

    def with_step(self, slot: str, step: Step | None) -> Pipeline:
        """A copy with `step` in `slot` (None empties the slot)."""
        return Pipeline({**self._steps, slot: step}, self._sinks, content_chars=self._content_chars)

    def with_sinks(self, sinks: Sequence[Sink]) -> Pipeline:
        return Pipeline(self._steps, sinks, content_chars=self._content_chars)

    @property
    def content_chars(self) -> int:
        return self._content_chars

    def with_content(self, max_chars: int) -> Pipeline:
        """A copy that keeps prompt and answer text (each cut to `max_chars`; 0 keeps none)."""
        return Pipeline(self._steps, self._sinks, content_chars=max_chars)

    # -- a call's life --------------------------------------------------------------------------

    @property
    def lean(self) -> bool:
        """No step acts around a call now (none, or all idle: a budget step with no budgets), and
        records are built later (`record_later`): an adapter may then skip the `Call` and hand over
        the facts of a call that ended well with its usage. Asked by every call (steps may wake)."""
        if self._lean is None:
            return False
        for is_idle in self._idle:  # noqa: SIM110 (`all()` of a generator: a frame more per call)
            if not is_idle():
                return False
        return True

    def record_later(
        self,
        provider: str,
        operation: str,
        model: str,
        started_ns: int,
        latency_ns: int,
        response_model: str | None,
        usage: Usage | tuple[int, ...],
        service_tier: str | None,
        tags: Mapping[str, str],
        *,
        ttft_ns: int | None = None,
        stream: bool = False,
        context: Mapping[str, str] | None = None,
    ) -> None:
        """What `finish` does for a call that ended well with its usage, on a `lean` pipeline: its
        facts, as `Call.ended` gives them, go to the deferring sink. Every tracked call of a process
        with no budgets or router ends here; `start` and a `Call` (two objects of ~20 fields, ~480
        bytecodes in all) are then left out (a test checks the records are the same). `usage` may
        be the counts `usage_of_ints` takes, checked already, and the start is `time.time_ns()`:
        the record's builder makes the `Usage` and the `datetime` (on the recorder's writer
        thread, a batch at a time). A stream gives its time to its first event (`ttft_ns`, from
        its start) too.

        The record's tags are made where it is built: `tags` (read then: a mapping nobody changes,
        such as a tracked client's own) overridden by `context` (a `costlens.tags` block's). The
        counts go inline, after the facts `Call.ended` gives (its usage slot None), and the context
        before them. Each object made here per call, a tuple of counts or a dict of tags, would be
        kept until the recorder writes the call, counted towards the garbage collector's next run
        (see `costlens.recorder`)."""
        defer = self._lean
        if defer is None:
            raise RuntimeError("record_later() needs a lean pipeline (see Pipeline.lean)")
        try:
            if type(usage) is tuple:
                defer(
                    (self._late, provider, operation, model, started_ns, latency_ns, ttft_ns, response_model,
                     None, stream, service_tier, tags, None, model, None, context, *usage)
                )  # fmt: skip
            else:
                defer(
                    (self._late, provider, operation, model, started_ns, latency_ns, ttft_ns, response_model,
                     usage, stream, service_tier, tags, None, model, None, context)
                )  # fmt: skip
        except Exception as exc:
            internal_error("recording an LLM call", exc)

    def gate(self) -> LeanStep | None:
        """The step a call passes through on the lean path when `lean` is False: on a pipeline with
        one deferring sink and no text kept, the one step awake that can act around a call without
        a `Call` (`LeanStep`: a budget step with budgets), every other step idle; else None. Its
        calls are begun with `admit_lean` (the adapter's wrapper does it), then end in
        `record_gated`, or become a `Call` (`resume_gated`). Asked by every call that is not lean."""
        gate = self._gate
        if gate is None:
            return None
        for is_idle in self._gate_others:
            if not is_idle():
                return None
        return gate

    def record_gated(
        self,
        gate: LeanStep,
        admitted: Any,
        request: Request,
        tags: Mapping[str, str],
        started_ns: int,
        latency_ns: int,
        response_model: str | None,
        usage: Usage,
        service_tier: str | None,
        *,
        ttft_ns: int | None = None,
        stream: bool = False,
    ) -> None:
        """What `finish` does for a call that `gate` admitted (`admit_lean`) and that ended well with
        its usage (a stream: `stream`, with `ttft_ns`, the time to its first event): priced,
        settled by the step (`settle_lean`), then its facts, as `Call.ended`
        gives them, go to the deferring sink (the record's budget entries made by `admitted`,
        there). The `Call`, `start`, the flow's generator and the adapter's full read are left
        out (two nested budgets: 2,516 -> 2,068 bytecodes on the caller's thread, ~6 µs in place).
        Never raises: the call is over (a failure is reported, and the record kept)."""
        started_at = utc_of_ns(started_ns)
        provider, model = request.provider, request.model
        try:
            priced = self._pricer.price_of(provider, response_model, model, service_tier, started_at, usage)
        except Exception as exc:
            priced = UNPRICED
            internal_error("pricing an LLM call", exc)
        try:
            gate.settle_lean(admitted, priced[0], request)
        except Exception as exc:
            internal_error("a pipeline step after the call", exc)
        defer: Callable[[Ended], None] = self._defer  # type: ignore[assignment]  # (a gate has one)
        try:
            defer(
                (self._late, provider, request.operation, model, started_at, latency_ns, ttft_ns,
                 response_model, usage, stream, service_tier, tags, admitted, model, priced)
            )  # fmt: skip
        except Exception as exc:
            internal_error("recording an LLM call", exc)

    def resume_gated(
        self,
        gate: LeanStep,
        admitted: Any,
        request: Request,
        tags: Mapping[str, str],
        started_ns: int,
        start_ns: int,
    ) -> Call:
        """The `Call` a call admitted by `gate` becomes (it failed, or its answer needs the full
        path), as `start` would have begun it: the step's after-half waits for its end
        (`admitted_flow`), and `finish` ends it."""
        call = Call(self, request, tags)
        call.started_at, call.start_ns = utc_of_ns(started_ns), start_ns
        flow = gate.admitted_flow(admitted, call)
        if next(flow, _DONE) is not _DONE:  # (to its `yield`)
            call.flows = (flow,)
        return call

    def start(self, request: Request) -> Call:
        """Tags (the request's, overridden by `costlens.tags` blocks), then each step's before-half.

        A step that raises refuses the call: it is recorded as blocked, the steps that ran already
        see the error, and the exception propagates to the caller.
        """
        context = read_tags()
        tags = {**request.tags, **context} if context else request.tags
        call = Call(self, request, tags)
        call.want_text = self._content_chars > 0
        for flow in self._flows:
            gen = flow(call)
            try:
                if next(gen, _DONE) is _DONE:
                    continue  # nothing to do after the call
            except BaseException as exc:
                call.block(exc)
                self._after(call, exc)
                self._emit(call.record)
                raise
            call.flows = (*call.flows, gen)
        return call

    def finish(self, call: Call, error: BaseException | None = None) -> None:
        """End the call once: timing, usage (or a counted estimate), price, after-halves, sinks."""
        if call.finished:
            return
        call.finished = True
        defer = self._defer
        if defer is not None and error is None and call.ended_plainly:
            self._finish_plainly(call, defer)
            return
        try:
            later, call.text_later = call.text_later, None  # (what it holds is freed with it)
            if later is not None and (
                call.usage is None or call.output_missing or call.want_text or call.keep_response
            ):
                call.text.extend(later())
            _complete(call, error, self._pricer)
            if self._content_chars:
                from costlens.pipeline._content import content_of

                call.record.content = content_of(call.request, call.text, self._content_chars)
        except Exception as exc:
            internal_error("recording an LLM call", exc)
        # (`_after` and `_emit` inlined: every tracked call ends here, and a call costs frames)
        if call.flows:
            self._after(call, error)
        record = call.record
        for sink in self._sinks:
            try:
                sink(record)
            except Exception as exc:
                internal_error("recording an LLM call", exc)

    def _finish_plainly(self, call: Call, defer: Callable[[Ended], None]) -> None:
        """A call that ended well with its usage, no record built: its facts go to the deferring
        sink. Steps that wait for its end read its price on the call (`call.cost_nanousd`), so it is
        priced first; one that reads `call.record` then gets it whole, and the sinks get it as usual."""
        call.text_later = None  # (what it holds is freed with it)
        call.end_ns = time.perf_counter_ns()
        if call.flows:
            request, usage = call.request, call.usage
            assert usage is not None  # (`ended_plainly`)
            try:
                call.priced = self._pricer.price_of(
                    request.provider,
                    call.response_model,
                    request.state.get("priced_as") or request.model,
                    call.service_tier,
                    call.started_at,
                    usage,
                )
            except Exception as exc:
                call.priced = (None, False, "")
                internal_error("pricing an LLM call", exc)
            self._after(call, None)
            if call.has_record:  # a step read it: built whole, priced (`Call.record`)
                self._emit(call.record)
                return
        try:
            defer(call.ended(self._late, call.end_ns))
        except Exception as exc:
            internal_error("recording an LLM call", exc)

    def _late_record(self, ended: Ended) -> CallRecord:
        """The record of `Call.ended`'s facts, priced (on the thread of the sink that deferred it:
        a failure there is reported by `late_error`, and the record kept, its price unknown)."""
        if type(ended[_STARTED_AT]) is int:  # a lean call's (`record_later`): its start in ns
            return self._lean_record(ended)
        to_price = priced_with(ended)
        if to_price is None:
            return record_of_ended(ended)
        try:  # (priced before the record is made: its three price fields are then set once)
            priced = self._pricer.price_of(*to_price)
        except Exception as exc:
            priced = UNPRICED
            late_error("pricing an LLM call", exc)
        return record_of_ended(ended, priced)

    def _lean_record(self, ended: Ended) -> CallRecord:
        """`_late_record` of a lean call's facts (`record_later`), read as they are: its `datetime`,
        its `Usage` (from the counts inline) and its merged tags made here, then priced, with no
        tuple of facts rebuilt in between (every record of a process without budgets is made so)."""
        (_, provider, operation, model, started_ns, latency_ns, ttft_ns, response_model, usage, stream, tier,
         tags, budgets, priced_as, priced, context, *counts) = ended  # fmt: skip
        started_at = utc_of_ns(started_ns)
        if usage is None:
            usage = usage_of_ints(*counts)
        if context:
            tags = {**tags, **context}
        if priced is None:
            try:
                priced = self._pricer.price_of(provider, response_model, priced_as, tier, started_at, usage)
            except Exception as exc:
                priced = UNPRICED
                late_error("pricing an LLM call", exc)
        return record_of(
            provider, operation, model, started_at, latency_ns, ttft_ns, response_model, usage, stream, tier,
            tags, budgets, priced,
        )  # fmt: skip

    def _late_rows(self, facts: Sequence[Ended]) -> tuple[list[tuple[Any, ...]], int]:
        """The records of deferred calls' facts as rows (`costlens.usage.ROW_FIELDS`), for a store
        that takes rows, and how many could not be made (each reported): made from the facts here,
        as `_late_record` makes the record, with no record object and, for a lean call, no
        `datetime` (a test checks each row is `record_row` of the record `ended[0](ended)` makes).
        One loop for the batch: making a record per call, which the store then read back field by
        field, and the calls between, took ~1.9 µs more per call on the recorder's thread."""
        rows: list[tuple[Any, ...]] = []
        failed = 0
        price_of = self._pricer.price_of
        ids = new_ids(len(facts))
        for number, ended in enumerate(facts):
            try:
                (_, provider, operation, model, started, latency_ns, ttft_ns, response_model, usage, stream,
                 tier, tags, budgets, priced_as, priced, *lean) = ended  # fmt: skip
                if type(started) is int:  # a lean call's (`record_later`): its start in ns, then inline
                    started_us = started // 1000  # its context and, unless it holds a `Usage`, its counts
                    if usage is None:
                        usage = usage_of_ints(*lean[1:])
                    if lean[0]:
                        tags = {**tags, **lean[0]}
                else:  # `Call.ended`'s: its start a `datetime`
                    started_us = micros_of(started)
                if priced is None:
                    try:
                        when = utc_of_ns(started) if type(started) is int else started
                        priced = price_of(provider, response_model, priced_as, tier, when, usage)
                    except Exception as exc:
                        priced = UNPRICED
                        late_error("pricing an LLM call", exc)
                cost, known, version = priced
                if budgets is not None:  # (as `record_of`: the entries, or the function that makes them)
                    budgets = (budgets if type(budgets) is list else made_budgets(budgets)) or None
                rows.append(
                    (provider, operation, model, response_model, known, version, "ok", None, None, stream,
                     tier, tags, ids[number], started_us, usage.input_tokens, usage.output_tokens,
                     usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens, cost, 0,
                     usage.cache_write_1h_tokens, usage.input_audio_tokens, usage.output_audio_tokens,
                     usage.citation_tokens, usage.web_search_requests, usage.file_search_requests,
                     started_us + latency_ns // 1000, latency_ns / 1e6,
                     None if ttft_ns is None else ttft_ns / 1e6, None, None, None, budgets, None)
                )  # fmt: skip
            except Exception as exc:
                failed += 1
                late_error("building a call record", exc)
        return rows, failed

    def _after(self, call: Call, error: BaseException | None) -> None:
        flows = call.flows
        if not flows:  # no step waits for the call's end (no budgets, no router): nothing to swap
            return
        call.flows = ()
        for gen in reversed(flows):
            _resume(gen, error)

    def _emit(self, record: CallRecord) -> None:
        for sink in self._sinks:
            try:
                sink(record)
            except Exception as exc:
                internal_error("recording an LLM call", exc)


class _Builder:
    """Slot 0 of a deferred call's facts (`Call.ended`): `ended[0](ended)` builds the record;
    `ended[0].rows(facts)` the records of many calls' facts as rows, and how many failed
    (`Pipeline._late_rows`), which the recorder asks for when its store takes rows (`append_rows`)."""

    __slots__ = ("_record", "rows")

    def __init__(
        self,
        record: Callable[[Ended], CallRecord],
        rows: Callable[[Sequence[Ended]], tuple[list[tuple[Any, ...]], int]],
    ) -> None:
        self._record = record
        self.rows = rows

    def __call__(self, ended: Ended) -> CallRecord:
        return self._record(ended)


#: What `next(step, _DONE)` gives for a step that has ended: unlike a bare `next`, it makes no
#: `StopIteration` (an exception object and its unwinding, on every budgeted call)
_DONE: Any = object()


def _resume(gen: Generator[None, None, None], error: BaseException | None) -> None:
    """Run a step's after-half: resumed normally, or with the call's error thrown in at its `yield`."""
    traceback = error.__traceback__ if error is not None else None
    try:
        if error is None:
            if next(gen, _DONE) is _DONE:  # (a default: no StopIteration is made, every call ends here)
                return
        else:
            gen.throw(error)
    except StopIteration:
        return
    except BaseException as exc:
        if exc is not error:
            internal_error("a pipeline step after the call", exc)
        return
    finally:
        if error is not None:
            error.__traceback__ = traceback  # the caller's traceback, without the step's frames
    gen.close()
    internal_error("a pipeline step after the call", RuntimeError(f"step {gen!r} yielded twice"))


def _complete(call: Call, error: BaseException | None, pricer: Pricer) -> None:
    end_ns = time.perf_counter_ns()
    usage = call.usage
    request = call.request
    if error is None and usage is not None and not call.output_missing and not call.has_record:
        # the common call (it ended well with its usage, no step read its record): one constructor
        record = call.end_record(end_ns)
        pricer.price(record, request.state.get("priced_as") or request.model, usage)
        return
    record = call.record
    record.latency_ms = (end_ns - call.start_ns) / 1e6
    record.ended_at = datetime.now(UTC)
    if call.first_event_ns is not None:
        record.ttft_ms = (call.first_event_ns - call.start_ns) / 1e6
    if error is not None:
        record.status = "error"
        record.error_type = type(error).__name__
        record.http_status = _http_status(error)
    if usage is None:
        if error is not None and not call.has_text:
            # The provider refused or failed before answering: nothing was billed, cost is exactly 0.
            record.cost_nanousd = 0
            record.price_known = True
            return
        usage = _counted(call, None)
        record.estimated = True
    elif call.output_missing:
        usage = _counted(call, usage)
        record.estimated = True
    record.set_usage(usage)
    # a step that sends an alias (a deployment name) says which model it stands for
    pricer.price(record, request.state.get("priced_as") or request.model, usage)


def _counted(call: Call, reported: Usage | None) -> Usage:
    """Tokens counted offline, for a call whose usage (or output count) never arrived."""
    from costlens.pipeline._estimate import count_input
    from costlens.tokens import count_text

    model = call.response_model or call.request.model
    output = count_text("".join(call.text), model).tokens
    if reported is not None:
        return Usage(
            reported.input_tokens,
            max(output, reported.reasoning_tokens),
            reported.cache_read_tokens,
            reported.cache_write_tokens,
            reported.reasoning_tokens,
        )
    return Usage(input_tokens=count_input(call.request), output_tokens=output)


def _http_status(error: BaseException) -> int | None:
    status: Any = getattr(error, "status_code", None)
    return status if isinstance(status, int) else None
