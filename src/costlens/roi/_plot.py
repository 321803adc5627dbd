"""Charts of a plan: cumulative curves with the payback marked, and the tornado.

The curves are on the basis the verdict uses (`Plan.decision_basis`): cumulative cost, or, when the
verdict compares net value, cumulative net cost (cost minus the value of the answers), so the
payback star is where the curve the verdict reads crosses the baseline's. Each label says which.

matplotlib is an optional extra (`pip install 'llm-costlens[plot]'`), imported only here, with the
non-interactive Agg backend so it works on servers and in CI. Decimals become floats only for
drawing; every number printed on a chart is formatted from the exact values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from costlens._charts import pyplot
from costlens.roi._money import fmt_decimal, fmt_money
from costlens.roi._plan import PathPlan, Plan
from costlens.roi._sensitivity import TornadoBar

__all__ = ["Curve", "curve_series", "plot_plan"]

_COLOURS = ("#1f4e79", "#c0504d", "#4f8f3a", "#8064a2", "#e08a1e", "#2c9aa0")
_TOP = 10


def plot_plan(plan: Plan, path: str | Path, bars: Sequence[TornadoBar] = (), *, dpi: int = 120) -> Path:
    """Write a PNG: cumulative costs per path (left) and, when `bars` are given, the tornado (right)."""
    plt = pyplot()
    target = Path(path)
    panels = 2 if bars else 1
    fig, axes = plt.subplots(1, panels, figsize=(7.5 * panels, 5.2), layout="constrained", squeeze=False)
    try:
        _curves(axes[0][0], plan)
        if bars:
            _tornado(axes[0][1], plan, bars[:_TOP])
        title = plan.scenario.title or "Prompt engineering vs fine-tuning"
        fig.suptitle(_text(title), fontsize=13, fontweight="bold")
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return target


@dataclass(frozen=True, slots=True)
class Curve:
    """One path's curve: cumulative values at the end of months 0..horizon, its payback and its label."""

    path: str
    values: list[Decimal]
    payback: Fraction | None
    within_horizon: bool
    label: str


def _monthly(p: PathPlan, basis: str) -> list[Decimal]:
    """Month 0..horizon amounts on the basis: cost, or cost minus the answers' value."""
    costs = [m.total for m in p.months]
    if basis == "cost" or p.values is None:
        return costs
    return [c - v for c, v in zip(costs, p.values[: len(costs)], strict=True)]


def curve_series(plan: Plan) -> tuple[str, list[Curve]]:
    """The chart's basis (the verdict's) and one cumulative curve per path, labelled with that basis."""
    basis = plan.decision_basis
    curves = []
    for p in plan.paths:
        running, values = Decimal(0), []
        for amount in _monthly(p, basis):
            running += amount
            values.append(running)
        c = plan.comparison(p.name, basis)
        name = p.name if p.name.replace("-", "_") == p.kind else f"{p.name} ({p.kind.replace('_', ' ')})"
        if c is None:
            label, payback, within = f"{name}: baseline", None, False
        elif c.payback.months is None:
            label, payback, within = f"{name}: never pays back on {basis}", None, False
        else:
            payback, within = c.payback.months, c.payback.within_horizon
            label = f"{name}: pays back at {fmt_decimal(payback, 2)} months on {basis}"
        curves.append(Curve(p.name, values, payback, within, label))
    return basis, curves


def _cumulative_at(curve: Curve, t: Fraction) -> float:
    """The curve at time t (months), amounts accruing evenly within a month."""
    values = curve.values
    whole = int(t)
    if whole >= len(values) - 1:
        return float(values[-1])
    share = t - whole
    step = values[whole + 1] - values[whole]
    return float(values[whole] + step * Decimal(share.numerator) / Decimal(share.denominator))


def _curves(ax: Any, plan: Plan) -> None:
    """Cumulative cost (or net cost) per path; a star where a path's curve crosses the baseline's."""
    months = list(range(plan.scenario.horizon_months + 1))
    basis, curves = curve_series(plan)
    for i, curve in enumerate(curves):
        colour = _COLOURS[i % len(_COLOURS)]
        values = [float(v) for v in curve.values]
        marker = "o" if len(months) <= 25 else None
        ax.plot(
            months,
            values,
            color=colour,
            linewidth=2.2,
            marker=marker,
            markersize=3.5,
            label=_text(curve.label),
        )
        if curve.payback is not None and curve.within_horizon:
            x = curve.payback
            ax.plot(
                [float(x)],
                [_cumulative_at(curve, x)],
                marker="*",
                markersize=17,
                color=colour,
                markeredgecolor="#222222",
                zorder=5,
                linestyle="none",
            )
    ax.set_xlabel("month (0 = up-front costs); star = payback, where the curve crosses the baseline")
    if basis == "cost":
        ax.set_ylabel("cumulative cost (USD)")
        ax.set_title("Cumulative cost by path (payback on cost, the verdict's basis)", fontsize=11)
        ax.set_ylim(bottom=0)
    else:
        ax.set_ylabel("cumulative net cost: cost - value of the answers (USD)")
        ax.set_title("Cumulative net cost by path (payback on net value, the verdict's basis)", fontsize=11)
    ax.yaxis.set_major_formatter(_dollars())
    ax.set_xlim(0, months[-1])
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=9, frameon=True, framealpha=0.9)


def _tornado(ax: Any, plan: Plan, bars: Sequence[TornadoBar]) -> None:
    base = float(bars[0].base_metric)
    names = [_text(_label(b)) for b in bars]
    ys = list(range(len(bars)))[::-1]
    for y, b in zip(ys, bars, strict=True):
        low, high = float(b.low_metric) - base, float(b.high_metric) - base
        ax.barh(y, low, left=base, color="#9dc3e6", edgecolor="#1f4e79", height=0.6)
        ax.barh(y, high, left=base, color="#f4b183", edgecolor="#c0504d", height=0.6)
    ax.axvline(base, color="#222222", linewidth=1)
    ax.axvline(0, color="#888888", linewidth=1, linestyle="--")
    ax.set_yticks(ys, names, fontsize=8.5)
    ax.xaxis.set_major_formatter(_dollars())
    swing = fmt_decimal(plan.scenario.sensitivity.swing * 100, 0)
    ax.set_xlabel(
        _text(
            f"horizon {plan.decision_basis} advantage of {plan.primary!r} over the baseline (USD)\n"
            f"solid line: base case {fmt_money(bars[0].base_metric)}; dashed line: break-even ($0)"
        )
    )
    ax.set_title(f"What moves the decision (each input -{swing}% blue / +{swing}% orange)", fontsize=11)
    ax.grid(True, axis="x", alpha=0.3)


def _label(bar: TornadoBar) -> str:
    name = bar.lever.removeprefix("paths.")
    return f"{name}\n{fmt_decimal(bar.low_value)} .. {fmt_decimal(bar.high_value)}"


def _text(text: str) -> str:
    """Escape `$`, which matplotlib would otherwise read as the start of mathtext."""
    return text.replace("$", r"\$")


def _dollars() -> Any:
    from matplotlib.ticker import FuncFormatter

    def money(value: float, _pos: object) -> str:
        return _text(f"-${abs(value):,.0f}" if value < 0 else f"${value:,.0f}")

    return FuncFormatter(money)
