"""Charts as PNG or SVG (matplotlib, the `plot` extra, imported only here; no GUI backend).

- a report with a time bucket: spend over time, stacked by series (the non-time keys; use top-N
  to keep it readable);
- a report without one: each group's share of the cost, as horizontal bars;
- forecasts: spent so far and the forecast remainder per scope, with the interval as whiskers.
Charts show floats; the numbers in tables and files stay exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from costlens.analytics._forecast import Forecast
from costlens.analytics._spend import SpendReport
from costlens.store._time import TIME_KEYS

__all__ = ["check_plot_path", "plot_forecasts", "plot_report"]

_FORMATS = (".png", ".svg")


def _figure(width: float = 9.0, height: float = 5.0) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("charts need matplotlib: pip install 'llm-costlens[plot]'") from None
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _check(path: str | Path) -> Path:
    out = Path(path)
    if out.suffix.lower() not in _FORMATS:
        raise ValueError(f"cannot draw {out.name}: name a .png or .svg file")
    return out


def check_plot_path(path: str | Path) -> Path:
    """What a chart needs, checked before any work: a .png or .svg name, an existing folder, and
    matplotlib (ValueError / ImportError saying what to do). Draws nothing."""
    from importlib.util import find_spec

    out = _check(path)
    folder = out.expanduser().absolute().parent
    if not folder.is_dir():
        raise ValueError(f"cannot draw {out}: there is no folder {folder}")
    if find_spec("matplotlib") is None:
        raise ImportError("charts need matplotlib: pip install 'llm-costlens[plot]'")
    return out


def _label(row: dict[str, object], keys: Sequence[str]) -> str:
    return " / ".join("(none)" if row[k] is None else str(row[k]) for k in keys) or "all calls"


def _usd(value: object) -> float:
    return float(value) if isinstance(value, Decimal | int | float) else 0.0


def plot_report(report: SpendReport, path: str | Path) -> Path:
    """Draw `report` (needs the `cost_usd` measure) to a .png or .svg file; returns the path."""
    out = _check(path)
    if "cost_usd" not in report.measures:
        raise ValueError("a chart of spend needs the cost_usd measure")
    time_keys = [k for k in report.keys if k in TIME_KEYS]
    figure = _figure()
    axes = figure.add_subplot()
    if time_keys:
        _stacked(axes, report, time_keys[0])
    else:
        _shares(axes, report)
    figure.savefig(out)
    return out


def _stacked(axes: Any, report: SpendReport, bucket: str) -> None:
    series_keys = [k for k in report.keys if k != bucket]
    buckets = sorted({str(row[bucket]) for row in report.all_rows})
    series: dict[str, dict[str, float]] = {}
    for row in report.all_rows:
        series.setdefault(_label(row, series_keys), {})[str(row[bucket])] = _usd(row["cost_usd"])
    bottom = [0.0] * len(buckets)
    positions = list(range(len(buckets)))
    for name, values in series.items():
        heights = [values.get(b, 0.0) for b in buckets]
        axes.bar(positions, heights, bottom=bottom, label=name)
        bottom = [a + b for a, b in zip(bottom, heights, strict=True)]
    step = max(1, len(buckets) // 12)
    axes.set_xticks(positions[::step], buckets[::step], rotation=45, ha="right")
    axes.set_ylabel("spend (USD)")
    axes.set_title(f"Spend by {bucket} ({report.timezone})")
    if len(series) > 1:
        axes.legend(fontsize="small")


def _shares(axes: Any, report: SpendReport) -> None:
    rows = report.all_rows[:20]
    total = _usd(report.totals["cost_usd"]) or 1.0
    labels = [_label(row, report.keys) for row in rows][::-1]
    values = [_usd(row["cost_usd"]) / total * 100 for row in rows][::-1]
    axes.barh(labels, values)
    for y, value in enumerate(values):
        axes.annotate(f"{value:.1f}%", (value, y), xytext=(3, 0), textcoords="offset points", va="center")
    axes.set_xlabel("share of spend (%)")
    axes.set_title("Cost share")


def plot_forecasts(forecasts: Sequence[Forecast], path: str | Path) -> Path:
    """Spent so far and the forecast remainder per scope (at most 15), with interval whiskers."""
    out = _check(path)
    shown = list(forecasts)[:15]
    figure = _figure()
    axes = figure.add_subplot()
    labels = [", ".join(f"{v}" for v in f.keys.values()) or "all calls" for f in shown]
    spent = [float(f.spent_usd) for f in shown]
    rest = [float(f.forecast_usd - f.spent_usd) for f in shown]
    positions = list(range(len(shown)))
    axes.bar(positions, spent, label="spent so far")
    axes.bar(positions, rest, bottom=spent, label="forecast", alpha=0.6)
    low = [float(f.forecast_usd - (f.low_usd or f.forecast_usd)) for f in shown]
    high = [float((f.high_usd or f.forecast_usd) - f.forecast_usd) for f in shown]
    totals = [float(f.forecast_usd) for f in shown]
    axes.errorbar(positions, totals, yerr=[low, high], fmt="none", ecolor="black", capsize=4)
    axes.set_xticks(positions, labels, rotation=30, ha="right")
    axes.set_ylabel("USD")
    if shown:
        end = shown[0].window_end
        axes.set_title(f"Spend forecast to {end:%Y-%m-%d %H:%M} UTC ({int(shown[0].level * 100)}% interval)")
    axes.legend(fontsize="small")
    figure.savefig(out)
    return out
