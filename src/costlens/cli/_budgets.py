"""`costlens budgets list|status|set|remove`: the budgets file and where each budget stands.

The budgets file is `--file`, else `$COSTLENS_BUDGETS`, else `budgets.toml` in the costlens data
folder: the file every tracked process reads on its first call. `set` and `remove` edit one
`[[budgets]]` block and leave the rest of the file (comments included) as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from costlens.cli._output import (
    FORMAT_HELP,
    cells,
    check_format,
    console,
    fail,
    make_table,
    money,
    money_places,
    note,
    usage_error,
    write_csv,
    write_json,
)

if TYPE_CHECKING:
    from costlens.budgets import BudgetConfig

FILE_HELP = "Budgets file (default: $COSTLENS_BUDGETS, else budgets.toml in the costlens data folder)."
LEDGER_HELP = "Ledger URL (default: the file's [settings] ledger, else $COSTLENS_LEDGER, else budgets.db)."
_LIST_COLUMNS = ("name", "scope", "limit_usd", "window", "mode", "downgrade_to", "thresholds", "notify")
_STATUS_COLUMNS = (
    "budget", "key", "mode", "window", "window_start", "window_end", "limit_usd", "spent_usd",
    "reserved_usd", "remaining_usd", "projected_usd", "limit_reached_at", "thresholds_crossed",
)  # fmt: skip
_MONEY = {"limit_usd", "spent_usd", "reserved_usd", "remaining_usd", "projected_usd"}
_SHOWN_MONEY = ("limit_usd", "spent_usd", "reserved_usd", "remaining_usd")


def _path(file: Path | None) -> Path:
    from costlens.config import budgets_path

    return file.expanduser().absolute() if file is not None else budgets_path()


def _load(path: Path) -> BudgetConfig:
    from costlens.budgets import BudgetConfig, load_budgets

    return load_budgets(path) if path.is_file() else BudgetConfig(path=str(path))


def list_budgets(
    file: Annotated[Path | None, typer.Option("--file", metavar="PATH", help=FILE_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """List the budgets defined in the budgets file."""
    fmt = check_format(fmt)
    path = _path(file)
    config = _load(path)
    rows = [_list_row(b.as_dict(), b.scope.describe()) for b in config.budgets]
    if fmt == "json":
        write_json([b.as_dict() for b in config.budgets])
    elif fmt == "csv":
        write_csv(rows, _LIST_COLUMNS)
    elif not rows:
        console().print(f"No budgets in {path}. Add one with `costlens budgets set NAME --limit USD`.")
    else:
        table = make_table(_LIST_COLUMNS, title=f"Budgets in {path}", right=["limit_usd"])
        places = money_places(row["limit_usd"] for row in rows)
        for row in rows:
            table.add_row(
                *cells([money(row[c], places) if c == "limit_usd" else row.get(c) for c in _LIST_COLUMNS])
            )
        console().print(table)


def _list_row(data: Mapping[str, Any], scope: str) -> dict[str, Any]:
    window = data["window"] + (f" ({data['timezone']})" if "timezone" in data else "")
    return {
        "name": data["name"],
        "scope": scope,
        "limit_usd": Decimal(data["limit_usd"]),
        "window": window,
        "mode": data["mode"],
        "downgrade_to": data.get("downgrade_to"),
        "thresholds": ", ".join(f"{t}%" for t in data["thresholds"]),
        "notify": ", ".join(data.get("notify") or ()),
    }


def status(
    names: Annotated[
        list[str] | None, typer.Argument(metavar="[NAME]...", help="Only these budgets.")
    ] = None,
    file: Annotated[Path | None, typer.Option("--file", metavar="PATH", help=FILE_HELP)] = None,
    ledger: Annotated[str | None, typer.Option("--ledger", metavar="URL", help=LEDGER_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """Spent, reserved, remaining, projected end-of-window spend and thresholds crossed, per budget."""
    from costlens.budgets import budget_status, open_ledger
    from costlens.config import default_ledger_url

    fmt = check_format(fmt)
    path = _path(file)
    config = _load(path)
    chosen = [b for b in config.budgets if not names or b.name in names]
    unknown = sorted(set(names or ()) - {b.name for b in config.budgets})
    if unknown:
        usage_error(
            f"no budget named {unknown[0]!r} in {path}; see `costlens budgets list` (a budget defined in "
            "code, with costlens.budget(...) or configure_budgets, lives in its process: add it to the "
            "file with `costlens budgets set` to see its status here)"
        )
    url = ledger or config.ledger or default_ledger_url()
    if url.startswith("sqlite://") and not Path(url.partition("://")[2]).is_file():
        note(f"costlens: no ledger at {url} yet: nothing has been spent under these budgets")
        url = "memory://"  # read as empty; creating the file is left to the first budgeted call
    book = open_ledger(url)
    try:
        rows = [s.as_dict() for s in budget_status(chosen, book)]
    finally:
        book.close()
    _print_status(rows, fmt, path)


def _print_status(rows: Sequence[dict[str, Any]], fmt: str, path: Path) -> None:
    if fmt == "json":
        write_json(rows)
        return
    if fmt == "csv":
        write_csv(
            [{**r, "thresholds_crossed": ", ".join(r["thresholds_crossed"])} for r in rows], _STATUS_COLUMNS
        )
        return
    if not rows:
        console().print(f"No budgets in {path}. Add one with `costlens budgets set NAME --limit USD`.")
        return
    headers = ("budget", "mode", "window", "limit", "spent", "reserved", "remaining", "projected", "crossed")
    table = make_table(
        headers, title="Budget status", right=["limit", "spent", "reserved", "remaining", "projected"]
    )
    places = money_places(r[c] for r in rows for c in _MONEY)  # one precision for every money column
    for r in rows:
        table.add_row(
            *cells(
                [
                    r["key"],
                    r["mode"],
                    _window_text(r),
                    *(money(r[c], places) for c in _SHOWN_MONEY),
                    "—" if r["projected_usd"] is None else money(r["projected_usd"], places),
                    ", ".join(r["thresholds_crossed"]) or "—",
                ]
            )
        )
    console().print(table)


def _window_text(row: Mapping[str, Any]) -> str:
    start, end = row["window_start"], row["window_end"]
    if row["window"] == "lifetime" or not isinstance(start, datetime):
        return str(row["window"])
    if end is None:
        return str(row["window"])
    return f"{row['window']}: {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC"


def set_budget(
    name: Annotated[str, typer.Argument(help="Budget name (created, or updated with the options given).")],
    limit: Annotated[
        str | None, typer.Option("--limit", metavar="USD", help="Limit in US dollars, e.g. 5.00.")
    ] = None,
    window: Annotated[
        str | None, typer.Option(metavar="WINDOW", help="day, week, month, <N>h, <N>d (rolling) or lifetime.")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(metavar="TZ", help="IANA time zone of day/week/month.")
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=VALUE", help="Scope selector (repeat); VALUE '*' means each value separately."
        ),
    ] = None,
    mode: Annotated[str | None, typer.Option(metavar="MODE", help="block, downgrade or warn.")] = None,
    downgrade_to: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Cheaper model (mode downgrade).")
    ] = None,
    threshold: Annotated[
        list[str] | None, typer.Option(metavar="PCT", help="Alert threshold in % of the limit (repeat).")
    ] = None,
    forecast: Annotated[
        bool | None, typer.Option("--forecast/--no-forecast", help="Forecast alerts.")
    ] = None,
    unknown_price: Annotated[str | None, typer.Option(metavar="POLICY", help="block or allow.")] = None,
    notify: Annotated[
        list[str] | None, typer.Option(metavar="SINK", help="Alert sink name (repeat).")
    ] = None,
    file: Annotated[Path | None, typer.Option("--file", metavar="PATH", help=FILE_HELP)] = None,
) -> None:
    """Create a budget, or change the given options of an existing one, in the budgets file."""
    from costlens._errors import ConfigError
    from costlens.budgets import Budget
    from costlens.budgets._config import upsert_budget_text

    path = _path(file)
    config = _load(path)
    old = next((b for b in config.budgets if b.name == name), None)
    fields: dict[str, Any] = old.as_dict() if old is not None else {"name": name}
    if old is None and limit is None:
        usage_error(f"budget {name!r} is new: give its limit, e.g. --limit 5.00")
    given = {
        "limit_usd": limit, "window": window, "timezone": timezone, "mode": mode,
        "downgrade_to": downgrade_to, "thresholds": threshold or None, "forecast": forecast,
        "unknown_price": unknown_price, "notify": notify or None,
    }  # fmt: skip
    fields.update({k: v for k, v in given.items() if v is not None})
    if mode is not None and mode != "downgrade" and downgrade_to is None:
        fields.pop("downgrade_to", None)
    if scope is not None:
        fields["scope"] = _parse_scope(scope)
    try:
        made = Budget(fields.pop("name"), **fields)
    except ConfigError as exc:
        usage_error(str(exc))
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    new_text = upsert_budget_text(text, made)
    _check(new_text, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new_text, encoding="utf-8")
    typer.echo(f"{'Updated' if old else 'Added'} budget {name!r} in {path}: {made!r}")


def _parse_scope(items: Sequence[str]) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            usage_error(f"--scope {item!r} must be KEY=VALUE, e.g. --scope feature=chat or --scope user='*'")
        values = [v.strip() for v in value.split(",")]
        out[key.strip()] = values[0] if len(values) == 1 else values
    return out


def _check(text: str, path: Path) -> None:
    """The edited file must still load (e.g. `notify` names a sink the file defines)."""
    from costlens._errors import ConfigError
    from costlens.budgets import parse_budgets

    try:
        parse_budgets(text, str(path))
    except ConfigError as exc:
        usage_error(str(exc))


def remove(
    name: Annotated[str, typer.Argument(help="Budget to remove.")],
    file: Annotated[Path | None, typer.Option("--file", metavar="PATH", help=FILE_HELP)] = None,
) -> None:
    """Remove a budget from the budgets file (its spend stays in the ledger)."""
    from costlens.budgets._config import remove_budget_text

    path = _path(file)
    _load(path)  # a broken file is reported, not edited
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    new_text = remove_budget_text(text, name)
    if new_text is None:
        fail(f"no budget named {name!r} in {path}; see `costlens budgets list`")
    path.write_text(new_text, encoding="utf-8")
    typer.echo(f"Removed budget {name!r} from {path}")
