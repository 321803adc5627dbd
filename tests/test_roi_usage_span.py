"""Issue 10 item 13: the observed span, short-trace warnings, a grid without repeats, the chart's basis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from costlens.cli import app
from costlens.roi import break_even_grid, load_scenario, plan, profile_from_records, read_trace
from costlens.roi._plot import curve_series
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "roi"
START = datetime(2025, 3, 1, tzinfo=UTC)
runner = CliRunner()


def hourly(first: datetime, hours: int) -> list[CallRecord]:
    return [
        CallRecord(
            "openai",
            "chat",
            "gpt-4o-mini",
            started_at=first + timedelta(hours=h),
            input_tokens=1000,
            output_tokens=100,
            cost_nanousd=1_000_000,
            price_known=True,
            tags={"feature": "f"},
        )
        for h in range(hours)
    ]


def test_a_30_day_window_with_25_days_of_data_divides_by_25() -> None:
    since, until = START, START + timedelta(days=30)
    records = hourly(START + timedelta(days=5), 25 * 24)  # one call an hour for the last 25 days
    profile = profile_from_records(records, since=since, until=until)
    assert profile.period_days == 25
    assert profile.requests_per_month == 720  # 600 calls × 30 ÷ 25: one an hour, not 600
    assert any("25" in w and "30" in w for w in profile.warnings)


def test_a_full_window_needs_no_warning() -> None:
    records = hourly(START, 10 * 24)
    profile = profile_from_records(records, since=START, until=START + timedelta(days=10))
    assert profile.period_days == 10 and profile.warnings == ()


def test_a_one_hour_trace_is_extrapolated_with_a_warning() -> None:
    records = read_trace(
        Path(__file__).resolve().parent.parent / "data/traces/azure_llm_2023_code.csv",
        provider="openai",
        model="gpt-4o-mini",
    )
    profile = profile_from_records(records)
    assert profile.requests_per_month > 6_000_000
    assert profile.warnings
    assert "short" in profile.warnings[0] and "7 days" in profile.warnings[0]


def test_cli_prints_the_warning_and_puts_it_in_the_json(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "calls.db")
    now = datetime.now(UTC).replace(microsecond=0)
    store.append(hourly(now - timedelta(hours=24), 24))
    store.close()
    result = runner.invoke(
        app,
        [
            "roi",
            "from-usage",
            "--store",
            f"sqlite://{tmp_path / 'calls.db'}",
            "--since",
            (now - timedelta(days=30)).isoformat(),
            "--until",
            now.isoformat(),
            "--tuned-input-tokens",
            "300",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["usage"]["requests_per_month"] == 720  # 24 calls in the 1 day observed, not in 30 days
    assert data["usage"]["warnings"]
    assert "short" in result.stderr


# --- the two-input grid ----------------------------------------------------------------------------


def test_grid_over_an_integer_lever_has_no_repeated_rows_and_keeps_the_base_value() -> None:
    s = load_scenario(EXAMPLES / "published_d_training.toml")
    lever = "paths.lora.training.epochs"
    result = plan(s)
    assert result.primary is not None
    rows = break_even_grid(s, "volume.requests_per_month", lever)
    ys = [r[0].y for r in rows]
    assert len(ys) == len(set(ys))
    assert Decimal(3) in ys
    assert ys == sorted(ys)
    xs = [c.x for c in rows[0]]
    assert len(xs) == len(set(xs)) and Decimal(result.volumes[0]) in xs


def test_grid_over_an_accuracy_keeps_the_base_value() -> None:
    s = load_scenario(EXAMPLES / "support_bot.toml")
    rows = break_even_grid(s, "volume.requests_per_month", "paths.fine-tuned.accuracy.value")
    ys = [r[0].y for r in rows]
    assert Decimal("0.93") in ys and len(ys) == len(set(ys))
    assert all(len(r) == len(rows[0]) for r in rows)


# --- the chart shows the basis the verdict uses ------------------------------------------------------


def test_chart_curves_use_the_decision_basis_and_say_so() -> None:
    result = plan(load_scenario(EXAMPLES / "support_bot.toml"))
    assert result.decision_basis == "net value"
    basis, curves = curve_series(result)
    assert basis == "net value"
    tuned = next(c for c in curves if c.path == "fine-tuned")
    value = result.comparison("fine-tuned", "net value")
    assert value is not None and tuned.payback == value.payback.months
    assert "net value" in tuned.label
    p = result.path("fine-tuned")
    assert p.values is not None
    assert tuned.values[1] == p.months[0].total + p.months[1].total - p.values[1]


def test_chart_curves_on_cost_basis_stay_cumulative_cost() -> None:
    result = plan(load_scenario(EXAMPLES / "published_a.toml"))
    basis, curves = curve_series(result)
    assert basis == "cost"
    assert curves[1].values == result.path("fine-tuned").cumulative()
    assert "on cost" in curves[1].label
