"""Properties of the money path: exact parts, exact sums, no float anywhere, agreement with genai-prices."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D

import genai_prices
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costlens.pricing import PriceCatalogue, cost, get_catalogue, set_catalogue
from costlens.pricing._schema import parse_overrides
from costlens.usage import Cost, Usage

AT = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("COSTLENS_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("COSTLENS_PRICES", raising=False)
    set_catalogue(PriceCatalogue(patch=False))  # these tests check the genai-prices adapter itself
    yield
    set_catalogue(None)


@st.composite
def usages(draw: st.DrawFn, max_tokens: int = 10**9) -> Usage:
    input_tokens = draw(st.integers(0, max_tokens))
    cache_read = draw(st.integers(0, input_tokens))
    cache_write = draw(st.integers(0, input_tokens - cache_read))
    output = draw(st.integers(0, max_tokens))
    reasoning = draw(st.integers(0, output))
    return Usage(input_tokens, output, cache_read, cache_write, reasoning)


# Prices per 1M tokens with up to 6 decimal places, as a user could write them in TOML.
prices = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False)


@st.composite
def price_tables(draw: st.DrawFn) -> dict[str, object]:
    table: dict[str, object] = {
        "provider": "prop",
        "model": "m",
        "input": draw(prices),
        "output": draw(prices),
    }
    for key in ("cache_read", "cache_write", "reasoning", "per_request"):
        if draw(st.booleans()):
            table[key] = draw(prices)
    if draw(st.booleans()):
        table["long_context"] = {
            "threshold": draw(st.integers(1, 10**6)),
            "input": draw(prices),
            "output": draw(prices),
        }
    if draw(st.booleans()):
        table["tier_multipliers"] = {"flex": draw(st.decimals(min_value=0, max_value=3, places=3))}
    return table


def catalogue_for(table: dict[str, object]) -> PriceCatalogue:
    return PriceCatalogue(parse_overrides({"models": [table]}, "<test>", "digest"), genai=False)


def assert_exact(c: Cost) -> None:
    assert c.known
    assert type(c.total) is D
    assert all(type(v) is D for v in c.parts.values())
    assert sum(c.parts.values(), D(0)) == c.total
    assert type(c.nanousd) is int


@settings(max_examples=300, deadline=None)
@given(table=price_tables(), usage=usages(), tier=st.sampled_from([None, "flex", "batch"]))
def test_parts_sum_exactly_to_total(table: dict[str, object], usage: Usage, tier: str | None) -> None:
    set_catalogue(catalogue_for(table))
    assert_exact(cost(usage, provider="prop", model="m", service_tier=tier))


@settings(max_examples=200, deadline=None)
@given(table=price_tables(), batch=st.lists(usages(10**7), min_size=1, max_size=40))
def test_integer_nano_sums_are_exact(table: dict[str, object], batch: list[Usage]) -> None:
    set_catalogue(catalogue_for(table))
    costs = [cost(u, provider="prop", model="m") for u in batch]
    nanos = [c.nanousd for c in costs]
    assert all(type(n) is int for n in nanos)
    total = sum(n for n in nanos if n is not None)
    assert type(total) is int
    assert total == sum(c.nanousd or 0 for c in reversed(costs))  # order does not matter for ints
    exact = sum((c.total for c in costs if c.total is not None), D(0))
    assert abs(exact * 10**9 - total) <= D(len(batch)) / 2  # at most half a nano-dollar rounding per call


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(usages(10**7), min_size=1, max_size=20))
def test_cost_is_additive_without_tiers_or_fees(batch: list[Usage]) -> None:
    # gpt-4.1 has no long-context tier and no per-request fee: cost is linear in the tokens
    one_by_one = [cost(u, provider="openai", model="gpt-4.1", at=AT) for u in batch]
    combined = Usage()
    for u in batch:
        combined = combined + u
    together = cost(combined, provider="openai", model="gpt-4.1", at=AT)
    assert sum((c.total for c in one_by_one if c.total is not None), D(0)) == together.total
    for kind in together.parts:
        assert sum((c.parts[kind] for c in one_by_one), D(0)) == together.parts[kind]


MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "o4-mini"),
    ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("google", "gemini-2.5-pro"),
    ("deepseek", "deepseek-chat"),
    ("perplexity", "sonar"),
    ("azure", "gpt-4o"),
]


def genai_total(usage: Usage, provider: str, model: str, at: datetime) -> D:
    gusage = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
    )
    result = genai_prices.calc_price(gusage, model, provider_id=provider, genai_request_timestamp=at)
    return result.total_price


@settings(max_examples=300, deadline=None)
@given(
    usage=usages(600_000),
    which=st.sampled_from(MODELS),
    at=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)),
)
def test_agrees_with_genai_prices(usage: Usage, which: tuple[str, str], at: datetime) -> None:
    provider, model = which
    c = cost(usage, provider=provider, model=model, at=at)
    assert c.total == genai_total(usage, provider, model, at)


def test_every_bundled_model_agrees_with_genai_prices() -> None:
    """Each genai-prices model we can price costs what calc_price says; the rest have no token price."""
    from genai_prices.data_snapshot import get_snapshot

    usage = Usage(
        input_tokens=300_000, output_tokens=2_000, cache_read_tokens=50_000, cache_write_tokens=10_000
    )
    catalogue = get_catalogue()
    checked = 0
    for provider in get_snapshot().providers:
        for model in provider.models:
            price = catalogue.resolve(provider.id, model.id, AT)
            try:
                expected = genai_total(usage, provider.id, model.id, AT)
            except (LookupError, ValueError):
                assert price is None or price.model != model.id
                continue
            if price is None:
                assert expected == 0 or not _has_token_prices(model.get_prices(AT))
                continue
            if price.model != model.id:  # an earlier model in the list matches this id first
                continue
            c = cost(usage, provider=provider.id, model=model.id, at=AT)
            assert c.total == expected, (provider.id, model.id)
            checked += 1
    assert checked > 2000


def _has_token_prices(model_price: object) -> bool:
    return any(getattr(model_price, key, None) is not None for key in ("input_mtok", "output_mtok"))
