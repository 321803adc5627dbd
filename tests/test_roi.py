"""The ROI planner's arithmetic: the published worked examples recomputed exactly, and the edge cases."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from costlens.roi import Accuracy, Plan, Scenario, load_scenario, parse_scenario, plan, training_cost

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "roi"


def example(name: str) -> Plan:
    return plan(load_scenario(EXAMPLES / name))


def scenario(**overrides: Any) -> Scenario:
    """Published case (a) as data, with top-level keys replaced."""
    data: dict[str, Any] = {
        "horizon_months": 12,
        "volume": {"requests_per_month": 50_000},
        "paths": [
            {
                "name": "prompt",
                "kind": "prompt",
                "model": "m",
                "tokens": {"system": 2000, "user_input": 500, "output": 500},
                "prices": {"input": 3, "output": 15},
            },
            {
                "name": "tuned",
                "kind": "fine_tuned",
                "base_model": "m",
                "tokens": {"user_input": 500, "output": 500},
                "prices": {"input": 3, "output": 15},
                "training": {"fixed": 200},
                "hosting_per_hour": 0,
                "storage_per_month": 0,
            },
        ],
    }
    data.update(overrides)
    return parse_scenario(data)


def tuned(**changes: Any) -> dict[str, Any]:
    """The tuned path of `scenario()` with keys replaced."""
    path = scenario().paths[1].model_dump(exclude_none=True)
    path.update(changes)
    return path


def prompt_path() -> dict[str, Any]:
    return scenario().paths[0].model_dump(exclude_none=True)


# --- published case (a): 50,000 requests/month -----------------------------------------------------


def test_case_a_monthly_costs_750_to_450() -> None:
    result = example("published_a.toml")
    assert result.path("prompt").months[1].total == Decimal(750)
    assert result.path("fine-tuned").months[1].total == Decimal(450)
    assert result.path("prompt").cost_per_request == Decimal("0.015")
    assert result.path("fine-tuned").cost_per_request == Decimal("0.009")


def test_case_a_payback_break_even_and_roi() -> None:
    c = example("published_a.toml").comparison("fine-tuned")
    assert c is not None
    assert c.first_month_saving == 300
    assert c.saving_per_request == Decimal("0.006")
    assert c.extra_one_off == 200
    assert c.payback.months == Fraction(2, 3)  # 200 / 300 = 0.67 months
    assert c.payback.month == 1
    assert c.payback.requests == Fraction(100_000, 3)  # 200 / 0.006 = 33,333.33 requests
    assert round(c.payback.requests) == 33_333
    assert c.roi_first_year == 17  # (12 × 300 − 200) / 200 = 1,700%
    assert c.advantage == Decimal(3400)


def test_case_a_recommends_fine_tuning_despite_the_low_volume_rule() -> None:
    rec = example("published_a.toml").recommendation
    assert rec is not None
    assert rec.verdict == "fine_tune"
    assert rec.path == "fine-tuned"
    fired = {r.id for r in rec.fired()}
    assert {"low_volume", "pays_back"} <= fired
    assert any("outweighed by a payback within 3 months" in c for c in rec.caveats)


# --- published case (b): 1,000 requests/month ------------------------------------------------------


def test_case_b_six_dollars_a_month_payback_33_months_roi_minus_64() -> None:
    result = example("published_b.toml")
    c = result.comparison("fine-tuned")
    assert c is not None
    assert c.first_month_saving == 6
    assert c.payback.months == Fraction(100, 3)  # 33.3 months
    assert c.payback.month == 34
    assert not c.payback.within_horizon
    assert "33.33 months, beyond the 12-month horizon" in c.payback.reason
    assert c.roi_first_year == Fraction(-16, 25)  # (12 × 6 − 200) / 200 = −64%
    rec = result.recommendation
    assert rec is not None
    assert rec.verdict == "prompt_engineering"
    assert set(rec.blockers) == {"no_payback", "low_volume"}


# --- published case (c): Azure-style hosting; also the hosting-dominated case -----------------------


def test_case_c_hosting_720_hours_plus_tokens_is_1422_a_month() -> None:
    result = example("published_c_azure_hosting.toml")
    month = result.path("azure-fine-tuned").months[1]
    assert month.hosting == Decimal("1224")  # 1.70 × 720
    assert month.inference == Decimal("198")  # 20M × 1.10/1M + 40M × 4.40/1M = 22 + 176
    assert month.total == Decimal("1422")
    assert result.scenario.conventions.hours == 720


def test_hosting_dominated_never_pays_back_and_says_above_which_volume() -> None:
    c = example("published_c_azure_hosting.toml").comparison("azure-fine-tuned")
    assert c is not None
    assert c.payback.months is None
    assert c.crossover.cheaper == "above"
    assert c.crossover.volume == Fraction(1224) / Fraction("0.0022")  # hosting ÷ saving per request
    assert "fixed fees ($1,224.00/month)" in c.payback.reason
    assert "556,364 requests/month" in c.payback.reason


def test_hosting_hours_can_be_limited() -> None:
    limited = scenario(paths=[prompt_path(), tuned(hosting_per_hour=2, hosting_hours_per_month=100)])
    assert plan(limited).path("tuned").hosting_per_month == 200


# --- published case (d): training cost -------------------------------------------------------------


def test_case_d_training_tokens_times_epochs_plus_validation_once() -> None:
    result = example("published_d_training.toml")
    job = result.path("lora").training
    assert job is not None
    assert job.tokens == 16_000_000  # 5M × 3 + 1M
    assert job.charged == Decimal("7.36")
    assert result.path("lora").months[0].training == Decimal("7.36")


def test_validation_per_epoch_is_a_setting() -> None:
    s = load_scenario(EXAMPLES / "published_d_training.toml")
    conventions = s.conventions.model_copy(update={"validation_per_epoch": True})
    assert training_cost(s.paths[1].training, conventions).charged == Decimal("8.28")  # 18M × 0.46


def test_minimum_training_charge_applies() -> None:
    s = scenario(
        paths=[prompt_path(), tuned(training={"fixed": 0, "hours": 1, "per_hour": 2, "min_charge": 5})]
    )
    job = plan(s).path("tuned").training
    assert job is not None
    assert job.charged == 5
    assert job.minimum_applied


# --- never, end of life, growth ----------------------------------------------------------------------


def test_never_breaks_even_when_the_tuned_model_costs_more_per_call() -> None:
    result = example("never_breaks_even.toml")
    c = result.comparison("fine-tuned")
    assert c is not None
    assert c.payback.months is None
    assert c.saving_per_request < 0
    assert c.crossover.cheaper == "never"
    assert "costs more per request" in c.payback.reason
    assert result.recommendation is not None
    assert result.recommendation.verdict == "prompt_engineering"
    # tuned prices came from the built-in catalogue, with their source named
    sources = {(s.path, s.field): s.source for s in result.sources}
    assert "openai/gpt-4o-mini-2024-07-18" in sources[("fine-tuned", "input")]


def test_end_of_life_caps_the_saving_and_traffic_reverts() -> None:
    result = example("end_of_life.toml")
    tuned_months = result.path("fine-tuned").months
    baseline_months = result.path("prompt").months
    assert [m.serving for m in tuned_months[1:6]] == ["tuned"] * 4 + ["reverted"]
    assert tuned_months[5].total == baseline_months[5].total
    c = result.comparison("fine-tuned")
    assert c is not None
    assert c.payback.months is None
    assert "end of life after month 4" in c.payback.reason
    assert "$400.00 of the $600.00" in c.payback.reason
    assert result.path("fine-tuned").events == ((5, result.path("fine-tuned").events[0][1]),)


def test_end_of_life_with_retraining_pays_again_and_keeps_serving() -> None:
    life = {"end_of_life_month": 4, "on_end_of_life": "retrain"}
    result = plan(scenario(paths=[prompt_path(), tuned(lifecycle=life)]))
    months = result.path("tuned").months
    assert months[5].training == 200
    assert all(m.serving == "tuned" for m in months[1:])


def test_no_new_training_jobs_turns_a_migration_into_a_revert() -> None:
    life = {"end_of_life_month": 4, "on_end_of_life": "retrain", "new_training_until_month": 3}
    months = plan(scenario(paths=[prompt_path(), tuned(lifecycle=life)])).path("tuned").months
    assert months[5].serving == "reverted"
    assert months[5].training == 0


def test_scheduled_retraining_recurs_and_is_skipped_after_tuning_closes() -> None:
    life = {"retrain_every_months": 3, "retrain_extra": 50, "new_training_until_month": 6}
    p = plan(scenario(paths=[prompt_path(), tuned(lifecycle=life)])).path("tuned")
    assert [m.month for m in p.months if m.training] == [0, 4]  # 7 and 10 skipped
    assert p.months[4].training == 250
    assert any("skipped" in text for _, text in p.events)


def test_growth_brings_the_payback_forward() -> None:
    grown = example("growth.toml")
    flat_scenario = grown.scenario.model_copy(
        update={"volume": grown.scenario.volume.model_copy(update={"growth_per_month": Decimal(0)})}
    )
    flat = plan(flat_scenario)
    c_grown, c_flat = grown.comparison("fine-tuned"), flat.comparison("fine-tuned")
    assert c_grown is not None and c_flat is not None
    assert c_flat.payback.months == Fraction(50, 3)  # 1,000 / 60 = 16.67 months, beyond the horizon
    assert c_grown.payback.month == 9
    assert c_grown.payback.months is not None and c_grown.payback.months < 9
    assert grown.volumes[:3] == (10_000, 12_000, 14_400)  # +20% a month, compounding


def test_growth_rounds_each_month_half_even_to_whole_requests() -> None:
    s = scenario(volume={"requests_per_month": 5, "growth_per_month": "0.5"})
    assert s.volume.series(4, 30) == [5, 8, 11, 17]  # 7.5 -> 8, 11.25 -> 11, 16.875 -> 17


def test_volume_per_day_and_explicit_monthly_profile() -> None:
    assert scenario(volume={"requests_per_day": 100}).volume.series(2, 30) == [3000, 3000]
    profile = scenario(volume={"monthly": [10, 20], "growth_per_month": "0.1"})
    assert profile.volume.series(4, 30) == [10, 20, 22, 24]


# --- switching, caching, quality ---------------------------------------------------------------------


def test_prompt_caching_prices_the_cached_prefix_at_the_cached_price() -> None:
    cached = prompt_path() | {
        "tokens": {"system": 2000, "user_input": 500, "output": 0, "cached_share": "0.5"},
        "prices": {"input": 3, "cached_input": "0.3", "output": 15},
    }
    p = plan(scenario(paths=[cached, tuned()])).path("prompt")
    assert p.cost_per_request == Decimal("0.0048")  # 1,500 × 3/1M + 1,000 × 0.3/1M


def test_quality_gives_cost_per_correct_answer_and_net_value() -> None:
    base = prompt_path() | {"accuracy": "0.8"}
    better = tuned(accuracy={"value": "0.9", "low": "0.85", "high": "0.95", "source": "evals:run-7"})
    s = scenario(paths=[base, better], quality={"value_per_correct": "0.05", "cost_per_error": "0.1"})
    result = plan(s)
    q = result.path("tuned").quality
    assert q is not None
    assert q.correct_answers == 540_000  # 12 × 50,000 × 0.9
    assert q.cost_per_correct == Fraction(5600, 540_000)
    assert q.value == Decimal(12 * 50_000) * (
        Decimal("0.9") * Decimal("0.05") - Decimal("0.1") * Decimal("0.1")
    )
    assert q.net_value == q.value - result.path("tuned").tco
    assert result.decision_basis == "net value"
    value_c = result.comparison("tuned", "net value")
    assert value_c is not None
    assert value_c.saving_per_request == Decimal("0.006") + Decimal("0.1") * Decimal("0.15")


def test_accuracy_without_quality_values_still_gives_cost_per_correct() -> None:
    result = plan(scenario(paths=[prompt_path() | {"accuracy": "0.5"}, tuned()]))
    q = result.path("prompt").quality
    assert q is not None and q.value is None
    assert q.cost_per_correct == Fraction(9000, 300_000)
    assert result.decision_basis == "cost"


def test_switch_path_is_recommended_when_prompting_stays_and_it_is_cheaper() -> None:
    cheaper = prompt_path() | {"name": "small", "kind": "switch", "prices": {"input": 1, "output": 5}}
    result = plan(scenario(volume={"requests_per_month": 1000}, paths=[prompt_path(), tuned(), cheaper]))
    rec = result.recommendation
    assert rec is not None
    assert rec.verdict == "prompt_engineering"
    assert rec.path == "small"
    assert "cheaper_model" in {r.id for r in rec.fired()}


def test_cheapest_path_by_volume_ranges() -> None:
    ranges = example("published_a.toml").cheapest
    assert [(r.path, r.low, r.high) for r in ranges] == [
        ("prompt", 0, Fraction(25_000, 9)),  # 200 / 12 months / 0.006 per request
        ("fine-tuned", Fraction(25_000, 9), None),
    ]


# --- recommendation rules and thresholds -------------------------------------------------------------


def test_rules_are_settings_not_constants() -> None:
    task = {"labelled_examples": 500, "scope": "narrow", "stable": True}
    strict = plan(scenario(task=task))
    assert strict.recommendation is not None
    assert strict.recommendation.verdict == "prompt_engineering"
    assert "scarce_data" in strict.recommendation.blockers
    relaxed = plan(scenario(task=task, thresholds={"min_labelled_examples": 400}))
    assert relaxed.recommendation is not None
    assert relaxed.recommendation.verdict == "fine_tune"
    slow = plan(scenario(thresholds={"fast_payback_months": "0.5"}))
    assert slow.recommendation is not None
    assert slow.recommendation.blockers == ("low_volume",)


def test_broad_or_changing_task_gives_hybrid_and_asks_for_a_hybrid_path() -> None:
    s = scenario(volume={"requests_per_month": 200_000}, task={"labelled_examples": 5000, "scope": "broad"})
    rec = plan(s).recommendation
    assert rec is not None
    assert rec.verdict == "hybrid"
    assert any("suggests a hybrid" in c for c in rec.caveats)
    hybrid = tuned(name="hybrid", kind="hybrid", tokens={"rag": 300, "user_input": 500, "output": 500})
    rec = plan(s.model_copy(update={"paths": [*s.paths, parse_hybrid(hybrid)]})).recommendation
    assert rec is not None
    assert (rec.verdict, rec.path) == ("hybrid", "hybrid")


def parse_hybrid(data: dict[str, Any]) -> Any:
    return parse_scenario({"volume": {"requests_per_month": 1}, "paths": [prompt_path(), data]}).paths[1]


def test_every_fired_rule_carries_its_numbers() -> None:
    rec = example("support_bot.toml").recommendation
    assert rec is not None
    fired = {r.id: r for r in rec.fired()}
    assert {"high_volume", "enough_data", "narrow_and_stable", "structured_output", "pays_back"} <= set(fired)
    assert fired["high_volume"].numbers["threshold"] == 100_000
    assert fired["enough_data"].numbers == {"available": 3000, "to_label": 1000, "threshold": 1000}
    assert "4,000 labelled examples" in fired["enough_data"].text
    assert rec.verdict == "hybrid"


def test_unassessed_facts_are_listed() -> None:
    rec = example("published_a.toml").recommendation
    assert rec is not None
    assert any("task.labelled_examples" in c and "task.latency_sensitive" in c for c in rec.caveats)
    assert all(r.fired is None for r in rec.rules if r.id in {"structured_output", "narrow_and_stable"})


def test_no_unsourced_accuracy_claims_in_rule_texts() -> None:
    rec = example("support_bot.toml").recommendation
    assert rec is not None
    for rule in rec.rules:
        assert "% more accurate" not in rule.text


def test_compare_picks_the_path_to_centre_on() -> None:
    s = load_scenario(EXAMPLES / "support_bot.toml").model_copy(update={"compare": "fine-tuned"})
    result = plan(s)
    assert result.primary == "fine-tuned"
    assert result.recommendation is not None
    assert result.recommendation.path == "fine-tuned"


def test_primary_is_none_without_alternatives_of_interest() -> None:
    s = scenario(paths=[prompt_path(), prompt_path() | {"name": "other", "kind": "switch"}])
    result = plan(s)
    assert result.primary == "other"
    assert result.recommendation is not None
    assert result.recommendation.verdict == "prompt_engineering"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_every_example_plans(name: str) -> None:
    result = example(name)
    assert result.recommendation is not None
    for p in result.paths:
        assert sum((m.total for m in p.months), Decimal(0)) == p.tco


def test_measured_accuracy_plugs_in_without_editing_the_file() -> None:
    s = scenario(quality={"value_per_correct": "0.05"}).with_accuracy("prompt", "0.8")
    s = s.with_accuracy("tuned", Accuracy(value=Decimal("0.85"), samples=400, source="evals:run-1"))
    result = plan(s)
    assert result.decision_basis == "net value"
    q = result.path("tuned").quality
    assert q is not None and q.accuracy.source == "evals:run-1"
