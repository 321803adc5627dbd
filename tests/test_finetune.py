"""Fine-tuning end to end: prepare (format, validation, exact counts, estimate), submit against the fake,
the recorded `fine_tuning` call, failed jobs, OpenAI's cut-off date, and `finetune status`."""

from __future__ import annotations

import csv
import io
import json
import tomllib
import warnings
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
import typer
from typer.testing import CliRunner, Result

import costlens
from costlens.cli import app as main_app
from costlens.cli._output import OneLineErrorsGroup
from costlens.evals._dataset import DatasetError
from costlens.evals._finetune_jobs import FineTuneRefused, check_new_jobs, job_record
from costlens.evals._finetune_prepare import prepare_training_file, training_price
from costlens.store.sqlite import SQLiteStore
from costlens.testing import FakeProvider
from costlens.testing._finetune import trained_tokens_for
from costlens.usage import CallRecord
from tests.conftest import Recorded

DATA = Path(__file__).parent / "data" / "finetune"
TICKETS = DATA / "tickets.jsonl"
SYSTEM = "Classify the support ticket as billing, bug or account. Answer with the label only."
MODEL = "gpt-4o-mini-2024-07-18"
runner = CliRunner()


def _app() -> typer.Typer:
    """The real `costlens` app once `finetune` is registered there; until then a root with the same group."""
    names = {group.name for group in main_app.registered_groups}
    if "finetune" in names:
        return main_app
    from costlens.cli import _finetune

    root = typer.Typer(cls=OneLineErrorsGroup, add_completion=False, pretty_exceptions_enable=False)
    root.add_typer(_finetune.finetune_app, name="finetune", no_args_is_help=True)

    @root.callback()
    def _root() -> None:
        """test root"""

    return root


def run(*args: str) -> Result:
    return runner.invoke(_app(), ["finetune", *args])


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return result


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def tickets() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TICKETS.read_text(encoding="utf-8").splitlines()]


# -- prepare: the provider's format --------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "together", "fireworks", "mistral"])
def test_prepare_writes_each_providers_format(provider: str, tmp_path: Path) -> None:
    out = tmp_path / f"{provider}.jsonl"
    model = {
        "openai": MODEL,
        "together": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        "fireworks": "accounts/fireworks/models/llama-v3p1-8b-instruct",
        "mistral": "open-mistral-nemo",
    }[provider]
    ok(
        "prepare",
        str(TICKETS),
        "--provider",
        provider,
        "--model",
        model,
        "--input-field",
        "text",
        "--output-field",
        "label",
        "--system",
        SYSTEM,
        "--out",
        str(out),
    )
    written = lines_of(out)
    rows = tickets()
    assert len(written) == len(rows) == 12
    for example, row in zip(written, rows, strict=True):
        assert list(example) == ["messages"]  # one format per file, nothing else on the line
        messages = example["messages"]
        assert messages[-1] == {"role": "assistant", "content": row["label"]}
        if provider == "mistral":  # Mistral's documented samples have user/assistant turns only
            assert [m["role"] for m in messages] == ["user", "assistant"]
            assert messages[0]["content"] == f"{SYSTEM}\n\n{row['text']}"
        else:
            assert messages[:2] == [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": row["text"]},
            ]
    assert out.read_bytes().endswith(b"\n") and b"\r" not in out.read_bytes()


