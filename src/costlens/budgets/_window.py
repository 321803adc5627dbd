"""Budget windows, computed from timestamps alone: no counters to reset, no reset job to race.

A window is a calendar `day`, `week` (ISO, from Monday) or `month` in an IANA time zone, a rolling
`<N>h` / `<N>d`, or `lifetime`. `window_bounds(window, at)` gives the window an instant falls in.
Calendar windows follow the wall clock: a day in Europe/Berlin is 23 or 25 hours long on a DST
change; a day whose local midnight does not exist starts at the transition. Consecutive calendar
windows tile time: the end of one is exactly the start of the next.

For the ledger, `Window.position(at)` maps an instant to integer microseconds: the bucket a charge
made then is added to, and the first bucket whose spend counts. A calendar window is one bucket;
a rolling window is split into at most 241 buckets of 1/240 of its length (at least a minute), and
every bucket that overlaps the window counts in full, so a rolling sum is never below the true one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from costlens._errors import ConfigError

__all__ = ["Position", "Window", "WindowKind", "from_us", "parse_window", "to_us", "window_bounds"]

WindowKind = Literal["day", "week", "month", "rolling", "lifetime"]
CALENDAR = ("day", "week", "month")
_ROLLING = re.compile(r"^(?:rolling[\s:_-]*)?(\d+)\s*(h|hours?|d|days?)$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000
_ONE_US = timedelta(microseconds=1)
#: Sums of a lifetime window start here (every bucket counts).
LIFETIME_SINCE_US = -(2**62)
WINDOW_HINT = (
    "use day, week, month (with a time zone), a rolling '<N>h' or '<N>d' (e.g. '24h', '7d'), or lifetime"
)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(
            f"unknown time zone {name!r}: use an IANA name such as 'UTC', 'Europe/Berlin' "
            "or 'America/New_York'"
        ) from None


def to_us(at: datetime) -> int:
    return (at - _EPOCH) // _ONE_US  # (exact: a timedelta divided by one, in integers, in C)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class Position:
    """Where an instant falls in a window, in microseconds since the epoch (UTC).

    `bucket_us`: the bucket a charge made at this instant goes to. `since_us`: spend counts from the
    bucket starting here. `period_us`: identifies the window for once-only alerts. `valid_until_us`:
    the position holds for every instant before this one (from `at` on).
    """

    start: datetime
    end: datetime | None
    bucket_us: int
    since_us: int
    period_us: int
    valid_until_us: int
    #: `start` in ISO 8601, made once: every reserved call's budget entry names it
    start_iso: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_iso", self.start.isoformat())


@dataclass(frozen=True, slots=True)
class Window:
    """A budget window. Build with `parse_window("day", "Europe/Berlin")` or the constructor."""

    kind: WindowKind
    timezone: str = "UTC"
    seconds: int = 0  # the length of a rolling window

    def __post_init__(self) -> None:
        if self.kind not in (*CALENDAR, "rolling", "lifetime"):
            raise ConfigError(f"unknown window {self.kind!r}: {WINDOW_HINT}")
        if self.kind == "rolling" and (self.seconds <= 0 or self.seconds % 3600):
            raise ConfigError(f"a rolling window is a whole number of hours or days, got {self.seconds} s")
        _zone(self.timezone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # zoneinfo caches instances by name

    @property
    def spec(self) -> str:
        """The text form the config file uses: `day`, `24h`, `7d`, `lifetime`."""
        if self.kind != "rolling":
            return self.kind
        hours = self.seconds // 3600
        return f"{hours // 24}d" if hours % 24 == 0 and hours > 24 else f"{hours}h"

    def describe(self) -> str:
        if self.kind in CALENDAR:
            return f"{self.kind} ({self.timezone})"
        return f"rolling {self.spec}" if self.kind == "rolling" else "lifetime"

    def bounds(self, at: datetime) -> tuple[datetime, datetime | None]:
        """The window `at` falls in (see `window_bounds`)."""
        return window_bounds(self, at)

    def position(self, at: datetime) -> Position:
        at_us = to_us(_aware(at))
        if self.kind == "lifetime":
            return Position(_EPOCH, None, 0, LIFETIME_SINCE_US, 0, 2**62)
        if self.kind == "rolling":
            return self._rolling_position(at_us)
        start, end = _calendar_bounds(self, _aware(at))
        start_us, end_us = to_us(start), to_us(end)
        return Position(start, end, start_us, start_us, start_us, end_us)

    def _rolling_position(self, at_us: int) -> Position:
        length = self.seconds * _US
        size = max(60 * _US, length // 240)
        bucket = at_us - at_us % size
        since = (at_us - length) - (at_us - length) % size
        start = from_us(at_us - length)
        return Position(start, from_us(at_us), bucket, since, at_us - at_us % length, bucket + size)


def parse_window(spec: str, timezone: str = "UTC") -> Window:
    """`day` | `week` | `month` (calendar, in `timezone`) | `<N>h` | `<N>d` (rolling) | `lifetime`."""
    if not isinstance(spec, str):
        raise ConfigError(f"window must be text, got {spec!r}: {WINDOW_HINT}")
    text = spec.strip().lower()
    if text in (*CALENDAR, "lifetime"):
        return Window(text, timezone)  # type: ignore[arg-type]
    found = _ROLLING.match(text)
    if found is None:
        raise ConfigError(f"unknown window {spec!r}: {WINDOW_HINT}")
    n = int(found.group(1))
    hours = n * 24 if found.group(2).startswith("d") else n
    if hours <= 0:
        raise ConfigError(f"a rolling window must be at least 1 hour, got {spec!r}")
    return Window("rolling", timezone, hours * 3600)


def window_bounds(window: Window, at: datetime) -> tuple[datetime, datetime | None]:
    """The window `at` falls in, in UTC.

    Calendar: `[start, end)`. Rolling: `[at - N, at]`. Lifetime: `[epoch, None)`.
    """
    at = _aware(at)
    if window.kind == "lifetime":
        return _EPOCH, None
    if window.kind == "rolling":
        return at - timedelta(seconds=window.seconds), at
    return _calendar_bounds(window, at)


def _aware(at: datetime) -> datetime:
    """Naive datetimes mean UTC, as everywhere in costlens."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _calendar_bounds(window: Window, at: datetime) -> tuple[datetime, datetime]:
    zone = window.zone
    period = _period_start(window.kind, at.astimezone(zone).date())
    start = _first_instant(period, zone)
    end = _first_instant(_next(window.kind, period), zone)
    while at >= end:  # a clock set back across midnight: the instant belongs to the later window
        period = _next(window.kind, period)
        start, end = end, _first_instant(_next(window.kind, period), zone)
    while at < start:
        period = _previous(window.kind, period)
        start, end = _first_instant(period, zone), start
    return start.astimezone(UTC), end.astimezone(UTC)


def _period_start(kind: str, day: date) -> date:
    if kind == "day":
        return day
    if kind == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next(kind: str, period: date) -> date:
    if kind == "day":
        return period + timedelta(days=1)
    if kind == "week":
        return period + timedelta(days=7)
    return date(period.year + period.month // 12, period.month % 12 + 1, 1)


def _previous(kind: str, period: date) -> date:
    if kind == "day":
        return period - timedelta(days=1)
    if kind == "week":
        return period - timedelta(days=7)
    return date(period.year - (period.month == 1), (period.month - 2) % 12 + 1, 1)


def _first_instant(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) whose wall-clock date in `zone` is `day` or later."""
    naive = datetime.combine(day, time())
    first = naive.replace(tzinfo=zone).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first  # midnight exists (its first occurrence, if it happens twice)
    # Midnight falls in a gap (clocks jump forward across it): the day starts at the jump, which
    # lies between the readings of midnight with the offsets before and after it.
    other = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = sorted((int(first.timestamp()), int(other.timestamp())))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).date() >= day:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)
