"""Shared CLI plumbing: `--format table|json|csv` rendering, one-line errors, opening the store.

Machine formats (json, csv) go to stdout alone; notes go to stderr so pipes stay clean.
Money is rendered from Decimal, never float: exact strings in json/csv; in tables every value of a
money column has the same number of decimals (`money_places`), enough to show each one exactly.

The JSON contract (`--format json`), the same for every command:
- a command that lists things (report, calls tail, forecast, anomalies, budgets list/status,
  prices missing, import) writes one JSON array of flat objects, one per row, with the csv
  columns as keys in the same order; nothing found is `[]`;
- a command about one thing (prices show, reprice, roi plan...) writes one JSON object; rows it
  holds are under `"rows"`, their sums under `"totals"`;
- a stream (`calls tail --follow`) writes JSON Lines: one row object per line;
- money and every other Decimal is an exact string ("0.001234500"), never a float; money that is
  not known (an unpriced call or group) is null, never "0"; times are ISO 8601 with their offset;
  counts are integers; statistics (scores, latencies in ms) are numbers;
- stdout holds the JSON alone: notes and warnings go to stderr;
- `import` and `export` name the file's format with `--format`; `import --json` writes the list
  form, one flat object per file. tests/test_cli_consistency.py checks every command against this.

Errors are one line on stderr: `costlens: error: ...` with exit 2 for a usage error (ours, and
Click's, via `OneLineErrorsGroup`), `costlens: ...` with exit 1 when the request could not be answered.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from importlib import import_module
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec

import typer
import typer.core
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


def open_cli_store(url: str | None, *, create: bool = False) -> Store:
    """Open `--store` (or the default); a bad URL is a usage error.

    By default (`create=False`, every reading command) a store that does not exist is not created:
    the command fails (exit 1) naming the path it looked for; a file that cannot be a store fails the
    same way. Only commands that write calls (`import`) pass `create=True`."""
    from costlens._errors import ConfigError
    from costlens.store import StoreNotFound, StoreUnusable, open_store

    try:
        return open_store(store_url(url), create=create)
    except (StoreNotFound, StoreUnusable):
        raise
    except ConfigError as exc:
        usage_error(str(exc))


def friendly_errors(command: Callable[P, None]) -> Callable[P, None]:
    """Turn an expected failure (store missing or unusable, bad config file) into one line and exit 1.

    costlens' own errors are written to be read: their message alone. Others keep their type name."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        import sqlite3

        from costlens._errors import CostlensError

        try:
            command(*args, **kwargs)
        except CostlensError as exc:
            fail(one_line(str(exc)))
        except (sqlite3.Error, OSError) as exc:
            fail(one_line(f"{type(exc).__name__}: {exc}"))

    return wrapper


def one_line(text: str) -> str:
    return " ".join(text.split())


# Click's exceptions as Typer raises them: Typer >= 0.24 vendors Click (`typer._click`), older ones
# use `click` itself; `typer.BadParameter` lives in whichever module is in use.
_click_errors: Any = import_module(typer.BadParameter.__module__)


class OneLineErrorsGroup(typer.core.TyperGroup):
    """The root command group: Click's usage errors (unknown option, missing value, bad int...)
    become one line, `costlens: error: <what> (try 'costlens report --help')`, exit 2, instead of
    Typer's boxed panel. A bare group (`costlens prices`) still prints its help."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except _click_errors.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as before
                exc.show()
                sys.exit(exc.exit_code)
            where = exc.ctx.command_path if exc.ctx is not None else "costlens"
            what = one_line(exc.format_message()).rstrip(".")
            typer.echo(f"costlens: error: {what} (try '{where} --help')", err=True)
            sys.exit(2)
        except _click_errors.ClickException as exc:
            typer.echo(f"costlens: {one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("costlens: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def usd(amount: Decimal) -> str:
    """Exact plain decimal text: `Decimal('0.001234500')` -> '0.001234500' (never exponent form)."""
    return format(amount, "f")


#: Money in tables shows at most nano-USD (the stores' unit); finer ratios round half-even to it.
MAX_MONEY_PLACES = 9


def money_places(values: Iterable[object]) -> int:
    """Decimals that show every Decimal of a column exactly: at least 2 (cents), at most 9."""
    places = 2
    for value in values:
        if isinstance(value, Decimal) and value.is_finite():
            exponent = value.normalize().as_tuple().exponent
            if isinstance(exponent, int):
                places = max(places, min(-exponent, MAX_MONEY_PLACES))
    return places


def money(amount: Decimal, places: int | None = None) -> str:
    """For tables: '$1,234.50', '-$0.0012345'. `places`: the column's (`money_places`); None: the
    fewest that show this amount exactly (at least cents)."""
    if places is None:
        places = money_places([amount])
    value = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{places}f}"


def same_places(values: Sequence[object]) -> list[str]:
    """A column of prices for tables (rates in USD per 1M tokens, no `$`): every number with the
    column's precision (`money_places`), thousands separators; text and blanks as they are."""
    from decimal import InvalidOperation

    numbers: list[Decimal | None] = []
    for value in values:
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value).replace(",", ""))
        except InvalidOperation:
            number = None
        numbers.append(number if number is not None and number.is_finite() else None)
    places = money_places(numbers)
    step = Decimal(1).scaleb(-places)
    return [
        plain(value) if number is None else f"{number.quantize(step, rounding=ROUND_HALF_EVEN):,.{places}f}"
        for value, number in zip(values, numbers, strict=True)
    ]


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


def no_color() -> bool:
    """`NO_COLOR` set to anything non-empty (https://no-color.org): no ANSI styles at all."""
    import os

    return os.environ.get("NO_COLOR", "") != ""


def console() -> Console:
    """stdout console; wide when not a terminal, so piped tables are not truncated. `NO_COLOR`
    turns every style off (colours, bold, highlighting), not only colours."""
    options: dict[str, Any] = {"highlight": False}
    if no_color():
        options.update(color_system=None, no_color=True)
    out = Console(**options)
    return out if out.is_terminal else Console(width=200, **options)


def err_console() -> Console:
    """stderr console (progress bars), with the same `NO_COLOR` rule as `console()`."""
    options: dict[str, Any] = {"stderr": True, "highlight": False}
    if no_color():
        options.update(color_system=None, no_color=True)
    return Console(**options)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar on stderr when it is a terminal (else nothing); yields `update(done, total)`."""
    with staged_progress(description) as update:
        yield lambda done, total: update("", done, total)


@contextmanager
def staged_progress(description: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar whose description names a stage; yields `update(stage, done, total)`."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    err = err_console()
    if not err.is_terminal:
        yield lambda stage, done, total: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(stage: str, done: int, total: int) -> None:
            label = f"{description}: {stage}" if stage else description
            bar.update(task, description=label, completed=done, total=total or None)

        yield update


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
