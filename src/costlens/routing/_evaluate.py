"""Scoring a router on held-out rows, exactly as `shared/data/routing/README.md` defines it.

- Single models: mean score (quality) and mean estimated cost per prompt of always using each.
- Reference: the strongest model (highest mean score on the evaluated rows); the target quality is
  `target x` its quality, and savings are against its cost.
- Zero router: the non-decreasing convex hull of the single models (random mixing of two of them).
- Oracle: per prompt, the cheapest model among those with the best score.
- Router curve: the router's knob swept over every setting on the evaluated rows (both rules, and always
  the strongest), reduced to its non-decreasing convex hull; CS@target read off it is the best the
  router could do with the knob chosen on these rows.
- Deployable: the knob calibrated on the training rows, applied to the evaluated rows: realised quality,
  cost, saving, and whether the target was met. This is the headline.
- Two models: PGR = (q - q_weak) / (q_strong - q_weak) as the share of strong calls grows, the prompts
  ranked by the router's predicted gain of the strong model (p_strong - p_weak); APGR = area under it
  (random routing: 0.5); CPT(x) = the least share of strong calls with PGR >= x (the RouteLLM paper).
  A 95% bootstrap interval of APGR says how far the figure could move on another sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from costlens.routing._calibrate import Point, cost_at, frontier, knob_grid, sweep
from costlens.routing._costs import ModelCost, cost_matrix, cost_terms, prompt_tokens
from costlens.routing._data import RoutingDataError, RoutingRows, holdout_mask
from costlens.routing._learned import LearnedRouter

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    F64 = npt.NDArray[np.float64]

__all__ = ["Entry", "RouterEvaluation", "apgr", "cost_at", "cpt", "evaluate", "frontier", "pgr_curve"]


def _ranked(gain: F64, delta: F64) -> tuple[F64, F64]:
    """Share of prompts switched (highest `gain` first, ties together) and the mean `delta` gained."""
    import numpy as np

    order = np.argsort(-gain, kind="stable")
    g = gain[order]
    ends = np.flatnonzero(np.r_[g[1:] != g[:-1], True]) + 1
    return np.r_[0.0, ends / len(gain)], np.r_[0.0, np.cumsum(delta[order])[ends - 1]] / len(gain)


def pgr_curve(gain: F64, strong: F64, weak: F64) -> tuple[F64, F64] | None:
    """(share of strong calls, PGR) as the prompts with the highest `gain` go to the strong model first;
    tied prompts move together (their average, as random tie-breaking gives). None if q_strong == q_weak."""
    q_weak, q_strong = float(weak.mean()), float(strong.mean())
    if len(gain) == 0 or q_strong == q_weak:
        return None
    share, gained = _ranked(gain, strong - weak)
    return share, gained / (q_strong - q_weak)


def apgr(share: F64, pgr: F64) -> float:
    """Area under PGR over the share of strong calls in [0, 1] (trapezoids)."""
    import numpy as np

    return float(np.sum((share[1:] - share[:-1]) * (pgr[1:] + pgr[:-1]) / 2))


def apgr_interval(
    gain: F64, strong: F64, weak: F64, *, resamples: int = 400, seed: int = 0
) -> tuple[float, float] | None:
    """A 95% bootstrap interval of APGR (rows resampled with replacement; fixed seed): how much the
    figure could move on another sample of the same size."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(gain), len(gain))
        found = pgr_curve(gain[pick], strong[pick], weak[pick])
        if found is not None:
            values.append(apgr(*found))
    if len(values) < resamples // 2:
        return None
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high)


