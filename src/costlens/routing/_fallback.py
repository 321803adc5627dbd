"""Fallbacks: when a routed call fails with a transient error, retry it or send it to the next-best
candidate, and keep failing candidates aside for a while (shared by every thread and task).

Which errors count: HTTP 429 and 5xx, timeouts and connection errors (recognised by the error's
`status_code` and its class name, so any SDK works). A 429 that names a `Retry-After` is not
retried on the same candidate: that candidate cools down for at least that long and the call falls
back at once. Other transient errors are retried on the same candidate (`retries` times, with
exponential backoff) before it cools down and the call falls back. When no candidate is left, a
wait of at most `max_wait_s` for the one that asked to wait is the last resort. Errors that no
retry can fix (400, 401, ...) are raised at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AttemptState", "Cascade", "Cooldowns", "Fallbacks", "retry_after_s", "transient"]


class Fallbacks(BaseModel):
    """How a router handles transient failures. `retries`: extra attempts on the same candidate;
    `backoff_s`: the first pause (doubled each time); `cooldown_s`: how long a failing candidate is
    set aside; `max_attempts`: attempts in all, across candidates; `max_wait_s`: the longest
    Retry-After honoured by waiting when no other candidate is left."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    retries: int = Field(default=1, ge=0)
    backoff_s: float = Field(default=0.2, ge=0)
    cooldown_s: float = Field(default=30.0, ge=0)
    max_attempts: int = Field(default=4, ge=1)
    max_wait_s: float = Field(default=10.0, ge=0)


@dataclass(frozen=True)
class Cascade:
    """Quality-gated cascade: candidates are tried from the cheapest up, and the first answer the
    `verifier` (a `costlens.scorers` verifier: regex, JSON schema, a callable, log-probability
    confidence, a judge model) passes is returned; the last candidate's answer is returned even if
    it fails, marked `verified: false`. A streamed call cannot be taken back once the caller reads
    it, so with `stream=True` the cascade sends the call straight to its strongest candidate."""

    verifier: Any


class Cooldowns:
    """Candidates set aside until a moment (monotonic clock); thread-safe, shared by a router's calls."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def set(self, name: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        with self._lock:
            self._until[name] = max(until, self._until.get(name, 0.0))

    def remaining(self, name: str) -> float:
        with self._lock:
            until = self._until.get(name)
        return 0.0 if until is None else max(0.0, until - time.monotonic())

    def clear(self) -> None:
        with self._lock:
            self._until.clear()


@dataclass
class AttemptState:
    """What one routed request has tried so far (kept in `Request.state["route"]` across attempts)."""

    body: dict[str, Any]  # the caller's request, before any candidate's transform
    attempts: list[dict[str, Any]] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)
    pinned: str | None = None  # retry this candidate next


def transient(error: BaseException) -> bool:
    """A failure another attempt may not meet: 429, 5xx, a timeout, a lost connection."""
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        return status == 429 or status >= 500
    name = type(error).__name__.lower()
    return "timeout" in name or "connection" in name


def retry_after_s(error: BaseException) -> float | None:
    """Seconds the provider asked to wait (`Retry-After` / `retry-after-ms`), if it said."""
    headers: Any = getattr(getattr(error, "response", None), "headers", None)
    if not isinstance(headers, Mapping) and not hasattr(headers, "get"):
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        raw = headers.get("retry-after")
        return None if raw is None else max(0.0, float(raw))
    except (TypeError, ValueError):
        return None  # an HTTP date: not waited on
