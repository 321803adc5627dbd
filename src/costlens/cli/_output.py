"""Shared CLI plumbing: `--format table|json|csv` rendering, one-line errors, opening the store.

Machine formats (json, csv) go to stdout alone; notes go to stderr so pipes stay clean.
Money is rendered from Decimal, never float: exact strings in json/csv, trimmed in tables.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, NoReturn, ParamSpec

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from costlens.store import Store

P = ParamSpec("P")
FORMATS = ("table", "json", "csv")
FORMAT_HELP = "Output format: table, json or csv."
STORE_HELP = "Store URL (default: $COSTLENS_STORE, else the SQLite file in the costlens data folder)."


def usage_error(message: str) -> NoReturn:
    """Exit 2 with one line that says what to do (bad flag values)."""
    typer.echo(f"costlens: error: {message}", err=True)
    raise typer.Exit(2)


def fail(message: str) -> NoReturn:
    """Exit 1: the request was fine but could not be answered."""
    typer.echo(f"costlens: {message}", err=True)
    raise typer.Exit(1)


def note(message: str) -> None:
    typer.echo(message, err=True)


def check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in FORMATS:
        usage_error(f"unknown --format {fmt!r}: use table, json or csv")
    return fmt


def store_url(url: str | None) -> str:
    from costlens.config import default_store_url

    return url or default_store_url()


def open_cli_store(url: str | None) -> Store:
    """Open `--store` (or the default); a bad URL is a usage error."""
    from costlens._errors import ConfigError
    from costlens.store import open_store

    try:
        return open_store(store_url(url))
    except ConfigError as exc:
        usage_error(str(exc))


def friendly_errors(command: Callable[P, None]) -> Callable[P, None]:
    """Turn an expected failure (store unreadable, bad config file) into one line and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        import sqlite3

        from costlens._errors import CostlensError

        try:
            command(*args, **kwargs)
        except (CostlensError, sqlite3.Error, OSError) as exc:
            fail(f"{type(exc).__name__}: {exc}")

    return wrapper


def usd(amount: Decimal) -> str:
    """Exact plain decimal text: `Decimal('0.001234500')` -> '0.001234500' (never exponent form)."""
    return format(amount, "f")


def money(amount: Decimal) -> str:
    """For tables: exact, trailing zeros trimmed to at least cents ('$0.0012345', '$12.50')."""
    text = usd(amount)
    if "." in text:
        whole, frac = text.split(".")
        text = f"{whole}.{frac.rstrip('0').ljust(2, '0')}"
    return f"${text}"


def plain(value: object) -> str:
    """One cell as text for csv and tables."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return usd(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return usd(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def to_json(value: object, *, indent: int | None = 2) -> str:
    return json.dumps(value, indent=indent, default=_json_default, ensure_ascii=False)


def write_json(value: object) -> None:
    typer.echo(to_json(value))


def write_csv(rows: Sequence[Mapping[str, object]], columns: Sequence[str], *, header: bool = True) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    if header:
        writer.writerow(columns)
    writer.writerows([plain(row.get(col)) for col in columns] for row in rows)
    sys.stdout.flush()


def console() -> Console:
    """stdout console; wide when not a terminal, so piped tables are not truncated."""
    out = Console()
    return out if out.is_terminal else Console(width=200)


def make_table(columns: Sequence[str], *, title: str | None = None, right: Sequence[str] = ()) -> Table:
    table = Table(title=title, show_footer=False)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left")
    return table


def cells(values: Sequence[object]) -> list[Text]:
    """Text cells: a model name like 'x[beta]' must not be read as Rich markup."""
    return [value if isinstance(value, Text) else Text(plain(value)) for value in values]


def flatten(data: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested dicts as dotted keys, for key/value tables and one-row csv."""
    out: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple) and any(isinstance(v, Mapping) for v in value):
            out.update(flatten({str(i): v for i, v in enumerate(value)}, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = ", ".join(plain(v) for v in value)
        else:
            out[name] = value
    return out


def write_mapping(data: Mapping[str, object], fmt: str, *, title: str | None = None) -> None:
    """One object in any format: json as is, csv one row, table as field/value pairs."""
    if fmt == "json":
        write_json(data)
        return
    flat = flatten(data)
    if fmt == "csv":
        write_csv([flat], list(flat))
        return
    table = make_table(["field", "value"], title=title)
    for key, value in flat.items():
        table.add_row(*cells([key, value]))
    console().print(table)
