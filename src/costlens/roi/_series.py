"""Month-by-month costs of one path: the exact arithmetic every result is built from.

Month 0 holds the up-front costs (the first training job, labelling, engineering); months 1..N
hold inference (requests × exact cost per request), hosting, storage and any retraining. A tuned
path past its end of life either reverts (its months then cost what the baseline's do) or pays a
migration retraining and keeps serving. Nothing here rounds: every amount is an exact Decimal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from costlens.roi._money import ZERO, add, mul, per_mtok, total
from costlens.roi._paths import OneOff, PromptPath, Training, TunedPath
from costlens.roi._scenario import Conventions

__all__ = [
    "Month",
    "TrainingCost",
    "fixed_fees",
    "one_off_parts",
    "request_cost",
    "simulate",
    "training_cost",
]

Serving = Literal["prompt", "tuned", "reverted", "start"]


@dataclass(frozen=True, slots=True)
class Month:
    """One month of one path. `serving`: what answered, the path itself or (past end of life) the baseline."""

    month: int
    requests: int
    inference: Decimal
    hosting: Decimal
    storage: Decimal
    training: Decimal
    one_off: Decimal
    serving: Serving

    @property
    def total(self) -> Decimal:
        return total([self.inference, self.hosting, self.storage, self.training, self.one_off])


@dataclass(frozen=True, slots=True)
class TrainingCost:
    """One training job: billed tokens, their cost, hours, fixed price, the minimum and what is charged."""

    tokens: Decimal
    token_cost: Decimal
    hour_cost: Decimal
    fixed: Decimal
    minimum: Decimal
    charged: Decimal

    @property
    def minimum_applied(self) -> bool:
        return self.charged > add(add(self.token_cost, self.hour_cost), self.fixed)


def request_cost(path: PromptPath | TunedPath) -> Decimal:
    """Inference cost of one request: uncached input, cached prefix, output, plus any per-request fee.

    The cached share applies to the prefix (system + few-shot) only; RAG and user input are never cached.
    """
    t, p = path.tokens, path.prices
    if p.input is None or p.output is None or p.cached_input is None:
        raise ValueError(f"path {path.name!r} has unresolved prices: call resolve_prices() first")
    cached = mul(t.prefix, t.cached_share)
    uncached = t.input - cached
    parts = [per_mtok(uncached, p.input), per_mtok(cached, p.cached_input), per_mtok(t.output, p.output)]
    return add(total(parts), p.per_request)


def training_cost(training: Training, conventions: Conventions) -> TrainingCost:
    """(dataset × epochs + validation [× epochs]) × price/1M + hours × price/hour + fixed, >= the minimum."""
    validation = training.validation_tokens
    if conventions.validation_per_epoch:
        validation = mul(validation, training.epochs)
    tokens = add(mul(training.dataset_tokens, training.epochs), validation)
    token_cost = per_mtok(tokens, training.per_mtok) if tokens and training.per_mtok is not None else ZERO
    hour_cost = (
        mul(training.hours, training.per_hour) if training.hours and training.per_hour is not None else ZERO
    )
    computed = total([token_cost, hour_cost, training.fixed])
    minimum = training.min_charge or ZERO
    return TrainingCost(tokens, token_cost, hour_cost, training.fixed, minimum, max(computed, minimum))


def one_off_parts(one_off: OneOff) -> dict[str, Decimal]:
    """Labelling (examples × cost each), engineering (hours × rate) and other one-off costs."""
    return {
        "labelling": mul(one_off.examples_to_label, one_off.cost_per_example),
        "engineering": mul(one_off.engineering_hours, one_off.hourly_rate),
        "other": one_off.other,
    }


def fixed_fees(path: TunedPath, conventions: Conventions) -> tuple[Decimal, Decimal]:
    """(hosting, storage) per month of service: hosting is billed every hour of the month unless limited."""
    hours = path.hosting_hours_per_month if path.hosting_hours_per_month is not None else conventions.hours
    hosting = mul(path.hosting_per_hour or ZERO, hours)
    return hosting, path.storage_per_month or ZERO


def simulate(
    path: PromptPath | TunedPath,
    volumes: Sequence[int],
    conventions: Conventions,
    baseline: Sequence[Month] | None = None,
) -> tuple[list[Month], list[tuple[int, str]]]:
    """Months 0..len(volumes) of `path`, and the lifecycle events worth telling a reader.

    `baseline` (the baseline path's months) is required for a tuned path with an end of life,
    because its reverted months cost what the baseline's do.
    """
    per_request = request_cost(path)
    upfront = total(list(one_off_parts(path.one_off).values()))
    if isinstance(path, PromptPath):
        months = [Month(0, 0, ZERO, ZERO, ZERO, ZERO, upfront, "start")]
        months += [
            Month(m, v, mul(v, per_request), ZERO, ZERO, ZERO, ZERO, "prompt")
            for m, v in enumerate(volumes, 1)
        ]
        return months, []
    return _simulate_tuned(path, volumes, conventions, baseline, per_request, upfront)


def _simulate_tuned(
    path: TunedPath,
    volumes: Sequence[int],
    conventions: Conventions,
    baseline: Sequence[Month] | None,
    per_request: Decimal,
    upfront: Decimal,
) -> tuple[list[Month], list[tuple[int, str]]]:
    lc = path.lifecycle
    job = training_cost(path.training, conventions).charged
    hosting, storage = fixed_fees(path, conventions)

    def can_train(month: int) -> bool:
        return lc.new_training_until_month is None or month <= lc.new_training_until_month

    eol = lc.end_of_life_month
    reverts_at = None
    if eol is not None and (lc.on_end_of_life == "revert" or not can_train(eol + 1)):
        reverts_at = eol + 1
    events: list[tuple[int, str]] = []
    months = [Month(0, 0, ZERO, ZERO, ZERO, job, upfront, "start")]
    for m, v in enumerate(volumes, 1):
        if reverts_at is not None and m >= reverts_at:
            if baseline is None:
                raise ValueError("a tuned path with an end of life needs the baseline's months")
            b = baseline[m]
            if m == reverts_at:
                why = (
                    ""
                    if lc.on_end_of_life == "revert"
                    else " (no new training jobs allowed, so no migration)"
                )
                events.append(
                    (m, f"the tuned model has reached its end of life; traffic reverts to the baseline{why}")
                )
            months.append(Month(m, v, b.inference, b.hosting, b.storage, ZERO, ZERO, "reverted"))
            continue
        retrain = _retrain_due(path, m)
        if retrain and not can_train(m):
            events.append(
                (m, f"{retrain} skipped: no new training jobs after month {lc.new_training_until_month}")
            )
            retrain = ""
        if retrain:
            events.append((m, retrain))
        charge = add(job, lc.retrain_extra) if retrain else ZERO
        months.append(Month(m, v, mul(v, per_request), hosting, storage, charge, ZERO, "tuned"))
    return months, events


def _retrain_due(path: TunedPath, month: int) -> str:
    """What training starts this month ('' for none): a scheduled retraining or an end-of-life migration."""
    lc = path.lifecycle
    if (
        lc.end_of_life_month is not None
        and lc.on_end_of_life == "retrain"
        and month == lc.end_of_life_month + 1
    ):
        return "end-of-life migration: the model is retrained on a successor base"
    every = lc.retrain_every_months
    if every is not None and month > 1 and (month - 1) % every == 0:
        return f"scheduled retraining (every {every} months)"
    return ""
