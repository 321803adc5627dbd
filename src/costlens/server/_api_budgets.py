"""`/api/budgets`: the budgets, where each stands, and (admin) setting or removing one.

Read as `costlens budgets list|status` read them, from the same library pieces: the budgets file is
the server's (`ServerConfig.budgets`), else `costlens.config.budgets_path()`; the ledger is the
server's, else the file's `[settings] ledger`, else `default_ledger_url()`; budgets defined in code
come from `recorded_budgets`, every number from `budget_status`. Writes edit one `[[budgets]]` block
of the file as `costlens budgets set|remove` do (`upsert_budget_text`, `remove_budget_text`, checked
with `parse_budgets`), then put the file's budgets in force in this process (`configure_budgets`).
The CLI keeps this logic inline, so the thin functions here repeat its steps over the library.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from costlens.server._api_models import BudgetIn, BudgetOut, BudgetRemoved, BudgetStatusOut, Message
from costlens.server._api_params import bad, jsonable
from costlens.server._context import ServerContext

if TYPE_CHECKING:
    from costlens.budgets import Budget, BudgetConfig, Ledger, RecordedBudgets

__all__ = ["budget_rows", "remove_budget", "router", "set_budget", "status_rows"]

_NAME = r"^[A-Za-z0-9_.:/@\-]{1,128}$"
_write_lock = threading.Lock()
Name = Annotated[str, PathParam(pattern=_NAME, description="The budget's name.")]


def _path(ctx: ServerContext) -> Path:
    from costlens.config import budgets_path

    file = ctx.config.budgets
    return file.expanduser().absolute() if file is not None else budgets_path()


def _load(path: Path) -> BudgetConfig:
    from costlens.budgets import BudgetConfig, load_budgets

    return load_budgets(path) if path.is_file() else BudgetConfig(path=str(path))


@contextmanager
def _ledger(ctx: ServerContext, config: BudgetConfig) -> Iterator[Ledger]:
    """The ledger (a SQLite ledger that does not exist yet is not created: an empty one stands in)."""
    from costlens.budgets import open_ledger
    from costlens.config import default_ledger_url

    url = ctx.config.ledger or config.ledger or default_ledger_url()
    exists = not (url.startswith("sqlite://") and not Path(url.partition("://")[2]).is_file())
    book = open_ledger(url if exists else "memory://")
    try:
        yield book
    finally:
        book.close()


def _recorded(book: Ledger, config: BudgetConfig, path: Path) -> RecordedBudgets:
    from costlens.budgets import recorded_budgets

    return recorded_budgets(book, config.budgets, str(path))


def _defined_at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _budget_out(b: Budget, source: str, by: str | None, at: datetime | None) -> dict[str, Any]:
    data = b.as_dict()
    return {
        "name": b.name,
        "scope": data["scope"],
        "scope_text": b.scope.describe(),
        "limit_usd": data["limit_usd"],
        "window": data["window"],
        "timezone": data.get("timezone"),
        "mode": data["mode"],
        "downgrade_to": data.get("downgrade_to"),
        "thresholds": [str(t) for t in data["thresholds"]],
        "forecast": data["forecast"],
        "unknown_price": data["unknown_price"],
        "notify": data.get("notify"),
        "defined_in": source,
        "defined_by": by,
        "defined_at": at,
    }


def budget_rows(ctx: ServerContext) -> list[dict[str, Any]]:
    """`costlens budgets list --format json`: the file's budgets, then those recorded from code."""
    config = _load(_path(ctx))
    with _ledger(ctx, config) as book:
        found = _recorded(book, config, _path(ctx))
    return [_budget_out(b, "file", None, None) for b in config.budgets] + [
        _budget_out(b, d.source, d.origin, _defined_at(d.defined_us)) for b, d in found.budgets
    ]


def status_rows(ctx: ServerContext, names: list[str]) -> list[dict[str, Any]]:
    """`costlens budgets status --format json` (spent, reserved, projected, thresholds crossed)."""
    from fastapi import HTTPException

    from costlens.budgets import budget_status

    path = _path(ctx)
    config = _load(path)
    with _ledger(ctx, config) as book:
        found = _recorded(book, config, path)
        chosen = [b for b in config.budgets if not names or b.name in names]
        recorded = [(b, d) for b, d in found.budgets if not names or b.name in names]
        unknown = sorted(set(names) - {b.name for b in config.budgets} - {b.name for b, _ in found.budgets})
        if unknown:
            raise HTTPException(404, f"no budget named {unknown[0]!r} in {path}, nor defined in code")
        statuses = budget_status(chosen, book, recorded=recorded)
    return [jsonable(s.as_dict()) for s in statuses]


