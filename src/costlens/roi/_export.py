"""A `Plan` as JSON-friendly data and as flat monthly rows (the `--format json|csv` of `costlens roi`).

Money stays `Decimal` (the CLI writes it as an exact string); every ratio is written as
`{"exact": "100000/3", "rounded": "33333.33"}` with the rounding places given in `rounding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from costlens.roi._compare import Comparison, CrossOver
from costlens.roi._money import MONEY_DISPLAY, ratio_json
from costlens.roi._paths import TunedPath
from costlens.roi._plan import PathPlan, Plan, VolumeRange
from costlens.roi._sensitivity import GridCell, TornadoBar

__all__ = ["ROUNDING", "grid_to_dict", "plan_month_rows", "plan_to_dict", "tornado_to_dict"]

ROUNDING = (
    "money is exact; ratios are exact fractions, shown rounded half-even: months and volumes to 2 places, "
    "ROI percentages to 1 place"
)
MONTH_COLUMNS = (
    "path",
    "month",
    "requests",
    "inference",
    "hosting",
    "storage",
    "recurring",
    "training",
    "one_off",
    "total",
    "cumulative",
    "serving",
)


def _plain(value: Any) -> Any:
    """Fractions become ratio dicts, Decimals lose trailing zeros (exactly); containers recursively."""
    if isinstance(value, Fraction):
        return ratio_json(value, 2)
    if isinstance(value, Decimal):
        return value.normalize(MONEY_DISPLAY)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _percent(value: Fraction | None) -> dict[str, str] | None:
    return None if value is None else ratio_json(value * 100, 1)


def _crossover(c: CrossOver) -> dict[str, Any]:
    return {"requests_per_month": ratio_json(c.volume, 2), "path_cheaper": c.cheaper}


def comparison_to_dict(c: Comparison) -> dict[str, Any]:
    p = c.payback
    return {
        "path": c.path,
        "baseline": c.baseline,
        "basis": c.basis,
        "saving_per_request": c.saving_per_request,
        "extra_fixed_per_month": c.extra_fixed_per_month,
        "extra_one_off": c.extra_one_off,
        "first_month_saving": c.first_month_saving,
        "crossover": _crossover(c.crossover),
        "payback": {
            "months": ratio_json(p.months, 2),
            "month": p.month,
            "break_even_requests": ratio_json(p.requests, 2),
            "within_horizon": p.within_horizon,
            "reason": p.reason,
        },
        "advantage_over_horizon": c.advantage,
        "roi_horizon_percent": _percent(c.roi_horizon),
        "roi_first_year_percent": _percent(c.roi_first_year),
        "horizon_break_even": _crossover(c.horizon_break_even),
    }


def _path(p: PathPlan) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": p.name,
        "kind": p.kind,
        "model": p.path.model,
        "cost_per_request": p.cost_per_request,
        "hosting_per_month": p.hosting_per_month,
        "storage_per_month": p.storage_per_month,
        "recurring": p.recurring,
        "recurring_per_month": p.recurring_per_month,
        "one_off": dict(p.one_off),
        "month_1_cost": p.months[1].total,
        "tco": p.tco,
        "events": [{"month": m, "event": text} for m, text in p.events],
    }
    if p.training is not None and isinstance(p.path, TunedPath):
        t, spec, lc = p.training, p.path.training, p.path.lifecycle
        out["training_job"] = {
            "billed_tokens": t.tokens,
            "token_cost": t.token_cost,
            "hour_cost": t.hour_cost,
            "grader_cost": t.grader_cost,
            "grader_model": spec.grader.model if spec.grader else None,
            "fixed": t.fixed,
            "minimum": t.minimum,
            "charged": t.charged,
            "amortise_months": spec.amortise_months,
            "paid": "month 0" if spec.amortise_months is None else f"months 1-{spec.amortise_months}",
        }
        out["retraining"] = {
            "every_months": lc.retrain_every_months,
            "share_of_first_job": lc.retrain_share,
            "extra": lc.retrain_extra,
            "cost": p.retrain_cost,
        }
    if p.quality is not None:
        q = p.quality
        out["quality"] = {
            "accuracy": q.accuracy.value,
            "accuracy_source": q.accuracy.source,
            "accuracy_interval": [q.accuracy.low, q.accuracy.high] if q.accuracy.low is not None else None,
            "correct_answers": q.correct_answers,
            "cost_per_correct": ratio_json(q.cost_per_correct, 6),
            "value": q.value,
            "net_value": q.net_value,
        }
    return out


def _ranges(ranges: Sequence[VolumeRange]) -> list[dict[str, Any]]:
    return [{"path": r.path, "from": ratio_json(r.low, 2), "to": ratio_json(r.high, 2)} for r in ranges]


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """Every result of the plan (not the monthly rows: see `plan_month_rows`)."""
    s = plan.scenario
    out: dict[str, Any] = {
        "title": s.title,
        "horizon_months": s.horizon_months,
        "baseline": s.baseline_name,
        "compared": plan.primary,
        "decision_basis": plan.decision_basis,
        "conventions": {
            "days_per_month": s.conventions.days_per_month,
            "hours_per_month": s.conventions.hours,
            "validation_per_epoch": s.conventions.validation_per_epoch,
            "one_off_costs": "month 0",
            "recurring_costs": "every month the path serves, from month 1",
            "amortised_training": "each job in equal monthly instalments: the first from month 1, "
            "a retraining from the month it starts",
        },
        "rounding": ROUNDING,
        "volumes": list(plan.volumes),
        "paths": [_path(p) for p in plan.paths],
        "ranking": [
            {
                "path": p.name,
                "kind": p.kind,
                "horizon_total": p.horizon_total(plan.decision_basis),
                "advantage_over_baseline": plan.baseline.horizon_total(plan.decision_basis)
                - p.horizon_total(plan.decision_basis),
            }
            for p in plan.ranking()
        ],
        "comparisons": [comparison_to_dict(c) for c in plan.comparisons],
        "value_comparisons": [comparison_to_dict(c) for c in plan.value_comparisons],
        "cheapest_by_volume": _ranges(plan.cheapest),
        "best_net_value_by_volume": _ranges(plan.best_value),
        "sources": [
            {"path": x.path, "field": x.field, "usd": x.value, "source": x.source} for x in plan.sources
        ],
    }
    r = plan.recommendation
    if r is not None:
        out["recommendation"] = {
            "verdict": r.verdict,
            "path": r.path,
            "headline": r.headline,
            "blockers": list(r.blockers),
            "caveats": list(r.caveats),
            "rules": [
                {
                    "id": x.id,
                    "favours": x.favours,
                    "fired": x.fired,
                    "text": x.text,
                    "source": x.source,
                    "numbers": x.numbers,
                }
                for x in r.rules
            ],
        }
    tidy: dict[str, Any] = _plain(out)
    return tidy


def plan_month_rows(plan: Plan) -> list[dict[str, Any]]:
    """One row per path per month (0..horizon), with the running cumulative cost."""
    rows = []
    for p in plan.paths:
        for month, cumulative in zip(p.months, p.cumulative(), strict=True):
            rows.append(
                {
                    "path": p.name,
                    "month": month.month,
                    "requests": month.requests,
                    "inference": month.inference,
                    "hosting": month.hosting,
                    "storage": month.storage,
                    "recurring": month.recurring,
                    "training": month.training,
                    "one_off": month.one_off,
                    "total": month.total,
                    "cumulative": cumulative,
                    "serving": month.serving,
                }
            )
    return [_plain(row) for row in rows]


def tornado_to_dict(bars: Sequence[TornadoBar]) -> list[dict[str, Any]]:
    bars_out: list[dict[str, Any]] = _plain(
        [
            {
                "lever": b.lever,
                "base": b.base_value,
                "low": b.low_value,
                "high": b.high_value,
                "advantage_at_low": b.low_metric,
                "advantage_at_high": b.high_metric,
                "swing": b.swing,
                "flips": b.flips,
            }
            for b in bars
        ]
    )
    return bars_out


def grid_to_dict(x: str, y: str, rows: Sequence[Sequence[GridCell]]) -> dict[str, Any]:
    grid: dict[str, Any] = _plain(
        {
            "x": x,
            "y": y,
            "cells": [
                {
                    "x": c.x,
                    "y": c.y,
                    "advantage": c.advantage,
                    "payback_months": ratio_json(c.payback_months, 2),
                }
                for row in rows
                for c in row
            ],
        }
    )
    return grid
