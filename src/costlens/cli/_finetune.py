"""`costlens finetune prepare|submit|status`: training files, jobs, and what tuning really cost.

The work is in `costlens.evals` (`prepare_training_file`, `submit_job`, `follow_job`, `job_record`);
this module parses flags, shows a progress display while a job runs, writes the record to the store
and prints. A dataset problem prints every bad line and field and exits 1; a provider that no longer
takes new jobs (OpenAI from 2027-01-06) exits 1 before anything is uploaded.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from costlens.cli._output import (
    FORMAT_HELP,
    STORE_HELP,
    cells,
    check_format,
    console,
    fail,
    friendly_errors,
    make_table,
    money,
    no_color,
    note,
    open_cli_store,
    plain,
    usage_error,
    write_csv,
    write_json,
)

if TYPE_CHECKING:
    from costlens.evals._finetune_jobs import FineTuneJob
    from costlens.evals._finetune_prepare import PreparedFile, TrainingPrice

__all__ = ["finetune_app", "prepare", "status", "submit"]

_PROVIDER_HELP = "openai, together, fireworks or mistral."

#: `costlens finetune ...`, registered by `costlens.cli`; each command is registered at the bottom.
finetune_app = typer.Typer(
    help="Fine-tuning: prepare a training file, submit and follow a job, record its real training cost."
)


def _number(text: str) -> Decimal:
    try:
        value = Decimal(text.replace("_", ""))
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a number: give one such as 3 or 0.48") from None
    if not value.is_finite() or value < 0:
        raise typer.BadParameter(f"{text!r}: give a finite, non-negative number")
    return value


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date: use YYYY-MM-DD") from None


Fmt = Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)]
Provider = Annotated[str, typer.Option("--provider", help=_PROVIDER_HELP)]
Model = Annotated[str, typer.Option("--model", help="The base model to tune (a dated snapshot for OpenAI).")]
InputField = Annotated[
    str | None,
    typer.Option("--input-field", help="Dataset column holding the input (default: input, question...)."),
]
OutputField = Annotated[
    str | None,
    typer.Option("--output-field", help="Dataset column holding the answer (default: expected, answer...)."),
]
System = Annotated[str | None, typer.Option("--system", help="A system prompt put before every example.")]
Split = Annotated[
    str | None,
    typer.Option("--split", help="Only this split of the dataset: train, dev or test (default: all)."),
]
Epochs = Annotated[
    int | None, typer.Option("--epochs", min=1, help="Epochs (default: the provider's default).")
]
PriceEntry = Annotated[
    str | None,
    typer.Option("--price-entry", help="Fine-tuning catalogue entry id (see `costlens roi catalogue`)."),
]
PerMtok = Annotated[
    Decimal | None,
    typer.Option(
        "--price-per-mtok",
        metavar="USD",
        parser=_number,
        help="Training price per 1M tokens (overrides the catalogue).",
    ),
]
PerHour = Annotated[
    Decimal | None,
    typer.Option(
        "--price-per-hour",
        metavar="USD",
        parser=_number,
        help="Training price per hour (overrides the catalogue).",
    ),
]
BaseUrl = Annotated[
    str | None,
    typer.Option("--base-url", help="The provider's OpenAI-compatible API root (default: its own)."),
]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", help="API key (default: the provider's usual variable).")
]
StoreOpt = Annotated[str | None, typer.Option("--store", help=STORE_HELP)]


def _price(provider: str, model: str, entry: str | None, per_mtok: Decimal | None,
           per_hour: Decimal | None) -> TrainingPrice | None:  # fmt: skip
    from costlens.evals._finetune_prepare import training_price

    return training_price(provider, model, price_entry=entry, per_mtok=per_mtok, per_hour=per_hour)


def _prepare(path: Path, provider: str, model: str, *, write: bool, **options: Any) -> PreparedFile:
    from costlens.evals._dataset import DatasetError
    from costlens.evals._finetune_prepare import PROVIDERS, prepare_training_file

    if provider.lower() not in PROVIDERS:
        usage_error(f"unknown --provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    try:
        return prepare_training_file(path, provider.lower(), model, write=write, **options)
    except DatasetError as exc:
        fail(str(exc))


def _summary_table(title: str, data: dict[str, Any], money_keys: tuple[str, ...] = ()) -> None:
    table = make_table(["field", "value"], title=title)
    for key, value in data.items():
        if key == "notes" or isinstance(value, list | dict):
            continue
        if key in money_keys and isinstance(value, Decimal):
            shown: object = money(value)
        elif key in money_keys and value is None:
            shown = "unknown"
        elif isinstance(value, int) and not isinstance(value, bool):
            shown = f"{value:,}"
        else:
            shown = value
        table.add_row(*cells([key, shown]))
    console().print(table)


_PREPARE_MONEY = ("training_per_mtok", "training_per_hour", "min_training_charge", "estimate_usd")


def prepare(
    dataset: Annotated[Path, typer.Argument(help="JSONL or CSV with inputs and answers, or chat JSONL.")],
    provider: Provider,
    model: Model,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write (default: DATASET.<provider>.jsonl).")
    ] = None,
    input_field: InputField = None,
    output_field: OutputField = None,
    system: System = None,
    split: Split = None,
    epochs: Epochs = None,
    price_entry: PriceEntry = None,
    price_per_mtok: PerMtok = None,
    price_per_hour: PerHour = None,
    hours: Annotated[
        Decimal | None,
        typer.Option("--hours", parser=_number, help="Expected training hours (hourly prices)."),
    ] = None,
    fmt: Fmt = "table",
) -> None:
    """Write the provider's training file, validate it, count its tokens and estimate the training cost."""
    fmt = check_format(fmt)
    price = _price(provider.lower(), model, price_entry, price_per_mtok, price_per_hour)
    prepared = _prepare(
        dataset, provider, model, write=True, out=out, input_field=input_field, output_field=output_field,
        system=system, split=split, epochs=epochs, price=price, price_entry=price_entry, hours=hours,
    )  # fmt: skip
    data = prepared.to_dict()
    for line in prepared.notes:
        note(f"note: {line}")
    if fmt == "json":
        write_json(data)
    elif fmt == "csv":
        write_csv([{**data, "notes": "; ".join(prepared.notes)}], list(data))
    else:
        _summary_table(f"training file for {prepared.provider} {prepared.model}", data, _PREPARE_MONEY)


