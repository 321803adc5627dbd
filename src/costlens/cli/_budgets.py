"""`costlens budgets list|status|set|remove`: the budgets file and where each budget stands.

The budgets file is `--file`, else `$COSTLENS_BUDGETS`, else `budgets.toml` in the costlens data
folder: the file every tracked process reads on its first call. `set` and `remove` edit one
`[[budgets]]` block and leave the rest of the file (comments included) as it was.

`list` and `status` also show the budgets that processes defined in code (`costlens.budget(...)`,
`configure_budgets([...])`): each engine records its budgets' definitions in the ledger. They are
marked `code` (column `defined_in`); a budget in the file and in code is shown as the file defines it,
with a note when the two differ. `remove` of such a budget marks its definition removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
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
    from costlens.budgets import BudgetConfig, Ledger, RecordedBudgets

FILE_HELP = "Budgets file (default: $COSTLENS_BUDGETS, else budgets.toml in the costlens data folder)."
LEDGER_HELP = "Ledger URL (default: the file's [settings] ledger, else $COSTLENS_LEDGER, else budgets.db)."
_LIST_COLUMNS = (
    "name", "scope", "limit_usd", "window", "mode", "downgrade_to", "thresholds", "notify", "defined_in",
)  # fmt: skip
_STATUS_COLUMNS = (
    "budget", "key", "mode", "window", "window_start", "window_end", "limit_usd", "spent_usd",
    "reserved_usd", "remaining_usd", "projected_usd", "limit_reached_at", "thresholds_crossed",
    "defined_in", "defined_by", "defined_at",
)  # fmt: skip
_CODE_CAPTION = (
    "defined in code: by costlens.budget(...) or configure_budgets([...]) in a process using this "
    "ledger, not in the budgets file"
)
_MONEY = {"limit_usd", "spent_usd", "reserved_usd", "remaining_usd", "projected_usd"}
_SHOWN_MONEY = ("limit_usd", "spent_usd", "reserved_usd", "remaining_usd")


def _path(file: Path | None) -> Path:
    from costlens.config import budgets_path

    return file.expanduser().absolute() if file is not None else budgets_path()


def _load(path: Path) -> BudgetConfig:
    from costlens.budgets import BudgetConfig, load_budgets

    return load_budgets(path) if path.is_file() else BudgetConfig(path=str(path))


def _ledger_url(ledger: str | None, config: BudgetConfig) -> str:
    from costlens.config import default_ledger_url

    return ledger or config.ledger or default_ledger_url()


def _open_book(url: str) -> tuple[Ledger, bool]:
    """The ledger at `url`, and whether it exists: a SQLite ledger that does not exist yet is not
    created (an empty memory ledger stands in for it)."""
    from costlens.budgets import open_ledger

    if url.startswith("sqlite://") and not Path(url.partition("://")[2]).is_file():
        return open_ledger("memory://"), False  # creating the file is left to the first budgeted call
    return open_ledger(url), True


def _recorded(book: Ledger, config: BudgetConfig, path: Path) -> RecordedBudgets:
    from costlens.budgets import recorded_budgets

    return recorded_budgets(book, config.budgets, str(path.expanduser().absolute()))


def list_budgets(
    file: Annotated[Path | None, typer.Option("--file", metavar="PATH", help=FILE_HELP)] = None,
    ledger: Annotated[str | None, typer.Option("--ledger", metavar="URL", help=LEDGER_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """List the budgets defined in the budgets file, and those defined in code (from the ledger)."""
    from costlens.budgets import LedgerUnavailable, RecordedBudgets

    fmt = check_format(fmt)
    path = _path(file)
    config = _load(path)
    url = _ledger_url(ledger, config)
    book, _ = _open_book(url)
    try:
        found = _recorded(book, config, path)
    except LedgerUnavailable as exc:  # the file's budgets are still worth listing
        note(f"costlens: budgets defined in code not listed: {exc}")
        found = RecordedBudgets([], {})
    finally:
        book.close()
    for text in found.notes.values():
        note(f"costlens: {text}")
    listed = [(b, "file", None, None) for b in config.budgets] + [
        (b, d.source, d.origin, _defined_at(d.defined_us)) for b, d in found.budgets
    ]
    rows = [{**_list_row(b.as_dict(), b.scope.describe()), "defined_in": src} for b, src, _, _ in listed]
    if fmt == "json":
        write_json(
            [
                {**b.as_dict(), "defined_in": src, "defined_by": by, "defined_at": at}
                for b, src, by, at in listed
            ]
        )
    elif fmt == "csv":
        write_csv(rows, _LIST_COLUMNS)
    elif not rows:
        console().print(f"No budgets in {path}. Add one with `costlens budgets set NAME --limit USD`.")
    else:
        columns = _LIST_COLUMNS if found.budgets else _LIST_COLUMNS[:-1]
        table = make_table(
            columns,
            title=f"Budgets in {path}" + (" and recorded in the ledger" if found.budgets else ""),
            right=["limit_usd"],
        )
        table.caption = _CODE_CAPTION if any(d.source == "code" for _, d in found.budgets) else None
        places = money_places(row["limit_usd"] for row in rows)
        for row, (_, src, by, _) in zip(rows, listed, strict=True):
            shown = {**row, "defined_in": _defined_cell(src, by)}
            table.add_row(*cells([money(row[c], places) if c == "limit_usd" else shown[c] for c in columns]))
        console().print(table)


def _defined_cell(source: str, by: str | None) -> str:
    """`file` (this budgets file), `code`, or `file <name>` (a budget from another budgets file; json
    and csv give its full path in `defined_by`)."""
    return f"file {Path(by).name}" if source == "file" and by is not None else source


def _defined_at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


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
    """Spent, reserved, remaining, projected end-of-window spend and thresholds crossed, per budget:
    those of the budgets file, and those defined in code by processes using the ledger."""
    from costlens.budgets import budget_status

    fmt = check_format(fmt)
    path = _path(file)
    config = _load(path)
    url = _ledger_url(ledger, config)
    book, exists = _open_book(url)
    try:
        found = _recorded(book, config, path)
        chosen = [b for b in config.budgets if not names or b.name in names]
        recorded = [(b, d) for b, d in found.budgets if not names or b.name in names]
        unknown = sorted(
            set(names or ()) - {b.name for b in config.budgets} - {b.name for b, _ in found.budgets}
        )
        if unknown:
            usage_error(
                f"no budget named {unknown[0]!r} in {path}, nor defined in code by a process using the "
                f"ledger {url}; see `costlens budgets list` (a budget defined in code shows once its process "
                "has configured it with this ledger; or add it to the file with `costlens budgets set`)"
            )
        if not exists:
            note(f"costlens: no ledger at {url} yet: nothing has been spent under these budgets")
        rows = [s.as_dict() for s in budget_status(chosen, book, recorded=recorded)]
    finally:
        book.close()
    for name, text in found.notes.items():
        if not names or name in names:
            note(f"costlens: {text}")
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
    from_code = any(r["defined_by"] is not None for r in rows)
    headers = ("budget", "mode", "window", "limit", "spent", "reserved", "remaining", "projected", "crossed")
    table = make_table(
        (*headers, "defined in") if from_code else headers,
        title="Budget status",
        right=["limit", "spent", "reserved", "remaining", "projected"],
    )
    table.caption = _CODE_CAPTION if any(r["defined_in"] == "code" for r in rows) else None
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
                    *([_defined_cell(r["defined_in"], r["defined_by"])] if from_code else []),
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
    ledger: Annotated[str | None, typer.Option("--ledger", metavar="URL", help=LEDGER_HELP)] = None,
) -> None:
    """Remove a budget from the budgets file (its spend stays in the ledger); a budget defined in code
    is marked removed in the ledger, so `list` and `status` stop showing it."""
    from costlens.budgets._config import remove_budget_text

    path = _path(file)
    config = _load(path)  # a broken file is reported, not edited
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    new_text = remove_budget_text(text, name)
    if new_text is None:
        _forget(name, path, config, ledger)
        return
    path.write_text(new_text, encoding="utf-8")
    typer.echo(f"Removed budget {name!r} from {path}")


def _forget(name: str, path: Path, config: BudgetConfig, ledger: str | None) -> None:
    """Mark the recorded definition of a budget defined elsewhere (in code) removed."""
    from dataclasses import replace

    from costlens.budgets._ledger import now_us

    url = _ledger_url(ledger, config)
    book, _ = _open_book(url)
    try:
        found = next((d for b, d in _recorded(book, config, path).budgets if b.name == name), None)
        if found is None:
            fail(f"no budget named {name!r} in {path}, nor defined in code; see `costlens budgets list`")
        at = now_us()
        book.record_definitions([replace(found, defined_us=at, removed_us=at)])
    finally:
        book.close()
    where = f"in code by {found.origin}" if found.source == "code" else f"in {found.origin}"
    typer.echo(
        f"Removed budget {name!r} (defined {where}) from the ledger's definitions: "
        "`costlens budgets status` no longer shows it. A process that has it in force still enforces it "
        "(and records it again when it is configured again): remove it from that code too."
    )
