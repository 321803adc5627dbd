"""The integer fast path of pricing (`nanousd_of`, `nanousd_cost`) gives exactly what the `Decimal`
path (`price_usage`, `cost`) gives, for every price in the catalogue and any usage."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costlens.pricing import ModelPrice, PriceCatalogue, Rates, cost, set_catalogue
from costlens.pricing._catalogue import nanousd_cost
from costlens.pricing._model import _price_parts, max_cost, max_nanousd, nanousd_of, per_token, price_usage
from costlens.pricing._providers import STANDARD
from costlens.pricing._timeline import prices_of
from costlens.usage import Usage


def _every_price() -> list[ModelPrice]:
    """Every price the bundled catalogue (genai-prices with the costlens patch) can take: each model,
    each tier it lists plus the common ones, each dated segment and each time-of-day window."""
    from genai_prices.data_snapshot import get_snapshot

    catalogue = PriceCatalogue()
    found: dict[int, ModelPrice] = {}
    for provider in get_snapshot().providers:
        for model in provider.models:
            for tier in (STANDARD, *catalogue.tiers(provider.id, model.id)):
                for _, segment in catalogue.timeline(provider.id, model.id, tier):
                    for price in prices_of(segment):
                        found[id(price)] = price
    return list(found.values())


PRICES = _every_price()


def _every_rates() -> list[Rates]:
    return [r for p in PRICES for r in (p.rates, *(t.rates for t in p.long_context))]


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("COSTLENS_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("COSTLENS_PRICES", raising=False)
    yield
    set_catalogue(None)


@st.composite
def usages(draw: st.DrawFn, max_tokens: int = 10**9, parts: bool = True) -> Usage:
    input_tokens = draw(st.integers(0, max_tokens))
    cache_read = draw(st.integers(0, input_tokens))
    cache_write = draw(st.integers(0, input_tokens - cache_read))
    output = draw(st.integers(0, max_tokens))
    reasoning = draw(st.integers(0, output))
    if not parts or not draw(st.booleans()):
        return Usage(input_tokens, output, cache_read, cache_write, reasoning)
    cache_1h = draw(st.integers(0, cache_write))
    audio_in = draw(st.integers(0, input_tokens - cache_read - cache_write))
    audio_out = draw(st.integers(0, output - reasoning))
    citation = draw(st.integers(0, output - reasoning - audio_out))
    return Usage(
        input_tokens,
        output,
        cache_read,
        cache_write,
        reasoning,
        cache_1h,
        audio_in,
        audio_out,
        citation,
        draw(st.integers(0, 1000)),
        draw(st.integers(0, 1000)),
    )


def test_the_catalogue_is_large_and_mostly_on_the_integer_path() -> None:
    rates = _every_rates()
    assert len(PRICES) > 2000
    on_fast_path = sum(r.atto() is not None for r in rates)
    # the rest are float artefacts in the data (1.8000000000000002E-7 USD): priced by the Decimal path
    assert on_fast_path >= 0.98 * len(rates)


@pytest.mark.parametrize(
    "usage",
    [
        Usage(),
        Usage(1, 1),
        Usage(9, 2),
        Usage(300_000, 2_000, 50_000, 10_000, 500),
        Usage(123_457, 98_765, 3_333, 777, 98_765),
        Usage(10**9, 10**9, 10**8, 10**8, 10**7),
        Usage(1_000, 500, 100, 100, 50, 50, 10, 20, 30, 2, 3),
    ],
)
def test_every_catalogue_price_agrees(usage: Usage) -> None:
    """Not a sample: every price of the catalogue, for usages that touch each rate."""
    for price in PRICES:
        expected = price_usage(usage, price, "").nanousd
        assert nanousd_of(usage, price) == expected, (price.provider, price.model)


@settings(max_examples=600, deadline=None)
@given(usage=usages(), index=st.integers(0, len(PRICES) - 1))
def test_random_usages_agree_over_catalogue_prices(usage: Usage, index: int) -> None:
    price = PRICES[index]
    assert nanousd_of(usage, price) == price_usage(usage, price, "").nanousd


# Rates as a user could write them (per 1M tokens, up to 6 places) or finer than the integer path
# takes (then the Decimal path prices): both must agree with price_usage exactly.
_per_mtok = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False)
_odd = st.decimals(min_value=0, max_value=1000, places=14, allow_nan=False, allow_infinity=False)


@st.composite
def rates(draw: st.DrawFn) -> Rates:
    def rate() -> D:
        return per_token(draw(st.one_of(_per_mtok, _odd)))

    def maybe() -> D | None:
        return rate() if draw(st.booleans()) else None

    return Rates(
        input=rate(),
        output=rate(),
        cache_read=rate(),
        cache_write=rate(),
        reasoning=maybe(),
        request=draw(st.decimals(min_value=0, max_value=1, places=9)),
        cache_write_1h=maybe(),
        input_audio=maybe(),
        output_audio=maybe(),
        citation=maybe(),
        web_search=maybe(),
        file_search=maybe(),
    )


@settings(max_examples=600, deadline=None)
@given(usage=usages(), base=rates(), long=st.none() | st.tuples(st.integers(0, 10**6), rates()))
def test_random_rates_agree(usage: Usage, base: Rates, long: tuple[int, Rates] | None) -> None:
    from costlens.pricing import LongContextTier

    tiers = () if long is None else (LongContextTier(long[0], long[1]),)
    price = ModelPrice("p", "m", "test", base, tiers)
    assert nanousd_of(usage, price) == price_usage(usage, price, "").nanousd


@settings(max_examples=300, deadline=None)
@given(n_in=st.integers(0, 10**8), n_out=st.integers(0, 10**6), index=st.integers(0, len(PRICES) - 1))
def test_budget_worst_case_agrees_over_catalogue_prices(n_in: int, n_out: int, index: int) -> None:
    """The reservation's integer worst case is `max_cost`'s, to the nano-USD, for every price."""
    price = PRICES[index]
    assert max_nanousd(price, n_in, n_out) == max_cost(price, n_in, n_out, "").nanousd


@settings(max_examples=300, deadline=None)
@given(
    n_in=st.integers(0, 10**8),
    n_out=st.integers(0, 10**6),
    base=rates(),
    long=st.none() | st.tuples(st.integers(0, 10**6), rates()),
)
def test_budget_worst_case_agrees_over_random_rates(
    n_in: int, n_out: int, base: Rates, long: tuple[int, Rates] | None
) -> None:
    from costlens.pricing import LongContextTier

    tiers = () if long is None else (LongContextTier(long[0], long[1]),)
    price = ModelPrice("p", "m", "test", base, tiers)
    assert max_nanousd(price, n_in, n_out) == max_cost(price, n_in, n_out, "").nanousd


def test_half_nano_rounds_to_even() -> None:
    """0.5 and 1.5 nano-USD: banker's rounding, as `to_nanousd`."""
    half = Rates(input=D("0.0000000005"), output=D(0), cache_read=D(0), cache_write=D(0))
    price = ModelPrice("p", "m", "test", half)
    for tokens, expected in [(1, 0), (3, 2), (5, 2), (7, 4), (2, 1)]:
        usage = Usage(tokens)
        assert nanousd_of(usage, price) == expected == price_usage(usage, price, "").nanousd


