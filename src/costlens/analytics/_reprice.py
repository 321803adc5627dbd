"""Re-pricing: what recorded history would have cost on another model or under another catalogue.

Nothing stored changes. Every call is priced again on its own, because long-context tiers (and
per-request fees) apply per call: a sum of tokens priced once would cross tier thresholds wrongly.
Prices are looked up once per (provider, model, tier) and the cost of identical usages is memoised,
so a million calls take a few seconds. The call's service tier is kept (a batch call stays batch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from costlens.analytics._pricer import Pricer
from costlens.pricing import PriceCatalogue
from costlens.pricing._compat import is_host, pricing_provider
from costlens.pricing._model import price_usage
from costlens.store import SpendQuery, Store, nanousd_to_usd
from costlens.store._base import scan_calls
from costlens.usage import USAGE_PARTS, Usage

__all__ = ["REPRICE_COLUMNS", "RepriceReport", "reprice"]

#: The measures of every re-pricing row, after the group keys.
REPRICE_COLUMNS = (
    "calls", "recorded_cost_usd", "repriced_cost_usd", "change_usd", "change", "unpriced_before",
    "unpriced_after",
)  # fmt: skip
_FIELDS = (
    "provider", "request_model", "response_model", "service_tier", "started_at_us", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_nanousd",
    *USAGE_PARTS,
)  # fmt: skip
_COST_AT = _FIELDS.index("cost_nanousd")
_PARTS_AT = _COST_AT + 1


@dataclass(slots=True)
class _Group:
    calls: int = 0
    recorded: int = 0
    repriced: int = 0
    unpriced_before: int = 0
    unpriced_after: int = 0

    def add(self, other: _Group) -> None:
        self.calls += other.calls
        self.recorded += other.recorded
        self.repriced += other.repriced
        self.unpriced_before += other.unpriced_before
        self.unpriced_after += other.unpriced_after

    def as_dict(self) -> dict[str, object]:
        change = self.repriced - self.recorded
        ratio = None
        if self.recorded:
            ratio = (Decimal(change) / Decimal(self.recorded)).quantize(Decimal("1e-6"), ROUND_HALF_EVEN)
        return {
            "calls": self.calls,
            "recorded_cost_usd": nanousd_to_usd(self.recorded),
            "repriced_cost_usd": nanousd_to_usd(self.repriced),
            "change_usd": nanousd_to_usd(change),
            "change": ratio,
            "unpriced_before": self.unpriced_before,
            "unpriced_after": self.unpriced_after,
        }


@dataclass(frozen=True, slots=True)
class RepriceReport:
    """Recorded vs re-priced cost per group (most expensive re-priced first) and in total."""

    keys: tuple[str, ...]
    rows: list[dict[str, object]]
    totals: dict[str, object]
    model: str | None
    provider: str | None
    price_version: str
    at: datetime | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [*self.keys, *REPRICE_COLUMNS]


def _reprice_one(pricer: Pricer, model: str | None, provider: str | None, row: Sequence[Any]) -> int | None:
    """The new cost of one scanned call (`_FIELDS` order); None when it cannot be priced."""
    who, request_model, response_model, tier, at_us = row[:5]
    target = model or response_model or request_model
    # A call to an endpoint named by its host is priced as OpenAI-compatible, as when it was made.
    who = provider or (pricing_provider(pricer.catalogue, who, target) if is_host(who) else who)
    parts = row[_PARTS_AT:]
    try:
        if not any(parts):
            return pricer(who, target, tier, at_us, tuple(row[5:10]))
        # 1-hour cache writes, audio, citations or tool fees: priced part by part (`price_usage`).
        usage = Usage(*row[5:10], *parts)
        price = pricer.price(who, target, tier, at_us)
        return None if price is None else price_usage(usage, price, pricer.version).nanousd
    except ValueError:  # inconsistent token counts (an imported record): it cannot be priced
        return None


def reprice(
    store: Store,
    *,
    model: str | None = None,
    provider: str | None = None,
    catalogue: PriceCatalogue | None = None,
    by: Sequence[str] = ("model",),
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, str] | None = None,
    timezone: str = "UTC",
    at: datetime | None = None,
) -> RepriceReport:
    """Price the calls in [since, until) again: on `model` (and `provider`) instead of the recorded
    ones, and/or with `catalogue` instead of the current one; `at` fixes the price date (default:
    each call's own time). Groups are keyed by the recorded values of `by`."""
    if model is None and provider is None and catalogue is None:
        raise ValueError("say what to re-price with: a model, a provider or a price catalogue")
    pricer = Pricer(catalogue, at=at)
    keys = tuple(by)
    groups: dict[tuple[object, ...], _Group] = {}
    n = len(keys)
    for row in scan_calls(store, SpendQuery(keys, since, until, dict(where or {}), timezone), _FIELDS):
        group = groups.get(row[:n])
        if group is None:
            group = groups[row[:n]] = _Group()
        group.calls += 1
        recorded = row[n + _COST_AT]
        if recorded is None:
            group.unpriced_before += 1
        else:
            group.recorded += int(recorded)
        new = _reprice_one(pricer, model, provider, row[n:])
        if new is None:
            group.unpriced_after += 1
        else:
            group.repriced += new
    total = _Group()
    for group in groups.values():
        total.add(group)
    ordered = sorted(groups.items(), key=lambda kv: (-kv[1].repriced, -kv[1].calls, str(kv[0])))
    rows = [dict(zip(keys, key, strict=True)) | group.as_dict() for key, group in ordered]
    notes = []
    if total.unpriced_after:
        target = f"{provider or 'the recorded provider'}/{model or 'the recorded model'}"
        notes.append(f"{total.unpriced_after} calls have no price for {target}: they are left out")
    return RepriceReport(keys, rows, total.as_dict(), model, provider, pricer.version, at, notes)