def cpt(share: F64, pgr: F64, x: float) -> float | None:
    """The least share of strong calls at which PGR reaches `x` (linear between points)."""
    for i in range(len(share)):
        if pgr[i] >= x:
            if i == 0:
                return float(share[0])
            s0, s1, p0, p1 = share[i - 1], share[i], pgr[i - 1], pgr[i]
            return float(s0 + (x - p0) / (p1 - p0) * (s1 - s0))
    return None


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the comparison: a policy's mean quality and mean cost per prompt on the evaluated rows."""

    name: str
    kind: str  # model | zero-router | oracle | router-hull | router-deployable
    quality: float | None
    cost: float | None
    quality_share: float | None
    saving: float | None
    target_met: bool | None = None
    cost_usd: Decimal | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "quality": self.quality,
            "cost": self.cost,
            "cost_usd": self.cost_usd,
            "quality_share": self.quality_share,
            "saving": self.saving,
            "target_met": self.target_met,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class RouterEvaluation:
    """Everything `costlens route eval` reports (see the module docstring)."""

    source: str
    rows: int
    target: float
    reference: str
    target_quality: float
    cost_unit: str  # "usd" | "strong calls"
    entries: list[Entry]
    curve: list[Point]
    hull: list[Point]
    zero_hull: list[Point]
    two_model: dict[str, Any] | None = None
    deployable: dict[str, Any] = field(default_factory=dict)

    def entry(self, kind: str) -> Entry:
        return next(e for e in self.entries if e.kind == kind)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows": self.rows,
            "target": self.target,
            "reference": self.reference,
            "target_quality": self.target_quality,
            "cost_unit": self.cost_unit,
            "entries": [e.as_dict() for e in self.entries],
            "deployable": self.deployable,
            "two_model": self.two_model,
            "curve": [{"cost": c, "quality": q} for c, q in self.curve],
            "hull": [{"cost": c, "quality": q} for c, q in self.hull],
            "zero_router_hull": [{"cost": c, "quality": q} for c, q in self.zero_hull],
        }


def eval_rows(router: LearnedRouter, data: RoutingRows, holdout: float | None = None) -> list[int]:
    """Indices of the held-out rows: `split=test`, plus those the router's training held out by hash."""
    percent = float(router.info.get("holdout_percent", 0.0)) if holdout is None else holdout
    held = holdout_mask(data.prompts, percent)
    rows = [i for i in range(len(data)) if data.test[i] or held[i]]
    if not rows:
        raise RoutingDataError(
            f"{data.source} has no held-out rows: add a split column with test rows, or train and evaluate "
            "with --holdout PERCENT to set rows aside by prompt hash"
        )
    return rows


