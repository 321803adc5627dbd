"""`Call`: one LLM call in flight, from `Pipeline.start` to `Pipeline.finish`.

Its methods are the only writers of the request body (`rewrite`), the route (`reroute`) and the
status (`block`), so a step never edits SDK objects or another step's fields behind its back.
Streaming adapters fill `usage`, `text` and the response facts as events pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from costlens.pipeline._request import Request
from costlens.usage import CallRecord, Usage

__all__ = ["Call", "OutputMissing"]

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


class Call:
    """A call in flight. `record` is the `CallRecord` it becomes; `request` what is sent."""

    __slots__ = (
        "__weakref__",
        "finished",
        "first_event_ns",
        "flows",
        "keep_response",
        "next_attempt",
        "output_missing",
        "pipeline",
        "record",
        "request",
        "response",
        "start_ns",
        "text",
        "text_later",
        "usage",
        "usage_invalid",
        "want_text",
    )

    def __init__(self, pipeline: Finisher, request: Request, tags: Mapping[str, str]) -> None:
        self.pipeline = pipeline
        self.request = request
        body = request.body
        tier = body.get("service_tier")
        self.record = CallRecord(
            provider=request.provider,
            operation=request.operation,
            request_model=request.model,
            stream=request.stream,
            tags=dict(tags),
            service_tier=tier if isinstance(tier, str) and tier else None,
        )
        self.start_ns = time.perf_counter_ns()
        self.first_event_ns: int | None = None
        self.usage: Usage | None = None
        self.usage_invalid = False
        self.output_missing = False
        self.text: list[str] = []
        # A stream reader that kept its raw events gives the answer's text only when it is needed
        # (usage missing, content kept, a verifier): the common call never parses them twice.
        self.text_later: Callable[[], list[str]] | None = None
        self.finished = False
        self.flows: list[Generator[None, None, None]] = []
        self.next_attempt: tuple[Request, float] | None = None
        self.keep_response = False  # a step that checks the answer asks for it (a cascade's verifier)
        self.response: Any = None  # the provider's response, kept only when asked for
        self.want_text = False  # the answer's text is kept (store_content=True)

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

    def event_seen(self) -> None:
        """A stream event arrived: the first one sets the time to first token."""
        if self.first_event_ns is None:
            self.first_event_ns = time.perf_counter_ns()

    def finish(self, error: BaseException | None = None) -> None:
        """End the call (idempotent): usage, price, the steps' after-halves, then the sinks."""
        if not self.finished:
            self.pipeline.finish(self, error)
