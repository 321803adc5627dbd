"""`costlens reprice`: what recorded calls would have cost on another model or price catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from costlens.cli._output import (
    FORMAT_HELP,
    STORE_HELP,
    check_format,
    note,
    open_cli_store,
    store_url,
    usage_error,
    write_csv,
    write_json,
)
from costlens.cli._report import TZ_HELP, parse_by, parse_range, parse_time, parse_where, print_table


def reprice(
    model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Price every call on this model.")
    ] = None,
    provider: Annotated[
        str | None, typer.Option(metavar="PROVIDER", help="...and this provider (default: the recorded one).")
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Price with this overrides TOML file instead of the current prices."
        ),
    ] = None,
    by: Annotated[
        list[str] | None, typer.Option("--by", metavar="KEY", help="Group by (default: model).")
    ] = None,
    since: Annotated[str | None, typer.Option(metavar="WHEN", help="Start: 30d, 2w, or an ISO date.")] = None,
    until: Annotated[str | None, typer.Option(metavar="WHEN", help="End (exclusive).")] = None,
    where: Annotated[
        list[str] | None, typer.Option(metavar="KEY=VALUE", help="Only calls where key=value.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="Price as of this date (default: each call's own time)."),
    ] = None,
    timezone: Annotated[str, typer.Option("--timezone", "--tz", metavar="ZONE", help=TZ_HELP)] = "UTC",
    store: Annotated[str | None, typer.Option(metavar="URL", help=STORE_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """Re-price recorded calls on another model or catalogue; nothing stored changes."""
    from costlens.analytics import reprice as run_reprice

    fmt = check_format(fmt)
    if model is None and provider is None and prices is None:
        usage_error("say what to re-price with: --model (and --provider) or --prices FILE")
    keys = parse_by(by or ["model"])
    filters = parse_where(where or [])
    start, end = parse_range(since, until, timezone)
    when = parse_time(at, "--at", timezone)
    catalogue = None
    if prices is not None:
        from costlens._errors import ConfigError
        from costlens.pricing import PriceCatalogue

        try:
            catalogue = PriceCatalogue.load(prices)
        except (ConfigError, OSError) as exc:
            usage_error(f"bad --prices: {exc}")
    backend = open_cli_store(store, create=False)
    try:
        result = run_reprice(
            backend, model=model, provider=provider, catalogue=catalogue, by=keys, since=start, until=end,
            where=filters, timezone=timezone, at=when,
        )  # fmt: skip
    except ValueError as exc:
        usage_error(str(exc))
    finally:
        backend.close()
    if fmt == "json":
        summary = {"model": model, "provider": provider, "price_version": result.price_version}
        write_json({**summary, "rows": result.rows, "totals": result.totals})
    elif fmt == "csv":
        write_csv(result.rows, result.columns)
    else:
        target = " / ".join(x for x in (provider, model) if x) or "the given prices"
        print_table(
            result.rows, result.totals, keys, result.columns, store_url(store), title=f"Re-priced on {target}"
        )
    for line in result.notes:
        note(line)