def test_unknown_part_is_unknown_on_both_paths() -> None:
    rates_ = Rates(input=D("1e-6"), output=D("2e-6"), cache_read=D("1e-7"), cache_write=D("1e-6"))
    price = ModelPrice("p", "m", "test", rates_)
    usage = Usage(100, 10, input_audio_tokens=5)
    assert _price_parts(usage, rates_, price, "").total is None
    assert nanousd_of(usage, price) is None


@settings(max_examples=200, deadline=None)
@given(usage=usages(max_tokens=10**7), index=st.integers(0, len(PRICES) - 1))
def test_nanousd_cost_is_cost(usage: Usage, index: int) -> None:
    """The catalogue entry point gives (`Cost.nanousd`, `Cost.price_version`) of `cost()`."""
    price = PRICES[index]
    at = datetime(2026, 3, 1, tzinfo=UTC)
    priced = cost(usage, provider=price.provider, model=price.model, at=at)
    assert nanousd_cost(usage, price.provider, price.model, at) == (priced.nanousd, priced.price_version)


def test_nanousd_cost_unknown_model() -> None:
    priced = cost(Usage(10, 10), provider="nobody", model="no-such-model")
    assert nanousd_cost(Usage(10, 10), "nobody", "no-such-model") == (None, priced.price_version)


@settings(max_examples=400, deadline=None)
@given(usage=usages(), index=st.integers(0, len(PRICES) - 1))
def test_the_pipelines_pricer_agrees_with_the_decimal_path(usage: Usage, index: int) -> None:
    """`Pricer` prices a plain price's calls with `nanousd_at` and the integer rates it keeps per
    model: the same integer as `price_usage`, finer parts and long-context tiers included."""
    from costlens.pipeline._price import Pricer
    from costlens.pricing._model import nanousd_at, plain_atto
    from costlens.usage import CallRecord

    price = PRICES[index]
    expected = price_usage(usage, price, "").nanousd
    atto = plain_atto(price)
    if atto is not None:
        at = nanousd_at(usage, atto)
        assert at is None if usage.has_parts else at == expected
    set_catalogue(PriceCatalogue())
    record = CallRecord(price.provider, "chat", price.model)
    Pricer().price(record, price.model, usage)
    nanousd, version = nanousd_cost(usage, price.provider, price.model, record.started_at)
    assert (record.cost_nanousd, record.price_known, record.price_version) == (
        nanousd,
        nanousd is not None,
        version,
    )
