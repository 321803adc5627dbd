"""Price objects and the hot path that turns a `Usage` into a `Cost`.

Prices are stored per token, as `Decimal` already divided by 1,000,000, so pricing a call is a
handful of exact multiplications. All arithmetic runs in a private decimal context with 60 digits
of precision that traps `Inexact`: a result is either exact or an error, never silently rounded,
and the caller's own decimal context (which may have a low precision) cannot change a price.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from typing import TypeVar

from costlens.usage import Cost, Usage

__all__ = [
    "MONEY",
    "LongContextTier",
    "ModelPrice",
    "Rates",
    "atto_to_nano",
    "max_cost",
    "nanousd_at",
    "nanousd_of",
    "per_mtok",
    "per_token",
    "plain_atto",
    "price_usage",
]

#: The decimal context of every money operation in costlens.pricing (exact or raise).
MONEY = Context(
    prec=60,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)
_ZERO = Decimal(0)
#: One US dollar in atto-dollars (1e-18 USD): the unit of the integer fast path's rates.
_ATTO = 10**18
_NANO_IN_ATTO = 10**9
_HALF_NANO_IN_ATTO = _NANO_IN_ATTO // 2
#: Integer rates of a `Rates`: input, output, cache_read, cache_write, reasoning (None: billed as
#: output) and the per-request fee, each in atto-USD (per token, per request).
AttoRates = tuple[int, int, int, int, int | None, int]
_T = TypeVar("_T")
_mul = MONEY.multiply
_add = MONEY.add
log = logging.getLogger("costlens")
# (model, part) pairs already warned about: a missing part price is logged once per process.
_warned: set[tuple[str, str, str]] = set()


def per_token(per_million: Decimal) -> Decimal:
    """USD per 1M tokens -> USD per token, exactly."""
    return MONEY.scaleb(per_million, -6)


def per_mtok(price_per_token: Decimal) -> Decimal:
    """USD per token -> USD per 1M tokens, exactly (for display)."""
    return MONEY.scaleb(price_per_token, 6)


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token for each kind of token, plus a flat fee per request.

    `reasoning` is None when reasoning tokens bill as output tokens (the usual case);
    `cache_read` / `cache_write` equal `input` when a model has no separate cache price.

    The finer rates are None when the data has no price for them: `cache_write_1h` (a 1-hour
    cache write), `input_audio`, `output_audio`, `citation` (USD per token) and the tool fees
    `web_search`, `file_search` (USD per request). None is never read as $0 nor as another
    kind's price: a call that uses a part without a price gets an unknown cost (see
    `price_usage`), because the parts differ a lot (OpenAI audio input is 16x its text input).
    """

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    reasoning: Decimal | None = None
    request: Decimal = _ZERO
    cache_write_1h: Decimal | None = None
    input_audio: Decimal | None = None
    output_audio: Decimal | None = None
    citation: Decimal | None = None
    web_search: Decimal | None = None
    file_search: Decimal | None = None
    # The integer rates of the fast path (`atto()`), computed on first use; False: not yet.
    _atto: AttoRates | bool | None = field(default=False, init=False, repr=False, compare=False)
    # The dearest input and output rates and the request fee in atto-USD (`worst_atto()`), likewise.
    _worst: tuple[int, int, int] | bool | None = field(default=False, init=False, repr=False, compare=False)

    def atto(self) -> AttoRates | None:
        """The rates `nanousd_of` uses, in integer atto-USD, computed once per `Rates`; None when
        one of them is not a whole number of atto-USD (then the exact `Decimal` path prices)."""
        cached = self._atto
        if cached is False:
            cached = self._once("_atto", self._atto_rates)
        assert cached is not True
        return cached

    def worst_atto(self) -> tuple[int, int, int] | None:
        """(dearest input rate, dearest output rate, request fee) in integer atto-USD, as `max_cost`
        picks them, computed once per `Rates`; None when one is not a whole number of atto-USD."""
        cached = self._worst
        if cached is False:
            cached = self._once("_worst", self._worst_rates)
        assert cached is not True
        return cached

    def _once(self, name: str, compute: Callable[[], _T]) -> _T | None:
        """`compute()` kept in the field `name` (None when a rate is not whole atto-USD)."""
        try:
            value: _T | None = compute()
        except ValueError:
            value = None
        object.__setattr__(self, name, value)
        return value

    def _atto_rates(self) -> AttoRates:
        reasoning = self.reasoning
        return (
            _to_atto(self.input),
            _to_atto(self.output),
            _to_atto(self.cache_read),
            _to_atto(self.cache_write),
            None if reasoning is None else _to_atto(reasoning),
            _to_atto(self.request),
        )

    def _worst_rates(self) -> tuple[int, int, int]:
        inputs = (self.input, self.cache_write, self.cache_read, self.cache_write_1h, self.input_audio)
        outputs = (self.output, self.reasoning, self.output_audio, self.citation)
        return (
            _to_atto(max(r for r in inputs if r is not None)),
            _to_atto(max(r for r in outputs if r is not None)),
            _to_atto(self.request),
        )

    def scaled(self, factor: Decimal) -> Rates:
        """Every token price times `factor` (a service-tier multiplier); per-request fees are kept."""

        def scale(rate: Decimal | None) -> Decimal | None:
            return None if rate is None else _mul(rate, factor)

        return Rates(
            input=_mul(self.input, factor),
            output=_mul(self.output, factor),
            cache_read=_mul(self.cache_read, factor),
            cache_write=_mul(self.cache_write, factor),
            reasoning=scale(self.reasoning),
            request=self.request,
            cache_write_1h=scale(self.cache_write_1h),
            input_audio=scale(self.input_audio),
            output_audio=scale(self.output_audio),
            citation=scale(self.citation),
            web_search=self.web_search,
            file_search=self.file_search,
        )

    def per_mtok(self) -> dict[str, str | None]:
        """JSON-friendly prices per 1M tokens as decimal strings (request fees per call).

        The finer rates appear only when set (`web_search` / `file_search` per request)."""
        out: dict[str, str | None] = {
            "input": fmt(per_mtok(self.input)),
            "output": fmt(per_mtok(self.output)),
            "cache_read": fmt(per_mtok(self.cache_read)),
            "cache_write": fmt(per_mtok(self.cache_write)),
            "reasoning": None if self.reasoning is None else fmt(per_mtok(self.reasoning)),
            "per_request": fmt(self.request),
        }
        for name in ("cache_write_1h", "input_audio", "output_audio", "citation"):
            rate = getattr(self, name)
            if rate is not None:
                out[name] = fmt(per_mtok(rate))
        for name in ("web_search", "file_search"):
            fee = getattr(self, name)
            if fee is not None:
                out[f"{name}_per_request"] = fmt(fee)
        return out


