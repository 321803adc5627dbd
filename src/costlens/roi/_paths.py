"""The paths a scenario compares: prompt engineering, a switched model, a fine-tune, a hybrid.

All four share the per-request shape (prompt parts, output, caching, prices, one-off costs,
accuracy). The tuned kinds add training, hosting, storage and a lifecycle. Token counts are
Decimals because measured means are fractional; prices are USD per 1M tokens, `None` meaning
"take it from a price catalogue" (the resolved source is listed in the plan).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Accuracy",
    "AnyPath",
    "Grader",
    "Lifecycle",
    "OneOff",
    "PromptPath",
    "PromptTokens",
    "TokenPrices",
    "Training",
    "TunedPath",
]

NonNeg = Annotated[Decimal, Field(ge=0)]
Share = Annotated[Decimal, Field(ge=0, le=1)]


class _Model(BaseModel):
    """Strict, immutable models: a misspelt key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PromptTokens(_Model):
    """Tokens of one request. The prefix (system + few-shot) is what prompt caching can serve."""

    system: NonNeg = Decimal(0)
    few_shot: NonNeg = Decimal(0)
    rag: NonNeg = Decimal(0)
    user_input: NonNeg = Decimal(0)
    output: NonNeg = Decimal(0)
    cached_share: Share = Decimal(0)

    @property
    def prefix(self) -> Decimal:
        return self.system + self.few_shot

    @property
    def input(self) -> Decimal:
        return self.system + self.few_shot + self.rag + self.user_input


class TokenPrices(_Model):
    """USD per 1M tokens; `None` = from the catalogue. `cached_input` defaults to the input price."""

    input: NonNeg | None = None
    cached_input: NonNeg | None = None
    output: NonNeg | None = None
    per_request: NonNeg = Decimal(0)


class OneOff(_Model):
    """Up-front costs of taking a path, paid in month 0.

    `setup` is the cost of setting the path up (prompt work, building a RAG index, integration), a
    named part next to labelling (examples × cost each), engineering (hours × rate) and `other`.
    """

    examples_to_label: int = Field(default=0, ge=0)
    cost_per_example: NonNeg = Decimal(0)
    engineering_hours: NonNeg = Decimal(0)
    hourly_rate: NonNeg = Decimal(0)
    setup: NonNeg = Decimal(0)
    other: NonNeg = Decimal(0)


class Accuracy(_Model):
    """Share of correct answers, from the user or (later) the evals harness, with an interval if known.

    A bare number is accepted: `accuracy = 0.92`.
    """

    value: Share
    low: Share | None = None
    high: Share | None = None
    samples: int | None = Field(default=None, ge=1)
    source: str = "user"

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, data: Any) -> Any:
        return {"value": data} if isinstance(data, int | float | Decimal | str) else data

    @model_validator(mode="after")
    def _interval(self) -> Accuracy:
        if (self.low is not None and self.low > self.value) or (
            self.high is not None and self.high < self.value
        ):
            raise ValueError("accuracy interval must contain the value: low <= value <= high")
        return self


class _PathBase(_Model):
    """`recurring`: monthly costs by name (USD per month: upkeep, a vector database, monitoring),
    paid in every month the path serves, from month 1 (month 0 holds only the up-front costs).
    """

    name: str = Field(min_length=1)
    provider: str | None = None
    model: str = Field(min_length=1)
    tokens: PromptTokens
    prices: TokenPrices = TokenPrices()
    one_off: OneOff = OneOff()
    recurring: dict[str, NonNeg] = Field(default_factory=dict)
    accuracy: Accuracy | None = None
    note: str = ""


class PromptPath(_PathBase):
    """Prompt engineering on `model` (kind `prompt`), or a cheaper model with a better prompt (`switch`)."""

    kind: Literal["prompt", "switch"]


class Grader(_Model):
    """The grader model of a reinforcement fine-tuning job: its tokens per job, billed at its own prices.

    `input_tokens` / `output_tokens` are the grader's tokens over the whole job (all epochs).
    `prices` (USD per 1M; `input`, `output`) left out come from the inference price catalogue.
    """

    provider: str | None = None
    model: str = Field(min_length=1)
    input_tokens: NonNeg = Decimal(0)
    output_tokens: NonNeg = Decimal(0)
    prices: TokenPrices = TokenPrices()


class Training(_Model):
    """One training job: tokens × epochs (+ validation tokens) at a per-1M price, hours at a per-hour price.

    `fixed` is a quoted job price added on top, `grader` (reinforcement fine-tuning) the grader
    model's tokens at the grader's prices; the job costs at least `min_charge`. Whether validation
    tokens are billed once or every epoch is `conventions.validation_per_epoch`.

    `amortise_months` = N spreads every training charge over N equal monthly instalments instead of
    paying it at once: the first job over months 1..N, a retraining started in month m over months
    m..m+N-1 (see `costlens.roi._series.instalments` for the rounding).
    """

    dataset_tokens: NonNeg = Decimal(0)
    epochs: int = Field(default=1, ge=1)
    validation_tokens: NonNeg = Decimal(0)
    per_mtok: NonNeg | None = None
    hours: NonNeg = Decimal(0)
    per_hour: NonNeg | None = None
    min_charge: NonNeg | None = None
    fixed: NonNeg = Decimal(0)
    grader: Grader | None = None
    amortise_months: int | None = Field(default=None, ge=1)


class Lifecycle(_Model):
    """How long a tuned model lives and what it costs to keep it.

    `retrain_every_months`: a retraining starts every N months of service (months N+1, 2N+1, ...); it
    costs `retrain_share` × the first job's charge (1 = a full job, 0.25 = a quarter), plus
    `retrain_extra`. `end_of_life_month`: the last month the tuned model serves (providers retire
    tuned models with their base). Then `on_end_of_life` = `revert` sends traffic back to the baseline
    path, `retrain` pays one migration to a successor (a full job plus `retrain_extra`: a new base is
    trained from scratch) and keeps serving. No training job can start
    after `new_training_until_month` (a provider stopping new tuning jobs on a date).
    """

    retrain_every_months: int | None = Field(default=None, ge=1)
    retrain_share: NonNeg = Decimal(1)
    retrain_extra: NonNeg = Decimal(0)
    end_of_life_month: int | None = Field(default=None, ge=0)
    on_end_of_life: Literal["revert", "retrain"] = "revert"
    new_training_until_month: int | None = Field(default=None, ge=0)


class TunedPath(_PathBase):
    """A fine-tuned model (kind `fine_tuned`), or a tuned model plus a prompt layer (`hybrid`).

    `base_model` is the model tuned; `model` is the tuned model's id (defaults to `ft:<base_model>`).
    `price_entry` names a fine-tuning catalogue entry (`provider/id`) when the base model alone does
    not pick one. Hosting runs `hosting_hours_per_month` (default: every hour of the month, 24/7).
    """

    kind: Literal["fine_tuned", "hybrid"]
    base_model: str = Field(min_length=1)
    model: str = ""
    price_entry: str | None = None
    training: Training = Training()
    hosting_per_hour: NonNeg | None = None
    hosting_hours_per_month: NonNeg | None = None
    storage_per_month: NonNeg | None = None
    lifecycle: Lifecycle = Lifecycle()

    @model_validator(mode="before")
    @classmethod
    def _default_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("model") and data.get("base_model"):
            return {**data, "model": f"ft:{data['base_model']}"}
        return data


AnyPath = Annotated[PromptPath | TunedPath, Field(discriminator="kind")]