def test_prepare_csv_chat_passthrough_and_split(tmp_path: Path) -> None:
    from_jsonl = prepare_training_file(
        TICKETS,
        "openai",
        MODEL,
        system=SYSTEM,
        out=tmp_path / "a.jsonl",
        input_field="text",
        output_field="label",
    )
    from_csv = prepare_training_file(
        DATA / "tickets.csv",
        "openai",
        MODEL,
        system=SYSTEM,
        out=tmp_path / "b.jsonl",
        input_field="text",
        output_field="label",
    )
    from_chat = prepare_training_file(DATA / "chat.jsonl", "openai", MODEL, out=tmp_path / "c.jsonl")
    assert from_jsonl.lines == from_csv.lines == from_chat.lines
    assert from_chat.source_lines == tuple(range(1, 13))
    train = prepare_training_file(
        TICKETS, "openai", MODEL, split="train", write=False, input_field="text", output_field="label"
    )
    assert train.examples == 10 and train.path is None  # the `split` column: 10 train rows, 2 test rows
    # the default output path sits beside the dataset, named for the provider
    copy = tmp_path / "tickets.jsonl"
    copy.write_bytes(TICKETS.read_bytes())
    default = prepare_training_file(copy, "fireworks", "llama", input_field="text", output_field="label")
    assert default.path == tmp_path / "tickets.fireworks.jsonl" and default.path.exists()


# -- prepare: validation names the line and the field --------------------------------------------------


def test_validation_errors_name_line_and_field(tmp_path: Path) -> None:
    out = tmp_path / "never.jsonl"
    result = run(
        "prepare", str(DATA / "bad_chat.jsonl"), "--provider", "openai", "--model", MODEL, "--out", str(out)
    )
    assert result.exit_code == 1
    err = result.stderr
    assert "line 2, field 'messages': no assistant message" in err
    assert "line 3, field 'messages[0].role': must be one of" in err and "'robot'" in err
    assert "line 4, field '(line)': not valid JSON" in err
    assert "line 5, field 'messages[0].content': empty" in err
    assert not out.exists()  # nothing is written from a file with problems
    with pytest.raises(DatasetError) as caught:
        prepare_training_file(DATA / "bad_chat.jsonl", "openai", MODEL, write=False)
    assert [(e.line, e.field) for e in caught.value.errors] == [
        (2, "messages"),
        (3, "messages[0].role"),
        (4, "(line)"),
        (5, "messages[0].content"),
    ]


def _chat_file(tmp_path: Path, name: str, examples: list[list[dict[str, Any]]]) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in examples), encoding="utf-8")
    return path


def test_provider_specific_limits(tmp_path: Path) -> None:
    good = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    # OpenAI needs at least 10 examples; Fireworks 3
    few = _chat_file(tmp_path, "few.jsonl", [good] * 5)
    with pytest.raises(DatasetError, match="needs at least 10"):
        prepare_training_file(few, "openai", MODEL, write=False)
    assert prepare_training_file(few, "fireworks", "llama", write=False).examples == 5
    # Together: user and assistant alternate
    twice = [
        {"role": "user", "content": "q"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a"},
    ]
    path = _chat_file(tmp_path, "alt.jsonl", [good, twice])
    with pytest.raises(DatasetError) as caught:
        prepare_training_file(path, "together", "llama", write=False)
    assert [(e.line, e.field) for e in caught.value.errors] == [(2, "messages[1].role")]
    # Fireworks: a system message only first
    late = [
        *good,
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]
    with pytest.raises(DatasetError, match=r"line 1, field 'messages\[2\].role'"):
        prepare_training_file(
            _chat_file(tmp_path, "late.jsonl", [late] * 3), "fireworks", "llama", write=False
        )
    # Mistral: the last message is the assistant's; OpenAI only needs one assistant message
    trailing = [*good, {"role": "user", "content": "thanks"}]
    path = _chat_file(tmp_path, "trail.jsonl", [trailing] * 10)
    with pytest.raises(DatasetError, match=r"line 1, field 'messages\[2\].role': the last message"):
        prepare_training_file(path, "mistral", "open-mistral-nemo", write=False)
    assert prepare_training_file(path, "openai", MODEL, write=False).examples == 10
    # OpenAI's per-example token limit for the model (16,385 for gpt-3.5-turbo-0125)
    long = [{"role": "user", "content": "word " * 20_000}, {"role": "assistant", "content": "a"}]
    path = _chat_file(tmp_path, "long.jsonl", [good] * 10 + [long])
    with pytest.raises(
        DatasetError, match=r"line 11, field 'messages': .* over gpt-3\.5-turbo-0125's 16,385-token"
    ):
        prepare_training_file(path, "openai", "gpt-3.5-turbo-0125", write=False)
    # a key the provider does not document, named with its line
    odd = _chat_file(
        tmp_path,
        "odd.jsonl",
        [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 1}]] * 3,
    )
    with pytest.raises(DatasetError, match=r"line 1, field 'messages\[1\].weight'"):
        prepare_training_file(odd, "together", "llama", write=False)


