"""Pricing many calls fast and exactly: prices resolved once, costs computed in integers.

Shared by re-pricing and import. The result is exactly `costlens.pricing.cost` per call (same
catalogue entry, same long-context tier rule), computed without Decimal where it can be: a price
whose rates are whole femto-dollars (1e-15 USD) per token, as every listed price is, gives the
call's exact cost in femto-USD as an integer, which is rounded half-even to nano-USD once, like
`to_nanousd`. Other prices go through `price_usage`. Unknown prices are logged once per model.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from costlens.pricing import PriceCatalogue, Rates, get_catalogue
from costlens.pricing._model import ModelPrice, price_usage
from costlens.usage import Usage

__all__ = ["Pricer", "femto_rates"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FEMTO = 10**15
_PER_NANO = 10**6  # femto-USD in one nano-USD
Tokens = tuple[int, int, int, int, int]
#: (input, output, cache_read, cache_write, reasoning or None, request) in femto-USD.
IntRates = tuple[int, int, int, int, int | None, int]


def _femto(value: Decimal) -> int | None:
    scaled = value.scaleb(15)
    return int(scaled) if scaled == scaled.to_integral_value() else None


def femto_rates(rates: Rates) -> IntRates | None:
    """The rates as integer femto-USD per token (request fee per call), or None if not whole."""
    parts = [rates.input, rates.output, rates.cache_read, rates.cache_write]
    ints = [_femto(p) for p in parts]
    reasoning = None if rates.reasoning is None else _femto(rates.reasoning)
    request = _femto(rates.request)
    if any(v is None for v in ints) or request is None or (rates.reasoning is not None and reasoning is None):
        return None
    i, o, cr, cw = (int(v) for v in ints if v is not None)
    return i, o, cr, cw, reasoning, request


def _nano(femto: int) -> int:
    """Round femto-USD half-even to nano-USD (what `to_nanousd` does to the exact Decimal)."""
    q, rem = divmod(femto, _PER_NANO)
    if rem * 2 > _PER_NANO or (rem * 2 == _PER_NANO and q % 2):
        q += 1
    return q


def _cost(rates: IntRates, tokens: Tokens) -> int:
    n_in, n_out, cache_read, cache_write, reasoning = tokens
    r_in, r_out, r_cr, r_cw, r_rs, request = rates
    total = (n_in - cache_read - cache_write) * r_in + cache_read * r_cr + cache_write * r_cw + request
    if r_rs is None:
        return _nano(total + n_out * r_out)
    return _nano(total + max(n_out - reasoning, 0) * r_out + reasoning * r_rs)


class _Fast:
    """A price with every rate set (base and long-context tiers) in integer femto-USD."""

    def __init__(self, price: ModelPrice) -> None:
        self.base = femto_rates(price.rates)
        self.tiers = [(t.threshold, femto_rates(t.rates)) for t in price.long_context]
        self.ok = self.base is not None and all(r is not None for _, r in self.tiers)

    def __call__(self, tokens: Tokens) -> int:
        rates = self.base
        for threshold, tier in reversed(self.tiers):
            if tokens[0] > threshold:
                rates = tier
                break
        assert rates is not None
        return _cost(rates, tokens)


class Pricer:
    """`pricer(provider, model, tier, at_us, tokens)` -> nano-USD, or None when no price is known.

    `at` fixes the price date for every call (default: each call's own time). ValueError when the
    token counts are inconsistent (negative, cache above input, reasoning above output).
    """

    def __init__(self, catalogue: PriceCatalogue | None = None, *, at: datetime | None = None) -> None:
        self.catalogue = catalogue or get_catalogue()
        self.version = self.catalogue.version
        self.at = at
        self._fast: dict[int, tuple[ModelPrice, _Fast]] = {}

    def price(self, provider: str, model: str, tier: str | None, at_us: int) -> ModelPrice | None:
        entry = self.catalogue.entry(provider, model, tier)
        price = entry.fixed or entry.lookup(self.at or _EPOCH + timedelta(microseconds=at_us))
        if price is None:
            self.catalogue.unknown(provider, model)  # the one loud warning per model
        return price

    def __call__(self, provider: str, model: str, tier: str | None, at_us: int, tokens: Tokens) -> int | None:
        price = self.price(provider, model, tier, at_us)
        if price is None:
            return None
        n_in, n_out, cache_read, cache_write, reasoning = tokens
        if min(tokens) < 0 or cache_read + cache_write > n_in or reasoning > n_out:
            Usage(*tokens)  # raises the ValueError that says what is wrong
        found = self._fast.get(id(price))
        if found is None:
            found = self._fast[id(price)] = (price, _Fast(price))  # the price is kept alive: ids stay unique
        if found[1].ok:
            return found[1](tokens)
        return price_usage(Usage(*tokens), price, self.version).nanousd or 0
