"""Routing rules over predicted scores, their knob sweeps, and the calibration of a knob to a quality target.

Two rules turn predicted scores `pred` (prompts x candidates) and per-prompt costs into one choice each:

- `margin`: the cheapest candidate whose predicted score is at least `max(pred) - knob` (ties in cost:
  the higher prediction). Knob 0 takes the best-predicted candidate; a large knob, the cheapest.
- `lambda`: the candidate with the largest `pred - knob * cost / cost_scale` (ties: the cheaper).

Calibration (`calibrate`) runs a rule over out-of-fold predictions of the training rows for a grid of
knob values and keeps, per knob, the realised mean quality as a share of the strongest candidate's mean
and the mean cost as a share of that candidate's. `pick` then walks from the quality end of the grid
towards the cheap end and keeps the last knob before the realised quality first drops below the target:
cheap, and robust to a lucky spike further down the curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    F64 = npt.NDArray[np.float64]
    I64 = npt.NDArray[np.int64]

__all__ = [
    "RULES",
    "Curve",
    "Pick",
    "Point",
    "calibrate",
    "choose",
    "cost_at",
    "curve_area",
    "frontier",
    "knob_grid",
    "pick",
    "sweep",
]

RULES = ("margin", "lambda")
Point = tuple[float, float]  # (cost, quality)
_MAX_KNOBS = 400


def choose(pred: F64, cost: F64, rule: str, knob: float, cost_scale: float = 1.0) -> I64:
    """The chosen candidate's column for every prompt (row)."""
    import numpy as np

    if rule == "margin":
        eligible = pred >= pred.max(axis=1, keepdims=True) - knob
        masked = np.where(eligible, cost, np.inf)
        cheapest = eligible & (masked == masked.min(axis=1, keepdims=True))
        return np.asarray(np.argmax(np.where(cheapest, pred, -np.inf), axis=1), dtype=np.int64)
    if rule == "lambda":
        value = pred - knob * (cost / cost_scale)
        best = value == value.max(axis=1, keepdims=True)
        return np.asarray(np.argmin(np.where(best, cost, np.inf), axis=1), dtype=np.int64)
    raise ValueError(f"unknown routing rule {rule!r}: use one of {', '.join(RULES)}")


