"""Which inputs move the decision: a tornado (one input at a time) and a two-input break-even grid.

The decision metric is the horizon advantage of the compared path over the baseline (cost, or net
value when quality is priced): positive means the alternative wins. Each lever is one number of
the resolved scenario, named by a dotted path with path names (`paths.fine-tuned.prices.input`,
`volume.requests_per_month`), moved by ± the scenario's swing. Integer inputs are rounded, shares
are kept within [0, 1], and a move the schema rejects (an epoch count below 1) skips that lever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from pydantic import ValidationError

from costlens._errors import ConfigError
from costlens.roi._money import mul
from costlens.roi._plan import Plan
from costlens.roi._recommend import plan
from costlens.roi._scenario import Scenario

__all__ = ["GridCell", "TornadoBar", "break_even_grid", "grid_values", "levers", "tornado"]

_SKIP = {
    "name",
    "kind",
    "model",
    "provider",
    "base_model",
    "price_entry",
    "note",
    "source",
    "low",
    "high",
    "samples",
}
_SHARES = {"cached_share"}
_GRID_FACTORS = (Decimal("0.25"), Decimal("0.5"), Decimal(1), Decimal(2), Decimal(4))


@dataclass(frozen=True, slots=True)
class TornadoBar:
    """The decision metric with one lever at its low and high value; `flips` when the winner changes."""

    lever: str
    base_value: Decimal
    low_value: Decimal
    high_value: Decimal
    low_metric: Decimal
    high_metric: Decimal
    base_metric: Decimal
    flips: bool

    @property
    def swing(self) -> Decimal:
        return abs(self.high_metric - self.low_metric)


@dataclass(frozen=True, slots=True)
class GridCell:
    """One cell of the two-input grid: the lever values, the advantage and the payback (None: never)."""

    x: Decimal
    y: Decimal
    advantage: Decimal
    payback_months: Fraction | None


def _metric(result: Plan, against: str) -> tuple[Decimal, Fraction | None]:
    c = result.comparison(against, result.decision_basis)
    if c is None:
        raise ConfigError(f"no comparison for path {against!r}: it must not be the baseline")
    return c.advantage, c.payback.months


def _walk(data: Any, prefix: str) -> list[str]:
    out: list[str] = []
    for key, value in data.items():
        if key in _SKIP or isinstance(value, bool) or value is None:
            continue
        if isinstance(value, dict):
            out += _walk(value, f"{prefix}{key}.")
        elif isinstance(value, int | Decimal) and value != 0:
            out.append(f"{prefix}{key}")
    return out


def levers(scenario: Scenario, against: str) -> list[str]:
    """Every non-zero number of the baseline, the compared path, the volume, the horizon and quality."""
    dump = scenario.model_dump()
    names = [scenario.baseline_name, against]
    out = [
        f"volume.{k}"
        for k in ("requests_per_month", "requests_per_day", "growth_per_month")
        if dump["volume"][k]
    ]
    out.append("horizon_months")
    for path in dump["paths"]:
        if path["name"] in names:
            out += _walk(path, f"paths.{path['name']}.")
    if dump.get("quality"):
        out += _walk(dump["quality"], "quality.")
    return out


def _locate(dump: dict[str, Any], lever: str) -> tuple[dict[str, Any], str]:
    """The dict holding the lever's value, and its key (path names resolved to list entries)."""
    parts = lever.split(".")
    node: Any = dump
    try:
        if parts[0] == "paths":
            node = next(p for p in dump["paths"] if p["name"] == parts[1])
            parts = parts[2:]
        for key in parts[:-1]:
            node = node[key]
        node[parts[-1]]  # raises KeyError when the lever names nothing
    except (KeyError, StopIteration, TypeError):
        raise ConfigError(
            f"lever {lever!r} names no number of the scenario; list them with levers()"
        ) from None
    return node, parts[-1]


def _accuracy(node: dict[str, Any], factor: Decimal, points: Decimal) -> Decimal:
    """An accuracy moved down (factor < 1) or up: to its interval's end if stated, else by `points`."""
    down = factor < 1
    bound = node["low"] if down else node["high"]
    if bound is not None:
        return Decimal(bound)
    value = Decimal(node["value"])
    moved = value - points if down else value + points
    return min(max(moved, Decimal(0)), Decimal(1))


def _moved_value(scenario: Scenario, lever: str, factor: Decimal) -> Decimal | int:
    """The lever's value times `factor` (integers rounded, shares kept in [0, 1]).

    Accuracies move in absolute terms (see `SensitivitySettings`), not by a share of themselves;
    a factor of exactly 1 is always the base value.
    """
    node, key = _locate(scenario.model_dump(), lever)
    old = node[key]
    if old is None:
        raise ConfigError(f"lever {lever!r} is not set in the scenario; give it a value first")
    if factor == 1:
        return old  # type: ignore[no-any-return]
    if lever.endswith("accuracy.value"):
        return _accuracy(node, factor, scenario.sensitivity.accuracy_points)
    new: Decimal | int = mul(old, factor)
    if isinstance(old, int):
        return round(Fraction(new))
    if key in _SHARES:
        return min(max(new, Decimal(0)), Decimal(1))
    return new


