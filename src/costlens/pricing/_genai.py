"""Adapter over genai-prices' data: find a model, flatten its prices into a costlens `Timeline`.

genai-prices is imported here, and this module is only imported when the first price is needed,
so `import costlens` stays free of its ~0.2 s of data loading.

How genai-prices represents prices (0.2.3), and how each piece is mapped:

* `ModelInfo.prices` is one `ModelPrice`, or a list of `ConditionalPrice`s whose constraint is a
  `StartDateConstraint` (a price change on a UTC date) or a `TimeOfDateConstraint` (a daily UTC
  window, e.g. DeepSeek off-peak); the last active one wins. Each change point becomes a segment.
* A price key may be `TieredPrices` (base + thresholds on the TOTAL input tokens; crossing one
  reprices every token). Thresholds of all keys are merged into costlens `LongContextTier`s.
* `ModelInfo.price_variants` hold service-tier prices selected by a request context:
  `{"processing": "batch"}`, `{"service_tier": "flex" | "priority" | "fast"}`, `{"speed": "fast"}`.
  A variant replaces only the keys it lists and may itself start on a date. Variants are ignored
  when the model was found through a fallback provider (Azure -> OpenAI), as genai-prices does.
* A missing `cache_read_mtok` / `cache_write_mtok` means cached tokens bill as input, and a
  missing `output_reasoning_mtok` means reasoning bills as output (genai-prices' leaf logic).
* The finer prices `cache_write_1h_mtok`, `input_audio_mtok`, `output_audio_mtok`,
  `output_citation_mtok`, `web_searches_kcount` and `storage_searches_kcount` (OpenAI file search)
  map to the `Rates` fields of the same meaning; absent, they stay None (unknown, never $0).
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import genai_prices
from genai_prices import data_snapshot
from genai_prices import types as gt

from costlens._errors import CostlensError
from costlens.pricing._model import MONEY, LongContextTier, ModelPrice, Rates, per_token
from costlens.pricing._providers import BATCH_DISCOUNT_PROVIDERS, STANDARD, genai_provider_id
from costlens.pricing._timeline import DaySchedule, Segment, Timeline

__all__ = ["GenaiPrices", "fetch_latest"]

SOURCE = "genai-prices"
_HALF = Decimal("0.5")
_EPOCH = date(1970, 1, 1)
# Request-context keys that select a service-tier variant, in order of preference.
_TIER_KEYS = ("service_tier", "processing", "speed")
# The snapshot fetched by `fetch_latest` and the digest naming it in the catalogue version.
_live: list[tuple[data_snapshot.DataSnapshot, str]] = []


class GenaiPrices:
    """One genai-prices data snapshot (the bundled one, or one fetched by `fetch_latest`)."""

    def __init__(self) -> None:
        self._snapshot = data_snapshot.get_snapshot()
        self._ids = frozenset(p.id for p in self._snapshot.providers)
        base = f"genai-prices-{genai_prices.__version__}"
        tag = next((tag for snap, tag in _live if snap is self._snapshot), None)
        if tag is None and self._snapshot.from_auto_update:  # fetched by someone else's UpdatePrices
            tag = _digest(self._snapshot)
        self.version = f"{base}+live-{tag}" if tag else base

    def find(self, provider: str | None, model: str) -> tuple[gt.Provider, gt.ModelInfo] | None:
        """The genai-prices provider and model for a costlens provider id (None: any provider)."""
        try:
            return self._snapshot.find_provider_model(
                model, None, genai_provider_id(provider, self._ids), None
            )
        except LookupError:
            return None

    def tiers(self, provider: str | None, model: str) -> list[str]:
        """Service tiers with explicit prices for this model (from its price variants)."""
        found = self.find(provider, model)
        if found is None or not _own(*found):
            return []
        names = {v.when[k] for v in found[1].price_variants or () for k in _TIER_KEYS if k in v.when}
        return sorted(names - {"default"})

    def timeline(self, provider: str | None, model: str, tier: str) -> Timeline | None:
        """Every price of the model for this tier, flattened by date; None when genai-prices lacks it."""
        found = self.find(provider, model)
        if found is None:
            return None
        gprov, info = found
        variants = _tier_variants(info, tier) if _own(gprov, info) else []
        constraints = [v.constraint for v in variants]
        if isinstance(info.prices, list):
            constraints += [c.constraint for c in info.prices]
        dates = sorted({c.start_date for c in constraints if isinstance(c, gt.StartDateConstraint)})
        windows = sorted(
            {_micros(t) for c in constraints if isinstance(c, gt.TimeOfDateConstraint) for t in _ends(c)}
            - {0}
        )
        timeline: Timeline = []
        for day in [_EPOCH, *dates]:
            start = datetime.combine(day, time(), UTC)
            at = [start + timedelta(microseconds=m) for m in (0, *windows)]
            prices = tuple(
                _evaluate(gprov, info, variants, tier, t, start if day != _EPOCH else None) for t in at
            )
            segment: Segment = DaySchedule(tuple(windows), prices) if windows else prices[0]
            timeline.append((start if day != _EPOCH else None, segment))
        return timeline


def _own(gprov: gt.Provider, info: gt.ModelInfo) -> bool:
    return any(info is m for m in gprov.models)


def _tier_variants(info: gt.ModelInfo, tier: str) -> list[gt.PriceVariant]:
    """The variants that price `tier`, all with the same request context (none for standard)."""
    if tier == STANDARD:
        return []
    for key in _TIER_KEYS:
        matching = [v for v in info.price_variants or () if v.when == {key: tier}]
        if matching:
            return matching
    return []


def _ends(c: gt.TimeOfDateConstraint) -> tuple[time, time]:
    return c.start_time, c.end_time


def _micros(t: time) -> int:
    utc = datetime.combine(_EPOCH, t).astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return ((utc.hour * 60 + utc.minute) * 60 + utc.second) * 1_000_000 + utc.microsecond


def _evaluate(
    gprov: gt.Provider,
    info: gt.ModelInfo,
    variants: list[gt.PriceVariant],
    tier: str,
    at: datetime,
    starts_at: datetime | None,
) -> ModelPrice | None:
    """The costlens price at one instant, with genai-prices' own constraint logic."""
    explicit = any(v.constraint is None or v.constraint.active(at) for v in variants)
    context = variants[0].when if explicit else None
    price = _convert(info.get_prices(at, context), gprov.id, info.id, starts_at)
    if price is None or tier == STANDARD:
        return price
    if explicit:
        return price.for_tier(tier, "explicit", _same)
    if tier == "batch" and gprov.id in BATCH_DISCOUNT_PROVIDERS:
        return price.for_tier(tier, "batch-50%", _halve)
    return price.for_tier(tier, "fallback-standard", _same)


