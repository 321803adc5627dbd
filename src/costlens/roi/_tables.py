"""The report's tables as plain rows of text: rank of every path, cost per path, training, comparisons.

Shared by the Markdown/HTML report and the terminal tables of `costlens roi plan`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from costlens.roi._compare import Comparison, CrossOver
from costlens.roi._money import fmt_decimal, fmt_money
from costlens.roi._paths import TunedPath
from costlens.roi._plan import PathPlan, Plan

__all__ = ["Table", "comparison_table", "path_table", "ranking_table", "training_table"]


@dataclass(frozen=True, slots=True)
class Table:
    header: list[str]
    rows: list[list[str]]


def _months(value: Fraction | None) -> str:
    return "never" if value is None else f"{fmt_decimal(value, 2)} months"


def _cross(c: CrossOver, basis: str) -> str:
    word = "cheaper" if basis == "cost" else "better"
    if c.cheaper in ("always", "never"):
        return f"{c.cheaper} {word}"
    return f"{word} {c.cheaper} {fmt_decimal(c.volume or 0, 0)} requests/month"


def comparison_table(comparisons: Sequence[Comparison]) -> Table:
    header = [
        "path",
        "saving/request",
        "saving month 1",
        "extra up-front",
        "payback",
        "break-even requests",
        "run-rate crossover",
        "horizon break-even",
        "first-year ROI",
        "horizon advantage",
        "note",
    ]
    rows = []
    for c in comparisons:
        p = c.payback
        late = "" if p.within_horizon or p.months is None else " (after the horizon)"
        roi = "-" if c.roi_first_year is None else f"{fmt_decimal(c.roi_first_year * 100, 1)}%"
        requests = "-" if p.requests is None else fmt_decimal(p.requests, 0)
        rows.append(
            [
                c.path,
                fmt_money(c.saving_per_request, 6),
                fmt_money(c.first_month_saving),
                fmt_money(c.extra_one_off),
                _months(p.months) + late,
                requests,
                _cross(c.crossover, c.basis),
                _cross(c.horizon_break_even, c.basis),
                roi,
                fmt_money(c.advantage),
                p.reason or "-",
            ]
        )
    return Table(header, rows)


def path_table(plan: Plan) -> Table:
    valued = any(p.quality is not None for p in plan.paths)
    header = [
        "path",
        "kind",
        "model",
        "cost/request",
        "month 1",
        "fixed/month",
        "recurring/month",
        "up-front",
        "total (TCO)",
    ]
    header += ["accuracy", "cost/correct", "net value"] if valued else []
    rows = []
    for p in plan.paths:
        fixed = p.hosting_per_month + p.storage_per_month
        row = [
            p.name,
            p.kind.replace("_", " "),
            p.path.model,
            fmt_money(p.cost_per_request, 6),
            fmt_money(p.months[1].total),
            fmt_money(fixed),
            _recurring(p),
            fmt_money(p.months[0].total),
            fmt_money(p.tco),
        ]
        q = p.quality
        if valued and q is None:
            row += ["-", "-", "-"]
        elif q is not None:
            row += [
                f"{fmt_decimal(q.accuracy.value * 100)}% ({q.accuracy.source})",
                "-" if q.cost_per_correct is None else fmt_money(q.cost_per_correct, 6),
                "-" if q.net_value is None else fmt_money(q.net_value),
            ]
        rows.append(row)
    return Table(header, rows)


def _recurring(p: PathPlan) -> str:
    if not p.recurring:
        return fmt_money(p.recurring_per_month)
    parts = ", ".join(f"{name} {fmt_money(amount)}" for name, amount in p.recurring.items())
    return f"{fmt_money(p.recurring_per_month)} ({parts})"


def training_table(plan: Plan) -> Table | None:
    """Each tuned path's training job, how it is paid, and what a retraining costs."""
    rows = []
    for p in plan.paths:
        if p.training is None or not isinstance(p.path, TunedPath):
            continue
        t, lc, n = p.training, p.path.lifecycle, p.path.training.amortise_months
        paid = "month 0" if n is None else f"{n} instalments, months 1-{n}"
        every = "-" if lc.retrain_every_months is None else f"every {lc.retrain_every_months} months"
        retrain = (
            f"{fmt_decimal(lc.retrain_share)} × job + {fmt_money(lc.retrain_extra)} = "
            f"{fmt_money(p.retrain_cost or Decimal(0))}"
        )
        grader = (
            "-"
            if p.path.training.grader is None
            else f"{fmt_money(t.grader_cost)} ({p.path.training.grader.model})"
        )
        rows.append([p.name, fmt_money(t.charged), grader, paid, every, retrain])
    header = ["path", "training job", "of which grader", "paid", "retraining", "retraining cost"]
    return Table(header, rows) if rows else None


def ranking_table(plan: Plan) -> Table:
    """Every path, best first: what the verdict compares."""
    basis = plan.decision_basis
    base = plan.baseline.horizon_total(basis)
    measure = "TCO" if basis == "cost" else "net cost (cost − value)"
    rows = [
        [
            str(k),
            p.name,
            p.kind.replace("_", " "),
            fmt_money(p.horizon_total(basis)),
            fmt_money(base - p.horizon_total(basis)),
        ]
        for k, p in enumerate(plan.ranking(), 1)
    ]
    return Table(["rank", "path", "kind", f"horizon {measure}", "better than the baseline by"], rows)
