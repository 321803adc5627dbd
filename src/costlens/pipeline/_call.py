"""`Call`: one LLM call in flight, from `Pipeline.start` to `Pipeline.finish`.

Its methods are the only writers of the request body (`rewrite`), the route (`reroute`) and the
status (`block`), so a step never edits SDK objects or another step's fields behind its back.
Streaming adapters fill `usage`, `text` and the response facts as events pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from costlens._errors import late_error
from costlens.pipeline._price import Priced
from costlens.pipeline._request import Request, requested_tier
from costlens.usage import CallRecord, Usage, _new_id, _slots_twin

__all__ = [
    "UNPRICED",
    "Call",
    "Ended",
    "OutputMissing",
    "StreamCall",
    "made_budgets",
    "priced_with",
    "record_of",
    "record_of_ended",
    "usage_refused",
    "utc_of_ns",
]

#: A call that ended well, as facts (`Call.ended`): (builder, provider, operation, request model,
#: started at, latency ns, time to first event ns or None, response model, usage, stream, service
#: tier, tags, budget entries (a list, None, or a function that makes the list: `note_budgets_later`),
#: model to price, its price when it is known already or None).
#: A plain tuple: it is made on every tracked call. A lean call's (`Pipeline.record_later`) has its
#: start in ns, the client's tags (merged where the record is built), and goes on: a `costlens.tags`
#: block's tags or None, then its counts when its usage slot is None.
Ended = tuple[Any, ...]
_PROVIDER, _STARTED_AT, _RESPONSE_MODEL, _USAGE, _TAGS, _PRICED_AS, _PRICED = 1, 4, 7, 8, 11, 13, 14
_TIER, _CONTEXT, _COUNTS = 10, 15, 16

log = logging.getLogger("costlens")


class OutputMissing(ValueError):
    """Raised by a usage reader when the provider reported input tokens but no output count:
    `usage` holds what was reported; the output is then counted and the record flagged estimated."""

    def __init__(self, usage: Usage) -> None:
        super().__init__("usage without an output token count")
        self.usage = usage


class Finisher(Protocol):
    """What a call needs of the pipeline that started it (`Pipeline` is one)."""

    def finish(self, call: Call, error: BaseException | None = None) -> None: ...


class StreamCall(Protocol):
    """What a stream reader that reads below the SDK's chunks (an adapter's `prepare_stream`) needs
    of the call it fills: a `Call`, or a lean stream's stand-in for one (`costlens.instrument`)."""

    request: Request
    first_event_ns: int | None
    response_model: str | None
    usage: Usage | None
    text_later: Callable[[], list[str]] | None
    finished: bool

    def event_seen(self) -> None: ...

    def set_facts(self, response_model: object, service_tier: object) -> None: ...

    def set_usage(self, build: Callable[..., Usage | None], *args: Any) -> None: ...

    def finish(self, error: BaseException | None = None) -> None: ...


def usage_refused(provider: str, model: str, exc: Exception) -> None:
    """Say that a provider's usage was malformed (the call's tokens are counted instead)."""
    log.warning(
        "costlens: %s returned invalid usage for %s (%s); counting tokens instead", provider, model, exc
    )


