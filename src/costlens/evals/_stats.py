"""Summaries and comparisons of a run's outcomes, with the uncertainty a small eval set carries.

Everything is computed from the outcomes (`costlens.evals._results`), never stored apart from them.
Stdlib only: the intervals and tests are closed forms or exact integer sums, and the bootstrap is a
seeded `random.Random`, so a report is reproducible on any machine.

A failed call (`correct is None`) counts as wrong: the strategy did not produce a correct answer, and
dropping failures would flatter a strategy that fails often. Money stays `Decimal` throughout; a
total is None as soon as one part had no price, because a partial sum would understate the cost.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from decimal import Context, Decimal
from fractions import Fraction
from statistics import NormalDist
from typing import Any

from costlens.evals._results import Outcome, RunResult, StrategyInfo

__all__ = [
    "Comparison",
    "StrategySummary",
    "compare",
    "compare_to_best",
    "comparison_row",
    "frontier",
    "mcnemar_exact",
    "percentile",
    "run_report",
    "summarize",
    "summarize_run",
    "summary_rows",
    "wilson_interval",
]

_Z95 = NormalDist().inv_cdf(0.975)
_SUM = Context(prec=80)  # sums of costs stay exact (a cost has far fewer digits than this)
_DIVIDE = Context(prec=28)  # per-call / per-correct: correctly rounded to 28 significant digits


def wilson_interval(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval for successes/n. Unlike the normal approximation it stays inside
    [0, 1] and keeps its coverage at 0/n, n/n and small n, which is where eval sets live.
    With n == 0 nothing is known, so the interval is the whole of [0, 1]."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends, not 1e-17 of rounding
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return (low, high)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between order statistics (numpy's
    default), so p50 of an even count is the mean of the middle two. None when there are no values."""
    if not values:
        return None
    xs = sorted(values)
    h = (len(xs) - 1) * q / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def _total(costs: Iterable[Decimal | None]) -> Decimal | None:
    """The exact sum, or None when any part is unknown (a partial sum would understate the cost)."""
    total = Decimal(0)
    for cost in costs:
        if cost is None:
            return None
        total = _SUM.add(total, cost)
    return total


def _per(total: Decimal | None, count: int) -> Decimal | None:
    return None if total is None or count <= 0 else _DIVIDE.divide(total, Decimal(count))


@dataclass(frozen=True)
class StrategySummary:
    """One strategy's results: accuracy with its 95% interval, tokens, latency and cost."""

    strategy: str
    model: str
    kind: str
    n: int  # outcomes measured: items x repeats
    answered: int  # correct is not None
    correct: int
    errors: int  # failed calls, counted as wrong
    cached: int
    accuracy: float  # correct / n
    ci_low: float
    ci_high: float
    mean_input_tokens: float  # over answered outcomes
    mean_output_tokens: float
    latency_p50_ms: float | None  # answered, non-cached: a cache hit's latency is not the model's
    latency_p95_ms: float | None
    total_cost: Decimal | None  # None when any outcome is unpriced
    unpriced: int
    cost_per_call: Decimal | None
    cost_per_correct: Decimal | None
    spent: Decimal  # paid this run: known costs of non-cached outcomes
    on_frontier: bool = False


def summarize(
    outcomes: Sequence[Outcome], info: StrategyInfo | None = None, *, strategy: str | None = None
) -> StrategySummary:
    """Summarize one strategy's outcomes. The name comes from `info`, else `strategy`, else the outcomes."""
    name = info.name if info is not None else strategy
    if name is None:
        name = outcomes[0].strategy if outcomes else ""
    if info is not None:
        model, kind = info.model, info.kind
    else:
        models = {o.model for o in outcomes if o.model}
        model, kind = (models.pop() if len(models) == 1 else "mixed" if models else ""), ""
    n = len(outcomes)
    answered = [o for o in outcomes if o.correct is not None]
    correct = sum(1 for o in outcomes if o.correct is True)
    timed = [o.latency_ms for o in answered if not o.cached]
    total = _total(o.cost for o in outcomes)
    low, high = wilson_interval(correct, n)
    spent = _total(o.cost for o in outcomes if not o.cached and o.cost is not None)
    return StrategySummary(
        strategy=name,
        model=model,
        kind=kind,
        n=n,
        answered=len(answered),
        correct=correct,
        errors=n - len(answered),
        cached=sum(1 for o in outcomes if o.cached),
        accuracy=correct / n if n else 0.0,
        ci_low=low,
        ci_high=high,
        mean_input_tokens=sum(o.input_tokens for o in answered) / len(answered) if answered else 0.0,
        mean_output_tokens=sum(o.output_tokens for o in answered) / len(answered) if answered else 0.0,
        latency_p50_ms=percentile(timed, 50),
        latency_p95_ms=percentile(timed, 95),
        total_cost=total,
        unpriced=sum(1 for o in outcomes if o.cost is None),
        cost_per_call=_per(total, n),
        cost_per_correct=_per(total, correct),
        spent=spent if spent is not None else Decimal(0),
    )