def _progress_console() -> Console:
    return Console(stderr=True, highlight=False, no_color=no_color())


def submit(
    dataset: Annotated[
        Path, typer.Argument(help="A prepared training file (or a dataset, prepared in memory).")
    ],
    provider: Provider,
    model: Model,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    input_field: InputField = None,
    output_field: OutputField = None,
    system: System = None,
    split: Split = None,
    epochs: Epochs = None,
    suffix: Annotated[
        str | None, typer.Option("--suffix", help="Up to 64 characters added to the model id.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="The job's seed, for repeatable runs.")] = None,
    price_entry: PriceEntry = None,
    price_per_mtok: PerMtok = None,
    price_per_hour: PerHour = None,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", help="Wait for the job and record its cost.")
    ] = True,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0, help="Seconds between checks while following.")
    ] = 10.0,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Stop following after this many seconds.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="KEY=VALUE added to the record (repeatable).")
    ] = None,
    store: StoreOpt = None,
    today: Annotated[date | None, typer.Option("--today", parser=_day, hidden=True)] = None,
    fmt: Fmt = "table",
) -> None:
    """Upload the training file, create the job, follow it and record its real training cost."""
    from costlens.evals._finetune_jobs import FineTuneRefused, check_new_jobs, finetune_client, submit_job

    fmt = check_format(fmt)
    tags = _tags(tag)
    provider = provider.lower()
    price = _price(provider, model, price_entry, price_per_mtok, price_per_hour)
    prepared = _prepare(
        dataset, provider, model, write=False, input_field=input_field, output_field=output_field,
        system=system, split=split, epochs=epochs, price=price, price_entry=price_entry,
    )  # fmt: skip
    day = today or date.today()
    try:
        check_new_jobs(provider, day)  # before any key is needed or any byte is sent
    except FineTuneRefused as exc:
        fail(str(exc))
    estimate = prepared.estimate
    note(
        f"{prepared.examples} examples, {prepared.trained_tokens:,} training tokens "
        f"({prepared.tokens:,} × {prepared.epochs} epochs{'' if prepared.exact else ', estimated'}); "
        f"estimated cost {'unknown' if estimate is None else money(estimate)}"
    )
    client = finetune_client(provider, base_url=base_url, api_key=api_key)
    job = submit_job(client, prepared, today=day, suffix=suffix, seed=seed, epochs=epochs,
                     filename=dataset.name)  # fmt: skip
    note(f"created fine-tuning job {job.id} ({job.status})")
    if not follow:
        note(f"follow it with: costlens finetune status {job.id} --provider {provider} --record")
        _show_job(job, None, fmt, recorded=False)
        return
    job = _follow(client, job.id, provider, poll_interval, timeout, fmt)
    recorded = False
    if job.done:
        _record(job, price, store, tags)
        recorded = True
    else:
        note(
            f"job {job.id} is still {job.status}: record it later with "
            f"`costlens finetune status {job.id} --record`"
        )
    _show_job(job, price, fmt, recorded=recorded)
    if job.done and job.status != "succeeded":
        why = f": {job.error_code}: {job.error_message}" if job.error_code else ""
        fail(f"fine-tuning job {job.id} {job.status}{why}")


