"""The provider-neutral half of instrumentation: one call's life from request to `CallRecord`.

Each SDK client funnels every HTTP call through one method, `client.request(cast_to, options,
stream=, stream_cls=)` (true of both the `openai` and the `anthropic` SDKs). We replace that
method *on the instance* (never the class), so tracking is per client, idempotent and reversible.
Provider specifics (URLs, usage JSON, stream events) live in one adapter module per provider.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from costlens._errors import internal_error
from costlens.context import current_tags
from costlens.usage import CallRecord, Usage

__all__ = [
    "Adapter",
    "BudgetGate",
    "BudgetTicket",
    "CallState",
    "Request",
    "set_budget_gate",
    "wrap_async_request",
    "wrap_sync_request",
]

log = logging.getLogger("costlens")


class Request:
    """What costlens needs to know of an outgoing request, read from the SDK's request options."""

    __slots__ = ("body", "model", "operation", "stream", "usage_injected")

    def __init__(self, operation: str, body: dict[str, Any], stream: bool) -> None:
        self.operation = operation
        self.body = body
        self.model = str(body.get("model") or "")
        self.stream = stream
        self.usage_injected = False


class Adapter(Protocol):
    """Provider specifics. One module per provider implements this and registers itself."""

    name: str

    def matches(self, client: object) -> bool: ...

    def provider_for(self, client: object) -> str: ...

    def parse_request(self, options: Any, stream: bool) -> Request | None:
        """None for endpoints costlens does not record (file uploads, model lists, ...)."""

    def facts_of(self, result: Any) -> dict[str, Any]:
        """Facts of a complete response: `response_model`, `service_tier`."""

    def usage_of(self, result: Any) -> Usage | None:
        """Usage of a complete response; raises ValueError/TypeError when it is malformed."""

    def output_text(self, result: Any) -> list[str]:
        """The answer's text, counted when the response came without (valid) usage."""

    def observe(self, call: CallState, event: Any) -> bool:
        """Take what matters from one stream event; True hides the event from the caller."""

    def count_input(self, request: Request) -> int:
        """Prompt tokens counted offline, for calls whose usage never arrived."""


class BudgetTicket(Protocol):
    """A call's admission by the budgets: settled (or released) when the call finishes."""

    def finish(self, call: CallState) -> None: ...


class BudgetGate(Protocol):
    """`costlens.budgets` plugs in here. `admit` may raise `BudgetExceeded` / `BudgetUnavailable`,
    which reach the caller (after the call is recorded as blocked); it may set `call.budget`."""

    def admit(self, call: CallState, options: Any) -> None: ...


# None until budgets are configured: then one global read per call is all budgets cost.
_budget_gate: BudgetGate | None = None
_budget_env_read = False


def set_budget_gate(gate: BudgetGate | None, *, env_read: bool = True) -> None:
    """Install (or remove, with None) the budget gate; `env_read=False`: the next call reads the file."""
    global _budget_gate, _budget_env_read
    _budget_gate = gate
    _budget_env_read = env_read


def _gate_from_env() -> BudgetGate | None:
    """First tracked call: the budgets file ($COSTLENS_BUDGETS, else budgets.toml in the data folder),
    when there is one; `costlens.budgets` is imported only then."""
    global _budget_env_read
    from costlens.config import data_dir

    if os.environ.get("COSTLENS_BUDGETS") or (data_dir() / "budgets.toml").is_file():
        from costlens.budgets._runtime import load_env_budgets

        load_env_budgets()
    _budget_env_read = True
    return _budget_gate


