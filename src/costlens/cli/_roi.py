"""`costlens roi plan|from-usage|catalogue`: prompt engineering vs fine-tuning, from a file or from traffic.

The tables, JSON and the report all come from `costlens.roi`; this module only parses flags,
prints and writes files. A bad scenario or a missing price is a usage error (exit 2, one line
naming the file, the field and the fix).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from costlens.cli._output import (
    FORMAT_HELP,
    STORE_HELP,
    cells,
    check_format,
    console,
    make_table,
    money,
    money_places,
    note,
    one_line,
    open_cli_store,
    usage_error,
    write_csv,
    write_json,
)

if TYPE_CHECKING:
    from costlens.roi import Plan, Scenario, TornadoBar
    from costlens.store import Store

_PLOT_HELP = "Write a PNG: cumulative cost curves with the payback marked, and the tornado chart."
_REPORT_HELP = "Write a report for people: Markdown (.md) or HTML (.html)."
_AGAINST_HELP = "The alternative path to centre on (default: the tuned path with the largest advantage)."
_GRID_HELP = "Two levers X,Y for the payback grid (default: volume and the top tornado lever)."
_QUALITY_HELP = (
    "Take paths' accuracy from an experiment run (folder, id or id prefix): a path named after a "
    "strategy, else one with the model of exactly one strategy, gets its measured accuracy and 95% interval."
)

Fmt = Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)]
PlotOpt = Annotated[Path | None, typer.Option("--plot", metavar="PNG", help=_PLOT_HELP)]
ReportOpt = Annotated[Path | None, typer.Option("--report", metavar="FILE", help=_REPORT_HELP)]
AgainstOpt = Annotated[str | None, typer.Option("--against", metavar="PATH", help=_AGAINST_HELP)]
GridOpt = Annotated[str | None, typer.Option("--grid", metavar="X,Y", help=_GRID_HELP)]
QualityOpt = Annotated[str | None, typer.Option("--quality-from", metavar="RUN", help=_QUALITY_HELP)]


def _number(text: str) -> Decimal:
    """A flag value as an exact Decimal (`1_000_000`, `0.46`); click turns the error into exit 2."""
    try:
        value = Decimal(text.replace("_", ""))
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a number: give one such as 1500 or 0.46") from None
    if not value.is_finite():
        raise typer.BadParameter(f"{text!r}: give a finite number")
    return value


def _dec(help_text: str) -> Any:
    return typer.Option(metavar="NUMBER", parser=_number, help=help_text)


Dec = Decimal | None
_MONTHLY_HELP = "A monthly cost of the {} path, NAME=USD (upkeep=2000); repeat for more. From month 1."


def _monthly(items: list[str] | None, flag: str) -> dict[str, Decimal] | None:
    """`NAME=USD` flag values as a mapping; a bad one is a usage error naming the flag."""
    out: dict[str, Decimal] = {}
    for item in items or []:
        name, sep, amount = item.partition("=")
        try:
            if not sep or not name.strip():
                raise typer.BadParameter("")
            out[name.strip()] = _number(amount)
        except typer.BadParameter:
            usage_error(f"bad {flag} {item!r}: give NAME=USD, e.g. {flag} upkeep=2000")
    return out or None


def plan(
    scenario: Annotated[Path, typer.Argument(help="Scenario file: .toml, .yaml/.yml or .json.")],
    fmt: Fmt = "table",
    plot: PlotOpt = None,
    report: ReportOpt = None,
    against: AgainstOpt = None,
    grid: GridOpt = None,
    quality_from: QualityOpt = None,
) -> None:
    """Compare the paths of a scenario: monthly costs, payback, break-even, ROI, sensitivity, verdict."""
    from costlens.roi import ScenarioError, load_scenario

    fmt = check_format(fmt)
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        usage_error(str(exc))
    extra = None
    if quality_from is not None:
        loaded, extra = _measured(loaded, quality_from)
    _run(loaded, fmt, plot, report, against, grid, extra)


def _measured(scenario: Scenario, ref: str) -> tuple[Scenario, dict[str, Any]]:
    """`--quality-from RUN`: the scenario with the run's measured accuracies (`costlens.evals._export`);
    the mapping notes go to stderr, and under `quality_from` in the JSON. A run that cannot be read, or
    that measured no path, is a usage error."""
    from costlens._errors import ConfigError
    from costlens.evals._export import roi_quality
    from costlens.evals._results import RunResult, find_run

    try:
        run = RunResult.load(find_run(ref))
        measured, notes = roi_quality(run, scenario)
    except ConfigError as exc:
        usage_error(f"--quality-from {ref}: {one_line(str(exc))}")
    for line in notes:
        note(line)
    return measured, {"quality_from": {"run": run.run_id, "notes": notes}}


def _run(
    scenario: Scenario,
    fmt: str,
    plot_path: Path | None,
    report_path: Path | None,
    against: str | None,
    grid: str | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Plan, sensitivity, outputs: shared by `plan` and `from-usage`."""
    from costlens._errors import ConfigError
    from costlens.roi import break_even_grid, plan, tornado

    if against is not None:
        if against not in [p.name for p in scenario.paths]:
            usage_error(
                f"--against {against!r} names no path; use one of {', '.join(p.name for p in scenario.paths)}"
            )
        scenario = scenario.model_copy(update={"compare": against})
    try:
        result = plan(scenario)
        bars = tornado(result.scenario) if result.primary else ()
        cells_ = _grid(result, bars, grid)
        rows = break_even_grid(result.scenario, *cells_) if cells_ else None
    except ConfigError as exc:
        usage_error(str(exc))
    chart = _write_plot(result, bars, plot_path) if plot_path else None
    if report_path is not None:
        _write_report(result, bars, report_path, chart, (*cells_, rows) if cells_ and rows else None)
    _print(result, bars, fmt, extra, (*cells_, rows) if cells_ and rows else None)