@dataclass(frozen=True, slots=True)
class LongContextTier:
    """Prices for calls whose input (cached tokens included) exceeds `threshold` tokens.

    Like genai-prices and the providers (Anthropic, Google), crossing the threshold reprices ALL
    tokens of the call, not only those above it.
    """

    threshold: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """The resolved price of one model, for one service tier, valid from `starts_at`.

    `source` is `genai-prices` or `override:<path>`. `tier_rule` says how the service tier was
    priced: `standard`, `explicit` (a price for that tier exists), `multiplier` (override
    multiplier), `batch-50%` (documented provider discount) or `fallback-standard` (no rule found).
    The fine-tuning fields come from overrides only; nothing computes with them yet.
    """

    provider: str
    model: str
    source: str
    rates: Rates
    long_context: tuple[LongContextTier, ...] = ()
    starts_at: datetime | None = None
    service_tier: str = "standard"
    tier_rule: str = "standard"
    training_per_mtok: Decimal | None = None
    training_per_hour: Decimal | None = None
    hosting_per_hour: Decimal | None = None
    storage_per_month: Decimal | None = None
    min_training_charge: Decimal | None = None

    def rates_for(self, input_tokens: int) -> Rates:
        """The rates that apply to a call with this many input tokens (long-context tiers)."""
        for tier in reversed(self.long_context):
            if input_tokens > tier.threshold:
                return tier.rates
        return self.rates

    def for_tier(self, service_tier: str, tier_rule: str, fn: Callable[[Rates], Rates]) -> ModelPrice:
        """A copy priced for a service tier: `fn` applied to the base and every long-context rate set."""
        tiers = tuple(LongContextTier(t.threshold, fn(t.rates)) for t in self.long_context)
        return replace(
            self, rates=fn(self.rates), long_context=tiers, service_tier=service_tier, tier_rule=tier_rule
        )

    @property
    def input_per_mtok(self) -> Decimal:
        return per_mtok(self.rates.input)

    @property
    def output_per_mtok(self) -> Decimal:
        return per_mtok(self.rates.output)


