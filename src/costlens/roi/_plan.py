"""The economics of a scenario: monthly and cumulative costs per path, comparisons, cheapest path by volume.

`compute_plan()` resolves prices, simulates every path month by month (exact Decimals), compares
each alternative with the baseline on cost and, when accuracies and the value of an answer are
given, on net value; then it finds which path is cheapest at each constant monthly volume. It
decides nothing: which alternative to centre on (`Plan.primary`) and the verdict
(`Plan.recommendation`) are the decision policy's, in `_recommend`, whose `plan()` fills them in.
This module never imports `_recommend`. A `Plan` is plain data: reports, charts and the CLI read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from costlens.roi._compare import Basis, Comparison, RunRate, compare
from costlens.roi._money import ZERO, mul, total
from costlens.roi._paths import Accuracy, PromptPath, TunedPath
from costlens.roi._resolve import PriceSource, resolve_prices
from costlens.roi._scenario import Quality, Scenario, Volume
from costlens.roi._series import (
    Month,
    TrainingCost,
    fixed_fees,
    one_off_parts,
    request_cost,
    retrain_cost,
    simulate,
    training_cost,
)
from costlens.roi._verdict import Recommendation

if TYPE_CHECKING:
    from costlens.pricing import PriceCatalogue

__all__ = ["PathPlan", "PathQuality", "Plan", "VolumeRange", "compute_plan", "envelope"]


@dataclass(frozen=True, slots=True)
class PathQuality:
    """Answers that are right, what each costs, and (with `[quality]` values) the money they are worth."""

    accuracy: Accuracy
    correct_answers: Decimal
    cost_per_correct: Fraction | None
    value: Decimal | None
    net_value: Decimal | None


@dataclass(frozen=True, slots=True)
class PathPlan:
    """One path over the horizon: months 0..horizon, total cost of ownership, quality."""

    path: PromptPath | TunedPath
    cost_per_request: Decimal
    hosting_per_month: Decimal
    storage_per_month: Decimal
    training: TrainingCost | None
    one_off: dict[str, Decimal]
    months: tuple[Month, ...]
    events: tuple[tuple[int, str], ...]
    tco: Decimal
    quality: PathQuality | None
    extended: tuple[Month, ...] = field(repr=False)
    values: tuple[Decimal, ...] | None = field(default=None, repr=False)
    retrain_cost: Decimal | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def recurring(self) -> dict[str, Decimal]:
        """The path's recurring monthly costs by name (USD per month, from month 1)."""
        return dict(self.path.recurring)

    @property
    def recurring_per_month(self) -> Decimal:
        return total(list(self.path.recurring.values()))

    def horizon_total(self, basis: Basis) -> Decimal:
        """What the verdict ranks paths by: the TCO on cost, the TCO minus the answers' value on net value."""
        if basis == "net value" and self.quality is not None and self.quality.net_value is not None:
            return -self.quality.net_value
        return self.tco

    @property
    def kind(self) -> str:
        return self.path.kind

    def cumulative(self) -> list[Decimal]:
        """Cumulative cost at the end of months 0..horizon (month 0: the up-front costs)."""
        out, running = [], ZERO
        for month in self.months:
            running += month.total
            out.append(running)
        return out


