"""Anthropic's US-only inference (`inference_geo: "us"`): 1.1x every token price, in every tier.

Priced from the response (`usage.inference_geo`), plain, `stream=True` and `.stream()`; reserved by
budgets from the request (`inference_geo`, and fast mode's `speed: "fast"`), so a budget's worst
case is the price the call can really be billed at.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import pytest

import costlens
from costlens.budgets import Budget
from costlens.config import configure_budgets, reset_budgets
from costlens.pipeline import Request, estimate
from costlens.pipeline._request import requested_tier
from costlens.pricing import cost, get_catalogue
from costlens.pricing._providers import normalize_tier, split_geo
from costlens.testing import FakeProvider, FakeUsage
from costlens.usage import Usage, with_inference_geo
from tests.conftest import Recorded

MSG: Any = [{"role": "user", "content": "hello"}]
MODEL = "claude-sonnet-4-6"
FAST_MODEL = "claude-opus-4-8"  # has fast-mode prices (genai-prices `speed: fast`)
PREMIUM = Decimal("1.1")
USAGE = Usage(3000, 120, cache_read_tokens=2000, cache_write_tokens=500, cache_write_1h_tokens=200)
FAKE = FakeUsage(input_tokens=3000, output_tokens=120, cached_tokens=2000, cache_write_tokens=500)


def _client(fake: FakeProvider) -> anthropic.Anthropic:
    return costlens.track(anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0))


def _total(usage: Usage, tier: str | None, model: str = MODEL, provider: str = "anthropic") -> Decimal:
    found = cost(usage, provider=provider, model=model, service_tier=tier)
    assert found.known and found.total is not None
    return found.total


# -- naming ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "geo", "named"),
    [
        (None, "us", "standard+us"),
        ("standard", "US ", "standard+us"),
        ("fast", "us", "fast+us"),
        ("batch", "us", "batch+us"),
        ("standard", "global", "standard"),
        ("priority", "", "priority"),
        (None, None, None),
        ("standard", 3, "standard"),
    ],
)
def test_a_geography_is_named_in_the_tier(tier: str | None, geo: object, named: str | None) -> None:
    assert with_inference_geo(tier, geo) == named


def test_tiers_with_a_geography_normalise_like_their_base() -> None:
    assert normalize_tier("default+US") == normalize_tier(" auto + us ") == "standard+us"
    assert normalize_tier("standard+global") == normalize_tier("standard+") == "standard"
    assert normalize_tier("+us") == "standard+us"
    assert split_geo("fast+us") == ("fast", "us") and split_geo("batch") == ("batch", None)


def test_the_request_names_the_tier_budgets_reserve_for() -> None:
    assert requested_tier({"model": MODEL}) is None
    assert requested_tier({"service_tier": "priority"}) == "priority"
    assert requested_tier({"service_tier": ""}) is None
    assert requested_tier({"speed": "fast"}) == "fast"
    assert requested_tier({"speed": "standard", "service_tier": "auto"}) == "auto"
    assert requested_tier({"inference_geo": "us"}) == "standard+us"
    assert requested_tier({"speed": "fast", "inference_geo": "us"}) == "fast+us"
    assert requested_tier({"inference_geo": "global", "service_tier": 7}) is None


# -- pricing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["standard", "batch", "priority"])
def test_us_only_inference_costs_one_point_one_times_every_token_part(base: str) -> None:
    plain = cost(USAGE, provider="anthropic", model=MODEL, service_tier=base)
    us = cost(USAGE, provider="anthropic", model=MODEL, service_tier=f"{base}+us")
    assert plain.known and us.known and plain.total is not None
    assert us.total == plain.total * PREMIUM
    assert (
        set(us.parts)
        == set(plain.parts)
        >= {"input", "output", "cache_read", "cache_write", "cache_write_1h"}
    )
    for part, dollars in plain.parts.items():
        assert us.parts[part] == dollars * PREMIUM, part


def test_fast_mode_on_us_only_inference_stacks_both_premiums() -> None:
    usage = Usage(2000, 300)
    assert _total(usage, "fast", FAST_MODEL) == 2 * _total(usage, None, FAST_MODEL)
    assert _total(usage, "fast+us", FAST_MODEL) == _total(usage, "fast", FAST_MODEL) * PREMIUM


def test_web_search_fees_are_not_multiplied() -> None:
    searching = Usage(1000, 100, web_search_requests=3)
    fee = _total(searching, None) - _total(Usage(1000, 100), None)
    assert fee == Decimal("0.03")  # $10 per 1,000 searches
    assert _total(searching, "standard+us") == _total(Usage(1000, 100), None) * PREMIUM + fee


def test_the_price_says_how_it_was_derived() -> None:
    price = get_catalogue().resolve("anthropic", MODEL, None, "standard+us")
    assert price is not None and price.service_tier == "standard+us"
    assert price.tier_rule == "standard+us-110%"


def test_a_geography_without_a_known_premium_is_priced_at_its_tier_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    costlens.pricing.reload_catalogue()
    with caplog.at_level(logging.WARNING, logger="costlens"):
        eu = _total(USAGE, "standard+eu")
        openai_us = _total(Usage(1000, 100), "default+us", "gpt-4o-mini", "openai")
    assert eu == _total(USAGE, None)
    assert openai_us == _total(Usage(1000, 100), None, "gpt-4o-mini", "openai")
    said = caplog.text
    assert "no price premium known for eu inference at anthropic" in said
    assert "no price premium known for us inference at openai" in said


def test_an_unknown_model_on_us_inference_stays_unknown() -> None:
    unknown = cost(USAGE, provider="anthropic", model="claude-nonexistent-9", service_tier="standard+us")
    assert not unknown.known and unknown.total is None


# -- tracking through the real SDK ------------------------------------------------------------------


def test_a_message_on_us_only_inference_is_priced_at_the_premium(
    fake: FakeProvider, recorded: Recorded
) -> None:
    fake.default_usage = FAKE
    client = _client(fake)
    message = client.messages.create(model=MODEL, max_tokens=200, messages=MSG, inference_geo="us")
    assert message.usage.inference_geo == "us"
    list(client.messages.create(model=MODEL, max_tokens=200, messages=MSG, inference_geo="us", stream=True))
    with client.messages.stream(model=MODEL, max_tokens=200, messages=MSG, inference_geo="us") as stream:
        stream.get_final_message()
    client.messages.create(model=MODEL, max_tokens=200, messages=MSG, inference_geo="global")
    plain, streamed, helped, anywhere = recorded.all()
    usage = Usage(3000, 120, cache_read_tokens=2000, cache_write_tokens=500)
    us = cost(usage, provider="anthropic", model=MODEL, service_tier="standard+us")
    assert us.nanousd is not None
    for record in (plain, streamed, helped):
        assert record.service_tier == "standard+us" and record.usage == usage
        assert record.cost_nanousd == us.nanousd
    assert anywhere.service_tier == "standard"
    assert anywhere.cost_nanousd == cost(usage, provider="anthropic", model=MODEL).nanousd


def test_fast_mode_on_us_only_inference_is_recorded_as_both(fake: FakeProvider, recorded: Recorded) -> None:
    fake.default_usage = FakeUsage(input_tokens=2000, output_tokens=300)
    _client(fake).messages.create(
        model=FAST_MODEL, max_tokens=400, messages=MSG, speed="fast", inference_geo="us"
    )
    record = recorded.one()
    assert record.service_tier == "fast+us"
    expected = cost(Usage(2000, 300), provider="anthropic", model=FAST_MODEL, service_tier="fast+us")
    assert record.cost_nanousd == expected.nanousd


# -- budgets ------------------------------------------------------------------------------------------


@pytest.fixture
def no_budgets_after() -> Iterator[None]:
    yield
    reset_budgets()


@pytest.mark.parametrize(
    ("extra", "tier"),
    [
        ({"inference_geo": "us"}, "standard+us"),
        ({"speed": "fast"}, "fast"),
        ({"speed": "fast", "inference_geo": "us"}, "fast+us"),
    ],
)
def test_the_estimate_prices_the_tier_the_request_asks_for(extra: dict[str, Any], tier: str) -> None:
    body = {"model": FAST_MODEL, "max_tokens": 100, "messages": MSG}
    plain = estimate(Request.of("anthropic", "chat", body))
    dearer = estimate(Request.of("anthropic", "chat", {**body, **extra}))
    assert plain.cost_nanousd is not None and dearer.cost_nanousd is not None
    assert dearer.input_tokens == plain.input_tokens and dearer.output_tokens == plain.output_tokens
    worst = costlens.pricing.estimate_max_cost(
        "anthropic", FAST_MODEL, plain.input_tokens, plain.output_tokens, service_tier=tier
    )
    assert dearer.cost_nanousd == worst.nanousd > plain.cost_nanousd


def test_a_budget_reserves_the_us_premium_and_never_overruns(
    fake: FakeProvider, recorded: Recorded, no_budgets_after: None
) -> None:
    """A limit that holds one call at the standard worst case but not at the US one refuses it
    before it is sent (reserving the standard price would let it through and overrun)."""
    body = {"model": MODEL, "max_tokens": 200, "messages": MSG}
    standard = estimate(Request.of("anthropic", "chat", body)).cost_nanousd
    us = estimate(Request.of("anthropic", "chat", {**body, "inference_geo": "us"})).cost_nanousd
    assert standard is not None and us is not None and us > standard
    limit = Decimal(standard + (us - standard) // 2) / 10**9
    configure_budgets([Budget("geo", limit_usd=limit, window="day")], ledger="memory://")
    client = _client(fake)
    with pytest.raises(costlens.BudgetExceeded):
        client.messages.create(model=MODEL, max_tokens=200, messages=MSG, inference_geo="us")
    assert fake.requests == []
    client.messages.create(model=MODEL, max_tokens=200, messages=MSG)
    blocked, ok = recorded.all()
    assert blocked.status == "blocked" and blocked.budgets[0]["estimate_nanousd"] == us
    assert ok.status == "ok" and ok.budgets[0]["reserved_nanousd"] == standard
    assert ok.cost_nanousd is not None and ok.cost_nanousd <= limit * 10**9