def _reload(ctx: ServerContext, path: Path) -> None:
    """Put the edited file's budgets in force in this process (the API keys' budgets come back on
    their next use)."""
    from costlens.config import configure_budgets

    configure_budgets(file=path)


def set_budget(ctx: ServerContext, name: str, given: BudgetIn) -> dict[str, Any]:
    """Create a budget, or change the given fields of one, in the budgets file (`budgets set`)."""
    from costlens._errors import ConfigError
    from costlens.budgets import Budget, parse_budgets
    from costlens.budgets._config import upsert_budget_text

    path = _path(ctx)
    with _write_lock:
        config = _load(path)
        old = next((b for b in config.budgets if b.name == name), None)
        fields: dict[str, Any] = old.as_dict() if old is not None else {"name": name}
        if old is None and given.limit_usd is None:
            bad("limit_usd", f'budget {name!r} is new: give its limit_usd, e.g. "5.00"', None, where="body")
        changes = given.model_dump(exclude_none=True)
        fields.update(changes)
        if given.mode is not None and given.mode != "downgrade" and given.downgrade_to is None:
            fields.pop("downgrade_to", None)
        try:
            made = Budget(fields.pop("name"), **fields)
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            new_text = upsert_budget_text(text, made)
            parse_budgets(new_text, str(path))
        except (ConfigError, ValueError, TypeError) as exc:
            bad("budget", str(exc), None, where="body")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new_text, encoding="utf-8")
        _reload(ctx, path)
    return _budget_out(made, "file", None, None)


def remove_budget(ctx: ServerContext, name: str) -> dict[str, str]:
    """Remove a budget from the file, or mark one defined in code removed in the ledger (`budgets remove`)."""
    from dataclasses import replace

    from fastapi import HTTPException

    from costlens.budgets._config import remove_budget_text
    from costlens.budgets._ledger import now_us

    path = _path(ctx)
    with _write_lock:
        config = _load(path)
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        new_text = remove_budget_text(text, name)
        if new_text is not None:
            path.write_text(new_text, encoding="utf-8")
            _reload(ctx, path)
            return {"removed": name, "defined_in": "file"}
        with _ledger(ctx, config) as book:
            found = next((d for b, d in _recorded(book, config, path).budgets if b.name == name), None)
            if found is None:
                raise HTTPException(404, f"no budget named {name!r} in {path}, nor defined in code")
            at = now_us()
            book.record_definitions([replace(found, defined_us=at, removed_us=at)])
    return {"removed": name, "defined_in": found.source}


def router(ctx: ServerContext) -> Any:
    api = APIRouter()
    not_found: dict[int | str, dict[str, Any]] = {404: {"model": Message}}
    bad_body: dict[int | str, dict[str, Any]] = {400: {"model": Message, "description": "Not JSON."}}

    @api.get("/budgets", response_model=list[BudgetOut], tags=["budgets"])
    def budgets() -> Any:
        """The budgets file's budgets and those defined in code (`costlens budgets list`)."""
        return budget_rows(ctx)

    @api.get("/budgets/status", response_model=list[BudgetStatusOut], tags=["budgets"], responses=not_found)
    def status(
        name: Annotated[list[str], Query(description="Only these budgets (repeat).")] = [],  # noqa: B006
    ) -> Any:
        """Spent, reserved, remaining, projected, thresholds crossed (`costlens budgets status`)."""
        return status_rows(ctx, name)

    @api.put("/budgets/{name}", response_model=BudgetOut, tags=["budgets"], responses=bad_body)
    def put_budget(name: Name, budget: BudgetIn) -> Any:
        """Create a budget or change some of its fields (admin; `costlens budgets set`)."""
        return set_budget(ctx, name, budget)

    @api.delete("/budgets/{name}", response_model=BudgetRemoved, tags=["budgets"], responses=not_found)
    def delete_budget(name: Name) -> Any:
        """Remove a budget (admin; `costlens budgets remove`)."""
        return remove_budget(ctx, name)

    return api
