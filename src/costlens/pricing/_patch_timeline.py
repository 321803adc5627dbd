"""The costlens price patch applied to genai-prices' timelines, and where the two disagree.

`patched_timeline` is what the catalogue prices with: genai-prices' dated segments, with each
patch entry applied from its `starts_at` until the next entry for the same model and tier. A
service tier without its own entry that genai-prices derives from the standard price (the
documented 50% batch discount, or the standard price itself) is derived again from the patched
standard price, so a corrected standard price corrects those tiers too.

`differences` lists, for each entry, the rates where the patched price and genai-prices' bundled
price differ at the entry's start and at every genai-prices price change while it applies
(`costlens prices patch`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from costlens.pricing._model import ModelPrice, Rates
from costlens.pricing._patch import PatchEntry, PricePatch
from costlens.pricing._providers import BATCH_DISCOUNT_PROVIDERS, STANDARD
from costlens.pricing._timeline import DaySchedule, Segment, Timeline, as_utc, prices_of

if TYPE_CHECKING:
    from costlens.pricing._genai import GenaiPrices

__all__ = ["differences", "patched_timeline", "segment_at"]

_HALF = Decimal("0.5")


def segment_at(timeline: Timeline, at: datetime | None) -> Segment:
    """The segment in force at `at` (None: the first one)."""
    found = timeline[0][1]
    for start, segment in timeline[1:]:
        if at is None or start is None or as_utc(start) > at:
            break
        found = segment
    return found


def _entry_at(entries: list[PatchEntry], at: datetime | None) -> PatchEntry | None:
    found = None
    for entry in entries:  # oldest first
        if at is None or entry.starts_at > at:
            break
        found = entry
    return found


def _apply(entry: PatchEntry, segment: Segment, start: datetime | None) -> Segment:
    if isinstance(segment, DaySchedule):
        prices = tuple(entry.apply(p, start) for p in segment.prices)
        if all(p == prices[0] for p in prices):
            return prices[0]  # every window now bills the same: the schedule is gone
        return DaySchedule(segment.bounds, prices)
    return entry.apply(segment, start)


def _derive(standard: Segment, genai_tier: Segment, tier: str, provider: str) -> Segment:
    """The tier's price derived from the (patched) standard price, by genai-prices' own rule."""
    rules = {p.tier_rule for p in prices_of(genai_tier)}
    if "explicit" in rules:
        return genai_tier  # genai-prices has a price for this tier: a standard correction leaves it
    halved = tier == "batch" and provider in BATCH_DISCOUNT_PROVIDERS
    rule = rules.pop() if rules else ("batch-50%" if halved else "fallback-standard")

    def derive(price: ModelPrice | None) -> ModelPrice | None:
        if price is None:
            return None
        fn: Callable[[Rates], Rates] = (lambda r: r.scaled(_HALF)) if rule == "batch-50%" else (lambda r: r)
        return price.for_tier(tier, rule, fn)

    if isinstance(standard, DaySchedule):
        return DaySchedule(standard.bounds, tuple(derive(p) for p in standard.prices))
    return derive(standard)


def _patched(timeline: Timeline, own: list[PatchEntry], standard: Timeline | None, tier: str) -> Timeline:
    points: set[datetime] = {as_utc(s) for s, _ in timeline if s is not None}
    points |= {e.starts_at for e in own}
    if standard is not None:
        points |= {as_utc(s) for s, _ in standard if s is not None}
    provider = next((p.provider for _, seg in timeline for p in prices_of(seg)), "")
    out: Timeline = []
    for start in [None, *sorted(points)]:
        segment = segment_at(timeline, start)
        entry = _entry_at(own, start)
        if entry is not None:
            segment = _apply(entry, segment, start)
        elif standard is not None:
            segment = _derive(segment_at(standard, start), segment, tier, provider)
        out.append((start, segment))
    return out


def patched_timeline(
    patch: PricePatch, timeline: Timeline, tier: str, standard_of: Callable[[], Timeline | None]
) -> Timeline:
    """genai-prices' `timeline` for `tier` with the patch applied (unchanged when no entry concerns it).

    `standard_of` gives genai-prices' standard timeline of the same model, needed only when a
    standard-price entry must be carried into a tier derived from it.
    """
    ids = next(((p.provider, p.model) for _, seg in timeline for p in prices_of(seg)), None)
    entries = patch.for_model(*ids) if ids is not None else []
    own = [e for e in entries if e.tier == tier]
    standard_entries = [e for e in entries if e.tier == STANDARD] if tier != STANDARD else []
    if not own and not standard_entries:
        return timeline
    standard = None
    if standard_entries:
        genai_standard = standard_of()
        if genai_standard is not None:
            standard = _patched(genai_standard, standard_entries, None, STANDARD)
    return _patched(timeline, own, standard, tier)


# -- differences ------------------------------------------------------------------------------------


def _hhmm(micros: int) -> str:
    return f"{micros // 3_600_000_000:02d}:{micros // 60_000_000 % 60:02d}"


def _windows(genai: Segment, patched: Segment) -> list[tuple[str, int]]:
    """(label, index) of the daily windows to compare; one unlabelled window without a schedule."""
    schedule = genai if isinstance(genai, DaySchedule) else patched
    if not isinstance(schedule, DaySchedule):
        return [("", 0)]
    bounds = [0, *schedule.bounds, 86_400_000_000]
    windows = [(f"UTC {_hhmm(bounds[i])}-{_hhmm(bounds[i + 1])}", i) for i in range(len(bounds) - 1)]
    wraps = len(windows) > 2 and all(
        not isinstance(s, DaySchedule) or s.prices[0] == s.prices[-1] for s in (genai, patched)
    )
    if wraps:  # the last window continues past midnight into the first: show them as one
        last = len(windows) - 1
        windows = [(f"UTC {_hhmm(bounds[-2])}-{_hhmm(bounds[1])}", last), *windows[1:-1]]
    return windows


def _price_in(segment: Segment, window: int) -> ModelPrice | None:
    if isinstance(segment, DaySchedule):
        return segment.prices[window] if window < len(segment.prices) else None
    return segment


def _flat(price: ModelPrice | None, label: str) -> dict[str, str | None]:
    prefix = f"{label} " if label else ""
    if price is None:
        return {f"{prefix}price": "none"}
    base = price.rates.per_mtok()
    out = {f"{prefix}{k}": v for k, v in base.items()}
    for tier in price.long_context:  # a long-context tier shows only what changes above its threshold
        above = f"{prefix}above {tier.threshold} input:"
        out.update({f"{above} {k}": v for k, v in tier.rates.per_mtok().items() if v != base.get(k)})
    return out


def _compare(genai: Segment, patched: Segment) -> list[tuple[str, str | None, str | None]]:
    rows: list[tuple[str, str | None, str | None]] = []
    for label, index in _windows(genai, patched):
        before, after = _flat(_price_in(genai, index), label), _flat(_price_in(patched, index), label)
        keys = list(dict.fromkeys([*before, *after]))
        rows += [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]
    return rows


def differences(patch: PricePatch, genai: GenaiPrices) -> list[dict[str, object]]:
    """One row per rate where the patch and genai-prices' data differ, entry by entry.

    Keys: `id`, `provider`, `model`, `tier`, `at` (when the compared prices apply), `status`
    (`differs`, `agrees`: the entry no longer changes anything, or `not-in-genai-prices`),
    `rate` (e.g. `input`, `above 200000 input: output`, `UTC 16:30-00:30 input`; prices in USD
    per 1M tokens), `genai_prices`, `patch`, `source` (the entry's URL) and `note`.
    """
    rows: list[dict[str, object]] = []
    ordered = sorted(patch.entries, key=lambda e: (e.provider, e.model, e.tier, e.starts_at))
    for entry in ordered:
        base = {"id": entry.id, "provider": entry.provider, "model": entry.model, "tier": entry.tier}
        tail = {"source": entry.source, "note": entry.note}
        timeline = genai.timeline(entry.provider, entry.model, entry.tier)
        ids = next(((p.provider, p.model.lower()) for _, s in timeline or [] for p in prices_of(s)), None)
        if timeline is None or ids != (entry.provider, entry.model.lower()):
            row = {"at": entry.starts_at, "status": "not-in-genai-prices", "rate": "", "genai_prices": None}
            rows.append({**base, **row, "patch": None, **tail})
            continue
        standard = functools.partial(genai.timeline, entry.provider, entry.model, STANDARD)
        patched = patched_timeline(patch, timeline, entry.tier, standard)
        later = [e.starts_at for e in patch.for_tier(entry.provider, entry.model, entry.tier)]
        end = min((s for s in later if s > entry.starts_at), default=None)
        points = [entry.starts_at] + [
            as_utc(s)
            for s, _ in timeline
            if s is not None and as_utc(s) > entry.starts_at and (end is None or as_utc(s) < end)
        ]
        found = False
        for at in points:
            for rate, before, after in _compare(segment_at(timeline, at), segment_at(patched, at)):
                found = True
                row = {"at": at, "status": "differs", "rate": rate, "genai_prices": before, "patch": after}
                rows.append({**base, **row, **tail})
        if not found:
            row = {"at": entry.starts_at, "status": "agrees", "rate": "", "genai_prices": None, "patch": None}
            rows.append({**base, **row, **tail})
    return rows