def _grid(result: Plan, bars: tuple[TornadoBar, ...], text: str | None) -> tuple[str, str] | None:
    if text is not None:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2 or not all(parts):
            usage_error(
                f"bad --grid {text!r}: give two levers, e.g. --grid volume.requests_per_month,horizon_months"
            )
        return parts[0], parts[1]
    if result.scenario.sensitivity.grid is not None:
        return result.scenario.sensitivity.grid
    volume = next((b.lever for b in bars if b.lever.startswith("volume.requests")), None)
    other = next((b.lever for b in bars if not b.lever.startswith("volume.")), None)
    return (volume, other) if volume and other else None


def _write_plot(result: Plan, bars: tuple[TornadoBar, ...], path: Path) -> Path:
    from costlens.roi import plot_plan

    written = plot_plan(result, path, bars)
    note(f"chart written to {written}")
    return written


def _write_report(
    result: Plan, bars: tuple[TornadoBar, ...], path: Path, chart: Path | None, grid: Any
) -> None:
    import os

    from costlens.roi import render_report

    kind = "html" if path.suffix.lower() in (".html", ".htm") else "markdown"
    link = None if chart is None else os.path.relpath(chart.resolve(), path.resolve().parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, kind, chart=link, bars=bars, grid=grid), encoding="utf-8")
    note(f"{kind} report written to {path}")


def _print(
    result: Plan, bars: tuple[TornadoBar, ...], fmt: str, extra: dict[str, Any] | None, grid: Any
) -> None:
    from costlens.roi._export import (
        MONTH_COLUMNS,
        grid_to_dict,
        plan_month_rows,
        plan_to_dict,
        tornado_to_dict,
    )

    if fmt == "csv":
        write_csv(plan_month_rows(result), MONTH_COLUMNS)
        return
    if fmt == "json":
        data = {**(extra or {}), **plan_to_dict(result)}
        data["sensitivity"] = {
            "against": result.primary,
            "swing": result.scenario.sensitivity.swing,
            "tornado": tornado_to_dict(bars),
            "grid": grid_to_dict(*grid) if grid else None,
        }
        data["months"] = plan_month_rows(result)
        write_json(data)
        return
    _print_tables(result, bars)


def _print_tables(result: Plan, bars: tuple[TornadoBar, ...]) -> None:
    from costlens.roi._report import summary_tables

    out = console()
    if result.recommendation is not None:
        out.print(Text(result.recommendation.headline, style="bold"))
        out.print()
    for title, header, rows in summary_tables(result, bars):
        table = make_table(header, title=title)
        for row in rows:
            table.add_row(*cells(row))
        out.print(table)


