"""Month-by-month costs of one path: the exact arithmetic every result is built from.

Month 0 holds the up-front costs (the first training job, setup, labelling, engineering); months
1..N hold inference (requests × exact cost per request), hosting, storage, the path's recurring
monthly costs and any retraining. A scheduled retraining starts in months k+1, 2k+1, ... (every k
months of service) and costs `retrain_share` × the first job + `retrain_extra`. A tuned path past
its end of life either reverts (its months then cost what the baseline's do, recurring costs
included) or pays a migration (a full job + `retrain_extra`) and keeps serving. With
`training.amortise_months` = N every training charge is paid in N instalments (`instalments`):
the first job in months 1..N, a job charged in month m in months m..m+N-1, still due after a
revert. Nothing here rounds except those instalments, which sum exactly to the charge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal, Inexact
from typing import Literal

from costlens.roi._money import MONEY, MONEY_DISPLAY, ZERO, add, mul, per_mtok, total
from costlens.roi._paths import Grader, OneOff, PromptPath, Training, TunedPath
from costlens.roi._scenario import Conventions

__all__ = [
    "Month",
    "TrainingCost",
    "fixed_fees",
    "grader_cost",
    "instalments",
    "one_off_parts",
    "request_cost",
    "retrain_cost",
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
    recurring: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        parts = [self.inference, self.hosting, self.storage, self.recurring, self.training, self.one_off]
        return total(parts)


@dataclass(frozen=True, slots=True)
class TrainingCost:
    """One training job: billed tokens, their cost, hours, fixed price, grader, the minimum and the charge."""

    tokens: Decimal
    token_cost: Decimal
    hour_cost: Decimal
    fixed: Decimal
    minimum: Decimal
    charged: Decimal
    grader_cost: Decimal = ZERO

    @property
    def minimum_applied(self) -> bool:
        return self.charged > total([self.token_cost, self.hour_cost, self.fixed, self.grader_cost])


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


def grader_cost(grader: Grader | None) -> Decimal:
    """A reinforcement fine-tuning grader's tokens per job at the grader's prices (per 1M tokens)."""
    if grader is None:
        return ZERO
    p = grader.prices
    if p.input is None or p.output is None:
        raise ValueError(f"grader {grader.model!r} has unresolved prices: call resolve_prices() first")
    return add(per_mtok(grader.input_tokens, p.input), per_mtok(grader.output_tokens, p.output))


def training_cost(training: Training, conventions: Conventions) -> TrainingCost:
    """(dataset × epochs + validation [× epochs]) × price/1M + hours × price/hour + fixed + grader.

    The charge is at least the minimum.
    """
    validation = training.validation_tokens
    if conventions.validation_per_epoch:
        validation = mul(validation, training.epochs)
    tokens = add(mul(training.dataset_tokens, training.epochs), validation)
    token_cost = per_mtok(tokens, training.per_mtok) if tokens and training.per_mtok is not None else ZERO
    hour_cost = (
        mul(training.hours, training.per_hour) if training.hours and training.per_hour is not None else ZERO
    )
    grading = grader_cost(training.grader)
    computed = total([token_cost, hour_cost, training.fixed, grading])
    minimum = training.min_charge or ZERO
    charged = max(computed, minimum)
    return TrainingCost(tokens, token_cost, hour_cost, training.fixed, minimum, charged, grading)


def retrain_cost(path: TunedPath, conventions: Conventions) -> Decimal:
    """A scheduled retraining: `retrain_share` × the first job's charge + `retrain_extra`."""
    job = training_cost(path.training, conventions).charged
    return add(mul(path.lifecycle.retrain_share, job), path.lifecycle.retrain_extra)


def instalments(charge: Decimal, months: int) -> list[Decimal]:
    """`charge` in `months` equal instalments that sum exactly to it.

    Each is charge ÷ months exactly when that is a finite decimal ($1,200 / 12 = $100;
    $1 / 8 = $0.125); otherwise charge ÷ months rounded down to the cent, the last instalment
    taking the remainder ($1,000 / 3 = $333.33, $333.33, $333.34).
    """
    try:
        share = MONEY.divide(charge, Decimal(months))
        return [share] * months
    except Inexact:
        exact = MONEY_DISPLAY.divide(charge, Decimal(months))
        share = exact.quantize(Decimal("0.01"), rounding=ROUND_DOWN, context=MONEY_DISPLAY)
    return [share] * (months - 1) + [charge - mul(share, months - 1)]


def one_off_parts(one_off: OneOff) -> dict[str, Decimal]:
    """Setup, labelling (examples × cost each), engineering (hours × rate) and other one-off costs."""
    return {
        "setup": one_off.setup,
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
    recurring = total(list(path.recurring.values()))
    if isinstance(path, PromptPath):
        months = [Month(0, 0, ZERO, ZERO, ZERO, ZERO, upfront, "start")]
        months += [
            Month(m, v, mul(v, per_request), ZERO, ZERO, ZERO, ZERO, "prompt", recurring)
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
    retrain = retrain_cost(path, conventions)
    migration = add(job, lc.retrain_extra)
    hosting, storage = fixed_fees(path, conventions)
    recurring = total(list(path.recurring.values()))

    def can_train(month: int) -> bool:
        return lc.new_training_until_month is None or month <= lc.new_training_until_month

    eol = lc.end_of_life_month
    reverts_at = None
    if eol is not None and (lc.on_end_of_life == "revert" or not can_train(eol + 1)):
        reverts_at = eol + 1
    events: list[tuple[int, str]] = []
    charges = [job] + [ZERO] * len(volumes)  # training charged in each month, before amortisation
    months = [Month(0, 0, ZERO, ZERO, ZERO, ZERO, upfront, "start")]
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
            months.append(Month(m, v, b.inference, b.hosting, b.storage, ZERO, ZERO, "reverted", b.recurring))
            continue
        due = _retrain_due(path, m)
        if due and not can_train(m):
            events.append(
                (m, f"{due} skipped: no new training jobs after month {lc.new_training_until_month}")
            )
            due = ""
        if due:
            events.append((m, due))
            charges[m] = migration if due.startswith("end-of-life") else retrain
        months.append(Month(m, v, mul(v, per_request), hosting, storage, ZERO, ZERO, "tuned", recurring))
    spread = _amortise(charges, path.training.amortise_months)
    return [replace(month, training=spread[month.month]) for month in months], events


def _amortise(charges: Sequence[Decimal], months: int | None) -> list[Decimal]:
    """Training paid per month: as charged, or each charge in `months` instalments.

    The month-0 job is paid over months 1..N, a charge of month m over months m..m+N-1; instalments
    falling after the last simulated month are dropped.
    """
    if months is None:
        return list(charges)
    paid = [ZERO] * len(charges)
    for m, charge in enumerate(charges):
        if not charge:
            continue
        for k, part in enumerate(instalments(charge, months)):
            due = max(m, 1) + k
            if due < len(paid):
                paid[due] = add(paid[due], part)
    return paid


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
