"""Properties of the planner that must hold for any scenario: exact sums, exact break-evens."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costlens.roi import Plan, Scenario, parse_scenario, plan

cents = st.integers(min_value=0, max_value=3000).map(lambda n: Decimal(n).scaleb(-2))
tokens = st.integers(min_value=0, max_value=4000)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    life: dict[str, Any] = {}
    if draw(st.booleans()):
        life["end_of_life_month"] = draw(st.integers(min_value=0, max_value=30))
        life["on_end_of_life"] = draw(st.sampled_from(["revert", "retrain"]))
    if draw(st.booleans()):
        life["retrain_every_months"] = draw(st.integers(min_value=1, max_value=12))
    base = {
        "name": "prompt",
        "kind": "prompt",
        "model": "m",
        "tokens": {"system": draw(tokens), "user_input": draw(tokens), "output": draw(tokens)},
        "prices": {"input": draw(cents), "output": draw(cents)},
    }
    alt = {
        "name": "tuned",
        "kind": "fine_tuned",
        "base_model": "m",
        "tokens": {"user_input": draw(tokens), "output": draw(tokens)},
        "prices": {"input": draw(cents), "output": draw(cents)},
        "training": {"fixed": draw(cents) * 100},
        "hosting_per_hour": draw(st.sampled_from([Decimal(0), Decimal("0.5"), Decimal("1.7")])),
        "storage_per_month": draw(cents),
        "lifecycle": life,
    }
    return parse_scenario(
        {
            "horizon_months": draw(st.integers(min_value=1, max_value=36)),
            "volume": {
                "requests_per_month": draw(st.integers(min_value=0, max_value=2_000_000)),
                "growth_per_month": draw(st.sampled_from(["0", "0.05", "-0.1", "0.3"])),
            },
            "paths": [base, alt],
        }
    )


@SETTINGS
@given(scenarios())
def test_monthly_costs_sum_exactly_to_the_tco(s: Scenario) -> None:
    result = plan(s, recommend=False)
    for p in result.paths:
        assert len(p.months) == s.horizon_months + 1
        assert sum((m.total for m in p.months), Decimal(0)) == p.tco
        assert p.cumulative()[-1] == p.tco
        for m in p.months:
            assert m.total == m.inference + m.hosting + m.storage + m.training + m.one_off


@SETTINGS
@given(scenarios())
def test_inference_is_requests_times_the_exact_cost_per_request(s: Scenario) -> None:
    result = plan(s, recommend=False)
    for p in result.paths:
        for m in p.months[1:]:
            if m.serving != "reverted":
                assert m.inference == m.requests * p.cost_per_request


def _run_rate_gap(result: Plan, volume: Fraction) -> Fraction:
    """Tuned minus prompt monthly cost at a monthly volume, while the tuned model serves."""
    base, alt = result.path("prompt"), result.path("tuned")
    fixed = Fraction(alt.hosting_per_month + alt.storage_per_month)
    return fixed + volume * (Fraction(alt.cost_per_request) - Fraction(base.cost_per_request))


@SETTINGS
@given(scenarios())
def test_crossover_volume_is_where_the_monthly_costs_are_equal(s: Scenario) -> None:
    result = plan(s, recommend=False)
    c = result.comparison("tuned")
    assert c is not None
    if c.crossover.cheaper == "above":
        assert c.crossover.volume is not None
        assert _run_rate_gap(result, c.crossover.volume) == 0
        assert _run_rate_gap(result, c.crossover.volume + 1) < 0
    elif c.crossover.cheaper == "never":
        assert _run_rate_gap(result, Fraction(10**9)) >= 0


@SETTINGS
@given(scenarios())
def test_horizon_break_even_volume_equalises_the_totals(s: Scenario) -> None:
    flat = s.model_copy(update={"volume": s.volume.model_copy(update={"growth_per_month": Decimal(0)})})
    c = plan(flat, recommend=False).comparison("tuned")
    assert c is not None
    point = c.horizon_break_even
    if point.cheaper in ("above", "below") and point.volume is not None and point.volume < 10**7:
        below, above = math.floor(point.volume), math.ceil(point.volume)
        advantage = {}
        for v in {below, above}:
            moved = flat.model_copy(
                update={"volume": flat.volume.model_copy(update={"requests_per_month": v})}
            )
            comparison = plan(moved, recommend=False).comparison("tuned")
            assert comparison is not None
            advantage[v] = comparison.advantage
        if below == above:
            assert advantage[below] == 0
        elif point.cheaper == "above":
            assert advantage[below] <= 0 <= advantage[above]
        else:
            assert advantage[below] >= 0 >= advantage[above]


@SETTINGS
@given(scenarios())
def test_payback_is_where_the_cumulative_saving_covers_the_up_front_extra(s: Scenario) -> None:
    result = plan(s, recommend=False)
    c = result.comparison("tuned")
    assert c is not None
    if c.payback.months is None or c.payback.months == 0:
        return
    base, alt = result.path("prompt").extended, result.path("tuned").extended
    whole = math.floor(c.payback.months)
    share = c.payback.months - whole
    saved = sum(Fraction(base[m].total - alt[m].total) for m in range(1, whole + 1))
    if share:
        saved += share * Fraction(base[whole + 1].total - alt[whole + 1].total)
    assert saved == Fraction(c.extra_one_off)
