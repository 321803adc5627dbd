"""The price catalogue: overrides over the costlens patch over genai-prices, resolved once per key.

Three layers, the upper winning: the user's overrides file, the costlens price patch (dated
corrections shipped with costlens, `costlens.pricing._patch`), genai-prices' bundled data.

The first `cost()` for a (provider, model, service tier) finds the model, flattens all its
dated prices into an `Entry` and caches it under the exact strings the caller passed; every
later call is a dict lookup, at most one bisect by timestamp, and a few exact multiplications.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from costlens.pricing._model import ModelPrice, max_cost, max_nanousd, nanousd_of, price_usage
from costlens.pricing._overrides import Overrides, load_overrides, prices_path
from costlens.pricing._patch import PricePatch, load_patch
from costlens.pricing._providers import (
    GEO_PREMIUMS,
    STANDARD,
    canonical_provider,
    normalize_tier,
    split_geo,
)
from costlens.pricing._timeline import Entry, Timeline, merge, prices_of, with_geo_premium
from costlens.usage import GEO_SEPARATOR, Cost, Usage

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "PriceCatalogue",
    "cost",
    "estimate_max_cost",
    "estimate_max_nanousd",
    "get_catalogue",
    "nanousd_cost",
    "reload_catalogue",
    "set_catalogue",
    "update_prices",
]

log = logging.getLogger("costlens")
# Entries are keyed by the caller's raw strings; a process that invents model names without
# end must not grow the cache without end, so it is emptied past this size (and rebuilt).
_MAX_ENTRIES = 10_000
_COMMON_TIERS = ("batch", "flex", "priority")
_NO_THRESHOLD = 2**63  # (more tokens than any prompt)
#: `PriceCatalogue.estimate_rates`: worst input, output and request rates in atto-USD, and the
#: most input tokens they price
WorstRates = tuple[int, int, int, int]


class PriceCatalogue:
    """Prices from genai-prices' data (optional), the costlens patch over it, and a user overrides file.

    Overrides win over the patch, which wins over genai-prices from each entry's `starts_at`.
    `patch`: None uses the patch shipped with costlens, False none (it only applies with genai).
    `version` names the data: `genai-prices-<version>` (`+live-<digest>` after `update_prices`),
    `+overrides-<sha256 prefix of the file>` when an overrides file is loaded, then
    `+patch-<sha256 prefix of the patch file>` when the patch applies.
    """

    def __init__(
        self,
        overrides: Overrides | None = None,
        *,
        genai: bool = True,
        patch: PricePatch | Literal[False] | None = None,
    ) -> None:
        from costlens.pricing._genai import GenaiPrices

        self.overrides = overrides
        self._genai = GenaiPrices() if genai else None
        self.patch: PricePatch | None = None
        if self._genai is not None and patch is not False:
            self.patch = load_patch() if patch is None else patch
        parts = [self._genai.version] if self._genai else []
        if overrides is not None:
            parts.append(f"overrides-{overrides.digest}")
        if self.patch is not None:
            parts.append(self.patch.version)
        self.version = "+".join(parts) or "empty"
        self._entries: dict[tuple[str | None, str, str | None], Entry] = {}
        self._missing: set[tuple[str | None, str]] = set()
        #: (provider as called, model, tier) -> `estimate_rates(...)`; read directly by the
        #: pre-call estimate (every budgeted call), filled by `estimate_rates`
        self.worst_rates: dict[tuple[str, str, str | None], WorstRates | Literal[False]] = {}

    @classmethod
    def load(cls, path: Path | None = None, *, genai: bool = True) -> PriceCatalogue:
        """A catalogue with the overrides file at `path`, or the configured one when None."""
        return cls(load_overrides(path), genai=genai)

    def entry(self, provider: str | None, model: str, service_tier: str | None = None) -> Entry:
        """The cached prices of a (provider, model, tier), built on first use."""
        key = (provider, model, service_tier)
        found = self._entries.get(key)
        if found is None:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            found = self._entries[key] = Entry(self.timeline(provider, model, service_tier))
        return found

    def estimate_rates(
        self, provider: str, model: str, service_tier: str | None
    ) -> WorstRates | Literal[False]:
        """(atto-USD per input token, per output token, per request, most input tokens): the
        integer rates `estimate_max_nanousd` prices a call of `model` with at every time, for a
        prompt of at most that many tokens (a long-context tier's threshold), `provider` being the
        caller's (a host is priced as `pricing_provider` picks); False when no such rates exist
        (dated prices, an unknown price, rates finer than 1e-18 USD): then ask
        `estimate_max_nanousd`. Kept in `worst_rates`."""
        from costlens.pricing._compat import COMPATIBLE_PROVIDER, is_host

        priced_as: str | None = provider
        if is_host(provider) and not self.entry(provider, model).fixed:
            # `pricing_provider` decides by the price in force now: only a decision that holds at
            # every time is kept (the host has no price at any time, OpenAI's list always has one)
            never = all(segment is None for segment in self.entry(provider, model).segments)
            always = self.entry(COMPATIBLE_PROVIDER, model).fixed is not None
            priced_as = COMPATIBLE_PROVIDER if never and always else None
        price = None if priced_as is None else self.entry(priced_as, model, service_tier).fixed
        worst = None if price is None else price.rates.worst_atto()
        found: WorstRates | Literal[False] = False
        if price is not None and worst is not None:
            up_to = min((tier.threshold for tier in price.long_context), default=_NO_THRESHOLD)
            found = (*worst, up_to)
        if len(self.worst_rates) >= _MAX_ENTRIES:
            self.worst_rates.clear()
        self.worst_rates[(provider, model, service_tier)] = found
        return found

    def timeline(self, provider: str | None, model: str, service_tier: str | None = None) -> Timeline:
        """Every dated price of the model for the tier: overrides over the patched genai-prices data."""
        who = None if provider is None else canonical_provider(provider)
        tier = normalize_tier(service_tier)
        base, geo = split_geo(tier)
        if geo is not None:
            return with_geo_premium(self.timeline(provider, model, base), tier, geo, who)
        name = model.strip()
        match = self.overrides.match(who, name) if self.overrides is not None else None
        preferred = match.timeline(who, tier, self.overrides.source) if match and self.overrides else None
        fallback = None
        if self._genai is not None and (preferred is None or preferred[0][0] is not None):
            fallback = self._genai_timeline(who, name, tier)
        timeline = merge(preferred, fallback)
        if any(p.tier_rule == "fallback-standard" for _, seg in timeline for p in prices_of(seg)):
            log.debug("costlens: no %r price for %s/%s; the standard price is used", tier, provider, model)
        return timeline

    def _genai_timeline(self, provider: str | None, model: str, tier: str) -> Timeline | None:
        """genai-prices' prices of the model for the tier, with the costlens patch applied."""
        genai = self._genai
        if genai is None:
            return None
        timeline = genai.timeline(provider, model, tier)
        if timeline is None or self.patch is None:
            return timeline
        from costlens.pricing._patch_timeline import patched_timeline

        return patched_timeline(self.patch, timeline, tier, lambda: genai.timeline(provider, model, STANDARD))

    def resolve(
        self,
        provider: str | None,
        model: str,
        at: datetime | None = None,
        service_tier: str | None = None,
    ) -> ModelPrice | None:
        """The price in force at `at` (now when None); None when the model has no known price."""
        entry = self.entry(provider, model, service_tier)
        return entry.fixed or entry.lookup(at)

    def tiers(self, provider: str | None, model: str) -> list[str]:
        """Service tiers worth showing for a model: explicit ones plus batch, flex and priority, and
        `standard+<geo>` where the provider bills a premium for pinning inference to a geography."""
        who = None if provider is None else canonical_provider(provider)
        names = set(_COMMON_TIERS)
        match = self.overrides.match(who, model) if self.overrides is not None else None
        if match is not None:
            names.update(match.tiers())
        if self._genai is not None:
            names.update(self._genai.tiers(who, model))
            if self.patch is not None:
                found = self._genai.find(who, model)
                if found is not None:
                    names.update(e.tier for e in self.patch.for_model(found[0].id, found[1].id))
        if who is not None:  # US-only inference and its kind, where the provider bills a premium
            names.update(f"{STANDARD}{GEO_SEPARATOR}{geo}" for geo, by in GEO_PREMIUMS.items() if who in by)
        return sorted(names - {STANDARD})

    def patch_differences(self) -> list[dict[str, object]] | None:
        """Where the costlens patch and genai-prices' data disagree, rate by rate (see
        `costlens.pricing._patch_timeline.differences`); None when no patch applies (no genai data)."""
        if self._genai is None or self.patch is None:
            return None
        from costlens.pricing._patch_timeline import differences

        return differences(self.patch, self._genai)

    def unknown(self, provider: str | None, model: str) -> Cost:
        """`Cost` for an unpriced model; logs one warning per (provider, model) per catalogue."""
        key = (provider, model)
        if key not in self._missing:
            self._missing.add(key)
            log.warning(
                "costlens: no price known for model %r (provider %r); its calls are recorded with cost "
                'unknown, never $0. To price it, add to %s a [[models]] table with provider = "%s", '
                'model = "%s", input = <USD per 1M tokens>, output = <USD per 1M tokens> '
                "(or point COSTLENS_PRICES at such a file)",
                model,
                provider,
                prices_path() if self.overrides is None else self.overrides.path,
                provider,
                model,
            )
        return Cost.unknown(self.version)

    def missing(self) -> list[tuple[str | None, str]]:
        """The (provider, model) pairs asked for without a known price, in this process."""
        return sorted(self._missing, key=lambda pm: (pm[0] or "", pm[1]))


_current: PriceCatalogue | None = None
_lock = threading.Lock()


def get_catalogue() -> PriceCatalogue:
    """The process-wide catalogue, built on first use (never at import)."""
    global _current
    catalogue = _current
    if catalogue is None:
        with _lock:
            if _current is None:
                _current = PriceCatalogue.load()
            catalogue = _current
    return catalogue


def set_catalogue(catalogue: PriceCatalogue | None) -> None:
    """Replace the process-wide catalogue (tests, fixed price snapshots); None rebuilds it lazily."""
    global _current
    with _lock:
        _current = catalogue


def reload_catalogue() -> PriceCatalogue:
    """Drop the cached catalogue and build it again (re-reads the overrides file)."""
    set_catalogue(None)
    return get_catalogue()


def cost(
    usage: Usage,
    *,
    provider: str,
    model: str,
    at: datetime | None = None,
    service_tier: str | None = None,
) -> Cost:
    """The exact cost of one call's `usage`; `Cost(total=None, known=False)` when unpriced.

    `at` picks the price in force at the call's time (now when None; naive means UTC).
    `service_tier`: `batch`, `flex`, `priority`, ...; None, `auto`, `default` and `standard`
    mean the standard price. A tier without its own price uses, in order: the override's
    multiplier, the documented 50% batch discount (OpenAI, Anthropic, Azure OpenAI only), else
    the standard price (logged at debug level).
    """
    catalogue = _current or get_catalogue()
    entry = catalogue._entries.get((provider, model, service_tier))
    if entry is None:
        entry = catalogue.entry(provider, model, service_tier)
    price = entry.fixed or entry.lookup(at)
    if price is None:
        return catalogue.unknown(provider, model)
    return price_usage(usage, price, catalogue.version)


def nanousd_cost(
    usage: Usage,
    provider: str,
    model: str,
    at: datetime | None = None,
    service_tier: str | None = None,
) -> tuple[int | None, str]:
    """`cost(...)` as a recorded call keeps it: (`Cost.nanousd`, `Cost.price_version`), the same
    values, computed in integers (`costlens.pricing._model.nanousd_of`). None: the price is unknown
    (logged as by `cost`). The recording hot path."""
    catalogue = _current or get_catalogue()
    entry = catalogue._entries.get((provider, model, service_tier))
    if entry is None:
        entry = catalogue.entry(provider, model, service_tier)
    price = entry.fixed or entry.lookup(at)
    if price is None:
        return catalogue.unknown(provider, model).nanousd, catalogue.version
    return nanousd_of(usage, price), catalogue.version


def estimate_max_cost(
    provider: str,
    model: str,
    input_tokens: int,
    max_output_tokens: int,
    at: datetime | None = None,
    service_tier: str | None = None,
) -> Cost:
    """Worst-case cost of a call before it is made (budget reservations).

    Every input token is priced as uncached at the dearest input price (cache writes included)
    of the long-context tier `input_tokens` falls in; every output token at the output price.
    """
    catalogue, price = _worst_case_price(provider, model, input_tokens, max_output_tokens, at, service_tier)
    if price is None:
        return catalogue.unknown(provider, model)
    return max_cost(price, input_tokens, max_output_tokens, catalogue.version)


def estimate_max_nanousd(
    provider: str,
    model: str,
    input_tokens: int,
    max_output_tokens: int,
    at: datetime | None = None,
    service_tier: str | None = None,
) -> int | None:
    """`estimate_max_cost(...)` in nano-USD (None: the price is unknown), without building a `Cost`."""
    catalogue, price = _worst_case_price(provider, model, input_tokens, max_output_tokens, at, service_tier)
    if price is None:
        catalogue.unknown(provider, model)  # (warns once, as `estimate_max_cost`)
        return None
    return max_nanousd(price, input_tokens, max_output_tokens)


def _worst_case_price(
    provider: str, model: str, n_in: int, n_out: int, at: datetime | None, service_tier: str | None
) -> tuple[PriceCatalogue, ModelPrice | None]:
    if n_in < 0 or n_out < 0:
        raise ValueError("input_tokens and max_output_tokens must be non-negative")
    catalogue = get_catalogue()
    return catalogue, catalogue.resolve(provider, model, at, service_tier)


def update_prices(timeout: float = 10, *, url: str | None = None) -> str:
    """Fetch the newest genai-prices data (network), use it from now on; returns the new version.

    Uses genai-prices' own updater (its default URL unless `url` is given). The fetched data
    lives for this process only. Raises `CostlensError` within about `timeout` + 1 s when the
    data cannot be fetched; the prices in use stay as they were.
    """
    from costlens.pricing._genai import fetch_latest

    fetch_latest(timeout, url)
    return reload_catalogue().version