def _to_atto(rate: Decimal) -> int:
    """`rate` (USD) in atto-USD, exactly; ValueError when it is not a whole number of them."""
    try:
        numerator, denominator = rate.as_integer_ratio()
    except (OverflowError, ValueError) as exc:  # NaN, infinity
        raise ValueError(f"rate {rate} is not finite") from exc
    atto, rest = divmod(numerator * _ATTO, denominator)
    if rest:
        raise ValueError(f"rate {rate} is not a whole number of atto-USD")
    return atto


def atto_to_nano(total_atto: int) -> int:
    """Atto-USD rounded to nano-USD half to even, as `costlens.usage.to_nanousd`."""
    nano, rest = divmod(total_atto, _NANO_IN_ATTO)
    if rest > _HALF_NANO_IN_ATTO or (rest == _HALF_NANO_IN_ATTO and nano & 1):
        nano += 1
    return nano


def nanousd_of(usage: Usage, price: ModelPrice) -> int | None:
    """`price_usage(usage, price, ...).nanousd`, the same integer, without building a `Cost`. Hot path.

    With the rates in integer atto-USD (`Rates.atto`, once per `Rates`) the total is a few integer
    products, rounded half to even to nano-USD like `costlens.usage.to_nanousd`: exact, as the
    `Decimal` path. A usage with finer parts, or rates finer than 1e-18 USD, takes the `Decimal`
    path itself. None when the cost is unknown (a part without a price, warned about once)."""
    rates = price.rates_for(usage.input_tokens) if price.long_context else price.rates
    atto = rates._atto
    if atto is False:
        atto = rates.atto()
    if atto is None or atto is True:
        return price_usage(usage, price, "").nanousd
    nano = nanousd_at(usage, atto)
    return price_usage(usage, price, "").nanousd if nano is None else nano


def plain_atto(price: ModelPrice) -> AttoRates | None:
    """The integer rates `nanousd_at` prices with, for a price whose rates do not depend on the
    usage (no long-context tiers); None when it has tiers or a rate finer than 1e-18 USD."""
    if price.long_context:
        return None
    return price.rates.atto()