def frontier(summaries: Iterable[StrategySummary]) -> list[str]:
    """Names of the Pareto-efficient strategies: no other is at least as cheap per call and at least
    as accurate, and strictly better on one. Unknown cost is never on the frontier (it could be anything);
    exact ties both stay, since neither beats the other."""
    known = [(s.cost_per_call, s.accuracy, s.strategy) for s in summaries if s.cost_per_call is not None]
    return [
        name
        for cost, acc, name in known
        if not any(c <= cost and a >= acc and (c < cost or a > acc) for c, a, _ in known)
    ]


def summarize_run(run: RunResult) -> list[StrategySummary]:
    """One summary per strategy, in the run's order, with `on_frontier` set."""
    summaries = [summarize(run.of(info.name), info) for info in run.meta.strategies]
    best = set(frontier(summaries))
    return [replace(s, on_frontier=s.strategy in best) for s in summaries]


@dataclass(frozen=True)
class Comparison:
    """Strategy b against strategy a on the (item, repeat) pairs both measured.

    Paired, because both answered the same items: McNemar's exact test looks only at the items where
    they disagree, which is far more sensitive than comparing two independent accuracies."""

    a: str
    b: str
    pairs: int
    both_correct: int
    a_only: int
    b_only: int
    neither: int
    accuracy_a: float
    accuracy_b: float
    diff: float  # accuracy_b - accuracy_a over the pairs
    mcnemar_p: float
    bootstrap_low: float
    bootstrap_high: float
    cost_a: Decimal | None
    cost_b: Decimal | None
    alpha: float
    significant: bool  # mcnemar_p < alpha

    @property
    def verdict(self) -> str:
        if self.pairs == 0:
            return "nothing to compare (no item measured by both)"
        p = _fmt_p(self.mcnemar_p)
        if not self.significant or self.diff == 0:
            return f"no significant difference ({p})"
        better = self.b if self.diff > 0 else self.a
        return f"{better} is better (+{abs(self.diff) * 100:.1f} points, {p})"


def _fmt_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p: the binomial(n, 1/2) tail at the rarer discordant count, doubled.
    Integer arithmetic, so thousands of discordant pairs neither overflow nor lose the tail."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    p = float(min(Fraction(1), Fraction(2 * tail, 2**n)))
    return p if p > 0 else math.ulp(0.0)  # below float range (e.g. 0 vs 3000), but never truly 0


def compare_to_best(result: RunResult, summaries: Sequence[StrategySummary]) -> list[Comparison]:
    """Every strategy paired against the most accurate one (the cheaper wins a tie): what
    `costlens eval report` and `GET /api/evals/{run}` show under the summary table."""
    best = max(summaries, key=lambda s: (s.accuracy, -(s.cost_per_call or 0)), default=None)
    if best is None:
        return []
    return [
        compare(result.of(best.strategy), result.of(s.strategy), name_a=best.strategy, name_b=s.strategy)
        for s in summaries
        if s.strategy != best.strategy
    ]