def evaluate(
    router: LearnedRouter,
    data: RoutingRows,
    *,
    target: float | None = None,
    costs: Mapping[str, ModelCost] | None = None,
    holdout: float | None = None,
) -> RouterEvaluation:
    """Score `router` on the held-out rows of `data` (see the module docstring)."""
    import numpy as np

    target = router.target if target is None else target
    missing = [c for c in router.candidates if c not in data.models]
    if missing:
        raise RoutingDataError(f"{data.source} has no score column for the router's candidate {missing[0]!r}")
    if costs is not None:
        absent = [c for c in router.candidates if c not in costs]
        if absent:
            raise RoutingDataError(f"the models file has no cost for the router's candidate {absent[0]!r}")
    model_costs = [(costs or router.costs)[c] for c in router.candidates]
    priced = all(c.priced for c in model_costs)
    idx = eval_rows(router, data, holdout)
    cols = [data.models.index(c) for c in router.candidates]
    prompts = [data.prompts[i] for i in idx]
    scores = np.array([[data.scores[i][c] for c in cols] for i in idx], dtype=np.float64)
    cost = cost_matrix(prompts, cost_terms(model_costs), router.output_tokens)
    pred = router.predict_matrix(prompts)
    n, m = scores.shape
    rows = np.arange(n)
    quality, spend = scores.mean(axis=0), cost.mean(axis=0)
    ref = int(np.argmax(quality))
    q_ref, c_ref = float(quality[ref]), float(spend[ref])
    goal = target * q_ref

    def usd(choice: Sequence[int]) -> Decimal | None:
        if not priced:
            return None
        total = Decimal(0)
        for c, p in zip(choice, prompts, strict=True):
            total += model_costs[c].call_usd(prompt_tokens(p), router.output_tokens) or Decimal(0)
        return total / Decimal(int(n))

    def line(name: str, kind: str, q: float | None, c: float | None, **kw: Any) -> Entry:
        share = None if q is None else q / q_ref if q_ref else None
        saving = None if c is None or not c_ref else 1.0 - c / c_ref
        return Entry(name, kind, q, c, share, saving, **kw)

    entries = [
        line(
            router.candidates[j],
            "model",
            float(quality[j]),
            float(spend[j]),
            target_met=bool(quality[j] >= goal),
            cost_usd=usd([j] * n),
            note="strongest (reference)" if j == ref else "",
        )
        for j in range(m)
    ]
    zero = frontier([(float(spend[j]), float(quality[j])) for j in range(m)])
    zc = cost_at(zero, goal)
    entries.append(
        line(
            "zero router",
            "zero-router",
            goal if zc is not None else None,
            zc,
            target_met=zc is not None,
            note="best mix of two single models at the target",
        )
    )
    best = np.where(scores == scores.max(axis=1, keepdims=True), cost, np.inf).argmin(axis=1)
    entries.append(
        line(
            "oracle",
            "oracle",
            float(scores[rows, best].mean()),
            float(cost[rows, best].mean()),
            target_met=True,
            cost_usd=usd(best.tolist()),
            note="cheapest of the best-scoring models per prompt",
        )
    )

    curve = [(float(spend[ref]), q_ref)]
    for rule in ("margin", "lambda"):
        q_s, c_s, _ = sweep(
            pred, cost, scores, rule, knob_grid(pred, cost, rule, router.cost_scale), router.cost_scale
        )
        curve.extend(zip(c_s.tolist(), q_s.tolist(), strict=True))
    two = _two_model(router, pred, scores, cost) if m == 2 else None
    if two is not None:
        curve.extend(two.pop("points"))
    hull = frontier(curve)
    hc = cost_at(hull, goal)
    entries.append(
        line(
            "router (best knob on these rows)",
            "router-hull",
            goal if hc is not None else None,
            hc,
            target_met=hc is not None,
            note="hull of the router's curve at the target",
        )
    )

    chosen = router.calibrated(target)
    names = router.choose_many(prompts, target)
    choice = [router.candidates.index(c) for c in names]
    dq, dc = float(scores[rows, choice].mean()), float(cost[rows, choice].mean())
    deploy = line(
        "router (deployable: knob from train)",
        "router-deployable",
        dq,
        dc,
        target_met=dq >= goal - 1e-12,
        cost_usd=usd(choice),
        note=f"rule {chosen.rule or 'strongest only'}, knob {chosen.knob:.4g}",
    )
    entries.append(deploy)
    counts = {c: names.count(c) / n for c in router.candidates}
    deployable = {
        "rule": chosen.rule,
        "knob": chosen.knob,
        "train_quality_share": chosen.quality,
        "train_cost_share": chosen.cost,
        "quality": dq,
        "cost": dc,
        "saving": deploy.saving,
        "target_met": deploy.target_met,
        "calls": counts,
    }
    return RouterEvaluation(
        source=data.source,
        rows=n,
        target=target,
        reference=router.candidates[ref],
        target_quality=goal,
        cost_unit="usd" if priced else "strong calls",
        entries=entries,
        curve=curve,
        hull=hull,
        zero_hull=zero,
        two_model=two,
        deployable=deployable,
    )


def _two_model(router: LearnedRouter, pred: F64, scores: F64, cost: F64) -> dict[str, Any] | None:
    """APGR and CPT for a two-model set, the strong model being the one with the higher mean score."""
    import numpy as np

    s = int(np.argmax(scores.mean(axis=0)))
    w = 1 - s
    found = pgr_curve(pred[:, s] - pred[:, w], scores[:, s], scores[:, w])
    if found is None:
        return None
    share, pgr = found
    gain = pred[:, s] - pred[:, w]
    q = scores[:, w].mean() + _ranked(gain, scores[:, s] - scores[:, w])[1]
    c = cost[:, w].mean() + _ranked(gain, cost[:, s] - cost[:, w])[1]
    return {
        "strong": router.candidates[s],
        "weak": router.candidates[w],
        "apgr": apgr(share, pgr),
        "apgr_ci95": apgr_interval(gain, scores[:, s], scores[:, w]),
        "apgr_random": 0.5,
        "cpt50": cpt(share, pgr, 0.5),
        "cpt80": cpt(share, pgr, 0.8),
        "points": list(zip(c.tolist(), q.tolist(), strict=True)),
    }
