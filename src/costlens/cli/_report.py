"""`costlens report`: spend grouped by model, provider, time bucket or any tag, with measures,
top-N, period-over-period comparison and charts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
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
    money_places,
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
#: Measures measured in money: unknown (None) for a group whose every call is unpriced.
_COST_MEASURES = ("cost_usd", "cost_per_call", "cost_per_1k_tokens", "share")
#: Asked for behind the scenes so a table can tell unpriced groups apart.
_PRICING_MEASURES = ("calls", "unpriced_calls")
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
    start, end = parse_range(since, until, timezone)
    names = _parse_measures(measures, DEFAULT_MEASURES, MEASURES)
    if plot is not None:
        check_plot(plot)
    hidden = [m for m in _PRICING_MEASURES if m not in names]  # to tell unpriced groups apart
    backend = open_cli_store(store, create=False)
    try:
        result = spend(
            backend, keys, bucket=bucket, timezone=timezone, since=start, until=end, where=filters,
            measures=[*names, *hidden], top=top, compare=compare, use_rollups=not no_rollups,
        )  # fmt: skip
    except ValueError as exc:
        usage_error(str(exc))
    finally:
        backend.close()
    _render(result, [c for c in result.columns if c not in hidden], fmt, store_url(store))
    if plot is not None:
        draw_report(result, plot)
    unpriced = result.totals.get("unpriced_calls")
    if isinstance(unpriced, int) and unpriced:
        calls = "1 call has" if unpriced == 1 else f"{unpriced} calls have"
        note(f"{calls} no known price: see `costlens prices missing`")


def check_plot(path: str) -> None:
    """Before any work: the chart's format, its folder, and matplotlib (a usage error otherwise)."""
    from costlens.analytics._plot import check_plot_path

    try:
        check_plot_path(path)
    except (ValueError, ImportError) as exc:
        usage_error(f"bad --plot: {exc}")


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


def _render(result: SpendReport, columns: Sequence[str], fmt: str, url: str) -> None:
    if fmt == "table":
        print_table(result.all_rows, result.totals, result.keys, columns, url)
        return
    rows = [{c: row.get(c) for c in columns} for row in mark_unpriced(result.all_rows)]
    if fmt == "json":
        write_json(rows)
    else:
        write_csv(rows, columns)


def _wholly_unpriced(row: Mapping[str, object]) -> bool:
    calls, unpriced = row.get("calls"), row.get("unpriced_calls")
    return isinstance(calls, int) and isinstance(unpriced, int) and 0 < calls == unpriced