def compare(
    a: Sequence[Outcome],
    b: Sequence[Outcome],
    *,
    name_a: str = "a",
    name_b: str = "b",
    alpha: float = 0.05,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Compare b against a on the (item_id, repeat) pairs present in both; a failed call is wrong.
    The bootstrap interval resamples pairs (keeping each item's two answers together) with a seeded
    generator, so the same inputs always give the same interval."""
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    by_a = {(o.item_id, o.repeat): o for o in a}
    by_b = {(o.item_id, o.repeat): o for o in b}
    keys = sorted(by_a.keys() & by_b.keys())
    flags = [(by_a[k].correct is True, by_b[k].correct is True) for k in keys]
    both = sum(1 for x, y in flags if x and y)
    a_only = sum(1 for x, y in flags if x and not y)
    b_only = sum(1 for x, y in flags if y and not x)
    n = len(flags)
    diff = (b_only - a_only) / n if n else 0.0
    low = high = diff
    if n:
        deltas = [int(y) - int(x) for x, y in flags]
        rng = random.Random(seed)
        boots = [sum(rng.choices(deltas, k=n)) / n for _ in range(resamples)]
        low, high = percentile(boots, 2.5) or 0.0, percentile(boots, 97.5) or 0.0
    p = mcnemar_exact(a_only, b_only)
    return Comparison(
        a=name_a,
        b=name_b,
        pairs=n,
        both_correct=both,
        a_only=a_only,
        b_only=b_only,
        neither=n - both - a_only - b_only,
        accuracy_a=(both + a_only) / n if n else 0.0,
        accuracy_b=(both + b_only) / n if n else 0.0,
        diff=diff,
        mcnemar_p=p,
        bootstrap_low=low,
        bootstrap_high=high,
        cost_a=_total(by_a[k].cost for k in keys),
        cost_b=_total(by_b[k].cost for k in keys),
        alpha=alpha,
        significant=p < alpha,
    )


def _money(value: Decimal | None) -> str | None:
    """Full precision, never scientific notation (`1E-7` reads badly in JSON and spreadsheets)."""
    return None if value is None else format(value, "f")


def _round(value: float | None, places: int) -> float | None:
    return None if value is None else round(value, places)


def summary_rows(summaries: Iterable[StrategySummary]) -> list[dict[str, Any]]:
    """JSON-ready rows with stable keys: money as exact strings, rates to 4 places."""
    return [
        {
            "strategy": s.strategy,
            "model": s.model,
            "kind": s.kind,
            "n": s.n,
            "correct": s.correct,
            "errors": s.errors,
            "cached": s.cached,
            "accuracy": round(s.accuracy, 4),
            "ci_low": round(s.ci_low, 4),
            "ci_high": round(s.ci_high, 4),
            "mean_input_tokens": round(s.mean_input_tokens, 1),
            "mean_output_tokens": round(s.mean_output_tokens, 1),
            "latency_p50_ms": _round(s.latency_p50_ms, 1),
            "latency_p95_ms": _round(s.latency_p95_ms, 1),
            "total_cost_usd": _money(s.total_cost),
            "cost_per_call_usd": _money(s.cost_per_call),
            "cost_per_correct_usd": _money(s.cost_per_correct),
            "unpriced": s.unpriced,
            "on_frontier": s.on_frontier,
        }
        for s in summaries
    ]


def comparison_row(c: Comparison) -> dict[str, Any]:
    """A comparison as a JSON-ready row (money as exact strings, rates to 4 places)."""
    row: dict[str, Any] = {k: v for k, v in asdict(c).items() if k not in ("cost_a", "cost_b")}
    for key in ("accuracy_a", "accuracy_b", "diff", "bootstrap_low", "bootstrap_high"):
        row[key] = round(row[key], 4)
    return {**row, "cost_a_usd": _money(c.cost_a), "cost_b_usd": _money(c.cost_b), "verdict": c.verdict}


def run_report(
    result: RunResult, summaries: Sequence[StrategySummary], comparisons: Sequence[Comparison]
) -> dict[str, Any]:
    """`costlens eval report RUN --format json` and `GET /api/evals/{run}`: the run, its summary rows
    and its paired comparisons against the most accurate strategy."""
    return {
        "run": result.run_id,
        "name": result.meta.name,
        "split": result.meta.split,
        "scorer": result.meta.scorer,
        "items": len(result.meta.item_ids),
        "complete": result.complete,
        "rows": summary_rows(summaries),
        "comparisons": [comparison_row(c) for c in comparisons],
    }
