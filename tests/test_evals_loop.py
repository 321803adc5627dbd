"""The loop closes: an experiment feeds the ROI planner and the router, and a fine-tune made from the
user's data is measured as a strategy, its training cost in the same reports. All through the CLI,
real SDK clients and the fake provider answering from a scripted answer key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import costlens
from costlens.cli import app
from costlens.evals import RunResult, find_run, summarize_run
from costlens.routing import load_router
from costlens.testing import FakeProvider, FakeUsage
from tests.test_evals_runner import KEY, number_of, write_dataset

runner = CliRunner()
TUNED_BASE = "gpt-4o-mini-2024-07-18"


def cli(*args: str) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
    return result


@pytest.fixture
def world(fake: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    def answer(body: dict[str, Any]) -> str:
        if "classify" in str(body["messages"]):  # a support ticket: the tuned model knows the labels
            return "billing"
        i = number_of(body)
        if str(body["model"]).startswith("ft:"):
            return str(2 * i)  # the tuned model gets every sum right
        return str(2 * i) if KEY[body["model"]](i) else "I do not know"

    fake.default_usage = FakeUsage(input_tokens=200)
    fake.responder = answer
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    store = f"sqlite://{tmp_path / 'costlens.db'}"
    monkeypatch.setenv("COSTLENS_STORE", store)
    costlens.configure(store=store)  # this process's recorder writes there (the CLI runs in-process)
    yield {"fake": fake, "data": write_dataset(tmp_path, n_test=60, n_train=10), "store": store}
    costlens.configure(store="memory://", durability="sync")


def write_spec(folder: Path, data: Path, strategies: str, name: str = "sums") -> Path:
    spec = folder / f"{name}.toml"
    spec.write_text(
        f'name = "{name}"\nscorer = "numeric"\nconcurrency = 4\n'
        f'[dataset]\npath = "{data}"\n[defaults]\nparams = {{ max_tokens = 5 }}\n{strategies}',
        encoding="utf-8",
    )
    return spec


TWO = """
[[strategies]]
name = "nano"
model = "gpt-4.1-nano"
[[strategies]]
name = "mini"
model = "gpt-4.1-mini"
"""

SCENARIO = """
title = "sums"
horizon_months = 12
[volume]
requests_per_month = 200_000
[quality]
value_per_correct = 0.002
cost_per_error = 0.01
[[paths]]
name = "nano"
kind = "prompt"
model = "gpt-4.1-nano"
tokens = { system = 200, user_input = 50, output = 5 }
prices = { input = 0.10, output = 0.40 }
accuracy = 0.99
[[paths]]
name = "mini"
kind = "switch"
model = "gpt-4.1-mini"
tokens = { system = 200, user_input = 50, output = 5 }
prices = { input = 0.40, output = 1.60 }
accuracy = 0.10
"""


def test_eval_run_feeds_roi_plan_and_route_train(world: dict[str, Any], tmp_path: Path) -> None:
    spec = write_spec(tmp_path, world["data"], TWO)
    shown = json.loads(cli("eval", "run", str(spec), "--format", "json").stdout)
    accuracy = {row["strategy"]: row["accuracy"] for row in shown["rows"]}
    assert accuracy == {"nano": 0.5, "mini": 0.8}  # the answer key: even numbers; all but multiples of 5
    run_id = shown["run"]

    # ROI: the scenario typed nano at 99% and mini at 10%; the run measured 50% and 80%
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    typed = json.loads(cli("roi", "plan", str(scenario), "--format", "json").stdout)
    planned = cli("roi", "plan", str(scenario), "--quality-from", run_id, "--format", "json")
    measured = json.loads(planned.stdout)
    assert "nano" in planned.stderr and "0.5" in planned.stderr  # the mapping is said
    assert _accuracy(measured, "nano") == Decimal("0.5") and _accuracy(measured, "mini") == Decimal("0.8")
    assert _recommended(typed) == "nano" and _recommended(measured) == "mini"  # the verdict follows the data

    # routing: the run's rows train a router, which then routes prompts
    router_file = tmp_path / "learned.npz"
    cli("route", "train", "--data", run_id, "--out", str(router_file), "--folds", "3")
    toml = tmp_path / "router.toml"
    toml.write_text(
        'name = "costlens/auto"\ndefault = "gpt-4.1-mini"\n'
        '[[candidates]]\nname = "gpt-4.1-nano"\nmodel = "gpt-4.1-nano"\n'
        '[[candidates]]\nname = "gpt-4.1-mini"\nmodel = "gpt-4.1-mini"\n'
        '[[policies]]\nname = "learned"\npath = "learned.npz"\ntarget = 0.9\n',
        encoding="utf-8",
    )
    decision = load_router(toml).get_optimal_model(prompt="What is 7 plus 7?")
    assert decision.model in {"gpt-4.1-nano", "gpt-4.1-mini"} and decision.policy == "learned"
    assert decision.predicted_quality is not None and 0 <= decision.predicted_quality <= 1

    # ... and the routed configuration is measured like any model
    routed = write_spec(
        tmp_path, world["data"], f'[[strategies]]\nname = "routed"\nrouter = "{toml}"\n', name="routed"
    )
    result = json.loads(cli("eval", "run", str(routed), "--format", "json").stdout)
    (row,) = result["rows"]
    assert row["n"] == 60 and row["errors"] == 0 and 0.5 <= row["accuracy"] <= 0.8
    run = RunResult.load(find_run(result["run"]))
    assert {o.model for o in run.outcomes} <= {"gpt-4.1-nano", "gpt-4.1-mini"}


def _accuracy(plan: dict[str, Any], path: str) -> Decimal:
    (found,) = [p["quality"]["accuracy"] for p in plan["paths"] if p["name"] == path]
    return Decimal(found)


def _recommended(plan: dict[str, Any]) -> str:
    return str(plan["recommendation"]["path"])


def test_finetune_then_evaluate_the_tuned_model_and_see_its_training_cost(
    world: dict[str, Any], tmp_path: Path
) -> None:
    tickets = Path(__file__).parent / "data" / "finetune" / "tickets.jsonl"
    train = tmp_path / "train.jsonl"
    cli(
        "finetune",
        "prepare",
        str(tickets),
        "--provider",
        "openai",
        "--model",
        TUNED_BASE,
        "--out",
        str(train),
    )
    submitted = cli(
        *("finetune", "submit", str(train), "--provider", "openai", "--model", TUNED_BASE),
        *("--base-url", world["fake"].openai_base_url, "--api-key", "sk-test", "--poll-interval", "0"),
        *("--today", "2026-12-01", "--format", "json"),
    )
    job = json.loads(submitted.stdout)
    tuned = job["fine_tuned_model"]
    assert job["status"] == "succeeded" and tuned.startswith(f"ft:{TUNED_BASE}")

    strategies = (
        f'[[strategies]]\nname = "tuned"\nmodel = "{tuned}"\nfine_tuned_from = "{TUNED_BASE}"\n'
        '[[strategies]]\nname = "nano"\nmodel = "gpt-4.1-nano"\n'
    )
    spec = write_spec(tmp_path, world["data"], strategies, name="tuned-vs-nano")
    shown = json.loads(cli("eval", "run", str(spec), "--format", "json").stdout)
    rows = {row["strategy"]: row for row in shown["rows"]}
    assert rows["tuned"]["accuracy"] == 1.0 and rows["tuned"]["kind"] in {"fine-tuned", "hybrid"}
    assert rows["nano"]["accuracy"] == 0.5
    run = RunResult.load(find_run(shown["run"]))
    summaries = {s.strategy: s for s in summarize_run(run)}
    assert summaries["tuned"].total_cost is not None  # a tuned model is priced, never $0 by omission
    assert summaries["tuned"].total_cost > 0

    report = json.loads(cli("report", "--by", "operation", "--format", "json").stdout)
    by_operation = {row["operation"]: row for row in report}
    training = Decimal(by_operation["fine_tuning"]["cost_usd"])
    assert training == Decimal(job["cost_usd"]) > 0
    assert by_operation["fine_tuning"]["calls"] == 1, by_operation
    assert by_operation["chat"]["calls"] == 120, by_operation
