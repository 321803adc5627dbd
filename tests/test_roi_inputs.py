"""Issue 10 item 12: amortised training, recurring costs, setup costs, grader tokens, retrain share."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costlens.roi import ScenarioError, load_scenario, parse_scenario, plan, plan_month_rows, plan_to_dict
from costlens.roi._series import instalments

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "roi"


def prompt(**changes: Any) -> dict[str, Any]:
    """Published case (a)'s prompt path: $0.015 a request, $750 a month at 50,000 requests."""
    return {
        "name": "prompt",
        "kind": "prompt",
        "model": "m",
        "tokens": {"system": 2000, "user_input": 500, "output": 500},
        "prices": {"input": 3, "output": 15},
    } | changes


def tuned(**changes: Any) -> dict[str, Any]:
    """Published case (a)'s tuned path: $0.009 a request, $450 a month, $200 training."""
    return {
        "name": "tuned",
        "kind": "fine_tuned",
        "base_model": "m",
        "tokens": {"user_input": 500, "output": 500},
        "prices": {"input": 3, "output": 15},
        "training": {"fixed": 200},
        "hosting_per_hour": 0,
        "storage_per_month": 0,
    } | changes


def scenario(*paths: dict[str, Any], **top: Any) -> Any:
    data = {"horizon_months": 12, "volume": {"requests_per_month": 50_000}, "paths": list(paths)}
    return parse_scenario(data | top)


# --- training amortised over N months -------------------------------------------------------------


def test_training_amortised_over_12_months_is_100_a_month_from_month_1() -> None:
    result = plan(scenario(prompt(), tuned(training={"fixed": 1200, "amortise_months": 12})))
    months = result.path("tuned").months
    assert months[0].training == 0 and months[0].total == 0
    assert [m.training for m in months[1:]] == [Decimal(100)] * 12
    assert months[1].total == Decimal(550)
    assert result.path("tuned").tco == Decimal(6600)  # 12 × 450 + 1,200
    c = result.comparison("tuned")
    assert c is not None and c.extra_one_off == 0 and c.payback.months == 0
    assert c.first_month_saving == Decimal(200)  # 750 − 550


def test_amortisation_past_the_horizon_leaves_the_rest_outside_the_tco() -> None:
    result = plan(scenario(prompt(), tuned(training={"fixed": 1200, "amortise_months": 24})))
    assert result.path("tuned").tco == Decimal(5400 + 600)  # 12 of the 24 instalments of $50


def test_an_inexact_instalment_is_rounded_down_to_the_cent_and_the_last_takes_the_rest() -> None:
    assert instalments(Decimal(1000), 3) == [Decimal("333.33"), Decimal("333.33"), Decimal("333.34")]
    assert instalments(Decimal(1), 8) == [Decimal("0.125")] * 8  # exact division stays exact


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=120))
def test_instalments_sum_exactly_to_the_charge(cents: int, n: int) -> None:
    charge = Decimal(cents).scaleb(-2)
    parts = instalments(charge, n)
    assert len(parts) == n and all(p >= 0 for p in parts)
    assert sum(parts, Decimal(0)) == charge


def test_every_retraining_is_amortised_from_the_month_it_starts() -> None:
    path = tuned(training={"fixed": 1200, "amortise_months": 6}, lifecycle={"retrain_every_months": 6})
    months = plan(scenario(prompt(), path)).path("tuned").months
    assert [m.training for m in months[1:]] == [Decimal(200)] * 12  # job 1: months 1-6, job 2: 7-12


# --- retraining as a share of the first job ---------------------------------------------------------


def test_retraining_costs_a_share_of_the_first_job_plus_the_extra() -> None:
    path = tuned(
        training={"fixed": 1000},
        lifecycle={"retrain_every_months": 6, "retrain_share": "0.25", "retrain_extra": 50},
    )
    result = plan(scenario(prompt(), path))
    months = result.path("tuned").months
    assert months[0].training == 1000
    assert months[7].training == Decimal(300)  # 0.25 × 1,000 + 50, in month 7 (after 6 months of service)
    assert sum(m.training for m in months) == Decimal(1300)
    assert plan_to_dict(result)["paths"][1]["retraining"] == {
        "every_months": 6,
        "share_of_first_job": Decimal("0.25"),
        "extra": Decimal(50),
        "cost": Decimal(300),
    }