def _with_value(scenario: Scenario, lever: str, value: Decimal | int) -> Scenario | None:
    """The scenario with the lever set to `value`; None when the schema rejects it."""
    dump = scenario.model_dump()
    node, key = _locate(dump, lever)
    node[key] = value
    try:
        return Scenario.model_validate(dump)
    except ValidationError:
        return None


def _moved(scenario: Scenario, lever: str, factor: Decimal) -> tuple[Scenario, Decimal] | None:
    """The scenario with the lever times `factor`, and the new value; None when the schema rejects it."""
    value = _moved_value(scenario, lever, factor)
    moved = _with_value(scenario, lever, value)
    return None if moved is None else (moved, Decimal(value))


def grid_values(scenario: Scenario, lever: str, factors: Sequence[Decimal]) -> list[Decimal]:
    """The distinct values a grid axis takes: the lever times each factor and the base value, ascending.

    Integer levers round, so two factors can land on one value: it appears once. An accuracy
    without a stated interval moves by ± 1 and ± 2 × `accuracy_points`, within [0, 1]. Values the
    schema rejects (an epoch count of 0) are left out.
    """
    node, key = _locate(scenario.model_dump(), lever)
    if lever.endswith("accuracy.value") and node.get("low") is None and node.get("high") is None:
        step, base = scenario.sensitivity.accuracy_points, Decimal(node[key])
        candidates: list[Decimal | int] = [
            min(max(base + k * step, Decimal(0)), Decimal(1)) for k in (-2, -1, 0, 1, 2)
        ]
    else:
        candidates = [_moved_value(scenario, lever, f) for f in (*factors, Decimal(1))]
    values = sorted({Decimal(v) for v in candidates})
    return [v for v in values if _with_value(scenario, lever, _typed(node[key], v)) is not None]


def _typed(old: object, value: Decimal) -> Decimal | int:
    return int(value) if isinstance(old, int) and not isinstance(old, bool) else value


def tornado(
    scenario: Scenario,
    against: str | None = None,
    swing: Decimal | None = None,
    only: Sequence[str] | None = None,
) -> tuple[TornadoBar, ...]:
    """One bar per lever, largest swing of the decision metric first (levers changing nothing left out)."""
    base = plan(scenario, recommend=False)
    resolved = base.scenario
    target = against or base.primary
    if target is None:
        raise ConfigError("the scenario has no alternative path to compare with the baseline")
    step = swing if swing is not None else resolved.sensitivity.swing
    chosen = list(only or resolved.sensitivity.levers or levers(resolved, target))
    base_metric = _metric(base, target)[0]
    bars = []
    for lever in chosen:
        low, high = _moved(resolved, lever, 1 - step), _moved(resolved, lever, 1 + step)
        if low is None or high is None:
            continue
        lo_metric, hi_metric = (
            _metric(plan(low[0], recommend=False), target)[0],
            _metric(plan(high[0], recommend=False), target)[0],
        )
        old = _locate(resolved.model_dump(), lever)
        bar = TornadoBar(
            lever,
            Decimal(old[0][old[1]]),
            low[1],
            high[1],
            lo_metric,
            hi_metric,
            base_metric,
            flips=any((m > 0) != (base_metric > 0) for m in (lo_metric, hi_metric)),
        )
        if bar.swing:
            bars.append(bar)
    return tuple(sorted(bars, key=lambda b: (-b.swing, b.lever)))


def break_even_grid(
    scenario: Scenario,
    x: str,
    y: str,
    against: str | None = None,
    x_factors: Sequence[Decimal] = _GRID_FACTORS,
    y_factors: Sequence[Decimal] = (
        Decimal("0.5"),
        Decimal("0.75"),
        Decimal(1),
        Decimal("1.25"),
        Decimal("1.5"),
    ),
) -> tuple[tuple[GridCell, ...], ...]:
    """Rows (one per distinct y value, ascending) of cells (one per distinct x value, ascending).

    Each axis holds the lever times each factor and always the base value (`grid_values`), so no
    row or column repeats and the base case is a cell. A combination the schema rejects is left out.
    """
    if x == y:
        raise ConfigError(f"the grid needs two different levers, got {x!r} twice")
    base = plan(scenario, recommend=False)
    target = against or base.primary
    if target is None:
        raise ConfigError("the scenario has no alternative path to compare with the baseline")
    resolved = base.scenario
    x_node = _locate(resolved.model_dump(), x)
    y_node = _locate(resolved.model_dump(), y)
    xs = grid_values(resolved, x, x_factors)
    rows = []
    for vy in grid_values(resolved, y, y_factors):
        moved_y = _with_value(resolved, y, _typed(y_node[0][y_node[1]], vy))
        cells = []
        for vx in xs:
            moved = _with_value(moved_y, x, _typed(x_node[0][x_node[1]], vx)) if moved_y else None
            if moved is None:
                continue
            advantage, payback = _metric(plan(moved, recommend=False), target)
            cells.append(GridCell(vx, vy, advantage, payback))
        rows.append(tuple(cells))
    return tuple(rows)