def from_usage(
    feature: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only calls tagged feature=NAME.")
    ] = None,
    since: Annotated[
        str, typer.Option(metavar="WHEN", help="Start of the observed window: 30d, 2w, ISO date.")
    ] = "30d",
    until: Annotated[
        str | None, typer.Option(metavar="WHEN", help="End of the window (default: now).")
    ] = None,
    store: Annotated[str | None, typer.Option(metavar="URL", help=STORE_HELP)] = None,
    trace: Annotated[
        Path | None, typer.Option(metavar="CSV", help="Use an imported trace CSV instead of the store.")
    ] = None,
    trace_model: Annotated[
        str, typer.Option(metavar="MODEL", help="Model the trace's calls are priced at.")
    ] = "gpt-4o-mini",
    trace_provider: Annotated[
        str, typer.Option(metavar="PROVIDER", help="Provider of --trace-model.")
    ] = "openai",
    assumptions: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Partial scenario: tuned path, horizon, quality, task."),
    ] = None,
    tuned_model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Base model to fine-tune (default: the measured one).")
    ] = None,
    tuned_provider: Annotated[
        str | None, typer.Option(metavar="PROVIDER", help="Provider of the tuned model.")
    ] = None,
    tuned_input_tokens: Annotated[Dec, _dec("Prompt tokens per request after tuning.")] = None,
    tuned_output_tokens: Annotated[Dec, _dec("Output tokens per request (default: measured).")] = None,
    training_tokens: Annotated[Dec, _dec("Training dataset tokens per epoch.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Training epochs.")] = None,
    validation_tokens: Annotated[Dec, _dec("Validation tokens per job.")] = None,
    training_cost: Annotated[Dec, _dec("A quoted training job price (USD).")] = None,
    examples: Annotated[int | None, typer.Option(min=0, help="Examples to label.")] = None,
    label_cost: Annotated[Dec, _dec("Labelling cost per example (USD).")] = None,
    eng_hours: Annotated[Dec, _dec("Engineering hours.")] = None,
    eng_rate: Annotated[Dec, _dec("Engineering cost per hour (USD).")] = None,
    hosting_per_hour: Annotated[Dec, _dec("Hosting of the tuned model, USD per hour (24/7).")] = None,
    setup: Annotated[Dec, _dec("Setup cost of the tuned path (USD, month 0).")] = None,
    monthly: Annotated[
        list[str] | None, typer.Option(metavar="NAME=USD", help=_MONTHLY_HELP.format("tuned"))
    ] = None,
    current_monthly: Annotated[
        list[str] | None, typer.Option(metavar="NAME=USD", help=_MONTHLY_HELP.format("measured"))
    ] = None,
    amortise_months: Annotated[
        int | None, typer.Option(min=1, help="Spread each training job over N monthly instalments.")
    ] = None,
    retrain_every: Annotated[
        int | None, typer.Option(min=1, help="Retrain every N months of service.")
    ] = None,
    retrain_share: Annotated[
        Dec, _dec("A retraining's cost as a share of the first job (default 1).")
    ] = None,
    grader_model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Reinforcement fine-tuning: the grader model.")
    ] = None,
    grader_provider: Annotated[
        str | None, typer.Option(metavar="PROVIDER", help="Provider of --grader-model.")
    ] = None,
    grader_input_tokens: Annotated[Dec, _dec("Grader input tokens per training job.")] = None,
    grader_output_tokens: Annotated[Dec, _dec("Grader output tokens per training job.")] = None,
    horizon: Annotated[int | None, typer.Option(min=1, help="Horizon in months.")] = None,
    growth: Annotated[Dec, _dec("Volume growth per month, a share (0.05 = 5%).")] = None,
    write_scenario: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Save the built scenario (.toml or .json).")
    ] = None,
    fmt: Fmt = "table",
    plot: PlotOpt = None,
    report: ReportOpt = None,
    against: AgainstOpt = None,
    grid: GridOpt = None,
    quality_from: QualityOpt = None,
) -> None:
    """Plan from recorded traffic: volume, tokens and prices are measured; you give the tuned path."""
    from costlens.reports import parse_since
    from costlens.roi import MissingTunedPath, TunedAssumptions, scenario_from_traffic
    from costlens.roi._load import read_data, scenario_to_toml

    fmt = check_format(fmt)
    try:
        data = read_data(assumptions) if assumptions else {}
        start, end = (None, None) if trace else (parse_since(since), parse_since(until) if until else None)
    except ValueError as exc:
        usage_error(str(exc))
    tuned = TunedAssumptions(
        input_tokens=tuned_input_tokens,
        output_tokens=tuned_output_tokens,
        provider=tuned_provider,
        model=tuned_model,
        training_tokens=training_tokens,
        epochs=epochs,
        validation_tokens=validation_tokens,
        training_cost=training_cost,
        examples_to_label=examples,
        cost_per_example=label_cost,
        engineering_hours=eng_hours,
        hourly_rate=eng_rate,
        hosting_per_hour=hosting_per_hour,
        setup=setup,
        recurring=_monthly(monthly, "--monthly"),
        amortise_months=amortise_months,
        retrain_every_months=retrain_every,
        retrain_share=retrain_share,
        grader_model=grader_model,
        grader_provider=grader_provider,
        grader_input_tokens=grader_input_tokens,
        grader_output_tokens=grader_output_tokens,
    )
    current_recurring = _monthly(current_monthly, "--current-monthly")
    backend: Store | None = None if trace else open_cli_store(store, create=False)
    try:
        built = scenario_from_traffic(
            store=backend,
            trace=trace,
            feature=feature,
            since=start,
            until=end,
            trace_provider=trace_provider,
            trace_model=trace_model,
            assumptions=data,
            tuned=tuned,
            horizon_months=horizon,
            growth_per_month=growth,
            current_recurring=current_recurring,
        )
    except MissingTunedPath:
        usage_error(
            "give --tuned-input-tokens (prompt tokens per request after tuning) "
            "or --assumptions FILE with [[paths]]"
        )
    except ValueError as exc:  # ConfigError and ScenarioError are ValueErrors
        usage_error(str(exc))
    finally:
        if backend is not None:
            backend.close()
    for warning in built.profile.warnings:
        note(f"warning: {warning}")
    scenario, extra = built.scenario, {"usage": built.profile.to_dict()}
    if quality_from is not None:
        scenario, measured = _measured(scenario, quality_from)
        extra.update(measured)
    if write_scenario is not None:
        text = (
            scenario.model_dump_json(indent=2, exclude_none=True)
            if write_scenario.suffix == ".json"
            else scenario_to_toml(scenario)
        )
        write_scenario.write_text(text, encoding="utf-8")
        note(f"scenario written to {write_scenario}")
    _run(scenario, fmt, plot, report, against, grid, extra)


