"""Fine-tuning, step 2: submit the prepared file, follow the job, record what the training really cost.

    client = finetune_client("openai")                        # or base_url= for a compatible endpoint
    job = submit_job(client, prepared, today=date.today())    # uploads the file, creates the job
    job = follow_job(client, job.id, "openai", poll_interval=10, on_update=print)
    store.append([job_record(job, prepared.price)])           # one call of operation "fine_tuning"

Jobs go through the `openai` SDK (`client.files.create`, `client.fine_tuning.jobs.create / retrieve /
list_events`), so any endpoint that speaks OpenAI's fine-tuning API works: OpenAI itself, the costlens
fake, a gateway. The other providers' defaults are their OpenAI-compatible base URLs; their job
APIs differ in places (Together uses `/fine-tunes`, Fireworks its own job resources, Mistral
`training_files`), so point `base_url` at an endpoint that speaks OpenAI's shape for them.

Who still accepts new jobs (late 2026): OpenAI stops self-serve fine-tuning for new jobs on
2027-01-06 (`NEW_JOBS_END`); tuned models stay callable until their base model retires. Together,
Fireworks and Mistral run fine-tuning job APIs. `check_new_jobs(provider, today)` refuses after the
date; pass `today` to test it.

The record. provider, operation `fine_tuning`, request_model = the base model, response_model = the
tuned model id, input_tokens = the job's `trained_tokens` (tokens × epochs as the provider billed
them; output_tokens 0), started/ended = the job's created/finished times, cost = trained_tokens ×
training price per 1M tokens (at least the minimum charge), or hours × hourly price where the price
is hourly (hours = finished − created, which includes queueing, so the cost is flagged `estimated`).
No price: cost unknown (NULL), never $0. A failed or cancelled job is recorded with status `error`
and the cost of the trained tokens the provider reports, or $0 with a `finetune.note` tag when it
reports none (providers do not bill failed jobs that trained nothing). The record's id is derived
from the job id, so recording the same job twice stores it once.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from costlens._errors import ConfigError, CostlensError
from costlens.evals._finetune_prepare import PreparedFile, TrainingPrice, provider_rules
from costlens.usage import CallRecord, to_nanousd

if TYPE_CHECKING:
    import openai

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_BASE_URLS",
    "NEW_JOBS_END",
    "FineTuneJob",
    "FineTuneRefused",
    "JobEvent",
    "check_new_jobs",
    "fetch_job",
    "finetune_client",
    "follow_job",
    "job_cost",
    "job_record",
    "submit_job",
]

#: The last day before which a provider accepts new fine-tuning jobs (none listed: still open).
NEW_JOBS_END: dict[str, date] = {"openai": date(2027, 1, 6)}
DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "together": "https://api.together.xyz/v1",
    "fireworks": "https://api.fireworks.ai/inference/v1",
    "mistral": "https://api.mistral.ai/v1",
}
API_KEY_ENV: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "together": "TOGETHER_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "mistral": "MISTRAL_API_KEY",
}
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_HOUR = Decimal(3600)


class FineTuneRefused(CostlensError):
    """The provider no longer accepts new fine-tuning jobs."""


class FineTuneError(CostlensError):
    """A fine-tuning request failed (the provider's message, one line)."""


def check_new_jobs(provider: str, today: date) -> None:
    """Raise `FineTuneRefused` when `provider` stopped taking new jobs on or before `today`."""
    end = NEW_JOBS_END.get(provider)
    if end is not None and today >= end:
        raise FineTuneRefused(
            f"{provider} stopped accepting new fine-tuning jobs on {end.isoformat()} (today is "
            f"{today.isoformat()}); models tuned before then stay callable until their base model retires. "
            "Tune with together, fireworks or mistral instead"
        )


@dataclass(frozen=True, slots=True)
class JobEvent:
    id: str
    created_at: datetime
    level: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "created_at": self.created_at, "level": self.level, "message": self.message}


@dataclass(frozen=True, slots=True)
class FineTuneJob:
    """A fine-tuning job as the provider reported it (events oldest first)."""

    id: str
    provider: str
    status: str
    model: str
    fine_tuned_model: str | None
    trained_tokens: int | None
    n_epochs: int | None
    training_file: str
    created_at: datetime
    finished_at: datetime | None
    error_code: str | None = None
    error_message: str | None = None
    events: tuple[JobEvent, ...] = field(default=())

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_sdk(cls, job: Any, provider: str, events: tuple[JobEvent, ...] = ()) -> FineTuneJob:
        epochs = getattr(getattr(job, "hyperparameters", None), "n_epochs", None)
        error = getattr(job, "error", None)
        return cls(
            id=job.id,
            provider=provider,
            status=job.status,
            model=job.model,
            fine_tuned_model=job.fine_tuned_model,
            trained_tokens=job.trained_tokens,
            n_epochs=epochs if isinstance(epochs, int) else None,
            training_file=job.training_file,
            created_at=_at(job.created_at),
            finished_at=None if job.finished_at is None else _at(job.finished_at),
            error_code=None if error is None else getattr(error, "code", None),
            error_message=None if error is None else getattr(error, "message", None),
            events=events,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "status": self.status,
            "model": self.model,
            "fine_tuned_model": self.fine_tuned_model,
            "trained_tokens": self.trained_tokens,
            "n_epochs": self.n_epochs,
            "training_file": self.training_file,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "error_code": self.error_code,
            "error_message": self.error_message,
        }