def test_an_end_of_life_migration_is_a_full_job_not_a_share() -> None:
    path = tuned(
        training={"fixed": 1000},
        lifecycle={"retrain_share": "0.25", "end_of_life_month": 5, "on_end_of_life": "retrain"},
    )
    months = plan(scenario(prompt(), path)).path("tuned").months
    assert months[6].training == Decimal(1000)


# --- recurring monthly costs on any path ------------------------------------------------------------


def test_recurring_costs_start_in_month_1_on_every_path() -> None:
    result = plan(
        scenario(
            prompt(recurring={"prompt upkeep": 500}),
            tuned(recurring={"monitoring": 100, "vector_db": 70}),
        )
    )
    p, t = result.path("prompt"), result.path("tuned")
    assert p.months[0].total == 0 and p.months[0].recurring == 0
    assert p.months[1].recurring == 500 and p.months[1].total == Decimal(1250)
    assert t.months[1].recurring == 170 and t.months[1].total == Decimal(620)
    assert p.recurring_per_month == 500 and t.recurring == {"monitoring": 100, "vector_db": 70}
    c = result.comparison("tuned")
    assert c is not None
    assert c.extra_fixed_per_month == Decimal(-330)
    assert c.payback.months == Fraction(200, 630)
    assert c.crossover.cheaper == "always"


def test_a_reverted_tuned_path_pays_the_baseline_recurring_costs() -> None:
    result = plan(
        scenario(
            prompt(recurring={"upkeep": 500}),
            tuned(recurring={"monitoring": 100}, lifecycle={"end_of_life_month": 3}),
        )
    )
    months = result.path("tuned").months
    assert [m.recurring for m in months[1:6]] == [100, 100, 100, 500, 500]


def test_recurring_costs_are_in_the_csv_rows_and_json() -> None:
    result = plan(scenario(prompt(recurring={"upkeep": 500}), tuned()))
    rows = plan_month_rows(result)
    assert rows[1]["recurring"] == Decimal(500)
    data = plan_to_dict(result)
    assert data["paths"][0]["recurring"] == {"upkeep": Decimal(500)}
    assert data["paths"][0]["recurring_per_month"] == Decimal(500)


# --- setup costs on prompt and RAG paths -------------------------------------------------------------


def test_setup_cost_on_a_rag_prompt_path_falls_in_month_0() -> None:
    rag = prompt(
        name="rag",
        tokens={"system": 500, "rag": 800, "user_input": 500, "output": 500},
        one_off={"setup": 3000},
        recurring={"vector_db": 70},
    )
    result = plan(scenario(prompt(), rag, tuned()))
    r = result.path("rag")
    assert r.one_off["setup"] == 3000
    assert r.months[0].total == 3000
    c = result.comparison("rag")
    assert c is not None and c.extra_one_off == 3000 and c.extra_fixed_per_month == 70


# --- reinforcement fine-tuning: grader tokens at the grader's prices ---------------------------------


def rft(grader: dict[str, Any], **training: Any) -> dict[str, Any]:
    return tuned(training={"hours": 2, "per_hour": 100, "grader": grader} | training)


def test_grader_tokens_are_billed_at_the_graders_prices() -> None:
    grader = {
        "model": "g",
        "input_tokens": 10_000_000,
        "output_tokens": 1_000_000,
        "prices": {"input": 2, "output": 8},
    }
    result = plan(scenario(prompt(), rft(grader), horizon_months=12))
    job = result.path("tuned").training
    assert job is not None
    assert job.hour_cost == 200 and job.grader_cost == Decimal(28)  # 10M × $2 + 1M × $8 per 1M
    assert job.charged == Decimal(228)
    assert result.path("tuned").months[0].training == 228
    assert plan_to_dict(result)["paths"][1]["training_job"]["grader_cost"] == Decimal(28)


