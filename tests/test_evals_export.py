"""An experiment run exported as router training rows (`route train --data`) and as the measured
quality of ROI paths (`roi plan --quality-from RUN`), on a run folder written by hand."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from costlens._errors import ConfigError
from costlens.cli import app
from costlens.evals._config import DatasetSpec
from costlens.evals._export import (
    read_run_rows,
    roi_quality,
    routing_export,
    routing_rows,
    score_columns,
    write_routing_csv,
)
from costlens.evals._results import Outcome, RunMeta, RunResult, StrategyInfo
from costlens.evals._stats import wilson_interval
from costlens.roi import load_scenario
from costlens.routing import read_routing_csv

runner = CliRunner()
WORDS = ["red", "blue", "green", "cyan", "black", "white", "pink", "gold", "grey", "teal", "lime", "navy"]
ITEMS = 50
RUN_ID = "20250101-000000-abcd"
TUNED_MODEL = "ft:small-model:acme::x1"
STRATEGIES = (
    StrategyInfo(name="small", model="small-model"),
    StrategyInfo(name="tuned", model=TUNED_MODEL, kind="fine-tuned", fine_tuned_from="small-model"),
)
SCENARIO = """
title = "measured"
horizon_months = 12
[volume]
requests_per_month = 50_000
[quality]
value_per_correct = 0.01
cost_per_error = 0.05
[[paths]]
name = "prompt"
kind = "prompt"
model = "small-model"
tokens = { system = 2_000, user_input = 500, output = 200 }
prices = { input = 3, output = 15 }
accuracy = 0.5
[[paths]]
name = "tuned"
kind = "fine_tuned"
base_model = "small-model"
tokens = { user_input = 500, output = 200 }
prices = { input = 3, output = 15 }
training = { fixed = 200 }
hosting_per_hour = 0
storage_per_month = 0
accuracy = 0.5
[[paths]]
name = "other"
kind = "switch"
model = "big-model"
tokens = { system = 2_000, user_input = 500, output = 200 }
prices = { input = 1, output = 4 }
accuracy = 0.9
"""


def _text(i: int) -> str:
    words = [WORDS[(i * 7 + k * 5) % len(WORDS)] for k in range(5)]
    return " ".join([*words, f"item{i}", "hard,\nreally" if i % 4 == 0 else "easy"])  # a quoted newline


def _outcomes() -> list[Outcome]:
    """small: wrong on every fourth item; item 2's first repeat scores 0.5; item 49's second repeat is
    missing (unfinished). tuned: right everywhere but item 7's first repeat, a failed call."""
    out: list[Outcome] = []
    for i in range(ITEMS):
        for repeat in (0, 1):
            if not (i == 49 and repeat == 1):
                good = i % 4 != 0
                score = 0.5 if (i, repeat) == (2, 0) else float(good)
                out.append(Outcome("small", f"q{i}", repeat, correct=good, score=score, model="small-model"))
            if (i, repeat) == (7, 0):
                out.append(Outcome("tuned", f"q{i}", repeat, correct=None, score=0.0, error="timeout"))
            else:
                out.append(Outcome("tuned", f"q{i}", repeat, correct=True, score=1.0, model=TUNED_MODEL))
    return out