def nanousd_at(usage: Usage, atto: AttoRates) -> int | None:
    """The cost in nano-USD of `usage` at integer rates `atto` (`Rates.atto()`), rounded half to
    even as `costlens.usage.to_nanousd`; None for a usage with finer parts (audio, 1-hour cache
    writes, citations, tool requests): `price_usage` prices those."""
    if (
        usage.cache_write_1h_tokens or usage.input_audio_tokens or usage.output_audio_tokens
        or usage.citation_tokens or usage.web_search_requests or usage.file_search_requests
    ):  # fmt: skip
        return None
    a_in, a_out, a_cr, a_cw, a_rs, a_req = atto
    cache_read = usage.cache_read_tokens
    cache_write = usage.cache_write_tokens
    out = usage.output_tokens
    total = a_in * (usage.input_tokens - cache_read - cache_write) + a_cr * cache_read + a_cw * cache_write
    if a_rs is None:
        total += a_out * out + a_req
    else:
        reasoning = usage.reasoning_tokens
        total += a_out * (out - reasoning) + a_rs * reasoning + a_req
    nano, rest = divmod(total, _NANO_IN_ATTO)  # (`atto_to_nano`, without its frame)
    if rest > _HALF_NANO_IN_ATTO or (rest == _HALF_NANO_IN_ATTO and nano & 1):
        nano += 1
    return nano


def fmt(value: Decimal) -> str:
    """A decimal as a plain string without exponent or trailing zeros: 2.50E-6 -> '0.0000025'."""
    text = format(value.normalize(MONEY), "f")
    return "0" if text in ("-0", "0") else text


def price_usage(usage: Usage, price: ModelPrice, version: str) -> Cost:
    """The exact cost of `usage` at `price`; the parts sum exactly to the total. Hot path."""
    n_in = usage.input_tokens
    rates = price.rates_for(n_in) if price.long_context else price.rates
    if usage.has_parts:
        return _price_parts(usage, rates, price, version)
    cache_read = usage.cache_read_tokens
    cache_write = usage.cache_write_tokens
    uncached = n_in - cache_read - cache_write
    p_in = _mul(rates.input, uncached) if uncached else _ZERO
    p_cr = _mul(rates.cache_read, cache_read) if cache_read else _ZERO
    p_cw = _mul(rates.cache_write, cache_write) if cache_write else _ZERO
    out = usage.output_tokens
    parts = {"input": p_in, "cache_read": p_cr, "cache_write": p_cw}
    if rates.reasoning is None:
        p_out = _mul(rates.output, out) if out else _ZERO
        total = _add(_add(p_in, p_cr), _add(p_cw, p_out))
    else:
        reasoning = usage.reasoning_tokens
        p_out = _mul(rates.output, out - reasoning) if out > reasoning else _ZERO
        p_rs = _mul(rates.reasoning, reasoning) if reasoning else _ZERO
        parts["reasoning"] = p_rs
        total = _add(_add(_add(p_in, p_cr), _add(p_cw, p_out)), p_rs)
    parts["output"] = p_out
    if rates.request:
        parts["request"] = rates.request
        total = _add(total, rates.request)
    return Cost(total, True, parts, version)


def _price_parts(usage: Usage, rates: Rates, price: ModelPrice, version: str) -> Cost:
    """`price_usage` for a usage with finer parts (1-hour cache writes, audio, citations, tool fees).

    Each part is priced at its own rate. A part with no rate makes the whole cost unknown (never
    $0, never another kind's price), and one warning per (model, part) names what to add.
    """
    c1h = usage.cache_write_1h_tokens
    audio_in, audio_out, citation = usage.input_audio_tokens, usage.output_audio_tokens, usage.citation_tokens
    reasoning = usage.reasoning_tokens
    text_in = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens - audio_in
    writes_5m = usage.cache_write_tokens - c1h
    # Reasoning without its own price bills as output (`Rates.reasoning` is None), as in price_usage.
    text_out = usage.output_tokens - audio_out - citation - (0 if rates.reasoning is None else reasoning)
    terms: list[tuple[str, Decimal | None, int]] = [
        ("input", rates.input, text_in),
        ("cache_read", rates.cache_read, usage.cache_read_tokens),
        ("cache_write", rates.cache_write, writes_5m),
    ]
    if c1h:
        terms.append(("cache_write_1h", rates.cache_write_1h, c1h))
    if audio_in:
        terms.append(("input_audio", rates.input_audio, audio_in))
    if rates.reasoning is not None:
        terms.append(("reasoning", rates.reasoning, reasoning))
    terms.append(("output", rates.output, text_out))
    if audio_out:
        terms.append(("output_audio", rates.output_audio, audio_out))
    if citation:
        terms.append(("citation", rates.citation, citation))
    if usage.web_search_requests:
        terms.append(("web_search", rates.web_search, usage.web_search_requests))
    if usage.file_search_requests:
        terms.append(("file_search", rates.file_search, usage.file_search_requests))
    missing = tuple(name for name, rate, _ in terms if rate is None)
    if missing:
        _warn_missing(price, missing)
        return Cost.unknown(version, missing)
    parts: dict[str, Decimal] = {}
    total = _ZERO
    for name, rate, count in terms:
        assert rate is not None
        value = _mul(rate, count) if count else _ZERO
        parts[name] = value
        total = _add(total, value)
    if rates.request:
        parts["request"] = rates.request
        total = _add(total, rates.request)
    return Cost(total, True, parts, version)


