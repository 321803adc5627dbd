"""`costlens calls tail`: the latest recorded calls, optionally following new ones."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer

from costlens.cli._output import (
    FORMAT_HELP,
    STORE_HELP,
    cells,
    check_format,
    console,
    make_table,
    money,
    money_places,
    open_cli_store,
    to_json,
    write_csv,
    write_json,
)

if TYPE_CHECKING:
    from costlens.store import Store
    from costlens.usage import CallRecord

COLUMNS = (
    "started_at", "provider", "model", "input_tokens", "output_tokens", "cost_usd", "status", "tags", "id",
)  # fmt: skip
_HEADERS = ("time (UTC)", "provider", "model", "input", "output", "cost", "status", "tags", "id")
_RIGHT = ("input", "output", "cost")
_LOOKBACK = timedelta(minutes=10)


def tail(
    count: Annotated[
        int, typer.Option("-n", "--count", min=1, metavar="N", help="How many calls to show.")
    ] = 20,
    store: Annotated[str | None, typer.Option(metavar="URL", help=STORE_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new calls (Ctrl-C stops).")
    ] = False,
    poll_s: Annotated[float, typer.Option("--poll-interval", hidden=True, min=0.0)] = 1.0,
    max_polls: Annotated[int | None, typer.Option("--max-polls", hidden=True)] = None,
) -> None:
    """Show the latest calls: time, provider, model, tokens, cost, status, tags."""
    fmt = check_format(fmt)
    backend = open_cli_store(store, create=False)
    try:
        records = list(backend.iter_records(limit=count, newest_first=True))[::-1]
        if follow:
            _print_lines(records, fmt, header=True)
            _follow(backend, _already_there(backend, records), fmt, poll_s, max_polls)
        else:
            _print_all(records, fmt)
    except KeyboardInterrupt:
        pass
    finally:
        backend.close()


def row_of(record: CallRecord) -> dict[str, object]:
    from costlens.store import nanousd_to_usd

    return {
        "started_at": record.started_at,
        "provider": record.provider,
        "model": record.response_model or record.request_model,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cost_usd": None if record.cost_nanousd is None else nanousd_to_usd(record.cost_nanousd),
        "status": record.status,
        "tags": dict(record.tags),
        "id": record.id,
    }


def _print_all(records: Sequence[CallRecord], fmt: str) -> None:
    rows = [row_of(r) for r in records]
    if fmt == "json":
        write_json(rows)
    elif fmt == "csv":
        write_csv(rows, COLUMNS)
    elif not rows:
        console().print("No calls recorded yet.")
    else:
        table = make_table(_HEADERS, right=_RIGHT)
        places = money_places(row["cost_usd"] for row in rows)
        for row in rows:
            table.add_row(*cells(_table_values(row, places)))
        console().print(table)


def _table_values(row: dict[str, object], places: int | None = None) -> list[object]:
    values: list[object] = []
    for col in COLUMNS:
        value = row[col]
        if col == "cost_usd":
            value = money(value, places) if isinstance(value, Decimal) else "unpriced"
        elif col in ("input_tokens", "output_tokens") and isinstance(value, int):
            value = f"{value:,}"
        elif col == "started_at" and isinstance(value, datetime):
            value = value.strftime("%Y-%m-%d %H:%M:%S")
        values.append(value)
    return values


def _print_lines(records: Sequence[CallRecord], fmt: str, *, header: bool = False) -> None:
    """Streaming form: json lines, csv rows, or one text line per call."""
    rows = [row_of(r) for r in records]
    if fmt == "json":
        for row in rows:
            typer.echo(to_json(row, indent=None))
    elif fmt == "csv":
        write_csv(rows, COLUMNS, header=header)
    else:
        places = money_places(row["cost_usd"] for row in rows)
        for row in rows:
            typer.echo("  ".join(str(v) for v in cells(_table_values(row, places))))


def _already_there(backend: Store, shown: Sequence[CallRecord]) -> dict[str, datetime]:
    """Every call the first poll's look-back will see that was recorded before following began:
    old calls, whether printed (the last N) or not, are never printed by `--follow`."""
    seen = {r.id: r.started_at for r in shown}
    if seen:
        since = max(seen.values()) - _LOOKBACK
        seen.update((r.id, r.started_at) for r in backend.iter_records(since=since))
    return seen


def _follow(
    backend: Store, seen: dict[str, datetime], fmt: str, poll_s: float, max_polls: int | None
) -> None:
    """Poll for calls not printed yet (`seen`: the ids recorded before following began).

    A call is recorded when it ends but ordered by when it started, so a long call can land behind
    newer ones: every poll looks `_LOOKBACK` back from the newest call and skips ids already seen.
    """
    polls = 0
    while max_polls is None or polls < max_polls:
        polls += 1
        time.sleep(poll_s)
        since = max(seen.values()) - _LOOKBACK if seen else None
        fresh = [r for r in backend.iter_records(since=since) if r.id not in seen]
        if fresh:
            _print_lines(fresh, fmt)
            seen.update((r.id, r.started_at) for r in fresh)
            cutoff = max(seen.values()) - _LOOKBACK
            seen = {k: v for k, v in seen.items() if v >= cutoff}