def catalogue(fmt: Fmt = "table") -> None:
    """List the built-in fine-tuning price catalogue (USD; verify before relying on it)."""
    from costlens.roi import catalogue_rows

    fmt = check_format(fmt)
    rows = catalogue_rows()
    if fmt == "json":
        write_json(rows)
    elif fmt == "csv":
        write_csv(rows, list(rows[0]))
    else:
        columns = [
            "id",
            "method",
            "training_per_mtok",
            "training_per_hour",
            "input_per_mtok",
            "output_per_mtok",
            "hosting_per_hour",
            "storage_per_month",
            "as_of",
            "confidence",
        ]
        prices = [c for c in columns if c.endswith(("_mtok", "_hour", "_month"))]
        places = {c: money_places(row[c] for row in rows) for c in prices}  # one precision per column
        table = make_table(
            columns, title="Fine-tuning prices (USD; per 1M tokens / hour / month)", right=prices
        )
        for row in rows:
            table.add_row(*cells([_price_cell(row[c], places.get(c)) for c in columns]))
        console().print(table)
        note(
            "sources: `costlens roi catalogue --format json`; override in your prices file (COSTLENS_PRICES)"
        )


def _price_cell(value: object, places: int | None) -> object:
    if value is None:
        return "-"
    if places is not None and isinstance(value, Decimal):
        return money(value, places)
    return value