def mark_unpriced(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Rows whose every call is unpriced get null cost measures (their cost is unknown, not $0)."""
    return [
        {k: None if k in _COST_MEASURES else v for k, v in row.items()} if _wholly_unpriced(row) else row
        for row in rows
    ]


#: Tags common enough to be named bare (`--by feature`); any other tag is written `tag:NAME`.
COMMON_TAGS = ("project", "feature", "user", "environment", "task")


def check_key(key: str, flag: str, *, columns: Sequence[str] = ()) -> None:
    """A usage error unless `key` is a built-in key, a common tag or `tag:NAME` (a typo such as
    `modle` is not silently read as a tag). `columns`: names left for the query to refuse."""
    from difflib import get_close_matches

    from costlens.store import BUILTIN_KEYS, parse_key

    try:
        parse_key(key)
    except ValueError as exc:
        usage_error(f"bad {flag}: {exc}")
    if key in BUILTIN_KEYS or key in COMMON_TAGS or key.startswith("tag:") or key in columns:
        return
    close = get_close_matches(key, [*BUILTIN_KEYS, *COMMON_TAGS], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    usage_error(
        f"bad {flag}: unknown key {key!r}{hint}: use one of {', '.join(BUILTIN_KEYS)}, a common tag "
        f"({', '.join(COMMON_TAGS)}), or tag:NAME for any other tag (tag:{key})"
    )


def parse_by(values: Sequence[str]) -> list[str]:
    from costlens.analytics import MEASURES

    keys = [part.strip() for value in values for part in value.split(",") if part.strip()]
    for key in keys:
        check_key(key, "--by", columns=MEASURES)  # a measure name: the report says to write tag:NAME
    return keys


def parse_where(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            usage_error(f"bad --where {item!r}: write key=value, e.g. --where feature=search")
        check_key(key.strip(), "--where")
        out[key.strip()] = value
    return out


def parse_time(text: str | None, flag: str, timezone: str = "UTC") -> datetime | None:
    """A duration (`30d`: that long ago) or an ISO date/datetime. A date, or a datetime without an
    offset, is local time in `timezone` (`--tz`): `2025-02-01` is that zone's midnight."""
    from costlens.reports import parse_since

    if text is None:
        return None
    try:
        when = parse_since(text)
    except ValueError as exc:
        usage_error(f"bad {flag}: {exc}")
    if timezone != "UTC" and _is_local_time(text):
        from costlens.store._time import get_zone

        try:
            zone = get_zone(timezone)
        except ValueError as exc:
            usage_error(str(exc))
        when = when.replace(tzinfo=zone).astimezone(UTC)
    return when


def _is_local_time(text: str) -> bool:
    try:
        return datetime.fromisoformat(text.strip()).tzinfo is None
    except ValueError:
        return False  # a duration


def parse_range(
    since: str | None, until: str | None, timezone: str = "UTC"
) -> tuple[datetime | None, datetime | None]:
    """`--since` and `--until` read in `timezone`; a usage error unless since comes before until."""
    start, end = parse_time(since, "--since", timezone), parse_time(until, "--until", timezone)
    if start is not None and end is not None and start >= end:
        order = "after" if start > end else "the same time as"
        usage_error(
            f"--since {since} ({start:%Y-%m-%d %H:%M} UTC) is {order} --until {until} "
            f"({end:%Y-%m-%d %H:%M} UTC): nothing could match; --since is the start, --until the end"
        )
    return start, end


def print_table(
    rows: Sequence[dict[str, object]],
    totals: dict[str, object] | None,
    keys: Sequence[str],
    columns: Sequence[str],
    url: str,
    *,
    title: str | None = None,
) -> None:
    """Rows as a Rich table: group keys, then formatted measures, and a footer of totals.

    Each money column has one precision (`money_places`). A group whose calls are all unpriced shows
    `unpriced` for its cost measures; a partly priced one shows its known cost `+ N unpriced`
    (rows carrying `calls` and `unpriced_calls`, shown or not, are told apart)."""
    out = console()
    if not rows:
        out.print(Text(f"No calls recorded in {url} for this period."))
        return
    measures = [c for c in columns if c not in keys]
    everything = [*rows, *([totals] if totals is not None else [])]
    places = {m: money_places(r.get(m) for r in everything) for m in measures}
    headers = [*keys, *(_HEADERS.get(m, m.replace("_", " ")) for m in measures)]
    table = make_table(headers, title=title, right=headers[len(keys) :])
    for row in rows:
        table.add_row(*cells([_key(row.get(k)) for k in keys] + [_cell(row, m, places[m]) for m in measures]))
    if totals is not None:
        table.show_footer = True
        footer = ["total", *([""] * (len(keys) - 1))] if keys else []
        footer += [_cell(totals, m, places[m]) if m in totals else "" for m in measures]
        for column, text in zip(table.columns, footer, strict=False):
            column.footer = text
    out.print(table)


def _key(value: object) -> object:
    return "(none)" if value is None else value


def _cell(row: Mapping[str, object], name: str, places: int) -> str:
    if name in _COST_MEASURES and _wholly_unpriced(row):
        return "unpriced"
    text = cell(name, row.get(name), places)
    unpriced = row.get("unpriced_calls")
    if name == "cost_usd" and isinstance(unpriced, int) and unpriced:
        text += f" + {unpriced:,} unpriced"
    return text


def cell(name: str, value: object, places: int | None = None) -> str:
    """One measure as table text: money with the column's `places`, fractions as percentages,
    latencies in ms, token counts with separators."""
    if value is None:
        return "-"
    if name in _FRACTIONS and isinstance(value, Decimal):
        return f"{value * 100:+.2f}%" if "change" in name else f"{value * 100:.1f}%"
    if isinstance(value, Decimal):
        return money(value, places)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f} ms" if name.startswith(("latency", "ttft")) else f"{value:,.2f}"
    return str(value)
