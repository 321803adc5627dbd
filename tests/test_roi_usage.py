"""From recorded traffic to a plan: volume, tokens and prices measured from a store or a trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from costlens._errors import ConfigError
from costlens.roi import (
    MissingTunedPath,
    TunedAssumptions,
    plan,
    profile_from_records,
    read_trace,
    scenario_from_traffic,
    scenario_from_usage,
    usage_profile,
)
from costlens.roi._load import read_data
from costlens.store.memory import MemoryStore
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2025, 3, 1, tzinfo=UTC)


def calls(n: int = 10, *, feature: str = "search", days: int = 10) -> list[CallRecord]:
    """n calls spread over `days` days: input 1,000 + 100·i tokens (200 cached), output 100, $0.001 each."""
    out = []
    for i in range(n):
        record = CallRecord(
            "openai",
            "chat",
            "gpt-4o-mini",
            started_at=START + timedelta(days=days * i / n),
            input_tokens=1000 + 100 * i,
            output_tokens=100,
            cache_read_tokens=200,
            cost_nanousd=1_000_000,
            price_known=True,
            tags={"feature": feature},
        )
        out.append(record)
    return out


def test_profile_scales_the_window_to_a_month_and_measures_tokens() -> None:
    end = START + timedelta(days=10)
    profile = profile_from_records(calls(), since=START, until=end, feature="search")
    assert profile.period_days == 10
    assert profile.requests_per_month == 30  # 10 calls in 10 days, 30-day month
    assert profile.input_tokens.mean == Decimal("1450.000")
    assert profile.input_tokens.median == Decimal("1450.0")
    assert profile.input_tokens.p95 == 1900
    assert profile.cached_tokens.mean == 200
    assert profile.models == {"openai/gpt-4o-mini": 10}
    assert profile.recorded_cost == Decimal("0.01")
    assert profile.cost_per_call == Decimal("0.001")


def test_usage_profile_reads_one_feature_from_a_store(tmp_path: Path) -> None:
    for store in (MemoryStore(), SQLiteStore(tmp_path / "calls.db")):
        store.append([*calls(), *calls(4, feature="chat")])
        profile = usage_profile(store, "search", START, START + timedelta(days=10))
        assert profile.calls == 10
        store.close()


def test_no_calls_is_an_error_that_says_what_to_widen() -> None:
    with pytest.raises(ConfigError, match="widen --since"):
        usage_profile(MemoryStore(), "search", START)


def test_scenario_from_usage_builds_the_measured_path_and_plans() -> None:
    profile = profile_from_records(calls(), since=START, until=START + timedelta(days=10), feature="search")
    assumptions = {
        "paths": [
            {
                "name": "fine-tuned",
                "kind": "fine_tuned",
                "provider": "openai",
                "base_model": "gpt-4o-mini-2024-07-18",
                "tokens": {"user_input": 300},
                "training": {"fixed": 10},
            }
        ],
        "volume": {"growth_per_month": "0.1"},
    }
    s = scenario_from_usage(profile, assumptions)
    current = s.path("current")
    assert current.tokens.system == 200 and current.tokens.cached_share == 1
    assert current.tokens.user_input == 1250
    assert s.path("fine-tuned").tokens.output == 100  # measured mean output
    assert s.volume.requests_per_month == 30 and s.volume.growth_per_month == Decimal("0.1")
    result = plan(s)
    assert result.baseline.name == "current"
    # gpt-4o-mini from the catalogue: 1,250 × 0.15 + 200 × 0.075 + 100 × 0.6 per 1M
    assert result.baseline.cost_per_request == Decimal("0.0002625")


def test_assumptions_cannot_reuse_the_measured_name() -> None:
    profile = profile_from_records(calls(), since=START, until=START + timedelta(days=10))
    with pytest.raises(ConfigError, match="rename it"):
        scenario_from_usage(
            profile, {"paths": [{"name": "current", "kind": "switch", "model": "x", "tokens": {}}]}
        )


def test_azure_trace_replay_gives_its_real_volume_and_tokens() -> None:
    records = read_trace(ROOT / "data/traces/azure_llm_2023_code.csv", provider="openai", model="gpt-4o-mini")
    profile = profile_from_records(records, feature="code")
    assert profile.calls == 8819
    assert Fraction(3435, 86400) < profile.period_days < Fraction(3437, 86400)  # 57.3 minutes
    assert 6_600_000 < profile.requests_per_month < 6_700_000  # ~9,240 requests/hour × 720 h
    assert abs(profile.input_tokens.mean - 2048) < 1
    assert profile.output_tokens.p95 == 90
    assert profile.priced_calls == 8819
    data = read_data(ROOT / "examples/roi/from_usage/assumptions.toml")
    result = plan(scenario_from_usage(profile, data))
    c = result.comparison("fine-tuned")
    # the tuned gpt-4o-mini costs twice the base price per token: cutting 2,048 input tokens to 1,200
    # does not make up for it, so on this real traffic fine-tuning never pays
    assert c is not None and c.payback.months is None
    assert "costs more per request" in c.payback.reason
    assert result.recommendation is not None
    assert result.recommendation.verdict == "prompt_engineering"


def test_trace_with_unknown_columns_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "t.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="expected columns"):
        read_trace(bad, provider="openai", model="gpt-4o-mini")


def test_scenario_from_traffic_builds_the_tuned_path_from_plain_arguments() -> None:
    store = MemoryStore()
    store.append([*calls(), *calls(4, feature="chat")])
    tuned = TunedAssumptions(
        input_tokens=Decimal(300),
        model="gpt-4o-mini-2024-07-18",
        training_tokens=Decimal(1_000_000),
        epochs=3,
        examples_to_label=500,
        cost_per_example=Decimal("0.5"),
    )
    built = scenario_from_traffic(
        store=store,
        feature="search",
        since=START,
        until=START + timedelta(days=10),
        tuned=tuned,
        horizon_months=6,
        growth_per_month=Decimal("0.05"),
    )
    assert built.profile.calls == 10 and built.profile.requests_per_month == 30
    s = built.scenario
    assert s.horizon_months == 6 and s.volume.growth_per_month == Decimal("0.05")
    assert s.volume.requests_per_month == 30
    ft = s.path("fine-tuned")
    assert ft.kind == "fine_tuned" and ft.provider == "openai"  # provider: the measured one
    assert ft.tokens.user_input == 300 and ft.tokens.output == 100  # output: the measured mean
    result = plan(s)
    assert result.path("fine-tuned").one_off["labelling"] == 250
    assert result.path("fine-tuned").training is not None
    assert result.path("fine-tuned").training.charged == 9  # 3M training tokens × $3/1M


def test_scenario_from_traffic_reads_a_trace_and_keeps_the_assumptions_paths(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "timestamp,input_tokens,output_tokens\n2025-01-01T00:00:00,1000,100\n2025-01-01T01:00:00,3000,300\n"
    )
    assumptions = read_data(ROOT / "examples/roi/from_usage/assumptions.toml")
    built = scenario_from_traffic(trace=trace, assumptions=assumptions, tuned=TunedAssumptions())
    assert built.profile.calls == 2 and built.profile.requests_per_month == 1440
    assert {p.name for p in built.scenario.paths} == {"current", "fine-tuned"}
    assert built.scenario.path("current").model == "gpt-4o-mini"


def test_scenario_from_traffic_says_what_is_missing() -> None:
    store = MemoryStore()
    store.append(calls())
    with pytest.raises(MissingTunedPath, match="input tokens"):
        scenario_from_traffic(store=store, since=START)
    with pytest.raises(ConfigError, match="widen --since"):
        scenario_from_traffic(store=store, feature="nothing", tuned=TunedAssumptions(Decimal(10)))
    with pytest.raises(ValueError, match="either a store or a trace"):
        scenario_from_traffic()


def test_fine_tuning_jobs_and_experiment_calls_are_not_traffic() -> None:
    """A tuning job and an experiment's calls would inflate volume and cost: they are left out, loudly."""
    end = START + timedelta(days=10)
    traffic = calls()
    job = CallRecord(
        "openai",
        "fine_tuning",
        "gpt-4.1-nano",
        started_at=START + timedelta(days=1),
        input_tokens=5_000_000,
        cost_nanousd=7_500_000_000,
        price_known=True,
        tags={"feature": "search"},
    )
    experiment = [
        CallRecord(
            "openai",
            "chat",
            "gpt-4o-mini",
            started_at=START + timedelta(days=2),
            input_tokens=90_000,
            output_tokens=10,
            cost_nanousd=50_000_000,
            price_known=True,
            tags={"feature": "search", "eval_run": "r-1", "eval_strategy": "a", "eval_item": str(i)},
        )
        for i in range(4)
    ]
    plain = profile_from_records(traffic, since=START, until=end, feature="search")
    mixed = profile_from_records([*traffic, job, *experiment], since=START, until=end, feature="search")
    assert mixed.requests_per_month == plain.requests_per_month == 30
    assert mixed.input_tokens == plain.input_tokens
    assert mixed.recorded_cost == plain.recorded_cost
    assert mixed.cost_per_call == plain.cost_per_call
    assert plain.warnings == tuple(w for w in mixed.warnings if "not traffic" not in w)
    assert any("5 fine-tuning job(s) and experiment call(s)" in w for w in mixed.warnings)


def test_only_experiment_calls_is_an_error_not_an_empty_profile() -> None:
    experiment = [
        CallRecord(
            "openai",
            "chat",
            "gpt-4o-mini",
            started_at=START,
            input_tokens=10,
            cost_nanousd=1,
            price_known=True,
            tags={"eval_run": "r-1"},
        )
    ]
    with pytest.raises(ConfigError):
        profile_from_records(experiment, since=START, until=START + timedelta(days=1))
