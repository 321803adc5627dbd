"""`costlens forecast` (window-end spend per scope) and `costlens anomalies` (spend spikes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer

from costlens.cli._output import (
    FORMAT_HELP,
    STORE_HELP,
    check_format,
    money,
    money_places,
    open_cli_store,
    store_url,
    usage_error,
    write_csv,
    write_json,
)
from costlens.cli._report import (
    TZ_HELP,
    check_plot,
    parse_by,
    parse_range,
    parse_time,
    parse_where,
    print_table,
)

if TYPE_CHECKING:
    from costlens.analytics import Anomaly

_FORECAST_COLUMNS = (
    "spent_usd", "forecast_usd", "low_usd", "high_usd", "daily_rate_usd", "daily_trend_usd", "history_days",
    "method",
)  # fmt: skip
_ANOMALY_COLUMNS = (
    "hour", "metric", "value", "baseline", "unit", "score", "calls", "cost_usd", "top_call_ids",
)  # fmt: skip
_ANOMALY_TABLE = ("hour", "metric", "value", "baseline", "score", "calls", "cost_usd", "top_call_ids")


def forecast(
    by: Annotated[
        list[str] | None,
        typer.Option("--by", metavar="KEY", help="One forecast per group of these keys (e.g. feature)."),
    ] = None,
    where: Annotated[
        list[str] | None, typer.Option(metavar="KEY=VALUE", help="Only calls where key=value.")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN",
            help="Window end (default: the end of this month in --timezone); a date is its midnight there.",
        ),
    ] = None,
    timezone: Annotated[str, typer.Option("--timezone", "--tz", metavar="ZONE", help=TZ_HELP)] = "UTC",
    lookback: Annotated[int, typer.Option(min=1, metavar="DAYS", help="Days of history to fit.")] = 28,
    level: Annotated[float, typer.Option(min=0.5, max=0.99, help="Coverage of the interval.")] = 0.8,
    plot: Annotated[
        str | None, typer.Option(metavar="FILE", help="Also draw a chart (.png or .svg).")
    ] = None,
    store: Annotated[str | None, typer.Option(metavar="URL", help=STORE_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """Forecast spend at the end of the month (or --until), with an interval, per scope."""
    from costlens.analytics import forecast as run_forecast
    from costlens.analytics import month_window

    fmt = check_format(fmt)
    keys = parse_by(by or [])
    filters = parse_where(where or [])
    end = parse_time(until, "--until", timezone)
    if plot is not None:
        check_plot(plot)
    now = datetime.now(UTC)
    backend = open_cli_store(store, create=False)
    try:
        window = (month_window(now, timezone)[0], end) if end is not None else None
        if window is not None and window[1] <= now:
            usage_error("bad --until: the window must end in the future")
        results = run_forecast(
            backend, keys, where=filters, timezone=timezone, now=now, window=window, lookback_days=lookback,
            level=level,
        )  # fmt: skip
    except ValueError as exc:
        usage_error(str(exc))
    finally:
        backend.close()
    rows = [f.as_dict() for f in results]
    if fmt == "json":
        write_json(rows)
    elif fmt == "csv":
        write_csv(rows, [*keys, "window_start", "window_end", *_FORECAST_COLUMNS])
    else:
        title = None
        if results:
            title = f"Forecast to {_local(results[0].window_end, timezone)}, {int(level * 100)}% interval"
        print_table(rows, None, keys, [*keys, *_FORECAST_COLUMNS], store_url(store), title=title)
    if plot is not None:
        from costlens.analytics._plot import plot_forecasts

        try:
            typer.echo(f"chart written to {plot_forecasts(results, plot)}", err=True)
        except (ValueError, ImportError) as exc:
            usage_error(str(exc))


def anomalies(
    by: Annotated[
        list[str] | None,
        typer.Option("--by", metavar="KEY", help="Scopes to watch (default: model; e.g. feature,model)."),
    ] = None,
    since: Annotated[str, typer.Option(metavar="WHEN", help="Look for spikes from then on.")] = "24h",
    until: Annotated[str | None, typer.Option(metavar="WHEN", help="Up to then (exclusive).")] = None,
    where: Annotated[
        list[str] | None, typer.Option(metavar="KEY=VALUE", help="Only calls where key=value.")
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option(metavar="METRIC", help="spend and/or tokens_per_call (default both).")
    ] = None,
    threshold: Annotated[float, typer.Option(min=0.1, help="Robust z-score that counts as a spike.")] = 4.0,
    baseline: Annotated[
        int, typer.Option(min=1, metavar="HOURS", help="Hours of baseline before each hour.")
    ] = 168,
    min_baseline: Annotated[
        int, typer.Option(min=1, metavar="N", help="Hours with calls needed before an hour can be judged.")
    ] = 24,
    top_calls: Annotated[int, typer.Option(min=0, metavar="N", help="Calls listed per anomaly.")] = 5,
    store: Annotated[str | None, typer.Option(metavar="URL", help=STORE_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """List hours whose spend or tokens per call spiked against a robust baseline, with their calls."""
    from costlens.analytics import ANOMALY_METRICS, detect_anomalies

    fmt = check_format(fmt)
    keys = parse_by(by or ["model"])
    filters = parse_where(where or [])
    start, end = parse_range(since, until)
    start = start or datetime.now(UTC) - timedelta(days=1)
    metrics = [
        m.strip() for value in (metric or list(ANOMALY_METRICS)) for m in value.split(",") if m.strip()
    ]
    backend = open_cli_store(store, create=False)
    try:
        found = detect_anomalies(
            backend, keys, since=start, until=end, where=filters, metrics=metrics, threshold=threshold,
            baseline_hours=baseline, min_baseline=min_baseline, top_calls=top_calls,
        )  # fmt: skip
    except ValueError as exc:
        usage_error(str(exc))
    finally:
        backend.close()
    rows = [a.as_dict() for a in found]
    if fmt == "json":
        write_json(rows)
    elif fmt == "csv":
        write_csv(rows, [*keys, *_ANOMALY_COLUMNS])
    elif not rows:
        typer.echo(f"No anomalies in {store_url(store)} for this period.")
    else:
        shown = _in_units(found, rows)
        print_table(shown, None, keys, [*keys, *_ANOMALY_TABLE], store_url(store), title="Anomalies")


def _local(when: datetime, timezone: str) -> str:
    from costlens.store._time import get_zone

    return f"{when.astimezone(get_zone(timezone)):%Y-%m-%d %H:%M} {timezone}"


def _in_units(found: Sequence[Anomaly], rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """`value` and `baseline` as text in each anomaly's unit: dollars for spend (one precision for
    the column), tokens for tokens per call."""
    spend = [x for a in found if a.metric == "spend" for x in (a.value, a.baseline)]
    places = money_places(spend)

    def text(anomaly: Anomaly, value: Decimal) -> str:
        if anomaly.metric == "spend":
            return money(value, places)
        return f"{value:,.2f}".rstrip("0").rstrip(".") + " tokens"

    return [
        {**row, "value": text(a, a.value), "baseline": text(a, a.baseline)}
        for a, row in zip(found, rows, strict=True)
    ]