class Call:
    """A call in flight. `record` is the `CallRecord` it becomes; `request` what is sent."""

    __slots__ = (
        "__weakref__",
        "_budgets",
        "_budgets_later",
        "_record",
        "_tags",
        "_text",
        "end_ns",
        "finished",
        "first_event_ns",
        "flows",
        "keep_response",
        "next_attempt",
        "output_missing",
        "pipeline",
        "priced",
        "request",
        "response",
        "response_model",
        "service_tier",
        "start_ns",
        "started_at",
        "text_later",
        "usage",
        "usage_invalid",
        "want_text",
    )

    def __init__(self, pipeline: Finisher, request: Request, tags: Mapping[str, str]) -> None:
        self.pipeline = pipeline
        self.request = request
        # The record is built when something first reads it (a step), else when the call ends: an
        # async server holds a hundred calls in flight, and each object they keep alive across the
        # `await` is traversed by every garbage collection meanwhile (measured under 100 asyncio
        # tasks: the collector took a third of what tracking added over an in-memory transport, a
        # tenth over real sockets).
        self._record: CallRecord | None = None
        self._tags = tags
        self._budgets: list[dict[str, Any]] | None = None  # `note_budgets` before the record exists
        self._budgets_later: Callable[[], list[dict[str, Any]]] | None = None  # `note_budgets_later`
        self.started_at = datetime.now(UTC)
        self.response_model: str | None = None  # as the provider answered: `apply_facts`
        self.service_tier: str | None = requested_tier(request.body)
        self.start_ns = time.perf_counter_ns()
        self.first_event_ns: int | None = None
        # A call that ended well with its usage, while steps wait for its end: its end and price,
        # kept here for them (`cost_nanousd`) while its record waits (see `costlens.pipeline`).
        self.end_ns = 0
        self.priced: Priced | None = None
        self.usage: Usage | None = None
        self.usage_invalid = False
        self.output_missing = False
        self._text: list[str] | None = None
        # A stream reader that kept its raw events gives the answer's text only when it is needed
        # (usage missing, content kept, a verifier): the common call never parses them twice.
        self.text_later: Callable[[], list[str]] | None = None
        self.finished = False
        self.flows: tuple[Generator[None, None, None], ...] = ()  # the steps waiting for the end
        self.next_attempt: tuple[Request, float] | None = None
        self.keep_response = False  # a step that checks the answer asks for it (a cascade's verifier)
        self.response: Any = None  # the provider's response, kept only when asked for
        self.want_text = False  # the answer's text is kept (store_content=True)

    @property
    def record(self) -> CallRecord:
        """The `CallRecord` this call becomes (built on first use; complete once the call ended)."""
        record = self._record
        if record is None and self.priced is not None:  # ended, priced: every fact is known
            record = self._record = record_of_ended(self.ended(None, self.end_ns))
        elif record is None:
            if self._budgets_later is not None:
                self._budgets_now()
            request = self.request
            record = self._record = CallRecord(
                request.provider,
                request.operation,
                request.model,
                self.started_at,
                response_model=self.response_model,
                stream=request.stream,
                service_tier=self.service_tier,
                tags=dict(self._tags),
                budgets=self._budgets or [],
            )
        return record

    @property
    def cost_nanousd(self) -> int | None:
        """The call's price once it ended (None: unknown), read without building the record."""
        record = self._record
        if record is not None:
            return record.cost_nanousd
        return None if self.priced is None else self.priced[0]

    @property
    def status(self) -> str:
        """`record.status`, read without building the record ("ok" until the record says otherwise)."""
        record = self._record
        return "ok" if record is None else record.status

    @property
    def budget_entries(self) -> list[dict[str, Any]]:
        """`record.budgets`, read without building the record (entries added by `note_budgets`)."""
        record = self._record
        if record is not None:
            return record.budgets
        if self._budgets_later is not None:
            self._budgets_now()
        if self._budgets is None:
            self._budgets = []
        return self._budgets

    @property
    def tags(self) -> Mapping[str, str]:
        """The call's tags (read them here: `record.tags` builds the record before its time)."""
        record = self._record
        return self._tags if record is None else record.tags

    def note_budgets(self, entries: Iterable[dict[str, Any]]) -> None:
        """Add entries to `record.budgets` (kept aside until the record is built)."""
        record = self._record
        if record is not None:
            record.budgets.extend(entries)
            return
        if self._budgets_later is not None:
            self._budgets_now()
        if self._budgets is None:
            self._budgets = list(entries)
        else:
            self._budgets.extend(entries)

    def note_budgets_later(self, make: Callable[[], list[dict[str, Any]]]) -> None:
        """Add the entries `make()` returns to `record.budgets`, made when something reads them: for a
        call whose record is built on the recorder's thread, there (an admitted call's entries are
        dicts that only the record needs; `make` must give them as they stand when it is called)."""
        if self._record is not None:
            self._record.budgets.extend(make())
            return
        if self._budgets_later is not None:
            self._budgets_now()
        self._budgets_later = make

    def _budgets_now(self) -> None:
        make, self._budgets_later = self._budgets_later, None
        if make is not None:
            if self._budgets is None:
                self._budgets = made_budgets(make)
            else:
                self._budgets.extend(made_budgets(make))

    def ended(self, build: Callable[[Ended], CallRecord] | None, end_ns: int) -> Ended:
        """The facts of a call that ended well with its usage and whose record nothing read: what
        `record_of_ended` builds the record from, at once or later (`build` comes first, for
        whoever holds the tuple: a sink that builds it on its own thread)."""
        request = self.request
        first = self.first_event_ns
        start_ns = self.start_ns
        budgets: Any = self._budgets
        if self._budgets_later is not None:  # made by whoever builds the record (notes too: now)
            if budgets:
                self._budgets_now()
            else:
                budgets = self._budgets_later
        return (
            build,
            request.provider,
            request.operation,
            request.model,
            self.started_at,
            end_ns - start_ns,
            None if first is None else first - start_ns,
            self.response_model,
            self.usage,
            request.stream,
            self.service_tier,
            self._tags,  # (copied by whoever builds the record: a dict made here would wait with it)
            budgets,
            request.state.get("priced_as") or request.model,  # (a deployment name: the model it stands for)
            self.priced,
        )

    def end_record(self, end_ns: int) -> CallRecord:
        """The record of a call that ended well with its usage and that nothing read before, built
        now (its price still to be set)."""
        record = self._record = record_of_ended(self.ended(None, end_ns))
        return record

    @property
    def text(self) -> list[str]:
        """The answer's text, as far as it was read (a stream's deltas; a response's text when needed)."""
        text = self._text
        if text is None:
            text = self._text = []
        return text

    @property
    def has_text(self) -> bool:
        return bool(self._text)

    @property
    def ended_plainly(self) -> bool:
        """Usage in (its output count too) and no record built yet: `ended` holds all the record needs."""
        return self.usage is not None and not self.output_missing and self._record is None

    @property
    def has_record(self) -> bool:
        """Whether the record was built already (a step read it)."""
        return self._record is not None

    # -- the writers ----------------------------------------------------------------------------

    def rewrite(self, changes: Mapping[str, Any]) -> None:
        """Change fields of the outgoing body (a new dict: the caller's objects are never mutated)."""
        request = self.request
        request.body = {**request.body, **changes}
        if "model" in changes:
            request.model = str(changes["model"])

    def reroute(self, model: str, policy: str, why: str, **details: Any) -> None:
        """Send the call to `model` instead. `record.request_model` keeps what the caller asked;
        `record.route` says which policy changed it and why."""
        asked = self.record.request_model
        if model != self.request.model:
            self.rewrite({"model": model})
        self.record.route = {"policy": policy, "from": asked, "to": model, "reason": why, **details}

    def note_route(self, **details: Any) -> None:
        """Add facts to the route of a routed call (a verifier's verdict, the attempts' summed cost)."""
        self.record.route = {**(self.record.route or {}), **details}

    def block(self, error: BaseException) -> None:
        """Refuse the call before it is made: `status="blocked"`, cost exactly $0."""
        if self.finished:
            return
        self.finished = True
        record = self.record
        record.latency_ms = (time.perf_counter_ns() - self.start_ns) / 1e6
        record.ended_at = datetime.now(UTC)
        record.status = "blocked"
        record.error_type = type(error).__name__
        record.cost_nanousd = 0
        record.price_known = True

    def retry(self, request: Request, after_s: float = 0.0) -> None:
        """From a step's error path: make another attempt with `request` after `after_s` seconds.
        This call is recorded as the failed attempt it was; the next attempt is a call of its own."""
        self.next_attempt = (request, max(0.0, after_s))

    # -- what the response says -----------------------------------------------------------------

    def set_usage(self, build: Callable[..., Usage | None], *args: Any) -> None:
        """Accept the provider's usage, `build(*args)`, or note that it is malformed (tokens are then
        counted)."""
        try:
            self.usage = build(*args)
            self.output_missing = False  # a later, complete count (a stream's last event) wins
        except OutputMissing as partial:
            self.usage = partial.usage
            self.output_missing = True
        except (ValueError, TypeError, AttributeError) as exc:
            self.usage_invalid = True
            usage_refused(self.record.provider, self.request.model, exc)

    def apply_facts(self, facts: Mapping[str, Any]) -> None:
        """The response's facts: `response_model` and `service_tier` (absent or empty: unchanged)."""
        self.set_facts(facts.get("response_model"), facts.get("service_tier"))

    def set_facts(self, response_model: object, service_tier: object) -> None:
        """`apply_facts`, from the two values (None or empty: unchanged)."""
        if response_model:
            self.response_model = response_model if type(response_model) is str else str(response_model)
        if service_tier:
            self.service_tier = service_tier if type(service_tier) is str else str(service_tier)
        record = self._record
        if record is not None:
            record.response_model, record.service_tier = self.response_model, self.service_tier

    def event_seen(self) -> None:
        """A stream event arrived: the first one sets the time to first token."""
        if self.first_event_ns is None:
            self.first_event_ns = time.perf_counter_ns()

    def finish(self, error: BaseException | None = None) -> None:
        """End the call (idempotent): usage, price, the steps' after-halves, then the sinks."""
        if not self.finished:
            self.pipeline.finish(self, error)


