"""A manually driven clock, so tests about windows, budgets and timestamps never sleep."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["FixedClock"]


def _require_aware(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"FixedClock needs a timezone-aware datetime, got naive {dt!r}")
    return dt.astimezone(UTC)


class FixedClock:
    """A clock that only moves when told to; thread-safe.

    `now()` always returns a UTC-aware datetime. Calling the clock itself is the same as `now()`,
    so it fits wherever a `Callable[[], datetime]` is expected.
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = _require_aware(start) if start is not None else datetime(2025, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    __call__ = now

    def time(self) -> float:
        """Seconds since the epoch, the `time.time()` shape."""
        return self.now().timestamp()

    def advance(self, seconds: float = 0.0, *, delta: timedelta | None = None) -> datetime:
        """Move forward by `seconds` (plus `delta`); returns the new time. Going backwards is refused."""
        step = timedelta(seconds=seconds) + (delta or timedelta())
        if step < timedelta():
            raise ValueError(f"FixedClock.advance cannot go backwards ({step})")
        with self._lock:
            self._now += step
            return self._now

    def set(self, dt: datetime) -> None:
        """Jump to `dt` (either direction, e.g. to replay a trace)."""
        aware = _require_aware(dt)
        with self._lock:
            self._now = aware

    def __repr__(self) -> str:
        return f"FixedClock({self.now().isoformat()})"