# -- exact counts and the estimate, checked against an independent count --------------------------------


def _independent_tokens(messages: list[dict[str, str]], encoding: str) -> int:
    """The OpenAI cookbook's num_tokens_from_messages, with the BPE tables bpe-openai ships."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        enc = bpe_openai.get_encoding(encoding)
    total = 0
    for message in messages:
        total += 3
        for key, value in message.items():
            total += len(enc.encode(value))
            if key == "name":
                total += 1
    return total + 3


def _catalogue_price(entry_id: str) -> Decimal:
    import costlens.roi

    text = (Path(costlens.roi.__file__).parent / "data" / "finetune_prices.toml").read_text(encoding="utf-8")
    rows = tomllib.loads(text, parse_float=Decimal)["models"]
    return Decimal(next(r for r in rows if r["id"] == entry_id)["training_per_mtok"])


@pytest.mark.parametrize(
    ("model", "encoding", "entry"),
    [
        (MODEL, "o200k_base", "openai/gpt-4o-mini-2024-07-18"),
        ("gpt-3.5-turbo-0125", "cl100k_base", "openai/gpt-3.5-turbo-0125"),
    ],
)
def test_token_counts_and_estimate_equal_an_independent_count(
    model: str, encoding: str, entry: str, tmp_path: Path
) -> None:
    out = tmp_path / "train.jsonl"
    result = ok(
        "prepare",
        str(TICKETS),
        "--provider",
        "openai",
        "--model",
        model,
        "--input-field",
        "text",
        "--output-field",
        "label",
        "--system",
        SYSTEM,
        "--out",
        str(out),
        "--format",
        "json",
    )
    shown = json.loads(result.stdout)
    per_example = [_independent_tokens(example["messages"], encoding) for example in lines_of(out)]
    n = len(per_example)
    epochs = 3 if n * 3 >= 100 else min(25, 100 // n)  # OpenAI's "auto" epochs (cookbook): 8 for 12 examples
    price = _catalogue_price(entry)
    expected_cost = Decimal(sum(per_example) * epochs) * price / Decimal(1_000_000)
    assert shown["tokens"] == sum(per_example)
    assert shown["max_example_tokens"] == max(per_example)
    assert shown["tokens_exact"] is True
    assert (shown["epochs"], shown["trained_tokens"]) == (epochs, sum(per_example) * epochs)
    assert Decimal(shown["estimate_usd"]) == expected_cost
    assert shown["examples"] == n and shown["bytes"] == out.stat().st_size
    prepared = prepare_training_file(out, "openai", model, write=False)  # the written file counts the same
    assert list(prepared.example_tokens) == per_example
    # an explicit epoch count and price replace the defaults
    given = ok(
        "prepare",
        str(out),
        "--provider",
        "openai",
        "--model",
        model,
        "--epochs",
        "2",
        "--price-per-mtok",
        "7.5",
        "--out",
        str(tmp_path / "again.jsonl"),
        "--format",
        "json",
    )
    again = json.loads(given.stdout)
    assert Decimal(again["estimate_usd"]) == Decimal(sum(per_example) * 2) * Decimal("7.5") / Decimal(
        1_000_000
    )


def test_estimates_are_flagged_and_unknown_prices_are_not_zero(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    result = ok(
        "prepare",
        str(TICKETS),
        "--provider",
        "together",
        "--model",
        "meta-llama/Llama-3-8b-chat-hf",
        "--input-field",
        "text",
        "--output-field",
        "label",
        "--out",
        str(out),
        "--format",
        "json",
    )
    shown = json.loads(result.stdout)
    assert shown["tokens_exact"] is False and shown["epochs"] == 1
    assert shown["estimate_usd"] is None and shown["price_source"] is None  # unknown, never "0"
    assert "estimates" in result.stderr and "--price-entry" in result.stderr
    sized = ok(
        "prepare",
        str(out),
        "--provider",
        "together",
        "--model",
        "meta-llama/Llama-3-8b-chat-hf",
        "--price-entry",
        "together/lora-up-to-16b",
        "--out",
        str(tmp_path / "u.jsonl"),
        "--format",
        "json",
    )
    priced = json.loads(sized.stdout)
    assert Decimal(priced["estimate_usd"]) == Decimal(priced["trained_tokens"]) * Decimal("0.48") / 1_000_000
    # Mistral's minimum charge per job ($4) applies to a small file
    small = prepare_training_file(out, "mistral", "open-mistral-nemo", write=False)
    assert small.estimate == Decimal("4.00") and small.minimum_applied


# -- submit against the fake ----------------------------------------------------------------------------


def _store(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'costlens.db'}"


def _records(url: str) -> list[CallRecord]:
    store = SQLiteStore(url.removeprefix("sqlite://"))
    try:
        return list(store.iter_records())
    finally:
        store.close()


def _submit(fake: FakeProvider, tmp_path: Path, *extra: str, train: Path | None = None) -> Result:
    if train is None:
        train = tmp_path / "train.jsonl"
        prepare_training_file(
            TICKETS, "openai", MODEL, system=SYSTEM, out=train, input_field="text", output_field="label"
        )
    return run(
        "submit",
        str(train),
        "--provider",
        "openai",
        "--model",
        MODEL,
        "--base-url",
        fake.openai_base_url,
        "--api-key",
        "sk-test",
        "--poll-interval",
        "0",
        "--store",
        _store(tmp_path),
        "--today",
        "2026-12-01",
        *extra,
    )


def test_submit_records_one_fine_tuning_call_with_its_exact_cost(
    fake: FakeProvider, tmp_path: Path, recorded: Recorded
) -> None:
    result = _submit(fake, tmp_path, "--suffix", "tickets", "--tag", "feature=triage", "--format", "json")
    assert result.exit_code == 0, result.output + result.stderr
    shown = json.loads(result.stdout)
    train = (tmp_path / "train.jsonl").read_bytes()
    trained = trained_tokens_for(train, 8)  # the fake's documented count × the 8 epochs sent
    assert shown["status"] == "succeeded" and shown["trained_tokens"] == trained and shown["n_epochs"] == 8
    assert shown["fine_tuned_model"].startswith(f"ft:{MODEL}:costlens-fake:tickets:")
    assert [e["message"] for e in shown["rows"]][-1] == "The job has successfully completed"
    assert (
        Decimal(shown["cost_usd"]) == Decimal(trained) * Decimal(3) / 1_000_000 and shown["recorded"] is True
    )
    uploads = [r for r in fake.requests if r.path == "/v1/files"]
    assert len(uploads) == 1 and train in uploads[0].body  # the prepared bytes, unchanged
    (record,) = _records(_store(tmp_path))
    assert (record.operation, record.provider, record.status) == ("fine_tuning", "openai", "ok")
    assert (record.request_model, record.response_model) == (MODEL, shown["fine_tuned_model"])
    assert record.input_tokens == trained and record.output_tokens == 0
    assert record.cost_nanousd == trained * 3000  # $3.00 per 1M training tokens = 3,000 nano-USD a token
    assert record.price_known and not record.estimated
    assert record.price_version == "finetune-catalogue:openai/gpt-4o-mini-2024-07-18@2025-06-01"
    assert record.tags["finetune.job_id"] == shown["id"] and record.tags["feature"] == "triage"
    # recording the same job again (status --record) stores it once
    ok(
        "status",
        shown["id"],
        "--base-url",
        fake.openai_base_url,
        "--api-key",
        "k",
        "--record",
        "--store",
        _store(tmp_path),
        "--format",
        "json",
    )
    assert len(_records(_store(tmp_path))) == 1
    # reports see what tuning really cost
    report = runner.invoke(
        main_app, ["report", "--by", "operation", "--format", "json", "--store", _store(tmp_path)]
    )
    assert report.exit_code == 0, report.stderr
    (row,) = [r for r in json.loads(report.stdout) if r["operation"] == "fine_tuning"]
    assert Decimal(row["cost_usd"]) == Decimal(trained * 3000) / 1_000_000_000
    # and the tuned model answers a tracked call through the fake
    client = costlens.track(openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test"))
    reply = client.chat.completions.create(
        model=shown["fine_tuned_model"], messages=[{"role": "user", "content": "Refund missing"}]
    )
    assert reply.model == shown["fine_tuned_model"]
    assert recorded.one().request_model == shown["fine_tuned_model"]


def test_a_failed_job_is_recorded_as_an_error(fake: FakeProvider, tmp_path: Path) -> None:
    fake.fine_tuning.script("failed", retrieves=3, error_code="invalid_n_examples", error_message="too few")
    result = _submit(fake, tmp_path, "--format", "json")
    assert result.exit_code == 1
    assert "failed: invalid_n_examples: too few" in result.stderr
    assert json.loads(result.stdout)["status"] == "failed"
    (record,) = _records(_store(tmp_path))
    assert (record.operation, record.status, record.error_type) == (
        "fine_tuning",
        "error",
        "invalid_n_examples",
    )
    assert record.cost_nanousd == 0 and record.price_known and record.response_model is None
    assert "nothing billed" in record.tags["finetune.note"]
    # a failure after partial training costs the tokens the provider reports
    fake.fine_tuning.script("failed", trained_tokens=1_234)
    other = tmp_path / "partial"
    other.mkdir()
    again = _submit(fake, other)
    assert again.exit_code == 1
    (partial,) = _records(_store(other))
    assert partial.input_tokens == 1_234 and partial.cost_nanousd == 1_234 * 3000


def test_openai_stops_new_jobs_on_2027_01_06(fake: FakeProvider, tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    prepare_training_file(DATA / "chat.jsonl", "openai", MODEL, out=train)
    result = run(
        "submit",
        str(train),
        "--provider",
        "openai",
        "--model",
        MODEL,
        "--base-url",
        fake.openai_base_url,
        "--api-key",
        "k",
        "--today",
        "2027-01-06",
        "--store",
        _store(tmp_path),
    )
    assert result.exit_code == 1
    assert "stopped accepting new fine-tuning jobs on 2027-01-06" in result.stderr
    assert fake.requests == [] and not (tmp_path / "costlens.db").exists()  # nothing sent, nothing recorded
    check_new_jobs("openai", date(2027, 1, 5))  # the day before: still open
    for provider in ("together", "fireworks", "mistral"):
        check_new_jobs(provider, date(2030, 1, 1))
    with pytest.raises(FineTuneRefused):
        check_new_jobs("openai", date(2027, 6, 1))


# -- status ---------------------------------------------------------------------------------------------


def test_status_shows_the_job_and_its_events_in_every_format(fake: FakeProvider, tmp_path: Path) -> None:
    created = _submit(fake, tmp_path, "--no-follow", "--format", "json")
    assert created.exit_code == 0, created.stderr
    job_id = json.loads(created.stdout)["id"]
    assert json.loads(created.stdout)["status"] == "queued" and _records(_store(tmp_path)) == []
    args = ("status", job_id, "--base-url", fake.openai_base_url, "--api-key", "k")
    running = json.loads(ok(*args, "--format", "json").stdout)
    assert running["status"] == "running" and running["rows"][-1]["message"] == "Fine-tuning job started"
    assert "cost_usd" not in running  # no cost until the job ends
    table = ok(*args).stdout  # the 2nd retrieve: succeeded
    assert f"fine-tuning job {job_id}" in table and "succeeded" in table and "events" in table
    assert "successfully completed" in table
    rows = list(csv.DictReader(io.StringIO(ok(*args, "--format", "csv").stdout)))
    assert list(rows[0]) == ["job_id", "status", "id", "created_at", "level", "message"]
    assert {r["job_id"] for r in rows} == {job_id} and rows[-1][
        "message"
    ] == "The job has successfully completed"
    missing = run("status", "ftjob-nope", "--base-url", fake.openai_base_url, "--api-key", "k")
    assert missing.exit_code == 1 and "ftjob-nope" in missing.stderr
    bad = run("status", job_id, "--provider", "nope", "--api-key", "k")
    assert bad.exit_code == 2


# -- the fake's jobs API and the record, directly ---------------------------------------------------------


def test_fake_job_life_headers_and_cancel(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    content = b'{"messages":[{"role":"user","content":"abcdefgh"},{"role":"assistant","content":"ok"}]}\n' * 4
    upload = client.files.create(file=("t.jsonl", io.BytesIO(content)), purpose="fine-tune")
    assert upload.bytes == len(content) and upload.purpose == "fine-tune"
    job = client.fine_tuning.jobs.create(
        model=MODEL, training_file=upload.id, hyperparameters={"n_epochs": 2}
    )
    statuses = [job.status] + [client.fine_tuning.jobs.retrieve(job.id).status for _ in range(3)]
    assert statuses == ["queued", "running", "succeeded", "succeeded"]
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert (
        done.trained_tokens == 2 * 4 * (3 + 1) == trained_tokens_for(content, 2)
    )  # 10 chars: ceil(10/4) + 1
    # headers script a job for callers outside this process
    failing = client.fine_tuning.jobs.create(
        model=MODEL,
        training_file=upload.id,
        extra_headers={"x-fake-job-outcome": "failed", "x-fake-job-retrieves": "1"},
    )
    failed = client.fine_tuning.jobs.retrieve(failing.id)
    assert failed.status == "failed" and failed.error is not None and failed.trained_tokens is None
    pending = client.fine_tuning.jobs.create(model=MODEL, training_file=upload.id)
    assert client.fine_tuning.jobs.cancel(pending.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model=MODEL, training_file="file-missing")
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-missing")
    assert [j.id for j in client.fine_tuning.jobs.list().data] == [pending.id, failing.id, job.id]
    # a training file that is not JSONL fails its job, naming the line
    broken = client.files.create(
        file=("b.jsonl", io.BytesIO(b'{"messages":[]}\nnot json\n')), purpose="fine-tune"
    )
    bad = client.fine_tuning.jobs.create(
        model=MODEL, training_file=broken.id, extra_headers={"x-fake-job-retrieves": "1"}
    )
    bad_done = client.fine_tuning.jobs.retrieve(bad.id)
    assert bad_done.status == "failed" and bad_done.error is not None
    assert bad_done.error.code == "invalid_training_file" and "line 2" in bad_done.error.message
    fake.reset()
    assert fake.fine_tuning.jobs == []


def test_hourly_prices_are_estimated_and_missing_prices_unknown() -> None:
    from datetime import UTC, datetime

    from costlens.evals._finetune_jobs import FineTuneJob

    start = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    job = FineTuneJob(
        "ftjob-1",
        "openai",
        "succeeded",
        "o4-mini-2025-04-16",
        "ft:o4-mini:x",
        None,
        1,
        "file-1",
        start,
        datetime(2026, 12, 1, 11, 30, tzinfo=UTC),
    )
    rft = training_price("openai", "o4-mini-2025-04-16")
    assert rft is not None and rft.per_hour == Decimal("100.00")
    record = job_record(job, rft)
    assert record.cost_nanousd == 150 * 1_000_000_000 and record.estimated  # 1.5 h × $100
    unknown = job_record(job, None)
    assert unknown.cost_nanousd is None and not unknown.price_known  # never $0
