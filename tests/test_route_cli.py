"""`costlens route train|eval` end to end on small CSV files, and their one-line usage errors (exit 2)."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from costlens.cli import app

runner = CliRunner()
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing"
WORDS = ["red", "blue", "green", "cyan", "black", "white", "pink", "gold", "grey", "teal", "lime", "navy"]


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rng = random.Random(3)
    rows: list[dict[str, object]] = []
    for i in range(150):
        hard = i % 3 == 0
        prompt = " ".join([*rng.sample(WORDS, 6), "hard,\nreally" if hard else "easy"])  # quoted newline
        rows.append(
            {
                "prompt_id": f"p{i}",
                "dataset": "toy",
                "split": "test" if i % 5 == 0 else "train",
                "prompt": prompt,
                "small-model": 0 if hard else 1,
                "big-model": 1,
            }
        )
    data = _write(tmp_path / "data.csv", rows)
    models = tmp_path / "models.csv"
    models.write_text("model,cost_per_call_usd\nsmall-model,0.0002\nbig-model,0.003\n")
    return data, models


def test_train_then_eval_json_csv_table_and_plot(files: tuple[Path, Path], tmp_path: Path) -> None:
    data, models = files
    out = tmp_path / "r" / "router.npz"
    result = runner.invoke(
        app,
        [
            "route",
            "train",
            "--data",
            str(data),
            "--models",
            str(models),
            "--out",
            str(out),
            "--folds",
            "3",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["candidates"] == ["small-model", "big-model"] and summary["strongest"] == "big-model"
    assert summary["train_rows"] == 120 and summary["test_rows"] == 30 and out.is_file()

    result = runner.invoke(
        app, ["route", "eval", "--data", str(data), "--router", str(out), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (
        report["held_out_rows"] == 30 and report["reference"] == "big-model" and report["cost_unit"] == "usd"
    )
    by_kind = {e["kind"]: e for e in report["rows"]}  # the policies: the csv rows, as flat objects
    assert set(by_kind) == {"model", "zero-router", "oracle", "router-hull", "router-deployable"}
    deploy = by_kind["router-deployable"]
    assert deploy["target_met"] is True and deploy["saving"] > by_kind["zero-router"]["saving"]
    assert by_kind["oracle"]["quality"] == 1.0 and by_kind["oracle"]["cost_usd"].startswith("0.00")
    assert 0.5 < report["two_model"]["apgr"] <= 1.5 and report["hull"] and report["curve"]

    png = tmp_path / "curve.png"
    result = runner.invoke(
        app,
        ["route", "eval", "--data", str(data), "--router", str(out), "--format", "csv", "--plot", str(png)],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["kind"] for r in rows][-1] == "router-deployable" and len(rows) == 6
    assert rows[4]["apgr"] and not rows[0]["apgr"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    result = runner.invoke(app, ["route", "eval", "--data", str(data), "--router", str(out)])
    assert result.exit_code == 0, result.output
    assert "router (deployable: knob from train)" in result.stdout and "APGR" in result.stdout


def test_holdout_sets_rows_aside_for_files_without_a_test_split(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    data, _ = files
    no_split = tmp_path / "nosplit.csv"
    with data.open(newline="") as handle:
        rows = [dict(r, split="train") for r in csv.DictReader(handle)]
    _write(no_split, rows)
    out = tmp_path / "router.npz"
    result = runner.invoke(
        app, ["route", "train", "--data", str(no_split), "--out", str(out), "--holdout", "20", "--folds", "3"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["route", "eval", "--data", str(no_split), "--router", str(out), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["cost_unit"] == "strong calls" and 10 < report["held_out_rows"] < 50
    result = runner.invoke(
        app, ["route", "eval", "--data", str(no_split), "--router", str(out), "--holdout", "0"]
    )
    assert result.exit_code == 2 and "no held-out rows" in result.output


def _error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_bad_input_is_a_one_line_usage_error(files: tuple[Path, Path], tmp_path: Path) -> None:
    data, _models = files
    out = str(tmp_path / "router.npz")
    no_prompt = _write(tmp_path / "noprompt.csv", [{"text": "x", "a": 1, "b": 0}])
    assert "no 'prompt' column" in _error(["route", "train", "--data", str(no_prompt), "--out", out])
    no_scores = _write(tmp_path / "noscores.csv", [{"prompt": "x", "name": "y"}])
    line = _error(["route", "train", "--data", str(no_scores), "--out", out])
    assert "noscores.csv" in line and "score column" in line
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("model,cost_per_call_usd\nsmall-model,0.1\ngpt-9,1\n")
    line = _error(["route", "train", "--data", str(data), "--models", str(unknown), "--out", out])
    assert "'gpt-9'" in line and "data.csv" in line
    line = _error(["route", "eval", "--data", str(data), "--router", str(data)])
    assert "not a costlens router" in line and "route train" in line
    assert "no such file" in _error(["route", "train", "--data", str(tmp_path / "none.csv"), "--out", out])
    assert "--format" in _error(["route", "eval", "--data", str(data), "--router", out, "--format", "xml"])
    assert "--char-ngrams" in _error(
        ["route", "train", "--data", str(data), "--out", out, "--char-ngrams", "x"]
    )


@pytest.mark.skipif(not DATA.is_dir(), reason="shared/data/routing is not beside the checkout")
def test_a_small_copy_of_a_real_file_trains_and_evaluates(tmp_path: Path) -> None:
    with (DATA / "routellm_gsm8k_train.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for _, r in zip(range(250), csv.DictReader(handle), strict=False)]
    data = _write(tmp_path / "gsm8k_small.csv", rows)
    out = tmp_path / "gsm8k.npz"
    args = ["route", "train", "--data", str(data), "--out", str(out), "--holdout", "20", "--folds", "3"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(
        app, ["route", "eval", "--data", str(data), "--router", str(out), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["two_model"]["strong"] == "gpt-4-1106-preview"
    assert 0.0 <= report["two_model"]["apgr"] <= 1.5