def _tags(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            usage_error(f"--tag {value!r}: use KEY=VALUE")
        out[key.strip()] = rest.strip()
    return out


def _follow(client: Any, job_id: str, provider: str, poll_interval: float, timeout: float | None,
            fmt: str) -> FineTuneJob:  # fmt: skip
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from costlens.evals._finetune_jobs import follow_job

    seen: set[str] = set()
    out = _progress_console()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out, transient=True,
        disable=fmt != "table",
    ) as progress:  # fmt: skip
        task = progress.add_task(f"job {job_id}: starting", total=None)

        def update(job: FineTuneJob) -> None:
            for event in job.events:
                if event.id not in seen:
                    seen.add(event.id)
                    progress.console.print(f"  {event.created_at:%H:%M:%S} {event.level}: {event.message}",
                                           markup=False, highlight=False)  # fmt: skip
            trained = "" if job.trained_tokens is None else f", {job.trained_tokens:,} trained tokens"
            progress.update(task, description=f"job {job.id}: {job.status}{trained}")

        return follow_job(
            client, job_id, provider, poll_interval=poll_interval, timeout=timeout, on_update=update
        )


def _record(job: FineTuneJob, price: TrainingPrice | None, store: str | None, tags: dict[str, str]) -> None:
    from costlens.evals._finetune_jobs import job_record

    record = job_record(job, price, tags=tags)
    target = open_cli_store(store, create=True)  # recording creates the store
    try:
        target.append([record])
    finally:
        target.close()
    cost = "unknown (no training price)" if record.cost_usd is None else money(record.cost_usd)
    note(f"recorded {job.id} as operation fine_tuning: {record.input_tokens:,} trained tokens, {cost}")


_JOB_MONEY = ("cost_usd",)


def _show_job(job: FineTuneJob, price: TrainingPrice | None, fmt: str, *, recorded: bool) -> None:
    from costlens.evals._finetune_jobs import job_cost

    data: dict[str, Any] = job.to_dict()
    if job.done:
        cost, estimated, why = job_cost(job, price)
        data.update(cost_usd=cost, cost_estimated=estimated, cost_note=why or None)
    data["recorded"] = recorded
    events = [e.to_dict() for e in job.events]
    if fmt == "json":
        write_json({**data, "rows": events})
        return
    if fmt == "csv":
        rows = [{"job_id": job.id, "status": job.status, **e} for e in events]
        write_csv(rows, ["job_id", "status", "id", "created_at", "level", "message"])
        return
    _summary_table(f"fine-tuning job {job.id}", data, _JOB_MONEY)
    if events:
        table = make_table(["time", "level", "message"], title="events")
        for event in events:
            table.add_row(*cells([plain(event["created_at"]), event["level"], event["message"]]))
        console().print(table)


def status(
    job_id: Annotated[str, typer.Argument(help="The fine-tuning job id (ftjob-...).")],
    provider: Provider = "openai",
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    record: Annotated[
        bool, typer.Option("--record", help="Record a finished job's cost in the store (once per job).")
    ] = False,
    price_entry: PriceEntry = None,
    price_per_mtok: PerMtok = None,
    price_per_hour: PerHour = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="KEY=VALUE added to the record (repeatable).")
    ] = None,
    store: StoreOpt = None,
    fmt: Fmt = "table",
) -> None:
    """Show a fine-tuning job and its events; `--record` stores a finished job's training cost."""
    from costlens.evals._finetune_jobs import fetch_job, finetune_client
    from costlens.evals._finetune_prepare import PROVIDERS

    fmt = check_format(fmt)
    provider = provider.lower()
    if provider not in PROVIDERS:
        usage_error(f"unknown --provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    tags = _tags(tag)
    client = finetune_client(provider, base_url=base_url, api_key=api_key)
    job = fetch_job(client, job_id, provider)
    price = _price(provider, job.model, price_entry, price_per_mtok, price_per_hour)
    recorded = False
    if record:
        if job.done:
            _record(job, price, store, tags)
            recorded = True
        else:
            note(f"job {job.id} is {job.status}: nothing recorded until it finishes")
    _show_job(job, price, fmt, recorded=recorded)


finetune_app.command("prepare")(friendly_errors(prepare))
finetune_app.command("submit")(friendly_errors(submit))
finetune_app.command("status")(friendly_errors(status))