def _at(seconds: int | float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def finetune_client(
    provider: str, *, base_url: str | None = None, api_key: str | None = None, max_retries: int = 2
) -> openai.OpenAI:
    """An `openai.OpenAI` client for `provider`'s fine-tuning API (key from its usual variable)."""
    import openai

    rules = provider_rules(provider)
    key = api_key or os.environ.get(API_KEY_ENV[rules.provider])
    if not key:
        raise ConfigError(
            f"no API key for {rules.provider}: set {API_KEY_ENV[rules.provider]} or pass --api-key"
        )
    return openai.OpenAI(
        base_url=base_url or DEFAULT_BASE_URLS[rules.provider], api_key=key, max_retries=max_retries
    )


def _sdk_errors() -> tuple[type[BaseException], ...]:
    import openai

    return (openai.APIError,)


def submit_job(
    client: openai.OpenAI,
    prepared: PreparedFile,
    *,
    today: date,
    suffix: str | None = None,
    seed: int | None = None,
    epochs: int | None = None,
    filename: str | None = None,
) -> FineTuneJob:
    """Upload `prepared` (purpose `fine-tune`) and create the job; refuses when the provider no longer
    takes new jobs. `epochs` defaults to the prepared file's (sent as `hyperparameters.n_epochs`)."""
    check_new_jobs(prepared.provider, today)
    name = filename or (prepared.path.name if prepared.path is not None else "training.jsonl")
    try:
        upload = client.files.create(file=(name, io.BytesIO(prepared.content)), purpose="fine-tune")
        options: dict[str, Any] = {"hyperparameters": {"n_epochs": epochs or prepared.epochs}}
        if suffix:
            options["suffix"] = suffix
        if seed is not None:
            options["seed"] = seed
        job = client.fine_tuning.jobs.create(model=prepared.model, training_file=upload.id, **options)
    except _sdk_errors() as exc:
        raise FineTuneError(f"{prepared.provider} refused the fine-tuning job: {exc}") from exc
    return FineTuneJob.from_sdk(job, prepared.provider)


def fetch_job(client: openai.OpenAI, job_id: str, provider: str, *, events: bool = True) -> FineTuneJob:
    """The job now (one retrieve) and, with `events`, its events (oldest first)."""
    try:
        job = client.fine_tuning.jobs.retrieve(job_id)
        found: tuple[JobEvent, ...] = ()
        if events:
            page = client.fine_tuning.jobs.list_events(job_id, limit=100)
            found = tuple(
                JobEvent(e.id, _at(e.created_at), e.level, e.message) for e in reversed(list(page.data))
            )
    except _sdk_errors() as exc:
        raise FineTuneError(f"could not read fine-tuning job {job_id}: {exc}") from exc
    return FineTuneJob.from_sdk(job, provider, found)


def follow_job(
    client: openai.OpenAI,
    job_id: str,
    provider: str,
    *,
    poll_interval: float = 10.0,
    timeout: float | None = None,
    on_update: Callable[[FineTuneJob], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> FineTuneJob:
    """Poll until the job succeeds, fails or is cancelled (or `timeout` seconds pass: the last state)."""
    start = monotonic()
    while True:
        job = fetch_job(client, job_id, provider)
        if on_update is not None:
            on_update(job)
        if job.done or (timeout is not None and monotonic() - start >= timeout):
            return job
        if poll_interval > 0:
            sleep(poll_interval)


def job_cost(job: FineTuneJob, price: TrainingPrice | None) -> tuple[Decimal | None, bool, str]:
    """(cost in USD or None when unknown, estimated, note) of a finished job."""
    failed = job.status != "succeeded"
    if failed and not job.trained_tokens:
        return Decimal(0), False, f"job {job.status} with no trained tokens reported: nothing billed"
    if price is None:
        return None, False, "no training price known: cost unknown"
    if job.trained_tokens is not None and price.per_mtok is not None:
        if failed:  # partial training: the tokens the provider reports, no minimum charge
            return Decimal(job.trained_tokens) * price.per_mtok / Decimal(1_000_000), False, ""
        cost = price.for_tokens(job.trained_tokens)
        return cost, False, "minimum charge applied" if cost == price.min_charge else ""
    if price.per_hour is not None and job.finished_at is not None:
        hours = Decimal((job.finished_at - job.created_at).total_seconds()) / _HOUR
        return price.for_hours(hours), True, "hours = finished - created (includes queueing): an upper bound"
    return None, False, "no trained tokens reported and no hourly price: cost unknown"


def job_record(
    job: FineTuneJob, price: TrainingPrice | None, *, tags: Mapping[str, str] | None = None
) -> CallRecord:
    """The job as one `CallRecord` of operation `fine_tuning` (see the module docstring)."""
    cost, estimated, note = job_cost(job, price)
    ended = job.finished_at
    record_tags = {
        "finetune.job_id": job.id,
        "finetune.status": job.status,
        "finetune.training_file": job.training_file,
        **({"finetune.epochs": str(job.n_epochs)} if job.n_epochs is not None else {}),
        **({"finetune.price_source": price.source} if price is not None else {}),
        **({"finetune.note": note} if note else {}),
        **dict(tags or {}),
    }
    return CallRecord(
        id=f"ft-{job.provider}-{job.id}",
        provider=job.provider,
        operation="fine_tuning",
        request_model=job.model,
        response_model=job.fine_tuned_model,
        started_at=job.created_at,
        ended_at=ended,
        latency_ms=None if ended is None else (ended - job.created_at).total_seconds() * 1000,
        input_tokens=job.trained_tokens or 0,
        cost_nanousd=None if cost is None else to_nanousd(cost),
        price_known=cost is not None,
        price_version="" if price is None else price.version,
        estimated=estimated,
        status="ok" if job.status == "succeeded" else "error",
        error_type=None if job.status == "succeeded" else (job.error_code or f"fine_tuning_{job.status}"),
        tags=record_tags,
    )