def _same(rates: Rates) -> Rates:
    return rates


def _halve(rates: Rates) -> Rates:
    return rates.scaled(_HALF)


def _convert(gp: gt.ModelPrice, provider: str, model: str, starts_at: datetime | None) -> ModelPrice | None:
    """genai-prices `ModelPrice` -> costlens `ModelPrice`; None when it has no token prices."""
    keys = {k: v for k, v in gp.__dict__.items() if v is not None and not k.startswith("_")}
    if "input_mtok" not in keys and "output_mtok" not in keys:
        return None
    thresholds = sorted({t.start for v in keys.values() if isinstance(v, gt.TieredPrices) for t in v.tiers})
    tiers = tuple(LongContextTier(th, _rates_at(keys, th + 1)) for th in thresholds)
    return ModelPrice(
        provider=provider,
        model=model,
        source=SOURCE,
        rates=_rates_at(keys, 0),
        long_context=tiers,
        starts_at=starts_at,
    )


def _rates_at(keys: dict[str, Any], input_tokens: int) -> Rates:
    """The per-token rates for a call with `input_tokens` total input tokens."""

    def mtok(key: str) -> Decimal | None:
        value = keys.get(key)
        if isinstance(value, gt.TieredPrices):
            value = next((t.price for t in reversed(value.tiers) if input_tokens > t.start), value.base)
        return None if value is None else per_token(value)

    def kcount(key: str) -> Decimal | None:
        """A price per 1,000 requests -> USD per request."""
        value = keys.get(key)
        if isinstance(value, gt.TieredPrices):
            value = next((t.price for t in reversed(value.tiers) if input_tokens > t.start), value.base)
        return None if value is None else MONEY.scaleb(value, -3)

    zero = Decimal(0)
    input_price = mtok("input_mtok")
    input_price = zero if input_price is None else input_price
    output, cache_read, cache_write = mtok("output_mtok"), mtok("cache_read_mtok"), mtok("cache_write_mtok")
    request = kcount("requests_kcount")
    return Rates(
        input=input_price,
        output=zero if output is None else output,
        cache_read=input_price if cache_read is None else cache_read,
        cache_write=input_price if cache_write is None else cache_write,
        reasoning=mtok("output_reasoning_mtok"),
        request=zero if request is None else request,
        # The finer prices stay None when absent: genai-prices would bill such tokens as their
        # parent kind (audio as text, 1-hour writes as 5-minute ones), which under-bills every
        # model whose data simply lacks the price (gpt-4o-audio-preview: audio input is 16x text).
        cache_write_1h=mtok("cache_write_1h_mtok"),
        input_audio=mtok("input_audio_mtok"),
        output_audio=mtok("output_audio_mtok"),
        citation=mtok("output_citation_mtok"),
        web_search=kcount("web_searches_kcount"),
        file_search=kcount("storage_searches_kcount"),
    )


def _digest(snapshot: data_snapshot.DataSnapshot) -> str:
    return hashlib.sha256(repr(snapshot.providers).encode()).hexdigest()[:10]


def fetch_latest(timeout: float, url: str | None = None) -> str:
    """Fetch the newest genai-prices data with its own updater and make it current.

    The fetch runs in a daemon thread joined with a deadline, because HTTP timeouts do not
    cover a stalled DNS lookup. Returns the new genai-prices part of the catalogue version.
    """
    from genai_prices.update_prices import DEFAULT_UPDATE_URL, UpdatePrices
    from httpx2 import Timeout

    url = url or DEFAULT_UPDATE_URL
    updater = UpdatePrices(url=url, request_timeout=Timeout(timeout, connect=min(timeout, 5.0)))
    result: list[data_snapshot.DataSnapshot | BaseException | None] = []

    def run() -> None:
        try:
            result.append(updater.fetch())
        except BaseException as exc:  # reported below, in the caller's thread
            result.append(exc)

    worker = threading.Thread(target=run, name="costlens:update-prices", daemon=True)
    worker.start()
    worker.join(timeout + 1)
    outcome = result[0] if result else TimeoutError(f"no answer within {timeout:g} s")
    if not isinstance(outcome, data_snapshot.DataSnapshot):
        bundled = f"genai-prices {genai_prices.__version__}"
        why = "empty answer" if outcome is None else f"{type(outcome).__name__}: {outcome}"
        raise CostlensError(
            f"could not reach {url} to update prices ({why}); offline? "
            f"the bundled prices ({bundled}) stay in use"
        )
    tag = _digest(outcome)
    _live[:] = [(outcome, tag)]
    data_snapshot.set_custom_snapshot(outcome)
    return f"genai-prices-{genai_prices.__version__}+live-{tag}"
