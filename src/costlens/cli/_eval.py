"""`costlens eval run|report|compare|list`: experiments on the user's own labelled data.

The work is in `costlens.evals` (`run_experiment`, `RunResult`, `summarize_run`, `compare`); this
module parses flags, shows a progress bar with the running cost, and prints tables.
`run` and `report` print the same report: per strategy accuracy with its 95% interval, tokens,
latency, cost per call and per correct answer, the cost-accuracy frontier, and each strategy
against the most accurate one (exact McNemar test on the paired items).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from costlens.cli._output import (
    FORMAT_HELP,
    STORE_HELP,
    cells,
    check_format,
    console,
    err_console,
    fail,
    friendly_errors,
    make_table,
    note,
    plain,
    same_places,
    write_csv,
    write_json,
)

if TYPE_CHECKING:
    from costlens.evals._results import RunResult
    from costlens.evals._runner import Progress as RunProgress
    from costlens.evals._stats import Comparison, StrategySummary

__all__ = ["eval_app"]

eval_app = typer.Typer(
    help="Experiments: measure strategies (prompts, fine-tuned models, routers) on your data."
)

Fmt = Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)]
RunsDir = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Where runs are kept (default: runs/ in the costlens data folder)."),
]
PlotOpt = Annotated[
    Path | None, typer.Option("--plot", help="Also draw the cost-accuracy frontier to this PNG or SVG file.")
]
_COLUMNS = (
    "strategy",
    "model",
    "kind",
    "n",
    "accuracy",
    "95% CI",
    "errors",
    "in tok",
    "out tok",
    "p50 ms",
    "p95 ms",
    "cost/call",
    "cost/correct",
    "total",
    "frontier",
)
_RIGHT = ("n", "accuracy", "95% CI", "errors", "in tok", "out tok", "p50 ms", "p95 ms", "cost/call")


@eval_app.command("run")
@friendly_errors
def run(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="The experiment file (TOML).")],
    runs_dir: RunsDir = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Name the run (default: from the spec).")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start a new run even if this spec has one (default: resume it).")
    ] = False,
    keep_answers: Annotated[
        bool, typer.Option("--keep-answers", help="Keep each extracted answer in the run (response text).")
    ] = False,
    store: Annotated[str | None, typer.Option("--store", help=STORE_HELP)] = None,
    plot: PlotOpt = None,
    fmt: Fmt = "table",
) -> None:
    """Run an experiment (or continue it): every strategy on every item of the split."""
    from datetime import UTC, datetime

    import costlens
    from costlens.evals._config import load_spec
    from costlens.evals._runner import RunStopped, run_experiment, run_id_for

    fmt = check_format(fmt)
    spec = load_spec(spec_file)
    if store is not None:
        costlens.configure(store=store)
    if fresh and run_id is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        run_id = f"{run_id_for(spec, spec.load_dataset())}-{stamp}"
    stopped: str | None = None
    with _progress(spec.name) as on_progress:
        try:
            result = run_experiment(
                spec, runs_dir=runs_dir, run_id=run_id, keep_answers=keep_answers, on_progress=on_progress
            )
        except RunStopped as exc:
            result, stopped = exc.result, str(exc)
    costlens.flush()
    note(f"run {result.run_id}: {result.folder}")
    _report(result, fmt, plot)
    if stopped is not None:
        fail(stopped)


@eval_app.command("report")
@friendly_errors
def report(
    run_ref: Annotated[
        str, typer.Argument(metavar="RUN", help="A run id (or a unique prefix) or a run folder.")
    ],
    runs_dir: RunsDir = None,
    plot: PlotOpt = None,
    fmt: Fmt = "table",
) -> None:
    """The report of a run: accuracy, tokens, latency, cost per correct answer, significance."""
    from costlens.evals._results import RunResult, find_run

    fmt = check_format(fmt)
    _report(RunResult.load(find_run(run_ref, runs_dir)), fmt, plot)


@eval_app.command("compare")
@friendly_errors
def compare_runs(
    first: Annotated[str, typer.Argument(metavar="RUN1", help="A run (id, prefix or folder).")],
    second: Annotated[str | None, typer.Argument(metavar="RUN2", help="Another run (default: RUN1).")] = None,
    a: Annotated[str | None, typer.Option("--a", help="RUN1's strategy (default: each shared name).")] = None,
    b: Annotated[
        str | None, typer.Option("--b", help="RUN2's strategy (default: the same name as --a).")
    ] = None,
    runs_dir: RunsDir = None,
    fmt: Fmt = "table",
) -> None:
    """Paired comparison of strategies across two runs (or two strategies of one run) on shared items."""
    from costlens.evals._results import RunResult, find_run
    from costlens.evals._stats import compare

    fmt = check_format(fmt)
    one = RunResult.load(find_run(first, runs_dir))
    two = RunResult.load(find_run(second, runs_dir)) if second is not None else one
    pairs = _pairs(one, two, a, b)
    comparisons = [
        compare(one.of(x), two.of(y), name_a=_label(one, two, x, True), name_b=_label(one, two, y, False))
        for x, y in pairs
    ]
    _comparisons(comparisons, fmt)


def _pairs(one: RunResult, two: RunResult, a: str | None, b: str | None) -> list[tuple[str, str]]:
    from costlens.cli._output import usage_error

    for name, run in ((a, one), (b, two)):
        if name is not None and name not in run.strategy_names:
            usage_error(f"run {run.run_id} has no strategy {name!r}; it has {', '.join(run.strategy_names)}")
    if a is not None:
        return [(a, b or a)]
    if one is two:
        usage_error("give --a and --b to compare two strategies of one run (or give a second run)")
    shared = [n for n in one.strategy_names if n in two.strategy_names]
    if not shared:
        usage_error("the runs share no strategy name; name them with --a and --b")
    return [(n, n) for n in shared]


def _label(one: RunResult, two: RunResult, name: str, first: bool) -> str:
    if one is two:
        return name
    return f"{(one if first else two).run_id}:{name}"


@eval_app.command("list")
@friendly_errors
def list_runs(runs_dir: RunsDir = None, fmt: Fmt = "table") -> None:
    """The runs kept: name, when, items, strategies, how far they got."""
    from costlens.evals._results import RunResult, list_runs

    fmt = check_format(fmt)
    rows: list[dict[str, Any]] = []
    for folder in list_runs(runs_dir):
        result = RunResult.load(folder)
        rows.append(result.overview())
    columns = ["run", "name", "created", "split", "items", "strategies", "done", "expected", "complete"]
    if fmt == "json":
        write_json(rows)
    elif fmt == "csv":
        write_csv(rows, columns)
    else:
        table = make_table(
            columns, title="experiment runs", right=("items", "strategies", "done", "expected")
        )
        for row in rows:
            table.add_row(*cells([row[c] for c in columns]))
        console().print(table)


# -- rendering --------------------------------------------------------------------------------------


def _report(result: RunResult, fmt: str, plot: Path | None) -> None:
    from costlens.evals._stats import compare_to_best, summarize_run, summary_rows

    summaries = summarize_run(result)
    rows = summary_rows(summaries)
    comparisons = compare_to_best(result, summaries)
    if plot is not None:
        from costlens.evals._plot import plot_frontier

        note(f"frontier chart: {plot_frontier(summaries, plot, title=result.meta.name)}")
    if fmt == "json":
        from costlens.evals._stats import run_report

        write_json(run_report(result, summaries, comparisons))
        return
    if fmt == "csv":
        write_csv(rows, list(rows[0]) if rows else [])
        return
    _summary_table(result, summaries)
    if comparisons:
        _comparisons(comparisons, "table", title=f"against the most accurate ({comparisons[0].a})")


def _summary_table(result: RunResult, summaries: Sequence[StrategySummary]) -> None:
    meta = result.meta
    title = f"{meta.name}: {len(meta.item_ids)} {meta.split} items, scorer {meta.scorer}"
    if not result.complete:
        title += " (incomplete)"
    table = make_table(_COLUMNS, title=title, right=(*_RIGHT, "cost/correct", "total"))
    per_call = same_places([s.cost_per_call for s in summaries])
    per_correct = same_places([s.cost_per_correct for s in summaries])
    totals = same_places([s.total_cost for s in summaries])
    for i, s in enumerate(summaries):
        table.add_row(
            *cells(
                [
                    s.strategy,
                    s.model,
                    s.kind,
                    s.n,
                    f"{s.accuracy:.1%}",
                    f"{s.ci_low:.1%}-{s.ci_high:.1%}",
                    s.errors,
                    f"{s.mean_input_tokens:.0f}",
                    f"{s.mean_output_tokens:.0f}",
                    _ms(s.latency_p50_ms),
                    _ms(s.latency_p95_ms),
                    per_call[i],
                    per_correct[i],
                    totals[i],
                    "*" if s.on_frontier else "",
                ]
            )
        )
    console().print(table)
    unpriced = [s.strategy for s in summaries if s.unpriced]
    if unpriced:
        note(
            f"no price for some calls of {', '.join(unpriced)}: their cost is unknown, not $0 "
            "(see `costlens prices missing`)"
        )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _comparisons(comparisons: Sequence[Comparison], fmt: str, *, title: str = "paired comparison") -> None:
    from costlens.evals._stats import comparison_row

    rows = [comparison_row(c) for c in comparisons]
    if fmt == "json":
        write_json(rows)
        return
    if fmt == "csv":
        write_csv(rows, list(rows[0]) if rows else [])
        return
    columns = [
        "a",
        "b",
        "pairs",
        "a only",
        "b only",
        "accuracy a",
        "accuracy b",
        "diff (95% CI)",
        "McNemar p",
        "verdict",
    ]
    table = make_table(columns, title=title, right=columns[2:9])
    for c in comparisons:
        diff = f"{c.diff * 100:+.1f} ({c.bootstrap_low * 100:+.1f}, {c.bootstrap_high * 100:+.1f})"
        values = [c.a, c.b, c.pairs, c.a_only, c.b_only, f"{c.accuracy_a:.1%}", f"{c.accuracy_b:.1%}", diff]
        table.add_row(*cells([*values, f"{c.mcnemar_p:.3g}", c.verdict]))
    console().print(table)


@contextmanager
def _progress(name: str) -> Iterator[Any]:
    """A Rich bar on a terminal: answers done, accuracy so far, and the money spent."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    err = err_console()
    if not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(name, total=None, status="")

        def update(p: RunProgress) -> None:
            scored = max(p.done - p.errors, 1)
            status = f"${plain(p.spent)} spent · {p.correct / scored:.0%} correct · {p.errors} errors"
            bar.update(task, completed=p.done, total=p.total, status=status)

        yield update
