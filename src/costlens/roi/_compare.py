"""One alternative path against the baseline: saving, crossover, payback, break-even, ROI.

Definitions (the conventions the published worked examples imply, stated once):

- saving in month m: S_m = baseline cost_m − path cost_m; up-front extra I = path month 0 − baseline month 0.
- payback: the first moment the cumulative saving covers I. Costs accrue evenly within a month, so
  inside month m it is (m − 1) + (still to recover) / S_m months. With a constant saving S this is
  I / S (e.g. $200 / $300 = 2/3 month).
- break-even requests: requests served up to that moment; with no fixed fees, I / (saving per request)
  (e.g. $200 / $0.006 = 33,333⅓ requests).
- crossover volume: the monthly volume at which the two run-rate monthly costs are equal
  (extra fixed fees per month ÷ saving per request).
- ROI over n months: (Σ S_1..S_n − I) / I (e.g. (12 × $300 − $200) / $200 = 17 = 1,700%).

Ratios are exact `Fraction`s; nothing is rounded here. On the net-value basis the same formulas run
on cost minus the value of the answers, so accuracy differences count as money.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from costlens.roi._money import ZERO, fmt_decimal, fmt_money, total

__all__ = ["Basis", "Comparison", "CrossOver", "Payback", "RunRate", "compare", "crossover"]

Basis = Literal["cost", "net value"]


@dataclass(frozen=True, slots=True)
class CrossOver:
    """Where two lines in volume meet: the path is cheaper `above`/`below` `volume`, or `always`/`never`."""

    volume: Fraction | None
    cheaper: Literal["above", "below", "always", "never"]


@dataclass(frozen=True, slots=True)
class Payback:
    """When the up-front extra is recovered. `months` None means never within the search window."""

    months: Fraction | None
    month: int | None
    requests: Fraction | None
    within_horizon: bool
    reason: str


@dataclass(frozen=True, slots=True)
class RunRate:
    """Per-request and per-month figures of one path while it serves (for crossover and explanations)."""

    per_request: Decimal
    fixed_per_month: Decimal
    end_of_life_month: int | None = None
    retrain_every_months: int | None = None
    retrain_cost: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class Comparison:
    """An alternative path against the baseline over the horizon, on the cost or net-value basis."""

    path: str
    baseline: str
    basis: Basis
    saving_per_request: Decimal
    extra_fixed_per_month: Decimal
    extra_one_off: Decimal
    first_month_saving: Decimal
    crossover: CrossOver
    payback: Payback
    advantage: Decimal
    roi_horizon: Fraction | None
    roi_first_year: Fraction | None
    horizon_break_even: CrossOver


def crossover(fixed_delta: Decimal | Fraction, saving: Decimal | Fraction) -> CrossOver:
    """Where `saving × V − fixed_delta` changes sign, for V ≥ 0."""
    f, s = Fraction(fixed_delta), Fraction(saving)
    if s == 0:
        return CrossOver(None, "always" if f < 0 else "never")
    point = f / s
    if s > 0:
        return CrossOver(max(point, Fraction(0)), "always" if point <= 0 else "above")
    return CrossOver(point, "below") if point > 0 else CrossOver(None, "never")


def compare(
    name: str,
    baseline: str,
    basis: Basis,
    base: Sequence[Decimal],
    alt: Sequence[Decimal],
    volumes: Sequence[int],
    horizon: int,
    rates: tuple[RunRate, RunRate],
    line_gap: tuple[Fraction, Fraction],
) -> Comparison:
    """Compare month totals `alt` with `base` (both months 0..N; `volumes` months 1..N).

    `rates` = (baseline, path) run rates; `line_gap` = (extra horizon cost at zero volume, extra per
    unit of constant monthly volume), from which the horizon break-even volume follows.
    """
    extra = alt[0] - base[0]
    savings = [b - a for b, a in zip(base[1:], alt[1:], strict=True)]
    saving_per_request = rates[0].per_request - rates[1].per_request
    fixed_delta = rates[1].fixed_per_month - rates[0].fixed_per_month
    payback = _payback(extra, savings, volumes, horizon)
    if payback.months is None:
        payback = _with_reason(payback, _never_reason(basis, extra, savings, volumes, rates))
    return Comparison(
        path=name,
        baseline=baseline,
        basis=basis,
        saving_per_request=saving_per_request,
        extra_fixed_per_month=fixed_delta,
        extra_one_off=extra,
        first_month_saving=savings[0],
        crossover=crossover(fixed_delta, saving_per_request),
        payback=payback,
        advantage=total(list(base[: horizon + 1])) - total(list(alt[: horizon + 1])),
        roi_horizon=_roi(extra, savings[:horizon]),
        roi_first_year=_roi(extra, savings[:12]),
        horizon_break_even=crossover(line_gap[0], -line_gap[1]),
    )


def _roi(extra: Decimal, savings: Sequence[Decimal]) -> Fraction | None:
    if extra <= 0:
        return None
    return (Fraction(total(list(savings))) - Fraction(extra)) / Fraction(extra)


def _payback(extra: Decimal, savings: Sequence[Decimal], volumes: Sequence[int], horizon: int) -> Payback:
    """The first moment the cumulative saving reaches the up-front extra and is not falling."""
    cumulative = Fraction(-extra)
    served = Fraction(0)
    for m, (saving, volume) in enumerate(zip(savings, volumes, strict=True), 1):
        s = Fraction(saving)
        if cumulative >= 0 and s >= 0:
            return _found(Fraction(m - 1), m - 1, served, horizon)
        if cumulative < 0 <= cumulative + s:
            share = -cumulative / s
            return _found(m - 1 + share, m, served + share * volume, horizon)
        cumulative += s
        served += volume
    return Payback(None, None, None, False, "")


def _found(months: Fraction, month: int, requests: Fraction, horizon: int) -> Payback:
    late = f"pays back in {fmt_decimal(months, 2)} months, beyond the {horizon}-month horizon"
    reason = "" if months <= horizon else late
    return Payback(months, month, requests, months <= horizon, reason)


def _with_reason(payback: Payback, reason: str) -> Payback:
    return Payback(payback.months, payback.month, payback.requests, payback.within_horizon, reason)


def _never_reason(
    basis: Basis,
    extra: Decimal,
    savings: Sequence[Decimal],
    volumes: Sequence[int],
    rates: tuple[RunRate, RunRate],
) -> str:
    """Why the path never pays back, in the terms a reader can act on."""
    base, alt = rates
    per_request = base.per_request - alt.per_request
    if per_request <= 0 and basis == "net value":
        return (
            f"its net value per request is not higher ({fmt_money(-alt.per_request, 6)} vs "
            f"{fmt_money(-base.per_request, 6)}: answer value minus cost), so it never gains on calls"
        )
    if per_request <= 0:
        return (
            f"it costs more per request ({fmt_money(alt.per_request, 6)} vs "
            f"{fmt_money(base.per_request, 6)}), so it never saves on calls"
        )
    fixed = alt.fixed_per_month - base.fixed_per_month
    if savings and savings[0] <= 0 < fixed:
        point = Fraction(fixed) / Fraction(per_request)
        return (
            f"its fixed fees ({fmt_money(fixed)}/month) exceed the per-request saving at "
            f"{fmt_decimal(volumes[0])} requests/month; it saves only above "
            f"{fmt_decimal(point, 0)} requests/month"
        )
    if alt.end_of_life_month is not None:
        recovered = total(list(savings[: alt.end_of_life_month]))
        if recovered < extra:
            return (
                f"the tuned model reaches its end of life after month {alt.end_of_life_month} "
                f"having recovered {fmt_money(recovered)} of the {fmt_money(extra)} up-front cost"
            )
    if alt.retrain_every_months is not None:
        window = total(list(savings[: alt.retrain_every_months]))
        if window <= alt.retrain_cost:
            return (
                f"each retraining ({fmt_money(alt.retrain_cost)} every {alt.retrain_every_months} months) "
                f"costs at least what {alt.retrain_every_months} months of saving bring ({fmt_money(window)})"
            )
    return (
        f"the savings do not cover the up-front {fmt_money(extra)} within the {len(savings)} months searched"
    )