def _warn_missing(price: ModelPrice, missing: tuple[str, ...]) -> None:
    for part in missing:
        key = (price.provider, price.model, part)
        if key in _warned:
            continue
        if len(_warned) > 10_000:
            _warned.clear()
        _warned.add(key)
        log.warning(
            "costlens: %s/%s has no %r price (source %s); calls that use it are recorded with cost "
            "unknown, never $0 nor priced as another kind. Add `%s = <USD%s>` to its [[models]] "
            "table in the price overrides file to price them",
            price.provider,
            price.model,
            part,
            price.source,
            _OVERRIDE_KEYS.get(part, part),
            " per 1,000 requests" if part in ("web_search", "file_search") else " per 1M tokens",
        )


# Cost part -> the key of a price overrides file that prices it.
_OVERRIDE_KEYS = {"web_search": "web_search_per_1k", "file_search": "file_search_per_1k"}


def max_nanousd(price: ModelPrice, input_tokens: int, max_output_tokens: int) -> int:
    """`max_cost(...).nanousd`, the same integer, without building a `Cost` (every budgeted call
    needs it): integer atto-USD products rounded half to even, as `nanousd_of`."""
    rates = price.rates_for(input_tokens) if price.long_context else price.rates
    worst = rates._worst
    if worst is False:
        worst = rates.worst_atto()
    if worst is None or worst is True:
        exact = max_cost(price, input_tokens, max_output_tokens, "").nanousd
        assert exact is not None  # a worst case is always known: every part it uses has a price
        return exact
    a_in, a_out, a_req = worst
    return atto_to_nano(a_in * input_tokens + a_out * max_output_tokens + a_req)


def max_cost(price: ModelPrice, input_tokens: int, max_output_tokens: int, version: str) -> Cost:
    """Worst-case cost: every input token at the dearest input price, every output at the dearest output.

    The dearest input price is the highest known of input, cache_write, cache_write_1h, cache_read
    and input_audio of the long-context tier the input count falls in, because a prompt may write
    a cache entry (Anthropic bills that at 1.25x, 2x for one hour). Output is priced at the highest
    known of output, reasoning, output_audio and citation. Server-side tool fees cannot be bounded
    before the call (the model decides how many searches to run) and are not included.
    """
    rates = price.rates_for(input_tokens)
    inputs = (rates.input, rates.cache_write, rates.cache_read, rates.cache_write_1h, rates.input_audio)
    outputs = (rates.output, rates.reasoning, rates.output_audio, rates.citation)
    p_input = max(r for r in inputs if r is not None)
    p_output = max(r for r in outputs if r is not None)
    parts = {
        "input": _mul(p_input, input_tokens),
        "cache_read": _ZERO,
        "cache_write": _ZERO,
        "output": _mul(p_output, max_output_tokens),
    }
    if rates.request:
        parts["request"] = rates.request
    total = _ZERO
    for value in parts.values():
        total = _add(total, value)
    return Cost(total, True, parts, version)
