"""`costlens prices show|missing|update|patch`: what a model costs, which models have no price,
and where the costlens price patch corrects genai-prices' bundled data."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

import typer
from rich.text import Text

from costlens.cli._output import (
    FORMAT_HELP,
    STORE_HELP,
    cells,
    check_format,
    console,
    fail,
    make_table,
    note,
    open_cli_store,
    same_places,
    usage_error,
    write_csv,
    write_json,
    write_mapping,
)

_HOW_TO_ADD = (
    "add it to a prices overrides file (TOML or JSON) and point COSTLENS_PRICES at that file; "
    "check with `costlens prices show MODEL`"
)
_MISSING_COLUMNS = ("provider", "model", "calls", "first_seen", "last_seen")


def show(
    model: Annotated[str, typer.Argument(help="Model name, e.g. gpt-4o-mini.")],
    provider: Annotated[
        str | None, typer.Option(metavar="PROVIDER", help="Provider, e.g. openai (default: inferred).")
    ] = None,
    at: Annotated[
        str | None, typer.Option(metavar="WHEN", help="Price in force at this ISO date/time (default: now).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """Show the price of one model: its rates, service tiers, dated changes and where each came from."""
    from costlens.pricing import describe_price

    fmt = check_format(fmt)
    when = _parse_at(at)
    try:
        price = describe_price(model, provider=provider, at=when)
    except LookupError:
        price = None
    if not price or price.get("known") is False:
        where = f" (provider {provider})" if provider else ""
        hint = (price or {}).get("hint") or _HOW_TO_ADD
        fail(f"no price known for model {model!r}{where}: {hint} (set COSTLENS_PRICES to use another file)")
    if fmt == "table":
        from costlens.cli._prices_table import print_price

        print_price(price, model)
    else:
        write_mapping(price, fmt, title=f"Price of {model}")


def _parse_at(text: str | None) -> datetime | None:
    from costlens.reports import parse_since

    if text is None:
        return None
    try:
        return parse_since(text)
    except ValueError as exc:
        usage_error(f"bad --at: {exc}")


def missing(
    store: Annotated[str | None, typer.Option(metavar="URL", help=STORE_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """List the models seen in recorded calls that have no known price."""
    fmt = check_format(fmt)
    backend = open_cli_store(store, create=False)
    try:
        rows = [
            {"provider": m.provider, "model": m.model, "calls": m.calls, "first_seen": m.first_seen,
             "last_seen": m.last_seen}
            for m in backend.unpriced_models()
        ]  # fmt: skip
    finally:
        backend.close()
    if fmt == "json":
        write_json(rows)
    elif fmt == "csv":
        write_csv(rows, _MISSING_COLUMNS)
    elif not rows:
        console().print("Every recorded call has a known price.")
    else:
        table = make_table(_MISSING_COLUMNS, title="Models without a known price", right=["calls"])
        for row in rows:
            table.add_row(*cells([_short_time(row[c]) for c in _MISSING_COLUMNS]))
        console().print(table)
        note(f"To price a model, {_HOW_TO_ADD}.")


def _short_time(value: object) -> object:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else value


def update(
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """Fetch the latest price catalogue (needs the network)."""
    from costlens.pricing import update_prices

    fmt = check_format(fmt)
    try:
        result = update_prices()
    except Exception as exc:  # the catalogue download fails in many ways; all mean "not updated"
        fail(f"prices not updated: {exc}")
    data: Mapping[str, object] = result if isinstance(result, Mapping) else {"version": result}
    if fmt == "table":
        console().print(Text(f"Prices updated: {data.get('version')}"))
    else:
        write_mapping(data, fmt, title="Price catalogue")  # json: {"version": "..."}


_PATCH_COLUMNS = (
    "id", "provider", "model", "tier", "at", "status", "rate", "genai_prices", "patch", "source", "note",
)  # fmt: skip


def patch(
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """List where the costlens price patch and genai-prices' bundled data disagree (USD per 1M tokens)."""
    from costlens.cli._prices_table import when
    from costlens.pricing import get_catalogue

    fmt = check_format(fmt)
    catalogue = get_catalogue()
    rows = catalogue.patch_differences()
    if rows is None:
        fail("the costlens price patch is not in use (no genai-prices data loaded): nothing to compare")
    if fmt == "json":
        write_json(rows)
    elif fmt == "csv":
        write_csv(rows, _PATCH_COLUMNS)
    else:
        table = make_table(
            ("entry", "model", "from", "rate", "genai-prices", "patch"),
            title="costlens price patch vs genai-prices (USD per 1M tokens)",
            right=("genai-prices", "patch"),
        )
        genai = same_places([row["genai_prices"] or "-" for row in rows])  # one precision per column
        patched = same_places([row["patch"] or "-" for row in rows])
        for row, *values in zip(rows, genai, patched, strict=True):
            tier = "" if row["tier"] == "standard" else f" ({row['tier']})"
            rate = row["rate"] if row["status"] == "differs" else row["status"]
            model = f"{row['provider']}/{row['model']}{tier}"
            table.add_row(*cells([row["id"], model, when(row["at"]), rate, *values]))
        console().print(table)
        sources = {str(row["id"]): row["source"] for row in rows}
        for entry_id, url in sorted(sources.items()):
            note(f"{entry_id}: {url}")