def test_grader_prices_left_out_come_from_the_catalogue_and_retraining_repeats_them() -> None:
    grader = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 10_000_000,
        "output_tokens": 1_000_000,
    }
    path = rft(grader) | {"lifecycle": {"retrain_every_months": 6}}
    result = plan(scenario(prompt(), path))
    job = result.path("tuned").training
    assert job is not None and job.grader_cost == Decimal("2.1")  # $0.15 and $0.60 per 1M
    assert result.path("tuned").months[7].training == Decimal("202.1")
    fields = {(s.path, s.field) for s in result.sources}
    assert ("tuned", "grader_input") in fields and ("tuned", "grader_output") in fields


def test_the_minimum_charge_applies_to_the_job_with_its_grader() -> None:
    grader = {"model": "g", "input_tokens": 1_000_000, "prices": {"input": 2, "output": 8}}
    job = plan(scenario(prompt(), rft(grader, min_charge=500))).path("tuned").training
    assert job is not None and job.charged == 500 and job.minimum_applied


# --- schema: errors name the field, old files load unchanged -----------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (tuned(training={"fixed": 1, "amortise_months": 0}), 'paths[1] ("tuned").training.amortise_months'),
        (tuned(recurring={"upkeep": -1}), 'paths[1] ("tuned").recurring.upkeep'),
        (tuned(lifecycle={"retrain_share": -1}), 'paths[1] ("tuned").lifecycle.retrain_share'),
        (
            tuned(training={"grader": {"model": "g", "input_tokens": -5}}),
            'paths[1] ("tuned").training.grader.input_tokens',
        ),
        (tuned(one_off={"setup": "lots"}), 'paths[1] ("tuned").one_off.setup'),
    ],
)
def test_invalid_new_inputs_name_the_field(path: dict[str, Any], field: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        scenario(prompt(), path)
    assert f"field {field}: " in str(raised.value)
    assert "Extra inputs" not in str(raised.value)


def test_old_files_load_with_the_new_inputs_at_their_neutral_defaults() -> None:
    s = load_scenario(EXAMPLES / "support_bot.toml")
    t = s.path("fine-tuned")
    assert t.recurring == {} and t.one_off.setup == 0
    assert t.training.amortise_months is None and t.training.grader is None  # type: ignore[union-attr]
    assert t.lifecycle.retrain_share == 1  # type: ignore[union-attr]
    result = plan(load_scenario(EXAMPLES / "published_a.toml"))
    assert result.path("fine-tuned").tco == Decimal(5600)


# --- the CLI and the scenario writer ------------------------------------------------------------------


def test_from_usage_flags_carry_the_new_inputs(tmp_path: Path) -> None:
    import json
    from datetime import UTC, datetime, timedelta

    from typer.testing import CliRunner

    from costlens.cli import app
    from costlens.store.sqlite import SQLiteStore
    from costlens.usage import CallRecord

    now = datetime.now(UTC).replace(microsecond=0)
    store = SQLiteStore(tmp_path / "calls.db")
    store.append(
        [
            CallRecord(
                "openai",
                "chat",
                "gpt-4o-mini",
                started_at=now - timedelta(days=10) + timedelta(hours=i),
                input_tokens=3000,
                output_tokens=200,
                tags={"feature": "triage"},
            )
            for i in range(240)
        ]
    )
    store.close()
    out = tmp_path / "built.toml"
    args = ["roi", "from-usage", "--feature", "triage", "--store", f"sqlite://{tmp_path / 'calls.db'}"]
    args += ["--since", (now - timedelta(days=10)).isoformat(), "--until", now.isoformat()]
    args += ["--tuned-model", "gpt-4o-mini-2024-07-18", "--tuned-input-tokens", "300"]
    args += ["--training-cost", "1200", "--amortise-months", "12", "--retrain-every", "6"]
    args += ["--retrain-share", "0.5", "--monthly", "eval upkeep=100", "--monthly", "monitoring=20"]
    args += ["--current-monthly", "prompt upkeep=300", "--setup", "50"]
    args += ["--grader-model", "gpt-4o-mini", "--grader-provider", "openai"]
    args += ["--grader-input-tokens", "1_000_000", "--write-scenario", str(out), "--format", "json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    tuned_path = next(p for p in data["paths"] if p["name"] == "fine-tuned")
    current = next(p for p in data["paths"] if p["name"] == "current")
    assert tuned_path["recurring"] == {"eval upkeep": "100", "monitoring": "20"}
    assert current["recurring_per_month"] == "300"
    assert tuned_path["one_off"]["setup"] == "50"
    assert tuned_path["training_job"]["grader_cost"] == "0.15"
    assert tuned_path["training_job"]["charged"] == "1200.15"
    assert tuned_path["training_job"]["amortise_months"] == 12
    assert tuned_path["retraining"]["share_of_first_job"] == "0.5"
    again = CliRunner().invoke(app, ["roi", "plan", str(out), "--format", "json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["paths"] == data["paths"]


def test_a_bad_monthly_flag_is_a_usage_error() -> None:
    from typer.testing import CliRunner

    from costlens.cli import app

    result = CliRunner().invoke(
        app, ["roi", "from-usage", "--tuned-input-tokens", "1", "--monthly", "upkeep"]
    )
    assert result.exit_code == 2
    assert "NAME=USD" in result.stderr


# --- properties: every new input keeps the sums exact ------------------------------------------------

money = st.integers(min_value=0, max_value=300_000).map(lambda n: Decimal(n).scaleb(-2))


@st.composite
def scenarios_with_new_inputs(draw: st.DrawFn) -> Any:
    life: dict[str, Any] = {"retrain_share": draw(st.sampled_from(["0", "0.25", "1", "1.5"]))}
    if draw(st.booleans()):
        life["retrain_every_months"] = draw(st.integers(min_value=1, max_value=12))
    if draw(st.booleans()):
        life["end_of_life_month"] = draw(st.integers(min_value=0, max_value=20))
        life["on_end_of_life"] = draw(st.sampled_from(["revert", "retrain"]))
    training: dict[str, Any] = {"fixed": draw(money)}
    if draw(st.booleans()):
        training["amortise_months"] = draw(st.integers(min_value=1, max_value=36))
    if draw(st.booleans()):
        training["grader"] = {
            "model": "g",
            "input_tokens": draw(st.integers(min_value=0, max_value=10**8)),
            "prices": {"input": draw(money), "output": draw(money)},
        }
    return scenario(
        prompt(recurring={"upkeep": draw(money)}, one_off={"setup": draw(money)}),
        tuned(
            training=training,
            lifecycle=life,
            recurring={"monitoring": draw(money), "vector_db": draw(money)},
            storage_per_month=draw(money),
        ),
        horizon_months=draw(st.integers(min_value=1, max_value=36)),
        volume={"requests_per_month": draw(st.integers(min_value=0, max_value=2_000_000))},
    )


@settings(max_examples=80, deadline=None)
@given(scenarios_with_new_inputs())
def test_months_with_recurring_and_amortised_costs_sum_exactly_to_the_tco(s: Any) -> None:
    result = plan(s, recommend=False)
    for p in result.paths:
        assert sum((m.total for m in p.months), Decimal(0)) == p.tco
        for m in p.extended:
            parts = [m.inference, m.hosting, m.storage, m.recurring, m.training, m.one_off]
            assert m.total == sum(parts, Decimal(0))
    t = s.path("tuned")
    job = result.path("tuned").training
    assert job is not None
    if t.lifecycle.retrain_every_months is None and t.lifecycle.end_of_life_month is None:
        paid = sum((m.training for m in result.path("tuned").extended), Decimal(0))
        assert paid == job.charged  # the instalments of the one job add up to it exactly


@settings(max_examples=80, deadline=None)
@given(scenarios_with_new_inputs())
def test_run_rate_crossover_counts_the_recurring_costs(s: Any) -> None:
    result = plan(s, recommend=False)
    c = result.comparison("tuned")
    base, alt = result.path("prompt"), result.path("tuned")
    assert c is not None
    fixed = Fraction(alt.storage_per_month + alt.recurring_per_month - base.recurring_per_month)
    per_request = Fraction(alt.cost_per_request - base.cost_per_request)
    assert Fraction(c.extra_fixed_per_month) == fixed
    if c.crossover.cheaper == "above":
        assert c.crossover.volume is not None
        assert fixed + c.crossover.volume * per_request == 0
