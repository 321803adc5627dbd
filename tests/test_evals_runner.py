"""The experiment runner end to end: real SDK clients, the fake provider answering from a scripted
answer key per model, so accuracy and cost are known exactly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

import costlens
from costlens.evals import spec_from_dict
from costlens.evals._results import RunResult
from costlens.evals._runner import RunStopped, run_experiment
from costlens.evals._stats import summarize_run
from costlens.store.sqlite import SQLiteStore
from costlens.testing import FakeProvider, FakeUsage, Fault
from tests.conftest import Recorded

# $ per token (the catalogue's list prices, written out here as the independent reference)
PRICES = {
    "gpt-4.1-nano": (Decimal("0.10") / 10**6, Decimal("0.40") / 10**6),
    "gpt-4.1-mini": (Decimal("0.40") / 10**6, Decimal("1.60") / 10**6),
}
INPUT_TOKENS = 1000
#: The answer key: which items each model gets right (by the number in the question).
KEY = {"gpt-4.1-nano": lambda i: i % 2 == 0, "gpt-4.1-mini": lambda i: i % 5 != 0}
N_TEST = 20


def number_of(body: dict[str, Any]) -> int:
    match = re.search(r"What is (\d+) plus", str(body["messages"][-1]["content"]))
    assert match is not None, body
    return int(match.group(1))


def responder(body: dict[str, Any]) -> str:
    i = number_of(body)
    return str(2 * i) if KEY[body["model"]](i) else "I do not know"


def write_dataset(folder: Path, n_test: int = N_TEST, n_train: int = 10) -> Path:
    rows = [
        {"id": f"q{i}", "input": f"What is {i} plus {i}?", "expected": str(2 * i), "split": "test"}
        for i in range(n_test)
    ] + [
        {
            "id": f"t{i}",
            "input": f"What is {i + 100} plus {i + 100}?",
            "expected": str(2 * (i + 100)),
            "split": "train",
        }
        for i in range(n_train)
    ]
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def spec_dict(data: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "sums",
        "dataset": {"path": str(data)},
        "scorer": "numeric",
        "concurrency": 4,
        "defaults": {"params": {"max_tokens": 5}},
        "strategies": [
            {"name": "nano", "model": "gpt-4.1-nano"},
            {"name": "mini-2shot", "model": "gpt-4.1-mini", "few_shot": 2},
        ],
        **extra,
    }


@pytest.fixture
def keyed(fake: FakeProvider) -> FakeProvider:
    fake.default_usage = FakeUsage(input_tokens=INPUT_TOKENS)
    fake.responder = responder
    return fake


def client_for(fake: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)


def expected_cost(model: str, output_words: int) -> Decimal:
    inp, out = PRICES[model]
    return INPUT_TOKENS * inp + output_words * out


def test_accuracy_and_costs_match_the_answer_key_exactly(
    keyed: FakeProvider, tmp_path: Path, recorded: Recorded
) -> None:
    spec = spec_from_dict(spec_dict(write_dataset(tmp_path)))
    result = run_experiment(spec, clients={"openai": client_for(keyed)}, runs_dir=tmp_path / "runs")
    summaries = {s.strategy: s for s in summarize_run(result)}
    nano, mini = summaries["nano"], summaries["mini-2shot"]
    assert (nano.n, nano.correct, nano.errors) == (N_TEST, 10, 0)
    assert (mini.n, mini.correct, mini.errors) == (N_TEST, 16, 0)
    # a right answer is one word ("2i"), a wrong one four ("I do not know")
    nano_cost = 10 * expected_cost("gpt-4.1-nano", 1) + 10 * expected_cost("gpt-4.1-nano", 4)
    mini_cost = 16 * expected_cost("gpt-4.1-mini", 1) + 4 * expected_cost("gpt-4.1-mini", 4)
    assert nano.total_cost == nano_cost and mini.total_cost == mini_cost
    assert nano.cost_per_correct == nano_cost / 10 and mini.cost_per_correct == mini_cost / 16
    assert nano.mean_input_tokens == INPUT_TOKENS and nano.mean_output_tokens == 2.5
    assert nano.latency_p50_ms is not None and nano.latency_p95_ms is not None
    # the store holds one record per (strategy, item), tagged, and the same money
    records = recorded.all()
    per_item = Counter((r.tags["eval_strategy"], r.tags["eval_item"]) for r in records)
    assert len(per_item) == 2 * N_TEST and set(per_item.values()) == {1}
    assert {r.tags["eval_run"] for r in records} == {result.run_id}
    assert sum(Decimal(r.cost_nanousd or 0) for r in records) / 10**9 == nano_cost + mini_cost
    # few-shot examples come from the train split, never the item itself
    mini_bodies = [r.json for r in keyed.requests if r.json and r.json.get("model") == "gpt-4.1-mini"]
    assert all(len(b["messages"]) == 5 for b in mini_bodies)  # 2 examples (user+assistant) + the item
    assert all("What is 1" in str(b["messages"][0]["content"]) for b in mini_bodies)
    # response text is private by default: the journal keeps verdicts, not answers
    assert "I do not know" not in (result.folder / "results.jsonl").read_text()


def test_running_again_resumes_and_identical_requests_are_free(keyed: FakeProvider, tmp_path: Path) -> None:
    spec = spec_from_dict(spec_dict(write_dataset(tmp_path)))
    client = client_for(keyed)
    first = run_experiment(spec, clients={"openai": client}, runs_dir=tmp_path / "runs")
    calls = len(keyed.requests)
    assert calls == 2 * N_TEST
    again = run_experiment(spec, clients={"openai": client}, runs_dir=tmp_path / "runs")
    assert len(keyed.requests) == calls and again.run_id == first.run_id  # nothing called twice
    other = run_experiment(spec, clients={"openai": client}, runs_dir=tmp_path / "runs", run_id="second")
    assert len(keyed.requests) == calls  # another run of the same requests: answered from the cache
    assert all(o.cached and o.calls == 0 for o in other.outcomes)
    a, b = summarize_run(first), summarize_run(other)
    assert [(s.correct, s.total_cost) for s in a] == [(s.correct, s.total_cost) for s in b]
    assert all(s.spent == 0 for s in b) and all(s.spent == s.total_cost for s in a)


def test_cost_cap_stops_the_run_within_the_cap_and_raising_it_continues(
    keyed: FakeProvider, tmp_path: Path, recorded: Recorded
) -> None:
    # the fake reports fewer input tokens than the prompt has, so the reservation is a true bound
    keyed.default_usage = FakeUsage(input_tokens=5)
    data = write_dataset(tmp_path)
    spec = spec_from_dict(spec_dict(data, max_cost_usd="0.00005", cache=False, concurrency=8))
    with pytest.raises(RunStopped, match=r"cost cap \(\$0.00005\) was reached") as stopped:
        run_experiment(spec, clients={"openai": client_for(keyed)}, runs_dir=tmp_path / "runs")
    partial = stopped.value.result
    spent = sum(Decimal(r.cost_nanousd or 0) for r in recorded.all() if r.status == "ok") / 10**9
    assert 0 < spent <= Decimal("0.00005")  # the budget reserves the worst case: never over the cap
    assert 0 < len(partial.outcomes) < 2 * N_TEST
    assert any(r.status == "blocked" for r in recorded.all())
    bigger = spec_from_dict(spec_dict(data, max_cost_usd="1", cache=False, concurrency=8))
    done = run_experiment(bigger, clients={"openai": client_for(keyed)}, runs_dir=tmp_path / "runs")
    assert done.run_id == partial.run_id and done.complete
    ok = [r for r in recorded.all() if r.status == "ok"]
    per_item = Counter((r.tags["eval_strategy"], r.tags["eval_item"]) for r in ok)
    assert len(per_item) == 2 * N_TEST and set(per_item.values()) == {1}  # none paid twice


def test_429_is_retried_honouring_retry_after_and_failures_are_retried_on_resume(
    keyed: FakeProvider, tmp_path: Path
) -> None:
    data = write_dataset(tmp_path, n_test=4)
    spec = spec_from_dict(spec_dict(data, concurrency=1, max_retries=2, cache=False))
    keyed.enqueue(fault=Fault.http(429, retry_after=0.01), times=2)
    result = run_experiment(spec, clients={"openai": client_for(keyed)}, runs_dir=tmp_path / "runs")
    assert all(o.error is None for o in result.outcomes) and len(result.outcomes) == 8
    assert len(keyed.requests) == 8 + 2
    # a 500 that outlasts the retries is the item's error; running again retries only it
    no_retry = spec_from_dict(spec_dict(data, concurrency=1, max_retries=0, cache=False, name="sums-2"))
    keyed.enqueue(fault=Fault.http(500))
    failed = run_experiment(no_retry, clients={"openai": client_for(keyed)}, runs_dir=tmp_path / "runs")
    errors = [o for o in failed.outcomes if o.error is not None]
    assert len(errors) == 1 and "HTTP 500" in (errors[0].error or "") and errors[0].correct is None
    assert summarize_run(failed)[0].errors + summarize_run(failed)[1].errors == 1
    before = len(keyed.requests)
    healed = run_experiment(no_retry, clients={"openai": client_for(keyed)}, runs_dir=tmp_path / "runs")
    assert len(keyed.requests) == before + 1 and all(o.error is None for o in healed.outcomes)


def test_a_judge_is_tracked_priced_and_kept_apart_from_the_strategy_cost(
    keyed: FakeProvider, tmp_path: Path, recorded: Recorded
) -> None:
    def judging(body: dict[str, Any]) -> str:
        if body["model"] == "gpt-4.1":  # the judge: grades every answer correct
            return "PASS"
        return responder(body)

    keyed.responder = judging
    data = write_dataset(tmp_path, n_test=3)
    spec = spec_from_dict(
        {
            **spec_dict(data),
            "scorer": {"name": "judge", "model": "gpt-4.1"},
            "strategies": [{"name": "nano", "model": "gpt-4.1-nano"}],
        }
    )
    result = run_experiment(spec, clients={"openai": client_for(keyed)}, runs_dir=tmp_path / "runs")
    assert all(o.correct for o in result.outcomes)
    judge = [r for r in recorded.all() if r.tags.get("eval_role") == "judge"]
    assert len(judge) == 3 and all(r.request_model == "gpt-4.1" and r.price_known for r in judge)
    judge_cost = sum(Decimal(r.cost_nanousd or 0) for r in judge) / 10**9
    assert sum(o.eval_cost or 0 for o in result.outcomes) == judge_cost > 0
    summary = summarize_run(result)[0]
    assert summary.total_cost == sum(expected_cost("gpt-4.1-nano", 1) for _ in range(2)) + expected_cost(
        "gpt-4.1-nano", 4
    )  # items 0 and 2 right (one word), item 1 wrong (four): the judge is not in it


def test_an_unpriced_model_is_unknown_cost_never_zero(keyed: FakeProvider, tmp_path: Path) -> None:
    keyed.responder = lambda body: "2"
    data = write_dataset(tmp_path, n_test=2)
    spec = spec_from_dict(
        {**spec_dict(data), "strategies": [{"name": "mystery", "model": "no-such-model-x1"}]}
    )
    result = run_experiment(spec, clients={"openai": client_for(keyed)}, runs_dir=tmp_path / "runs")
    summary = summarize_run(result)[0]
    assert summary.total_cost is None and summary.unpriced == 2 and summary.cost_per_correct is None


def test_a_changed_dataset_is_refused_for_the_same_run(keyed: FakeProvider, tmp_path: Path) -> None:
    data = write_dataset(tmp_path, n_test=3)
    spec = spec_from_dict(spec_dict(data))
    run_experiment(spec, clients={"openai": client_for(keyed)}, runs_dir=tmp_path / "runs", run_id="r1")
    write_dataset(tmp_path, n_test=4)
    with pytest.raises(costlens.ConfigError, match="another version"):
        run_experiment(spec, clients={"openai": client_for(keyed)}, runs_dir=tmp_path / "runs", run_id="r1")


# -- killed mid-way ----------------------------------------------------------------------------------


def _cli_env(home: Path, fake: FakeProvider) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COSTLENS_", "OPENAI_"))}
    env.update(
        COSTLENS_HOME=str(home),
        COSTLENS_STORE=f"sqlite:///{home / 'costlens.db'}",
        OPENAI_BASE_URL=fake.openai_base_url,
        OPENAI_API_KEY="sk-test",
    )
    return env


def _eval_run(spec: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    code = "from costlens.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "eval", "run", str(spec), "--format", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_a_run_killed_mid_way_resumes_to_the_same_result_paying_nothing_twice(
    keyed: FakeProvider, tmp_path: Path
) -> None:
    n = 30
    data = write_dataset(tmp_path, n_test=n)
    spec = tmp_path / "spec.toml"
    spec.write_text(
        f'name = "sums"\nscorer = "numeric"\nconcurrency = 3\ncache = false\n'
        f'[dataset]\npath = "{data.name}"\n[defaults]\nparams = {{ max_tokens = 5 }}\n'
        '[[strategies]]\nname = "nano"\nmodel = "gpt-4.1-nano"\n'
        '[[strategies]]\nname = "mini"\nmodel = "gpt-4.1-mini"\n',
        encoding="utf-8",
    )
    keyed.latency_s = 0.01  # slow enough that the kill lands with calls in flight
    killed_home = tmp_path / "killed"
    env = _cli_env(killed_home, keyed)
    process = _eval_run(spec, env)
    journal = killed_home / "runs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        results = list(journal.glob("*/results.jsonl")) if journal.is_dir() else []
        if results and _lines(results[0]) >= n // 2:
            break
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    (results_file,) = list(journal.glob("*/results.jsonl"))
    kept = _lines(results_file)
    assert n // 2 <= kept < 2 * n
    resumed = _eval_run(spec, env)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err.decode()
    # an uninterrupted run, elsewhere, for reference
    clean_home = tmp_path / "clean"
    reference = _eval_run(spec, _cli_env(clean_home, keyed))
    ref_out, ref_err = reference.communicate(timeout=120)
    assert reference.returncode == 0, ref_err.decode()
    resumed_rows = json.loads(out)["rows"]
    reference_rows = json.loads(ref_out)["rows"]
    keys = ("strategy", "n", "correct", "errors", "accuracy", "total_cost_usd", "mean_output_tokens")
    assert [{k: r[k] for k in keys} for r in resumed_rows] == [
        {k: r[k] for k in keys} for r in reference_rows
    ]
    # the store: one paid record per (strategy, item), none twice, none lost
    store = SQLiteStore(killed_home / "costlens.db")
    try:
        records = [r for r in store.iter_records() if r.status == "ok"]
    finally:
        store.close()
    per_item = Counter((r.tags["eval_strategy"], r.tags["eval_item"]) for r in records)
    assert len(per_item) == 2 * n and set(per_item.values()) == {1}
    run = RunResult.load(results_file.parent)
    assert run.complete and {o.key for o in run.outcomes} == {
        (s, f"q{i}", 0) for s in ("nano", "mini") for i in range(n)
    }