class CallState:
    """One call in flight. Streaming adapters fill `usage`, `text` and `facts` as events pass."""

    __slots__ = (
        "adapter",
        "budget",
        "finished",
        "first_event_ns",
        "record",
        "request",
        "start_ns",
        "text",
        "usage",
        "usage_invalid",
    )

    def __init__(self, adapter: Adapter, provider: str, request: Request, tags: Mapping[str, str]) -> None:
        self.adapter = adapter
        self.request = request
        self.record = CallRecord(
            provider=provider,
            operation=request.operation,
            request_model=request.model,
            stream=request.stream,
            tags=dict(tags),
            service_tier=_str_or_none(request.body.get("service_tier")),
        )
        self.start_ns = time.perf_counter_ns()
        self.first_event_ns: int | None = None
        self.usage: Usage | None = None
        self.usage_invalid = False
        self.text: list[str] = []
        self.finished = False
        self.budget: BudgetTicket | None = None

    def set_usage(self, build: Callable[[], Usage | None]) -> None:
        """Accept the provider's usage, or note that it was malformed (then tokens are counted)."""
        try:
            self.usage = build()
        except (ValueError, TypeError) as exc:
            self.usage_invalid = True
            log.warning(
                "costlens: %s returned invalid usage for %s (%s); counting tokens instead",
                self.record.provider,
                self.request.model,
                exc,
            )

    def apply_facts(self, facts: Mapping[str, Any]) -> None:
        model = facts.get("response_model")
        if model:
            self.record.response_model = str(model)
        tier = facts.get("service_tier")
        if tier:
            self.record.service_tier = str(tier)

    # -- ending a call ---------------------------------------------------------------------

    def refuse(self, error: BaseException) -> None:
        """Record a call the budgets refused before it was made (`status="blocked"`, cost $0)."""
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
        _emit(record)

    def finish(self, *, error: BaseException | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        try:
            self._complete(error)
        except Exception as exc:
            internal_error("recording an LLM call", exc)

    def _complete(self, error: BaseException | None) -> None:
        end_ns = time.perf_counter_ns()
        record = self.record
        record.latency_ms = (end_ns - self.start_ns) / 1e6
        record.ended_at = datetime.now(UTC)
        if self.first_event_ns is not None:
            record.ttft_ms = (self.first_event_ns - self.start_ns) / 1e6
        if error is not None:
            record.status = "error"
            record.error_type = type(error).__name__
            record.http_status = _http_status(error)
        usage = self.usage
        if usage is None and (error is None or self.text):
            usage = self._counted_usage()
            record.estimated = True
        if usage is not None:
            record.set_usage(usage)
            _price(record, usage)
        if self.budget is not None:
            try:
                self.budget.finish(self)
            except Exception as exc:
                internal_error("settling a budget reservation", exc)
        _emit(record)

    def _counted_usage(self) -> Usage:
        model = self.record.response_model or self.request.model
        from costlens.tokens import count_text

        output = count_text("".join(self.text), model).tokens
        return Usage(input_tokens=self.adapter.count_input(self.request), output_tokens=output)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _http_status(error: BaseException) -> int | None:
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) else None


# (provider, answered model, requested model) -> the model to price, asked of the catalogue once;
# forgotten when the catalogue is replaced (overrides reloaded).
_price_model: dict[tuple[str, str | None, str], str] = {}
_price_model_catalogue: list[object] = [None]


def _price(record: CallRecord, usage: Usage) -> None:
    from costlens.pricing import cost, get_catalogue

    catalogue = get_catalogue()
    if _price_model_catalogue[0] is not catalogue:
        _price_model.clear()
        _price_model_catalogue[0] = catalogue
    key = (record.provider, record.response_model, record.request_model)
    model = _price_model.get(key)
    if model is None:
        model = _price_model[key] = _model_to_price(*key)
    priced = cost(
        usage, provider=record.provider, model=model, at=record.started_at, service_tier=record.service_tier
    )
    record.set_cost(priced)


def _model_to_price(provider: str, response_model: str | None, request_model: str) -> str:
    """Azure answers with the real model name, while an OpenAI-compatible server may answer with a
    name no catalogue knows although the requested one is priced: use the one that is known."""
    from costlens.pricing import get_catalogue

    if not response_model or response_model == request_model:
        return request_model
    if get_catalogue().resolve(provider, response_model) is None:
        return request_model
    return response_model


