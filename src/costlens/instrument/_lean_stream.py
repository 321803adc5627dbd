"""A stream's call on a lean pipeline, begun without a `Call` (see `Pipeline.record_later`).

A plain call on a lean pipeline is read at once and handed over (`_core._LeanPath`); a stream is
read as the caller iterates it, by the adapter's reader below the SDK's chunks, which fills the
call's facts and usage. `LeanStream` is what that reader needs of a `Call` (`StreamCall`) and no
more: a stream that ends well with its usage is handed to `Pipeline.record_later`; anything else
(an error, a stream closed before its usage came, malformed usage, a reader that needs the SDK's
chunks) becomes the `Call` it would have been from its start (`as_call`), and ends as one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from costlens._errors import internal_error
from costlens.pipeline import Call, OutputMissing, Pipeline, Request
from costlens.pipeline._call import usage_refused, utc_of_ns
from costlens.pipeline._request import requested_tier
from costlens.usage import Usage

__all__ = ["LeanStream"]


class LeanStream:
    """A lean pipeline's stream in flight: its request, start, and what its events said."""

    __slots__ = (
        "finished",
        "first_event_ns",
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

    def __init__(self, pipeline: Pipeline, request: Request, tags: dict[str, str]) -> None:
        self.pipeline, self.request, self.tags = pipeline, request, tags
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
                )
                return
            except Exception as exc:
                internal_error("recording an LLM call", exc)
        call = self.as_call()
        self.text_later = None
        self.pipeline.finish(call, error)

    def as_call(self) -> Call:
        """The `Call` this stream is, begun at its start, with what its events said so far."""
        call = Call(self.pipeline, self.request, self.tags)
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
