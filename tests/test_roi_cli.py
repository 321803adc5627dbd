"""`costlens roi plan|from-usage|catalogue`: table/json/csv, charts and reports, usage errors exit 2."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from costlens.cli import app
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "roi"
A = str(EXAMPLES / "published_a.toml")
runner = CliRunner()


def test_plan_table_shows_the_verdict_and_the_numbers() -> None:
    result = runner.invoke(app, ["roi", "plan", A])
    assert result.exit_code == 0, result.output
    assert "Fine-tune: take 'fine-tuned'" in result.output
    assert "0.67 months" in result.output
    assert "33,333" in result.output
    assert "1,700.0%" in result.output
    assert "$750.00" in result.output and "$450.00" in result.output


def test_plan_json_has_exact_fractions_and_the_tornado() -> None:
    result = runner.invoke(app, ["roi", "plan", A, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    c = data["comparisons"][0]
    assert c["payback"]["months"] == {"exact": "2/3", "rounded": "0.67"}
    assert c["payback"]["break_even_requests"] == {"exact": "100000/3", "rounded": "33333.33"}
    assert c["roi_first_year_percent"] == {"exact": "1700", "rounded": "1700.0"}
    assert data["recommendation"]["verdict"] == "fine_tune"
    assert data["sensitivity"]["tornado"][0]["lever"]
    assert data["sensitivity"]["grid"]["x"] == "volume.requests_per_month"
    assert data["conventions"]["hours_per_month"] == 720
    assert len(data["months"]) == 26


def test_plan_csv_is_one_row_per_path_per_month() -> None:
    result = runner.invoke(app, ["roi", "plan", A, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 26
    tuned = [r for r in rows if r["path"] == "fine-tuned"]
    assert tuned[0]["training"] == "200" and tuned[1]["total"].startswith("450")
    assert tuned[-1]["cumulative"].startswith("5600")


def test_plot_and_report_files_are_written(tmp_path: Path) -> None:
    png, md, html = tmp_path / "roi.png", tmp_path / "out" / "roi.md", tmp_path / "roi.html"
    for report in (md, html):
        result = runner.invoke(app, ["roi", "plan", A, "--plot", str(png), "--report", str(report)])
        assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 30_000
    assert "](<../roi.png>)" in md.read_text()
    assert 'src="roi.png"' in html.read_text()


def test_against_and_grid_flags(tmp_path: Path) -> None:
    support = str(EXAMPLES / "support_bot.toml")
    result = runner.invoke(
        app,
        [
            "roi",
            "plan",
            support,
            "--against",
            "fine-tuned",
            "--format",
            "json",
            "--grid",
            "volume.requests_per_month,horizon_months",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["compared"] == "fine-tuned"
    assert data["sensitivity"]["grid"]["y"] == "horizon_months"
    bad = runner.invoke(app, ["roi", "plan", support, "--against", "nope"])
    assert bad.exit_code == 2 and "names no path" in bad.stderr
    bad_grid = runner.invoke(app, ["roi", "plan", support, "--grid", "one"])
    assert bad_grid.exit_code == 2 and "two levers" in bad_grid.stderr


def test_invalid_scenario_exits_2_naming_file_field_and_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (EXAMPLES / "published_a.toml")
        .read_text()
        .replace("training = { fixed = 200 }", "training = { fixed = -1 }")
    )
    result = runner.invoke(app, ["roi", "plan", str(bad)])
    assert result.exit_code == 2
    assert str(bad) in result.stderr
    assert 'paths[1] ("fine-tuned").training.fixed' in result.stderr
    assert "fix that field" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("title = 'x'\nhorizon_months = \n")
    result = runner.invoke(app, ["roi", "plan", str(bad)])
    assert result.exit_code == 2
    assert "line 2" in result.stderr


def test_unknown_price_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "noprice.toml"
    bad.write_text(
        (EXAMPLES / "published_a.toml")
        .read_text()
        .replace('base_model = "example-model"', 'base_model = "zz-unknown"')
        .replace("prices = { input = 3, output = 15 }\ntraining", "training")
    )
    result = runner.invoke(app, ["roi", "plan", str(bad)])
    assert result.exit_code == 2, result.output
    assert "paths[1].prices.input" in result.stderr


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_catalogue_lists_sources_and_dates(fmt: str) -> None:
    result = runner.invoke(app, ["roi", "catalogue", "--format", fmt])
    assert result.exit_code == 0, result.output
    assert "openai/gpt-4o-mini-2024-07-18" in result.stdout
    if fmt == "json":
        rows = json.loads(result.stdout)
        assert all(r["source"].startswith("https://") and r["as_of"] for r in rows)
    if fmt == "csv":
        assert result.stdout.splitlines()[0].startswith("id,provider,base_model")


NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = ["--since", (NOW - timedelta(days=2)).isoformat(), "--until", NOW.isoformat()]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    store = SQLiteStore(tmp_path / "calls.db")
    now = NOW
    store.append(
        [
            CallRecord(
                "openai",
                "chat",
                "gpt-4o-mini",
                started_at=now - timedelta(hours=i),
                input_tokens=3000,
                output_tokens=200,
                cost_nanousd=570_000,
                price_known=True,
                tags={"feature": "triage"},
            )
            for i in range(1, 49)
        ]
    )
    store.close()
    return f"sqlite://{tmp_path / 'calls.db'}"


def test_from_usage_with_flags(store_url: str, tmp_path: Path) -> None:
    out = tmp_path / "built.toml"
    result = runner.invoke(
        app,
        [
            "roi",
            "from-usage",
            "--feature",
            "triage",
            *WINDOW,
            "--store",
            store_url,
            "--tuned-model",
            "gpt-4o-mini-2024-07-18",
            "--tuned-input-tokens",
            "300",
            "--training-tokens",
            "1_000_000",
            "--epochs",
            "3",
            "--examples",
            "500",
            "--label-cost",
            "0.5",
            "--horizon",
            "6",
            "--write-scenario",
            str(out),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["usage"]["calls"] == 48
    assert data["usage"]["requests_per_month"] == 720  # 48 calls in 2 days × 30
    assert data["horizon_months"] == 6
    tuned = next(p for p in data["paths"] if p["name"] == "fine-tuned")
    assert tuned["one_off"]["training"] == "9"  # 3M training tokens × $3/1M
    assert tuned["one_off"]["labelling"] == "250"
    assert out.exists() and "[[paths]]" in out.read_text()
    again = runner.invoke(app, ["roi", "plan", str(out), "--format", "json"])
    assert again.exit_code == 0, again.output


def test_from_usage_needs_tuned_assumptions(store_url: str) -> None:
    result = runner.invoke(app, ["roi", "from-usage", "--feature", "triage", "--store", store_url])
    assert result.exit_code == 2
    assert "--tuned-input-tokens" in result.stderr


def test_from_usage_without_calls_says_what_to_do(store_url: str) -> None:
    result = runner.invoke(
        app, ["roi", "from-usage", "--feature", "nothing", "--store", store_url, "--tuned-input-tokens", "10"]
    )
    assert result.exit_code == 2
    assert "widen --since" in result.stderr


def test_from_usage_with_a_trace_and_an_assumptions_file(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "timestamp,input_tokens,output_tokens\n2025-01-01T00:00:00,1000,100\n2025-01-01T01:00:00,3000,300\n"
    )
    result = runner.invoke(
        app,
        [
            "roi",
            "from-usage",
            "--trace",
            str(trace),
            "--assumptions",
            str(EXAMPLES / "from_usage" / "assumptions.toml"),
            "--format",
            "csv",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["path"] for r in rows} == {"current", "fine-tuned"}
    assert rows[1]["requests"] == "1440"  # 2 calls an hour × 720 h


def test_bad_numbers_in_flags_exit_2(store_url: str) -> None:
    result = runner.invoke(app, ["roi", "from-usage", "--store", store_url, "--tuned-input-tokens", "lots"])
    assert result.exit_code == 2
    assert "not a number" in result.output
    negative = runner.invoke(
        app,
        [
            "roi",
            "from-usage",
            "--feature",
            "triage",
            *WINDOW,
            "--store",
            store_url,
            "--tuned-input-tokens",
            "-5",
        ],
    )
    assert negative.exit_code == 2
    assert "tokens.user_input" in negative.stderr
