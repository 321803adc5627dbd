"""The budgets page: where each budget stands, read as `costlens budgets status` reads it.

The budgets file is the server's (`ServerConfig.budgets`), else `budgets_path()`; the ledger is the
server's, else the file's `[settings] ledger`, else `default_ledger_url()`. Budgets defined in code
by processes using that ledger come from `recorded_budgets`; every number from `budget_status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from costlens.budgets import BudgetStatus, Ledger

__all__ = ["BudgetRow", "budgets_view", "status_colour"]

_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class BudgetRow:
    status: BudgetStatus
    colour: str  # ok | warn | over
    label: str
    spent_pct: Decimal  # of the limit, capped at 100 for the bar
    reserved_pct: Decimal


def status_colour(s: BudgetStatus) -> tuple[str, str]:
    """`over` (red) once spent reaches the limit; `warn` (amber) once a threshold is crossed or the
    projection passes the limit; else `ok` (green). With the text shown next to the colour."""
    if s.spent_usd >= s.limit_usd:
        return "over", "limit reached"
    if s.thresholds_crossed:
        return "warn", f"{s.thresholds_crossed[-1]}% crossed"
    if s.projected_usd is not None and s.projected_usd > s.limit_usd:
        return "warn", "projected over"
    return "ok", "on track"


def _pct(part: Decimal, whole: Decimal) -> Decimal:
    if whole <= 0:
        return _HUNDRED if part > 0 else Decimal(0)
    return min(_HUNDRED, part * _HUNDRED / whole).quantize(Decimal("0.1"))


def _open(url: str) -> tuple[Ledger, bool]:
    """The ledger at `url`; a SQLite ledger that does not exist yet is not created (as the CLI)."""
    from costlens.budgets import open_ledger

    if url.startswith("sqlite://") and not Path(url.partition("://")[2]).is_file():
        return open_ledger("memory://"), False
    return open_ledger(url), True


def budgets_view(budgets_file: Path | None, ledger_url: str | None) -> dict[str, Any]:
    """Rows for every budget key, the file and ledger they were read from, and notes/errors."""
    from costlens._errors import ConfigError
    from costlens.budgets import (
        BudgetConfig,
        LedgerUnavailable,
        budget_status,
        load_budgets,
        recorded_budgets,
    )
    from costlens.config import budgets_path, default_ledger_url

    path = (budgets_file.expanduser() if budgets_file is not None else budgets_path()).absolute()
    view: dict[str, Any] = {"file": str(path), "ledger": None, "rows": [], "notes": [], "error": None}
    try:
        config = load_budgets(path) if path.is_file() else BudgetConfig(path=str(path))
    except ConfigError as exc:
        view["error"] = f"The budgets file cannot be read: {exc}"
        return view
    url = ledger_url or config.ledger or default_ledger_url()
    view["ledger"] = url
    try:
        book, exists = _open(url)
    except (ConfigError, LedgerUnavailable, ValueError) as exc:
        view["error"] = f"The ledger {url} cannot be opened: {exc}"
        return view
    try:
        found = recorded_budgets(book, config.budgets, str(path))
        statuses = budget_status(config.budgets, book, recorded=found.budgets)
    except LedgerUnavailable as exc:
        view["error"] = f"The ledger {url} is not answering: {exc}"
        return view
    finally:
        book.close()
    if not exists and config.budgets:
        view["notes"].append(f"No ledger at {url} yet: nothing has been spent under these budgets.")
    view["notes"].extend(found.notes.values())
    rows = []
    for s in statuses:
        colour, label = status_colour(s)
        rows.append(
            BudgetRow(s, colour, label, _pct(s.spent_usd, s.limit_usd), _pct(s.reserved_usd, s.limit_usd))
        )
    view["rows"] = rows
    return view
