"""`costlens keys create|list|revoke`: the API keys of `costlens serve` (`costlens.server._keys`).

A key is printed once, when it is created; only its SHA-256 is stored, with its id, name, prefix (the
first 8 characters, to recognise it), scopes and optional budget."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from costlens.cli._output import (
    FORMAT_HELP,
    cells,
    check_format,
    console,
    fail,
    make_table,
    money,
    note,
    usage_error,
    write_csv,
    write_json,
)

keys_app = typer.Typer(help="API keys of `costlens serve`: create (shown once), list, revoke.")

DB_HELP = "Keys database (default: keys.db in the costlens data folder; `keys_db` in the server config)."
_COLUMNS = ("id", "name", "prefix", "scopes", "created", "revoked", "budget_usd", "budget_window")


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="What the key is for, e.g. ci-bot.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", metavar="SCOPE", help="read, gateway or admin (repeat or comma-separate)."),
    ],
    budget_usd: Annotated[
        str | None, typer.Option("--budget-usd", metavar="USD", help="A budget for this key's gateway calls.")
    ] = None,
    window: Annotated[
        str,
        typer.Option("--window", metavar="WINDOW", help="Budget window: day, week, month, lifetime."),
    ] = "month",
    db: Annotated[Path | None, typer.Option("--db", metavar="PATH", help=DB_HELP)] = None,
) -> None:
    """Create a key and print it once (it cannot be shown again: only its hash is kept)."""
    from costlens._errors import ConfigError
    from costlens.server._keys import KeyStore

    scopes = [part.strip() for value in scope for part in value.split(",") if part.strip()]
    try:
        key, made = KeyStore(db).create(name, scopes, budget_usd=budget_usd, window=window)
    except ConfigError as exc:
        usage_error(str(exc))
    typer.echo(key)
    budget = "" if made.budget is None else f", budget {money(made.budget[0])} per {made.budget[1]}"
    note(
        f"Created API key {made.id} ({made.name}; {', '.join(made.scopes)}{budget}). "
        "Store it now: it is not shown again."
    )


@keys_app.command("list")
def list_keys(
    db: Annotated[Path | None, typer.Option("--db", metavar="PATH", help=DB_HELP)] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """List the keys (never the keys themselves: their id, name, prefix, scopes, budget)."""
    from costlens.server._keys import KeyStore

    fmt = check_format(fmt)
    rows = [key.as_row() for key in KeyStore(db).list()]
    if fmt == "json":
        write_json(rows)
    elif fmt == "csv":
        write_csv([{**r, "scopes": " ".join(r["scopes"])} for r in rows], _COLUMNS)  # type: ignore[arg-type]
    elif not rows:
        console().print("No API keys yet. Create one with `costlens keys create --name NAME --scope read`.")
    else:
        table = make_table(_COLUMNS, title="API keys", right=["budget_usd"])
        for row in rows:
            limit = row["budget_usd"]
            shown = {
                **row,
                "scopes": ", ".join(row["scopes"]),  # type: ignore[arg-type]
                "budget_usd": money(limit) if isinstance(limit, Decimal) else "",
            }
            table.add_row(*cells([shown[c] for c in _COLUMNS]))
        console().print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (see `costlens keys list`).")],
    db: Annotated[Path | None, typer.Option("--db", metavar="PATH", help=DB_HELP)] = None,
) -> None:
    """Revoke a key: from now on every request with it is refused."""
    from costlens.server._keys import KeyStore

    found = KeyStore(db).revoke(key_id)
    if found is None:
        fail(f"no API key {key_id!r}; `costlens keys list` shows them")
    typer.echo(f"Revoked API key {found.id} ({found.name})")