def _emit(record: CallRecord) -> None:
    from costlens.config import emit

    emit(record)


def _start(
    adapter: Adapter, provider: str, tags: Mapping[str, str], options: Any, stream: bool
) -> CallState | None:
    try:
        request = adapter.parse_request(options, stream)
        if request is None:
            return None
        context = current_tags()
        merged = {**tags, **context} if context else tags
        call = CallState(adapter, provider, request, merged)
    except Exception as exc:
        internal_error("preparing to record an LLM call", exc)
        return None
    gate = _budget_gate if _budget_env_read else _gate_from_env()
    if gate is not None:
        gate.admit(call, options)  # BudgetExceeded / BudgetUnavailable propagate, on purpose
    return call


def _complete_response(call: CallState, result: Any) -> None:
    adapter = call.adapter
    try:
        call.apply_facts(adapter.facts_of(result))
        call.set_usage(lambda: adapter.usage_of(result))
        if call.usage is None:
            call.text.extend(adapter.output_text(result))
    except Exception as exc:
        internal_error("reading the usage of an LLM response", exc)
    call.finish()


def _observe(call: CallState, event: Any) -> bool:
    if call.first_event_ns is None:
        call.first_event_ns = time.perf_counter_ns()
    try:
        return call.adapter.observe(call, event)
    except Exception as exc:
        internal_error("reading a stream event", exc)
        return False


# -- streams ---------------------------------------------------------------------------------
# The SDK stream objects iterate `self._iterator`; we swap that iterator for one that watches the
# events, so the stream object the caller holds (and its helpers) stays the SDK's own.


def _hook_sync_stream(call: CallState, stream: Any) -> Any:
    inner: Iterator[Any] = stream._iterator

    def watched() -> Iterator[Any]:
        try:
            for event in inner:
                if not _observe(call, event):
                    yield event
        except GeneratorExit:
            call.finish()
            raise
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.finish()

    original_close = stream.close

    def close() -> None:
        try:
            original_close()
        finally:
            call.finish()

    stream._iterator = watched()
    stream.close = close
    return stream


def _hook_async_stream(call: CallState, stream: Any) -> Any:
    inner: AsyncIterator[Any] = stream._iterator

    async def watched() -> AsyncIterator[Any]:
        try:
            async for event in inner:
                if not _observe(call, event):
                    yield event
        except GeneratorExit:
            call.finish()
            raise
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.finish()

    original_close = stream.close

    async def close() -> None:
        try:
            await original_close()
        finally:
            call.finish()

    stream._iterator = watched()
    stream.close = close
    return stream


def _is_stream(result: Any) -> bool:
    return hasattr(result, "_iterator") and hasattr(result, "response")


# -- the request wrappers ---------------------------------------------------------------------

RequestFn = Callable[..., Any]


def wrap_sync_request(
    original: RequestFn, adapter: Adapter, provider: str, tags: Mapping[str, str]
) -> RequestFn:
    def request(cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None) -> Any:
        call = _start(adapter, provider, tags, options, stream)
        if call is None:
            return original(cast_to, options, stream=stream, stream_cls=stream_cls)
        try:
            result = original(cast_to, options, stream=stream, stream_cls=stream_cls)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        if stream and _is_stream(result):
            return _hook_sync_stream(call, result)
        _complete_response(call, result)
        return result

    return request


def wrap_async_request(
    original: RequestFn, adapter: Adapter, provider: str, tags: Mapping[str, str]
) -> RequestFn:
    async def request(cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None) -> Any:
        call = _start(adapter, provider, tags, options, stream)
        if call is None:
            return await original(cast_to, options, stream=stream, stream_cls=stream_cls)
        try:
            result = await original(cast_to, options, stream=stream, stream_cls=stream_cls)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        if stream and _is_stream(result):
            return _hook_async_stream(call, result)
        _complete_response(call, result)
        return result

    return request