@dataclass(frozen=True, slots=True)
class VolumeRange:
    """A path is the best in [low, high) requests per month (constant volume over the horizon)."""

    path: str
    low: Fraction
    high: Fraction | None


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything computed for a scenario; `scenario` is the resolved one (every price filled in).

    `primary` (the alternative the verdict and the sensitivity centre on) and `recommendation` are
    set by the decision policy (`costlens.roi.plan`); `compute_plan()` leaves them None.
    """

    scenario: Scenario
    sources: tuple[PriceSource, ...]
    volumes: tuple[int, ...]
    paths: tuple[PathPlan, ...]
    comparisons: tuple[Comparison, ...]
    value_comparisons: tuple[Comparison, ...]
    cheapest: tuple[VolumeRange, ...]
    best_value: tuple[VolumeRange, ...]
    primary: str | None = None
    recommendation: Recommendation | None = None
    lines: tuple[_Lines, _Lines] = field(default=({}, {}), repr=False)

    @property
    def baseline(self) -> PathPlan:
        return self.path(self.scenario.baseline_name)

    def path(self, name: str) -> PathPlan:
        return next(p for p in self.paths if p.name == name)

    def comparison(self, name: str, basis: Basis = "cost") -> Comparison | None:
        pool = self.comparisons if basis == "cost" else self.value_comparisons
        return next((c for c in pool if c.path == name), None)

    @property
    def decision_basis(self) -> Basis:
        """Net value when every path has an accuracy and `[quality]` prices answers, else cost."""
        return "net value" if self.value_comparisons else "cost"

    def ranking(self, basis: Basis | None = None) -> list[PathPlan]:
        """Every path, best first over the horizon: lowest TCO on cost, highest net value on net value.

        Ties keep the scenario's order. This is what the verdict compares, every path with every other.
        """
        chosen = basis or self.decision_basis
        return sorted(self.paths, key=lambda p: p.horizon_total(chosen))

    def versus(self, name: str, reference: str, basis: Basis | None = None) -> Comparison:
        """Path `name` against any other path `reference` (not only the baseline), as `comparison()` does."""
        chosen = basis or self.decision_basis
        if reference == self.scenario.baseline_name:
            found = self.comparison(name, chosen)
            if found is not None:
                return found
        lines = self.lines[0] if chosen == "cost" else self.lines[1]
        pair = (self.path(reference), self.path(name))
        return _compare_pair(self.scenario, pair, list(self.volumes_searched), lines, chosen)

    @property
    def volumes_searched(self) -> tuple[int, ...]:
        """Requests in months 1..the payback search window (`volumes` stops at the horizon)."""
        return tuple(m.requests for m in self.paths[0].extended[1:])


def compute_plan(scenario: Scenario, *, catalogue: PriceCatalogue | None = None) -> Plan:
    """The economics of a scenario (prices it left out come from the catalogues), with no decision."""
    resolved, sources = resolve_prices(scenario, catalogue)
    n, horizon = resolved.search_months, resolved.horizon_months
    volumes = resolved.volume.series(n, resolved.conventions.days_per_month)
    runs = _simulate_all(resolved, volumes)
    valued = resolved.quality is not None and all(p.accuracy is not None for p in resolved.paths)
    paths = tuple(_path_plan(resolved, runs, name, volumes) for name in runs)
    lines = _lines(resolved)
    return Plan(
        scenario=resolved,
        sources=sources,
        volumes=tuple(volumes[:horizon]),
        paths=paths,
        comparisons=_compare_all(resolved, paths, volumes, lines[0], "cost"),
        value_comparisons=_compare_all(resolved, paths, volumes, lines[1], "net value") if valued else (),
        cheapest=envelope(lines[0], [p.name for p in paths]),
        best_value=envelope(lines[1], [p.name for p in paths]) if valued else (),
        lines=lines,
    )


_Runs = dict[str, tuple[list[Month], list[tuple[int, str]]]]
_Lines = dict[str, tuple[Fraction, Fraction]]


def _simulate_all(scenario: Scenario, volumes: Sequence[int]) -> _Runs:
    """Every path's months, the baseline first (a tuned path past its end of life reverts to it)."""
    base = scenario.path(scenario.baseline_name)
    runs: _Runs = {base.name: simulate(base, volumes, scenario.conventions)}
    for path in scenario.paths:
        if path.name not in runs:
            runs[path.name] = simulate(path, volumes, scenario.conventions, runs[base.name][0])
    return {p.name: runs[p.name] for p in scenario.paths}


def _unit_value(accuracy: Accuracy, quality: Quality) -> Decimal:
    """Value of one answer: accuracy × value of a correct one − (1 − accuracy) × cost of an error."""
    return mul(accuracy.value, quality.value_per_correct) - mul(1 - accuracy.value, quality.cost_per_error)


def _accuracy_by_month(
    scenario: Scenario, path: PromptPath | TunedPath, months: Sequence[Month]
) -> list[Accuracy]:
    base = scenario.path(scenario.baseline_name).accuracy
    own = path.accuracy
    assert own is not None
    return [base if m.serving == "reverted" and base is not None else own for m in months[1:]]


def _path_plan(scenario: Scenario, runs: _Runs, name: str, volumes: Sequence[int]) -> PathPlan:
    path = scenario.path(name)
    months, events = runs[name]
    horizon = scenario.horizon_months
    shown = tuple(months[: horizon + 1])
    tco = total([m.total for m in shown])
    hosting = storage = ZERO
    job = retrain = None
    parts = one_off_parts(path.one_off)
    if isinstance(path, TunedPath):
        hosting, storage = fixed_fees(path, scenario.conventions)
        job = training_cost(path.training, scenario.conventions)
        retrain = retrain_cost(path, scenario.conventions)
        parts = {"training": months[0].training, **parts}
    quality, values = None, None
    if path.accuracy is not None:
        accuracy = _accuracy_by_month(scenario, path, months)
        correct = total([mul(v, a.value) for v, a in zip(volumes[:horizon], accuracy, strict=False)])
        value = net = None
        if scenario.quality is not None:
            per_month = [
                mul(v, _unit_value(a, scenario.quality)) for v, a in zip(volumes, accuracy, strict=True)
            ]
            values = (ZERO, *per_month)
            value = total(per_month[:horizon])
            net = value - tco
        per_correct = Fraction(tco) / Fraction(correct) if correct else None
        quality = PathQuality(path.accuracy, correct, per_correct, value, net)
    return PathPlan(
        path=path,
        cost_per_request=request_cost(path),
        hosting_per_month=hosting,
        storage_per_month=storage,
        training=job,
        one_off=parts,
        months=shown,
        events=tuple(e for e in events if e[0] <= horizon),
        tco=tco,
        quality=quality,
        extended=tuple(months),
        values=values,
        retrain_cost=retrain,
    )


