"""The evals pages: the runs kept (as `costlens eval list`), and one run's summary and cost–accuracy
frontier (`summarize_run`, as `costlens eval report`).

A run is found only among the folders `list_runs` returns, by its exact folder name: a URL never
names a path on disk."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

__all__ = ["RUN_ID", "frontier_chart", "run_rows", "run_view"]

#: What a run id in a URL may look like (run folders are named by the runner: name, date, digest).
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,199}$")


def _runs_dir(runs_dir: Path | None) -> Path:
    from costlens.evals._results import default_runs_dir

    return runs_dir if runs_dir is not None else default_runs_dir()


def run_rows(runs_dir: Path | None = None) -> dict[str, Any]:
    """One row per run, newest first: what `costlens eval list` shows; a damaged run is listed apart."""
    from costlens._errors import ConfigError
    from costlens.evals._results import RunResult, list_runs

    base = _runs_dir(runs_dir)
    rows: list[dict[str, Any]] = []
    damaged: list[str] = []
    for folder in list_runs(base):
        try:
            result = RunResult.load(folder)
        except ConfigError as exc:
            damaged.append(str(exc))
            continue
        finished = sum(o.error is None for o in result.outcomes)
        rows.append(
            {
                "run": folder.name,
                "name": result.meta.name,
                "created": result.meta.created,
                "split": result.meta.split,
                "items": len(result.meta.item_ids),
                "strategies": len(result.meta.strategies),
                "done": finished,
                "expected": result.expected_count,
                "complete": finished >= result.expected_count,
            }
        )
    rows.reverse()
    return {"runs_dir": str(base), "rows": rows, "damaged": damaged}


def run_view(run: str, runs_dir: Path | None = None) -> dict[str, Any] | None:
    """The run's metadata, its summaries (`summarize_run`) and the frontier chart; None if no such run."""
    from costlens.evals._results import RunResult, list_runs
    from costlens.evals._stats import summarize_run

    if not RUN_ID.match(run):
        return None
    folder = next((f for f in list_runs(_runs_dir(runs_dir)) if f.name == run), None)
    if folder is None:
        return None
    result = RunResult.load(folder)
    summaries = summarize_run(result)
    return {
        "run": folder.name,
        "meta": result.meta,
        "summaries": summaries,
        "unknown_cost": [s.strategy for s in summaries if s.cost_per_call is None and s.n > 0],
        "chart": frontier_chart(summaries, result.meta.name or folder.name),
        "finished": sum(o.error is None for o in result.outcomes),
        "expected": result.expected_count,
    }


def frontier_chart(summaries: list[Any], title: str) -> dict[str, Any] | None:
    """Accuracy against cost per call, the 95% interval as error bars, the Pareto frontier as a step
    line (the same points as `costlens.evals._plot.plot_frontier`). None when no cost is known."""
    shown = [s for s in summaries if s.cost_per_call is not None and s.n > 0]
    if not shown:
        return None
    data: list[dict[str, Any]] = []
    for on in (True, False):
        group = [s for s in shown if s.on_frontier == on]
        if not group:
            continue
        data.append(
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": "on the frontier" if on else "dominated",
                "x": [float(s.cost_per_call) for s in group],
                "y": [s.accuracy for s in group],
                "text": [s.strategy for s in group],
                "textposition": "top right",
                "customdata": [[str(s.cost_per_call), s.n] for s in group],
                "hovertemplate": "%{text}: %{y:.1%} accurate at $%{customdata[0]} per call "
                "(n=%{customdata[1]})<extra></extra>",
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [max(0.0, s.ci_high - s.accuracy) for s in group],
                    "arrayminus": [max(0.0, s.accuracy - s.ci_low) for s in group],
                },
                "marker": {"size": 11, "color": "#1f4e79" if on else "#9a9a9a"},
            }
        )
    line = sorted((float(s.cost_per_call), s.accuracy) for s in shown if s.on_frontier)
    if len(line) > 1:
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "frontier: most accurate at each cost",
                "x": [p[0] for p in line],
                "y": [p[1] for p in line],
                "line": {"shape": "hv", "dash": "dash", "color": "#1f4e79"},
                "hoverinfo": "skip",
            }
        )
    xs = [float(s.cost_per_call) for s in shown]
    positive = [x for x in xs if x > 0]
    log = bool(positive) and len(positive) == len(xs) and max(positive) > 10 * min(positive)
    xaxis: dict[str, Any] = {
        "title": {"text": "cost per call (USD)"},
        "tickprefix": "$",
        "tickformat": ",.6~f",
    }
    if log:
        xaxis.update(type="log", tickvals=_log_ticks(min(positive), max(positive)), tickformat="$,.6~f")
        xaxis.pop("tickprefix")
    layout = {
        "title": {"text": f"Accuracy against cost per call: {title}", "font": {"size": 14}},
        "height": 420,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "xaxis": xaxis,
        "yaxis": {"title": {"text": "accuracy (95% interval)"}, "tickformat": ".0%", "range": [0, 1.05]},
        "legend": {"orientation": "h", "y": -0.2},
    }
    return {"data": data, "layout": layout}


def _log_ticks(low: float, high: float) -> list[float]:
    """1, 2, 5 times each power of ten between `low` and `high` (with one step of margin)."""
    ticks: list[float] = []
    power = math.floor(math.log10(low)) - 1
    while 10.0**power <= high * 10:
        ticks += [m * 10.0**power for m in (1, 2, 5) if low / 2.5 <= m * 10.0**power <= high * 2.5]
        power += 1
    return ticks