def record_of_ended(ended: Ended, priced: Priced | None = None) -> CallRecord:
    """The `CallRecord` of `Call.ended`'s facts, priced with `priced` (else with the price the facts
    hold, else unpriced).

    Every deferred call's record is made here, on the recorder's thread: filled as a plain object of
    the record's slots, then made a `CallRecord` (as `costlens.usage.usage_of_ints`), which skips the
    constructor's argument binding and default factories (1.8 -> 1.1 µs). Every field is set: a test
    checks the result equals the record the constructor builds from the same facts."""
    (_, provider, operation, model, started_at, latency_ns, ttft_ns, response_model, usage, stream,
     tier, tags, budgets, _, held) = ended  # fmt: skip
    return record_of(
        provider, operation, model, started_at, latency_ns, ttft_ns, response_model, usage, stream, tier,
        tags, budgets, priced or held or UNPRICED,
    )  # fmt: skip


def record_of(
    provider: str,
    operation: str,
    model: str,
    started_at: datetime,
    latency_ns: int,
    ttft_ns: int | None,
    response_model: str | None,
    usage: Usage,
    stream: bool,
    tier: str | None,
    tags: Mapping[str, str],
    budgets: Any,
    priced: Priced,
) -> CallRecord:
    """`record_of_ended`, from the facts themselves (a lean call's builder has them unpacked)."""
    cost, known, version = priced
    r: Any = _new_object(_RecordSlots)
    r.provider, r.operation, r.request_model, r.started_at = provider, operation, model, started_at
    r.ended_at = started_at + _MICROSECOND * (latency_ns // 1000)  # (not `timedelta(microseconds=)`)
    r.latency_ms = latency_ns / 1e6
    r.ttft_ms = None if ttft_ns is None else ttft_ns / 1e6
    r.response_model = response_model
    r.input_tokens, r.output_tokens = usage.input_tokens, usage.output_tokens
    r.cache_read_tokens, r.cache_write_tokens = usage.cache_read_tokens, usage.cache_write_tokens
    r.reasoning_tokens = usage.reasoning_tokens
    r.cost_nanousd, r.price_known, r.price_version = cost, known, version
    r.estimated, r.status, r.error_type, r.http_status = False, "ok", None, None
    r.stream, r.service_tier, r.tags, r.route = stream, tier, dict(tags), None  # (the record's own)
    r.budgets = [] if budgets is None else budgets if type(budgets) is list else made_budgets(budgets)
    r.trace_id = r.span_id = r.content = None
    r.cache_write_1h_tokens = usage.cache_write_1h_tokens
    r.input_audio_tokens, r.output_audio_tokens = usage.input_audio_tokens, usage.output_audio_tokens
    r.citation_tokens, r.web_search_requests = usage.citation_tokens, usage.web_search_requests
    r.file_search_requests = usage.file_search_requests
    r.id = _new_id()
    r.__class__ = CallRecord
    return r  # type: ignore[no-any-return]


def made_budgets(make: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The entries `Call.note_budgets_later` waits for; none when making them fails (the record is
    kept, and the failure reported: on the recorder's thread no caller would see it raised)."""
    try:
        return make()
    except Exception as exc:
        late_error("making a call's budget entries", exc)
        return []


def priced_with(ended: Ended) -> tuple[str, str | None, str, str | None, datetime, Usage] | None:
    """What `Call.ended`'s facts are still to be priced with, as `Pricer.price_of`'s arguments
    (provider, response model, model to price, tier, started at, usage); None when they hold their
    price."""
    if ended[_PRICED] is not None:
        return None
    return (
        ended[_PROVIDER], ended[_RESPONSE_MODEL], ended[_PRICED_AS], ended[_TIER], ended[_STARTED_AT],
        ended[_USAGE],
    )  # fmt: skip


def utc_of_ns(ns: int) -> datetime:
    """`time.time_ns()` as the aware UTC `datetime` that `datetime.now(UTC)` gives at that instant
    (microseconds, rounded down as it does), in integers: no float in between."""
    return _EPOCH + _MICROSECOND * (ns // 1000)


#: The price of a call whose price is unknown (`Pricer.price_of`'s answer then).
UNPRICED: Priced = (None, False, "")
_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RecordSlots = _slots_twin(CallRecord)
_new_object = object.__new__
