"""`costlens report`: spend grouped by model, provider, time bucket or any tag, with measures,
top-N, period-over-period comparison and charts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

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
    note,
    open_cli_store,
    store_url,
    usage_error,
    write_csv,
    write_json,
)

if TYPE_CHECKING:
    from costlens.analytics import SpendReport

_HEADERS = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache read",
    "cache_write_tokens": "cache write",
    "reasoning_tokens": "reasoning",
    "total_tokens": "tokens",
    "cost_usd": "cost (USD)",
    "unpriced_calls": "unpriced",
    "error_calls": "errors",
    "estimated_calls": "estimated",
    "cost_per_call": "per call",
    "cost_per_1k_tokens": "per 1k tokens",
    "previous_cost_usd": "previous",
    "previous_calls": "prev. calls",
    "cost_change_usd": "change",
    "cost_change": "change %",
    "recorded_cost_usd": "recorded (USD)",
    "repriced_cost_usd": "re-priced (USD)",
    "change_usd": "change",
    "change": "change %",
}
_FRACTIONS = ("share", "error_rate", "estimated_share", "cost_change", "change")
MEASURES_HELP = (
    "Columns, comma-separated: calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
    "reasoning_tokens, total_tokens, cost_usd, error_calls, unpriced_calls, estimated_calls, cost_per_call, "
    "cost_per_1k_tokens, share, error_rate, estimated_share, latency_p50/p95/p99, ttft_p50/p95/p99; "
    "'all' for every one. Default: calls, tokens by kind, cost, unpriced."
)
TZ_HELP = "Time zone of day/week/month buckets and dates: UTC (default) or an IANA name (Europe/Berlin)."


def report(
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            metavar="KEY",
            help="Group by model, request_model, provider, operation, status, service_tier, hour, day, week, "
            "month or a tag name (repeat or comma-separate for several). Default: model.",
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(metavar="WHEN", help="Start: 30d, 12h, 2w, 90m ago, or an ISO date/time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(metavar="WHEN", help="End (exclusive), same forms as --since.")
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=VALUE", help="Only calls where key=value (repeatable), e.g. feature=search."
        ),
    ] = None,
    bucket: Annotated[
        str | None, typer.Option(metavar="BUCKET", help="Add a time bucket: hour, day, week or month.")
    ] = None,
    timezone: Annotated[str, typer.Option("--timezone", "--tz", metavar="ZONE", help=TZ_HELP)] = "UTC",
    measures: Annotated[str | None, typer.Option(metavar="LIST", help=MEASURES_HELP)] = None,
    top: Annotated[
        int | None, typer.Option(metavar="N", min=1, help="Keep the N most expensive groups; fold the rest.")
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(metavar="previous", help="Add the previous period of the same length (needs --since)."),
    ] = None,
    plot: Annotated[
        str | None, typer.Option(metavar="FILE", help="Also draw a chart to FILE (.png or .svg).")
    ] = None,
    no_rollups: Annotated[bool, typer.Option("--no-rollups", hidden=True)] = False,
    store: Annotated[str | None, typer.Option(metavar="URL", help=STORE_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """Show exact spend, grouped, most expensive first (time buckets in order)."""
    from costlens.analytics import DEFAULT_MEASURES, MEASURES, spend

    fmt = check_format(fmt)
    keys = parse_by(by or ["model"])
    filters = parse_where(where or [])
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    names = _parse_measures(measures, DEFAULT_MEASURES, MEASURES)
    backend = open_cli_store(store)
    try:
        result = spend(
            backend, keys, bucket=bucket, timezone=timezone, since=start, until=end, where=filters,
            measures=names, top=top, compare=compare, use_rollups=not no_rollups,
        )  # fmt: skip
    except ValueError as exc:
        usage_error(str(exc))
    finally:
        backend.close()
    _render(result, fmt, store_url(store))
    if plot is not None:
        draw_report(result, plot)
    unpriced = result.totals.get("unpriced_calls")
    if isinstance(unpriced, int) and unpriced:
        calls = "1 call has" if unpriced == 1 else f"{unpriced} calls have"
        note(f"{calls} no known price: see `costlens prices missing`")


def draw_report(result: SpendReport, path: str) -> None:
    from costlens.analytics._plot import plot_report

    try:
        note(f"chart written to {plot_report(result, path)}")
    except (ValueError, ImportError) as exc:
        usage_error(str(exc))


def _parse_measures(text: str | None, default: Sequence[str], valid: Sequence[str]) -> list[str]:
    if text is None:
        return list(default)
    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return list(valid)
    for name in names:
        if name not in valid:
            usage_error(f"bad --measures: unknown measure {name!r}: use any of {', '.join(valid)} or all")
    return names


def _render(result: SpendReport, fmt: str, url: str) -> None:
    rows = result.all_rows
    if fmt == "json":
        write_json(rows)
    elif fmt == "csv":
        write_csv(rows, result.columns)
    else:
        print_table(rows, result.totals, result.keys, result.columns, url)


def parse_by(values: Sequence[str]) -> list[str]:
    from costlens.store import parse_key

    keys = [part.strip() for value in values for part in value.split(",") if part.strip()]
    for key in keys:
        try:
            parse_key(key)
        except ValueError as exc:
            usage_error(f"bad --by: {exc}")
    return keys


def parse_where(values: Sequence[str]) -> dict[str, str]:
    from costlens.store import parse_key

    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            usage_error(f"bad --where {item!r}: write key=value, e.g. --where feature=search")
        try:
            parse_key(key.strip())
        except ValueError as exc:
            usage_error(f"bad --where: {exc}")
        out[key.strip()] = value
    return out


def parse_time(text: str | None, flag: str) -> datetime | None:
    from costlens.reports import parse_since

    if text is None:
        return None
    try:
        return parse_since(text)
    except ValueError as exc:
        usage_error(f"bad {flag}: {exc}")


def print_table(
    rows: Sequence[dict[str, object]],
    totals: dict[str, object] | None,
    keys: Sequence[str],
    columns: Sequence[str],
    url: str,
    *,
    title: str | None = None,
) -> None:
    """Rows as a Rich table: group keys, then formatted measures, and a footer of totals."""
    out = console()
    if not rows:
        out.print(Text(f"No calls recorded in {url} for this period."))
        return
    measures = [c for c in columns if c not in keys]
    headers = [*keys, *(_HEADERS.get(m, m.replace("_", " ")) for m in measures)]
    table = make_table(headers, title=title, right=headers[len(keys) :])
    for row in rows:
        table.add_row(*cells([_key(row.get(k)) for k in keys] + [cell(m, row.get(m)) for m in measures]))
    if totals is not None:
        table.show_footer = True
        footer = ["total", *([""] * (len(keys) - 1))] if keys else []
        footer += [cell(m, totals.get(m)) if m in totals else "" for m in measures]
        for column, text in zip(table.columns, footer, strict=False):
            column.footer = text
    out.print(table)


def _key(value: object) -> object:
    return "(none)" if value is None else value


def cell(name: str, value: object) -> str:
    """One measure as table text: money trimmed, fractions as percentages, latencies in ms."""
    if value is None:
        return "-"
    if name in _FRACTIONS and isinstance(value, Decimal):
        return f"{value * 100:+.2f}%" if "change" in name else f"{value * 100:.1f}%"
    if isinstance(value, Decimal):
        return money(value) if value >= 0 else f"-{money(-value)}"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f} ms" if name.startswith(("latency", "ttft")) else f"{value:,.2f}"
    return str(value)