def _write_run(folder: Path, data: Path, strategies: tuple[StrategyInfo, ...] = STRATEGIES) -> Path:
    spec_dataset = {"path": str(data), "input_field": "text", "expected_field": "label"}
    fingerprint = DatasetSpec.model_validate(spec_dataset).load().fingerprint()
    meta = RunMeta(
        run_id=RUN_ID,
        name="intents",
        created="2025-01-01T00:00:00+00:00",
        split="test",
        scorer="exact",
        dataset=str(data),
        dataset_fingerprint=fingerprint,
        item_ids=tuple(f"q{i}" for i in range(ITEMS)),
        strategies=strategies,
        repeats=2,
        spec={"name": "intents", "dataset": spec_dataset, "split": "test"},
    )
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(meta.to_json()), encoding="utf-8")
    with (folder / "results.jsonl").open("w", encoding="utf-8") as handle:
        for outcome in _outcomes():
            handle.write(json.dumps({"outcome": outcome.to_json(), "records": []}) + "\n")
    return folder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated costlens home: runs are found in `<home>/runs`."""
    monkeypatch.setenv("COSTLENS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def run_folder(tmp_path: Path, home: Path) -> Path:
    data = tmp_path / "items.jsonl"
    lines = [json.dumps({"id": f"q{i}", "text": _text(i), "label": "x"}) for i in range(ITEMS)]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return _write_run(home / "runs" / RUN_ID, data)


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def _expected_scores(i: int) -> tuple[float, float]:
    small = 0.75 if i == 2 else float(i % 4 != 0)
    return small, 0.5 if i == 7 else 1.0


# --- routing rows ---------------------------------------------------------------------------------


def test_routing_csv_round_trips_with_exact_scores(run_folder: Path, tmp_path: Path) -> None:
    run = RunResult.load(run_folder)
    export = routing_export(run)
    assert export.columns == {"small": "small-model", "tuned": TUNED_MODEL}  # models are unique
    assert export.left_out == 1 and len(export.rows) == ITEMS - 1  # q49 lacks a repeat of small
    path = write_routing_csv(run, tmp_path / "out" / "routing.csv")
    rows = read_routing_csv(path)
    assert rows.models == ("small-model", TUNED_MODEL)
    assert rows.prompts == [_text(i) for i in range(ITEMS - 1)]
    assert rows.scores == [list(_expected_scores(i)) for i in range(ITEMS - 1)]
    assert set(rows.groups) == {"intents"} and rows.dropped_missing == 0
    assert 0 < sum(rows.test) < len(rows)  # a deterministic share is held out as split=test
    assert routing_rows(run) == export.rows
    again = read_run_rows(RUN_ID[:8])  # by id prefix, in the runs folder
    assert again.scores == rows.scores and again.test == rows.test and again.dropped_missing == 1


def test_holdout_zero_keeps_every_row_for_training(run_folder: Path) -> None:
    rows = routing_rows(RunResult.load(run_folder), holdout=0)
    assert {r["split"] for r in rows} == {"train"}


def test_score_columns_fall_back_to_strategy_names() -> None:
    shared = (StrategyInfo("prompt", "m"), StrategyInfo("m-5nn", "m"))
    assert score_columns(shared) == {"prompt": "prompt_score", "m-5nn": "m-5nn"}  # `prompt` is metadata
    assert score_columns(STRATEGIES) == {"small": "small-model", "tuned": TUNED_MODEL}


def test_a_changed_or_missing_dataset_is_refused_unless_given(run_folder: Path, tmp_path: Path) -> None:
    run = RunResult.load(run_folder)
    data = tmp_path / "items.jsonl"
    original = data.read_text(encoding="utf-8")
    data.write_text(original.replace("item3 ", "item3 changed "), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"has changed since the run.*pass that dataset"):
        routing_rows(run)
    data.unlink()
    with pytest.raises(ConfigError, match=r"cannot be read.*does not exist"):
        routing_rows(run)
    data.write_text(original, encoding="utf-8")
    given = DatasetSpec(path=data, input_field="text", expected_field="label").load()
    assert routing_rows(run, dataset=given) == routing_rows(run)


# --- route train --data ----------------------------------------------------------------------------


def _models(tmp_path: Path) -> Path:
    models = tmp_path / "models.csv"
    models.write_text(f"model,cost_per_call_usd\nsmall-model,0.0002\n{TUNED_MODEL},0.003\n", encoding="utf-8")
    return models


@pytest.mark.parametrize("source", ["csv", "run"])
def test_route_train_reads_the_export(source: str, run_folder: Path, tmp_path: Path) -> None:
    data = write_routing_csv(RunResult.load(run_folder), tmp_path / "rows.csv") if source == "csv" else RUN_ID
    out = tmp_path / "router.npz"
    args = ["route", "train", "--data", str(data), "--models", str(_models(tmp_path)), "--out", str(out)]
    result = runner.invoke(app, [*args, "--folds", "3", "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["candidates"] == ["small-model", TUNED_MODEL] and out.is_file()
    assert summary["train_rows"] + summary["test_rows"] == ITEMS - 1
    assert summary["test_rows"] > 0
    assert summary["dropped_missing"] == (1 if source == "run" else 0)


def test_route_train_on_a_changed_run_dataset_is_one_line(run_folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "items.jsonl"
    data.write_text(data.read_text(encoding="utf-8").replace("item3 ", "item3 x "), encoding="utf-8")
    out = str(tmp_path / "router.npz")
    result = runner.invoke(app, ["route", "train", "--data", str(run_folder), "--out", out])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "has changed since the run" in lines[0], result.output


# --- roi plan --quality-from -------------------------------------------------------------------------


def test_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson_interval(81, 100)
    assert round(low, 4) == 0.7222 and round(high, 4) == 0.8749
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_roi_quality_maps_by_name_then_by_model(run_folder: Path, scenario: Path) -> None:
    measured, notes = roi_quality(RunResult.load(run_folder), load_scenario(scenario))
    prompt, tuned, other = (measured.path(n).accuracy for n in ("prompt", "tuned", "other"))
    assert prompt is not None and tuned is not None and other is not None
    assert prompt.value == Decimal("0.737374") and prompt.samples == 99  # 73 / 99, by model
    assert tuned.value == Decimal("0.99") and tuned.samples == 100  # by name; the failure counts wrong
    assert prompt.low is not None and prompt.high is not None and prompt.low < prompt.value < prompt.high
    assert tuned.source == f"run {RUN_ID} (tuned)"
    assert other.value == Decimal("0.9") and other.source == "user"  # not measured: kept
    assert notes[0] == "path 'prompt' <- strategy 'small': accuracy 0.737 (0.64-0.81), n=99"
    assert notes[1].startswith("path 'tuned' <- strategy 'tuned': accuracy 0.990") and "1 failed" in notes[1]
    assert any("unfinished" in n for n in notes)
    assert any(n.startswith("path 'other' not measured") for n in notes)


def test_an_ambiguous_model_is_not_guessed(run_folder: Path, tmp_path: Path, scenario: Path) -> None:
    two = (StrategyInfo("small", "small-model"), StrategyInfo("tuned", "small-model"))
    run = RunResult.load(_write_run(tmp_path / "run", tmp_path / "items.jsonl", two))
    loaded = load_scenario(scenario)
    measured, notes = roi_quality(run, loaded)
    assert measured.path("prompt").accuracy == loaded.path("prompt").accuracy  # kept
    assert any("model 'small-model' was measured by 2 strategies (small, tuned)" in n for n in notes)
    tuned = measured.path("tuned").accuracy
    assert tuned is not None and tuned.value == Decimal("0.99")  # by name


def test_roi_plan_quality_from_shows_the_measured_accuracy(run_folder: Path, scenario: Path) -> None:
    result = runner.invoke(app, ["roi", "plan", str(scenario), "--quality-from", RUN_ID, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # stdout is the JSON alone: the notes went to stderr
    quality = {p["name"]: p["quality"] for p in data["paths"]}
    assert quality["prompt"]["accuracy"] == "0.737374"
    assert quality["tuned"]["accuracy"] == "0.99"
    assert quality["tuned"]["accuracy_source"] == f"run {RUN_ID} (tuned)"
    assert quality["prompt"]["accuracy_interval"] == ["0.642996", "0.814019"]
    assert quality["other"]["accuracy"] == "0.9"
    assert data["quality_from"]["run"] == RUN_ID
    assert data["recommendation"]["verdict"]
    assert "path 'prompt' <- strategy 'small'" in result.stderr


def test_roi_plan_quality_from_errors_are_one_line(run_folder: Path, scenario: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["roi", "plan", str(scenario), "--quality-from", "nope"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "no experiment run 'nope'" in result.stderr
    unrelated = tmp_path / "unrelated.toml"
    unrelated.write_text(
        SCENARIO.replace("small-model", "gpt-9").replace('"tuned"', '"ft"'), encoding="utf-8"
    )
    result = runner.invoke(app, ["roi", "plan", str(unrelated), "--quality-from", str(run_folder)])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "measured no path of the scenario" in result.stderr
