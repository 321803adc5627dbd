"""`costlens report`: spend grouped by model, provider, day, hour or any tag."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated

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

_JSON_FIELDS = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_calls",
)
_TABLE_HEADERS = {
    "calls": "calls",
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache read",
    "cache_write_tokens": "cache write",
    "reasoning_tokens": "reasoning",
    "cost_usd": "cost (USD)",
    "unpriced_calls": "unpriced",
}


def report(
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            metavar="KEY",
            help="Group by model, request_model, provider, operation, status, day, hour or a tag name "
            "(repeat or comma-separate for several). Default: model.",
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
    store: Annotated[str | None, typer.Option(metavar="URL", help=STORE_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """Show exact spend, grouped, most expensive first."""
    from costlens.reports import report_totals, spend_report

    fmt = check_format(fmt)
    keys = _parse_by(by or ["model"])
    filters = _parse_where(where or [])
    start, end = _parse_time(since, "--since"), _parse_time(until, "--until")
    backend = open_cli_store(store)
    try:
        rows = spend_report(backend, by=keys, since=start, until=end, where=filters)
    except ValueError as exc:
        usage_error(str(exc))
    finally:
        backend.close()
    totals = report_totals(rows)
    if fmt == "json":
        write_json(rows)
    elif fmt == "csv":
        write_csv(rows, [*keys, *_JSON_FIELDS])
    else:
        _print_table(rows, totals, keys, store_url(store))
    unpriced = totals["unpriced_calls"]
    if unpriced:
        calls = "1 call has" if unpriced == 1 else f"{unpriced} calls have"
        note(f"{calls} no known price: see `costlens prices missing`")


def _parse_by(values: Sequence[str]) -> list[str]:
    from costlens.store import parse_key

    keys = [part.strip() for value in values for part in value.split(",") if part.strip()]
    for key in keys:
        try:
            parse_key(key)
        except ValueError as exc:
            usage_error(f"bad --by: {exc}")
    return keys


def _parse_where(values: Sequence[str]) -> dict[str, str]:
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


def _parse_time(text: str | None, flag: str) -> datetime | None:
    from costlens.reports import parse_since

    if text is None:
        return None
    try:
        return parse_since(text)
    except ValueError as exc:
        usage_error(f"bad {flag}: {exc}")


def _print_table(
    rows: Sequence[dict[str, object]], totals: dict[str, object], keys: Sequence[str], url: str
) -> None:
    out = console()
    if not rows:
        out.print(Text(f"No calls recorded in {url} for this period."))
        return
    headers = [*keys, *(_TABLE_HEADERS[f] for f in _JSON_FIELDS)]
    table = make_table(headers, right=list(_TABLE_HEADERS.values()))
    table.show_footer = True
    for row in rows:
        table.add_row(*cells([_cell(row, k) for k in keys] + [_metric(row[f]) for f in _JSON_FIELDS]))
    for i, column in enumerate(table.columns):
        column.footer = _footer(i, totals, keys)
    out.print(table)


def _cell(row: dict[str, object], key: str) -> object:
    value = row[key]
    return "(none)" if value is None else value


def _metric(value: object) -> str:
    if isinstance(value, Decimal):
        return money(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def _footer(index: int, totals: dict[str, object], keys: Sequence[str]) -> str:
    if index == 0:
        return "total"
    if index < len(keys):
        return ""
    return _metric(totals[_JSON_FIELDS[index - len(keys)]])
