"""When each price applies: dated segments, daily time windows, and the cached lookup entry.

A model's price can change on a date (genai-prices `StartDateConstraint`, override `starts_at`)
and, for a few providers (DeepSeek off-peak), by UTC time of day. Both are flattened once, when a
(provider, model, tier) is first priced, into a sorted list of segment starts; a call then picks
its segment with one `bisect` over that list instead of re-evaluating constraints.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from costlens.pricing._model import ModelPrice, Rates
from costlens.pricing._providers import GEO_PREMIUMS
from costlens.usage import GEO_SEPARATOR

__all__ = [
    "DaySchedule",
    "Entry",
    "Segment",
    "Timeline",
    "as_utc",
    "merge",
    "prices_of",
    "with_geo_premium",
]

log = logging.getLogger("costlens")


def as_utc(at: datetime) -> datetime:
    """An aware datetime; naive timestamps are UTC (as in genai-prices)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _micros_of_day(at: datetime) -> int:
    utc = at.astimezone(UTC)
    return ((utc.hour * 60 + utc.minute) * 60 + utc.second) * 1_000_000 + utc.microsecond


@dataclass(frozen=True, slots=True)
class DaySchedule:
    """Prices that change with the UTC time of day: `prices[i]` applies from `bounds[i - 1]`.

    `bounds` are microseconds since UTC midnight; `prices[0]` applies from midnight.
    """

    bounds: tuple[int, ...]
    prices: tuple[ModelPrice | None, ...]

    def pick(self, at: datetime) -> ModelPrice | None:
        return self.prices[bisect_right(self.bounds, _micros_of_day(at))]


#: What applies during one dated segment: a price, a daily schedule, or None (no price known).
Segment = ModelPrice | DaySchedule | None
#: Segments in time order; the first starts at None (the beginning of time).
Timeline = list[tuple[datetime | None, Segment]]


def merge(preferred: Timeline | None, fallback: Timeline | None) -> Timeline:
    """`preferred` from its first start on, `fallback` before it (or no price when there is none)."""
    if preferred is None:
        return fallback if fallback is not None else [(None, None)]
    first_start = preferred[0][0]
    if first_start is None:
        return preferred
    before = [(s, seg) for s, seg in (fallback or [(None, None)]) if s is None or s < first_start]
    return before + preferred


def prices_of(segment: Segment) -> list[ModelPrice]:
    """The prices a segment can take (one, a day's worth, or none)."""
    if segment is None:
        return []
    if isinstance(segment, DaySchedule):
        return [p for p in segment.prices if p is not None]
    return [segment]


def with_geo_premium(base: Timeline, tier: str, geo: str, provider: str | None) -> Timeline:
    """`base` (a tier's prices) for inference pinned to `geo`: every token price times the
    provider's premium for it (`GEO_PREMIUMS`); as `base` when none is known, with a warning."""
    premium = GEO_PREMIUMS.get(geo, {}).get(provider or "")
    if premium is None:
        if any(prices_of(segment) for _, segment in base):
            log.warning(
                "costlens: no price premium known for %s inference at %s; priced at the %s price",
                geo,
                provider,
                tier.partition(GEO_SEPARATOR)[0],
            )
        return [
            (start, _map(segment, lambda p: p.for_tier(tier, p.tier_rule, _same))) for start, segment in base
        ]
    rule = f"{GEO_SEPARATOR}{geo}-{(premium * 100).normalize():f}%"  # `+us-110%`

    def priced(price: ModelPrice) -> ModelPrice:
        return price.for_tier(tier, price.tier_rule + rule, lambda rates: rates.scaled(premium))

    return [(start, _map(segment, priced)) for start, segment in base]


def _same(rates: Rates) -> Rates:
    return rates


def _map(segment: Segment, fn: Callable[[ModelPrice], ModelPrice]) -> Segment:
    if segment is None:
        return None
    if isinstance(segment, DaySchedule):
        return DaySchedule(segment.bounds, tuple(None if p is None else fn(p) for p in segment.prices))
    return fn(segment)


class Entry:
    """The cached prices of one (provider, model, service tier).

    `fixed` is set when the price does not depend on time, so the common case skips even the
    clock; otherwise `lookup` bisects the segment starts by the call's timestamp.
    """

    __slots__ = ("fixed", "segments", "starts", "timeline")

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.starts = [as_utc(start) for start, _ in timeline[1:] if start is not None]
        self.segments = [segment for _, segment in timeline]
        only = self.segments[0] if len(self.segments) == 1 else None
        self.fixed: ModelPrice | None = only if isinstance(only, ModelPrice) else None

    def lookup(self, at: datetime | None) -> ModelPrice | None:
        """The price in force at `at` (now when None); None when no price is known then."""
        at = datetime.now(UTC) if at is None else as_utc(at)
        segment = self.segments[bisect_right(self.starts, at)]
        if isinstance(segment, DaySchedule):
            return segment.pick(at)
        return segment
