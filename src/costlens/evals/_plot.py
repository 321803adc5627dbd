"""The cost/accuracy chart of a run: each strategy's cost per call against its accuracy (with the 95%
interval as error bars), and the Pareto frontier as a step line.

matplotlib is an optional extra (`pip install 'llm-costlens[plot]'`), imported only here, with the
non-interactive Agg backend so it works on servers and in CI. Decimals become floats only for drawing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from costlens._charts import pyplot
from costlens._errors import ConfigError
from costlens.evals._stats import StrategySummary, frontier

__all__ = ["plot_frontier"]

_FORMATS = {".png": "png", ".svg": "svg"}
_ON = "#1f4e79"
_OFF = "#9a9a9a"


def plot_frontier(
    summaries: Sequence[StrategySummary], path: str | Path, *, title: str | None = None, dpi: int = 120
) -> Path:
    """Write the chart as PNG or SVG (by the path's suffix). Strategies whose cost is unknown cannot be
    placed on a cost axis: they are left out and named in a note under the chart."""
    target = Path(path)
    fmt = _FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ConfigError(f"chart path {str(target)!r} must end in .png or .svg")
    plt = pyplot()
    shown = [s for s in summaries if s.cost_per_call is not None and s.n > 0]
    unknown = [s.strategy for s in summaries if s.cost_per_call is None and s.n > 0]
    best = set(frontier(shown))
    fig, ax = plt.subplots(figsize=(8.5, 5.6), layout="constrained")
    try:
        xs = [float(s.cost_per_call) for s in shown if s.cost_per_call is not None]
        positive = [x for x in xs if x > 0]
        log = bool(positive) and len(positive) == len(xs) and max(positive) > 10 * min(positive)
        for s, x in zip(shown, xs, strict=True):
            colour = _ON if s.strategy in best else _OFF
            ax.errorbar(
                [x],
                [s.accuracy],
                yerr=[[max(0.0, s.accuracy - s.ci_low)], [max(0.0, s.ci_high - s.accuracy)]],
                fmt="o",
                color=colour,
                ecolor=colour,
                elinewidth=1.2,
                capsize=4,
                markersize=7,
                zorder=3,
            )
        labels: dict[tuple[float, float], list[str]] = {}
        for s, x in zip(shown, xs, strict=True):
            labels.setdefault((x, s.accuracy), []).append(s.strategy)
        for (x, accuracy), names in labels.items():  # exact ties share one label instead of overprinting
            ax.annotate(
                _text(", ".join(names)),
                (x, accuracy),
                xytext=(7, 5),
                textcoords="offset points",
                fontsize=9,
                color="#222222",
            )
        line = sorted((x, s.accuracy) for s, x in zip(shown, xs, strict=True) if s.strategy in best)
        if len(line) > 1:
            ax.step(
                [p[0] for p in line],
                [p[1] for p in line],
                where="post",
                color=_ON,
                linewidth=1.6,
                linestyle="--",
                alpha=0.8,
                label="frontier: most accurate at each cost",
                zorder=2,
            )
            ax.legend(loc="lower right", fontsize=9)
        if log:
            ax.set_xscale("log")
        if not shown:
            ax.text(
                0.5, 0.5, "no strategy has a known cost", ha="center", va="center", transform=ax.transAxes
            )
        _axes(ax, log, unknown)
        ax.set_title(_text(title or "Accuracy against cost per call"), fontsize=12, fontweight="bold")
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=dpi, format=fmt)
    finally:
        plt.close(fig)
    return target


def _axes(ax: Any, log: bool, unknown: Sequence[str]) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

    label = "cost per call (USD" + (", log scale)" if log else ")")
    if unknown:  # under the axis label, so the layout makes room for it
        label += "\nleft out, cost unknown: " + ", ".join(unknown)
    ax.set_xlabel(_text(label))
    ax.margins(x=0.1)  # room for the labels of the dearest points
    ax.set_ylabel("accuracy (bars: 95% Wilson interval)")
    ax.set_ylim(-0.02, 1.04)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _text(_usd(v))))
    if log:
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)


def _usd(value: float) -> str:
    """`$0.00125`, `$1.5`: up to three significant digits, trailing zeros dropped."""
    if value <= 0:
        return "$0"
    places = max(0, 2 - math.floor(math.log10(value)))
    text = f"{value:.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"${text}"


def _text(text: str) -> str:
    """Escape `$`, which matplotlib would otherwise read as the start of mathtext."""
    return text.replace("$", r"\$")