def knob_grid(pred: F64, cost: F64, rule: str, cost_scale: float = 1.0) -> F64:
    """Knob values, from the quality end (0) to past the cheap end, covering every point where the
    choice can change (all of them when few, else quantiles of them)."""
    import numpy as np

    if rule == "margin":
        points = (pred.max(axis=1, keepdims=True) - pred).ravel()
    elif rule == "lambda":
        # where two candidates swap: pred_a - k c_a = pred_b - k c_b
        rel = cost / cost_scale
        dp = pred[:, :, None] - pred[:, None, :]
        dc = rel[:, :, None] - rel[:, None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            k = dp / dc
        points = k[np.isfinite(k) & (k > 0)]
    else:
        raise ValueError(f"unknown routing rule {rule!r}: use one of {', '.join(RULES)}")
    points = np.unique(points[points > 0])
    if len(points) > _MAX_KNOBS:
        points = np.unique(np.quantile(points, np.linspace(0.0, 1.0, _MAX_KNOBS)))
    top = float(points[-1]) if len(points) else 0.0
    return np.concatenate([[0.0], points, [top * 2 + 1.0]])


def sweep(
    pred: F64, cost: F64, scores: F64, rule: str, knobs: F64, cost_scale: float = 1.0
) -> tuple[F64, F64, list[I64]]:
    """Per knob: mean realised score, mean cost, and the choices."""
    import numpy as np

    rows = np.arange(len(pred))
    quality, spend, picks = [], [], []
    for knob in knobs:
        c = choose(pred, cost, rule, float(knob), cost_scale)
        quality.append(float(scores[rows, c].mean()))
        spend.append(float(cost[rows, c].mean()))
        picks.append(c)
    return np.array(quality), np.array(spend), picks


@dataclass(frozen=True, slots=True)
class Curve:
    """One rule's calibration curve on out-of-fold predictions: per knob, realised quality and cost as
    shares of the strongest candidate's mean quality and mean cost."""

    rule: str
    knobs: tuple[float, ...]
    quality: tuple[float, ...]
    cost: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "knobs": list(self.knobs),
            "quality": list(self.quality),
            "cost": list(self.cost),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Curve:
        knobs, quality, cost = (tuple(float(v) for v in data[k]) for k in ("knobs", "quality", "cost"))
        if data["rule"] not in RULES or not knobs or not len(knobs) == len(quality) == len(cost):
            raise ValueError("a calibration curve is malformed")
        return cls(str(data["rule"]), knobs, quality, cost)


@dataclass(frozen=True, slots=True)
class Pick:
    """The knob a target calls for: `rule`/`knob`, and what it realised on the calibration rows
    (`quality`, `cost` as shares of the strongest candidate's). `rule` is None when no knob reaches the
    target: then always take the strongest candidate."""

    rule: str | None
    knob: float
    quality: float
    cost: float


def calibrate(
    pred: F64, cost: F64, scores: F64, strongest: int, cost_scale: float, rules: tuple[str, ...] = RULES
) -> list[Curve]:
    """Every rule's curve over the out-of-fold predictions `pred` of the training rows."""
    best_q = float(scores[:, strongest].mean())
    best_c = float(cost[:, strongest].mean())
    curves = []
    for rule in rules:
        knobs = knob_grid(pred, cost, rule, cost_scale)
        quality, spend, _ = sweep(pred, cost, scores, rule, knobs, cost_scale)
        curves.append(
            Curve(
                rule,
                tuple(float(k) for k in knobs),
                tuple(_share(float(q), best_q) for q in quality),
                tuple(_share(float(c), best_c) for c in spend),
            )
        )
    return curves


def _share(value: float, whole: float) -> float:
    if whole == 0:
        return 1.0 if value == 0 else math.inf
    return value / whole


def pick(curves: list[Curve], target: float) -> Pick:
    """The cheapest rule's knob for `target` (a share of the strongest candidate's mean quality)."""
    best: Pick | None = None
    for curve in curves:
        chosen: Pick | None = None
        for knob, quality, cost in zip(curve.knobs, curve.quality, curve.cost, strict=True):
            if quality < target - 1e-12:
                break
            chosen = Pick(curve.rule, knob, quality, cost)
        if chosen is not None and (best is None or chosen.cost < best.cost):
            best = chosen
    return best if best is not None else Pick(None, 0.0, 1.0, 1.0)


def frontier(points: Sequence[Point]) -> list[Point]:
    """The non-decreasing convex hull: from the cheapest point, the upper-left hull of the points whose
    quality beats every cheaper point (what mixing two settings at random can reach)."""
    pareto: list[Point] = []
    for c, q in sorted(set(points), key=lambda p: (p[0], -p[1])):
        if not pareto or (q > pareto[-1][1] and c > pareto[-1][0]):
            pareto.append((c, q))
    hull: list[Point] = []
    for p in pareto:
        while len(hull) >= 2:
            (c0, q0), (c1, q1) = hull[-2], hull[-1]
            if (c1 - c0) * (p[1] - q0) - (q1 - q0) * (p[0] - c0) >= 0:
                hull.pop()  # hull[-1] is on or under the chord hull[-2] -> p
            else:
                break
        hull.append(p)
    return hull


def cost_at(hull: Sequence[Point], quality: float) -> float | None:
    """The least cost on the hull that reaches `quality` (None: out of reach)."""
    if not hull or quality > hull[-1][1] + 1e-12:
        return None
    if quality <= hull[0][1]:
        return hull[0][0]
    for (c0, q0), (c1, q1) in pairwise(hull):
        if q0 < quality <= q1:
            return c0 + (quality - q0) / (q1 - q0) * (c1 - c0)
    return hull[-1][0]


def curve_area(curves: Sequence[Curve]) -> float:
    """Area under the non-decreasing convex hull of calibration points (cost share, quality share),
    always-the-strongest (1, 1) included, for cost shares 0 to 1 (below the cheapest point: its quality)."""
    points = [(1.0, 1.0)] + [p for c in curves for p in zip(c.cost, c.quality, strict=True) if p[0] <= 1.0]
    hull = frontier(points)
    area = hull[0][0] * hull[0][1]
    for (c0, q0), (c1, q1) in pairwise(hull):
        area += (c1 - c0) * (q0 + q1) / 2
    return area + (1.0 - hull[-1][0]) * hull[-1][1]
