"""The data an overrides file becomes: models, their dated prices, and the index that matches ids.

`_schema` builds these from a parsed file and `_overrides` loads the file; both import this module,
which imports neither. The file format is documented in `costlens.pricing._overrides`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from costlens.pricing._model import LongContextTier, ModelPrice, Rates
from costlens.pricing._providers import BATCH_DISCOUNT_PROVIDERS, STANDARD
from costlens.pricing._timeline import Timeline

__all__ = ["HINT", "OverrideModel", "Overrides", "PricePeriod"]

HINT = "the schema is documented in costlens.pricing._overrides; or set COSTLENS_PRICES to another file"


@dataclass(frozen=True, slots=True)
class PricePeriod:
    """One dated price of an override model (prices per token, already divided by 1e6)."""

    starts_at: datetime | None
    rates: Rates
    long_context: tuple[LongContextTier, ...]
    tier_prices: dict[str, tuple[Rates, tuple[LongContextTier, ...]]]
    tier_multipliers: dict[str, Decimal]
    fine_tuning: dict[str, Decimal]


@dataclass(frozen=True, slots=True)
class OverrideModel:
    """One `[[models]]` table: who it matches and its price periods, oldest first."""

    provider: str
    model: str
    aliases: tuple[str, ...]
    match_prefixes: tuple[str, ...]
    periods: tuple[PricePeriod, ...]

    def tiers(self) -> list[str]:
        names = {t for p in self.periods for t in (*p.tier_prices, *p.tier_multipliers)}
        return sorted(names)

    def timeline(self, provider: str | None, tier: str, source: str) -> Timeline:
        """The override's prices for `tier`, from its first `starts_at` on."""
        who = provider if self.provider == "*" and provider is not None else self.provider
        return [(p.starts_at, self._price(p, who, tier, source)) for p in self.periods]

    def _price(self, period: PricePeriod, provider: str, tier: str, source: str) -> ModelPrice:
        base = ModelPrice(
            provider=provider,
            model=self.model,
            source=source,
            rates=period.rates,
            long_context=period.long_context,
            starts_at=period.starts_at,
            training_per_mtok=period.fine_tuning.get("training_per_mtok"),
            training_per_hour=period.fine_tuning.get("training_per_hour"),
            hosting_per_hour=period.fine_tuning.get("hosting_per_hour"),
            storage_per_month=period.fine_tuning.get("storage_per_month"),
            min_training_charge=period.fine_tuning.get("min_training_charge"),
        )
        if tier == STANDARD:
            return base
        if tier in period.tier_prices:
            rates, long_context = period.tier_prices[tier]
            return replace(
                base, rates=rates, long_context=long_context, service_tier=tier, tier_rule="explicit"
            )
        factor = period.tier_multipliers.get(tier)
        if factor is not None:
            return base.for_tier(tier, "multiplier", lambda r: r.scaled(factor))
        if tier == "batch" and provider in BATCH_DISCOUNT_PROVIDERS:
            return base.for_tier(tier, "batch-50%", lambda r: r.scaled(Decimal("0.5")))
        return base.for_tier(tier, "fallback-standard", lambda r: r)


class Overrides:
    """A parsed overrides file, indexed for matching."""

    def __init__(self, models: list[OverrideModel], path: str, digest: str) -> None:
        self.models = models
        self.path = path
        self.digest = digest
        self.source = f"override:{path}"
        self._exact: dict[tuple[str, str], OverrideModel] = {}
        self._prefixes: list[tuple[str, OverrideModel]] = []
        for m in models:
            for name in (m.model.lower(), *m.aliases):
                self._exact.setdefault((m.provider, name), m)
            self._prefixes += [(prefix, m) for prefix in m.match_prefixes]
        self._prefixes.sort(key=lambda pm: (-len(pm[0]), pm[1].provider == "*"))

    def match(self, provider: str | None, model: str) -> OverrideModel | None:
        """The override for a (canonical provider, model id); provider None matches any provider."""
        name = model.strip().lower()
        if provider is None:
            exact = next((m for (_, n), m in self._exact.items() if n == name), None)
        else:
            exact = self._exact.get((provider, name)) or self._exact.get(("*", name))
        if exact is not None:
            return exact
        for prefix, m in self._prefixes:
            if name.startswith(prefix) and (provider is None or m.provider in (provider, "*")):
                return m
        return None