def _run_rate(scenario: Scenario, p: PathPlan, basis: Basis) -> RunRate:
    per_request = p.cost_per_request
    if basis == "net value" and p.path.accuracy is not None and scenario.quality is not None:
        per_request = per_request - _unit_value(p.path.accuracy, scenario.quality)
    if not isinstance(p.path, TunedPath):
        return RunRate(per_request, p.recurring_per_month)
    lc = p.path.lifecycle
    eol = lc.end_of_life_month if lc.on_end_of_life == "revert" else None
    fixed = total([p.hosting_per_month, p.storage_per_month, p.recurring_per_month])
    return RunRate(per_request, fixed, eol, lc.retrain_every_months, p.retrain_cost or ZERO)


def _series(p: PathPlan, basis: Basis) -> list[Decimal]:
    costs = [m.total for m in p.extended]
    if basis == "cost" or p.values is None:
        return costs
    return [c - v for c, v in zip(costs, p.values, strict=True)]


def _compare_all(
    scenario: Scenario,
    paths: Sequence[PathPlan],
    volumes: Sequence[int],
    lines: dict[str, tuple[Fraction, Fraction]],
    basis: Basis,
) -> tuple[Comparison, ...]:
    base = next(p for p in paths if p.name == scenario.baseline_name)
    return tuple(_compare_pair(scenario, (base, p), volumes, lines, basis) for p in paths if p is not base)


def _compare_pair(
    scenario: Scenario,
    pair: tuple[PathPlan, PathPlan],
    volumes: Sequence[int],
    lines: _Lines,
    basis: Basis,
) -> Comparison:
    """`pair[1]` against `pair[0]` (the baseline, or any other path)."""
    base, p = pair
    gap = (lines[p.name][0] - lines[base.name][0], lines[p.name][1] - lines[base.name][1])
    rates = (_run_rate(scenario, base, basis), _run_rate(scenario, p, basis))
    series = (_series(base, basis), _series(p, basis))
    return compare(p.name, base.name, basis, *series, volumes, scenario.horizon_months, rates, gap)


def _lines(
    scenario: Scenario,
) -> tuple[dict[str, tuple[Fraction, Fraction]], dict[str, tuple[Fraction, Fraction]]]:
    """Horizon totals as straight lines a + b·V in a constant monthly volume V: (cost, cost − value).

    Every month's cost is a fixed part plus V × a per-request part, so two evaluations (V = 0 and
    V = 1) give each line exactly.
    """
    at: list[dict[str, tuple[Fraction, Fraction]]] = []
    horizon = scenario.horizon_months
    for v in (0, 1):
        flat = scenario.model_copy(update={"volume": Volume(requests_per_month=v)})
        volumes = [v] * horizon
        runs = _simulate_all(flat, volumes)
        row = {}
        for name, (months, _) in runs.items():
            cost = Fraction(total([m.total for m in months]))
            value = Fraction(0)
            path = flat.path(name)
            if flat.quality is not None and path.accuracy is not None:
                accuracy = _accuracy_by_month(flat, path, months)
                value = Fraction(total([mul(v, _unit_value(a, flat.quality)) for a in accuracy]))
            row[name] = (cost, value)
        at.append(row)
    cost_lines = {n: (at[0][n][0], at[1][n][0] - at[0][n][0]) for n in at[0]}
    value_lines = {
        n: (at[0][n][0] - at[0][n][1], (at[1][n][0] - at[1][n][1]) - (at[0][n][0] - at[0][n][1]))
        for n in at[0]
    }
    return cost_lines, value_lines


def envelope(lines: dict[str, tuple[Fraction, Fraction]], order: Sequence[str]) -> tuple[VolumeRange, ...]:
    """Which line is lowest over V ≥ 0, as ranges [low, high); ties go to the earlier path in `order`."""
    names = [n for n in order if n in lines]
    points = set()
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            (a0, a1), (b0, b1) = lines[a], lines[b]
            if a1 != b1 and (x := (b0 - a0) / (a1 - b1)) > 0:
                points.add(x)
    bounds = [Fraction(0), *sorted(points)]
    ranges: list[VolumeRange] = []
    for k, low in enumerate(bounds):
        high = bounds[k + 1] if k + 1 < len(bounds) else None
        probe = (low + high) / 2 if high is not None else low + 1
        best = min(names, key=lambda n: (lines[n][0] + lines[n][1] * probe, names.index(n)))
        if ranges and ranges[-1].path == best:
            ranges[-1] = VolumeRange(best, ranges[-1].low, high)
        else:
            ranges.append(VolumeRange(best, low, high))
    return tuple(ranges)
