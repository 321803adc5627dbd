"""Where each budget stands: spent, reserved, remaining, projected end-of-window spend, thresholds crossed.

The library function behind `costlens budgets status` (and, later, an API endpoint and a page).
`recorded_budgets` finds the budgets that processes put in force from code (the ledger keeps their
definitions), so that `status` shows them next to the budgets file's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from costlens._errors import ConfigError
from costlens.budgets._ledger import BudgetDefinition, BudgetKey, Ledger
from costlens.budgets._model import Budget
from costlens.budgets._watch import projection
from costlens.budgets._window import CALENDAR
from costlens.usage import NANO

__all__ = ["BudgetStatus", "RecordedBudgets", "budget_status", "recorded_budgets"]


def _usd(nanousd: int | None) -> Decimal | None:
    return None if nanousd is None else Decimal(nanousd) / NANO


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One budget key (a `*` budget has one per tag value seen in the window)."""

    budget: Budget
    key: str
    window_start: datetime
    window_end: datetime | None
    spent_usd: Decimal
    reserved_usd: Decimal
    projected_usd: Decimal | None
    eta: datetime | None
    thresholds_crossed: tuple[Decimal, ...]
    #: Where the budget comes from when it is not one of the budgets asked about (the file's): the
    #: definition a process recorded in the ledger.
    recorded: BudgetDefinition | None = None

    @property
    def defined_in(self) -> str:
        """`file` (the budgets asked about), or the recorded source: `code` (or another `file`)."""
        return "file" if self.recorded is None else self.recorded.source

    @property
    def limit_usd(self) -> Decimal:
        return self.budget.limit_usd

    @property
    def remaining_usd(self) -> Decimal:
        return max(self.budget.limit_usd - self.spent_usd - self.reserved_usd, Decimal(0))

    def as_dict(self) -> dict[str, Any]:
        b = self.budget
        return {
            "budget": b.name,
            "key": self.key,
            "scope": b.scope.describe(),
            "mode": b.mode,
            "window": b.window.describe(),
            "window_start": self.window_start,
            "window_end": self.window_end,
            "limit_usd": b.limit_usd,
            "spent_usd": self.spent_usd,
            "reserved_usd": self.reserved_usd,
            "remaining_usd": self.remaining_usd,
            "projected_usd": self.projected_usd,
            "limit_reached_at": self.eta,
            "thresholds_crossed": [f"{t}%" for t in self.thresholds_crossed],
            "defined_in": self.defined_in,
            "defined_by": None if self.recorded is None else self.recorded.origin,
            "defined_at": None if self.recorded is None else _at(self.recorded.defined_us),
        }


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


@dataclass(frozen=True, slots=True)
class RecordedBudgets:
    """Budgets the ledger has definitions of and the file does not (each with its definition), and
    notes: a recorded definition that differs from the file's, or one this costlens cannot read."""

    budgets: list[tuple[Budget, BudgetDefinition]]
    notes: dict[str, str]  # budget name -> note


def recorded_budgets(ledger: Ledger, file_budgets: Sequence[Budget], file: str = "") -> RecordedBudgets:
    """The budgets in force elsewhere that `file_budgets` (the budgets file `file`) do not define.

    A definition recorded by a process is shown unless it was removed, or it came from `file` itself
    (the file is the truth about its own budgets: one taken out of it is gone). A budget defined both
    in the file and elsewhere is the file's; a note says how the other definition differs.
    A ledger that keeps no definitions (no `definitions` method) has none."""
    read = getattr(ledger, "definitions", None)
    found: list[BudgetDefinition] = list(read()) if read is not None else []
    in_file = {b.name: b for b in file_budgets}
    out: list[tuple[Budget, BudgetDefinition]] = []
    notes: dict[str, str] = {}
    for d in found:
        if d.removed or (d.source == "file" and d.origin == file):
            continue
        try:
            budget = Budget.from_dict(d.definition)
        except ConfigError as exc:
            notes[d.name] = (
                f"budget {d.name!r} recorded in the ledger, defined {_by(d)}, cannot be read: {exc}"
            )
            continue
        mine = in_file.get(d.name)
        if mine is None:
            out.append((budget, d))
            continue
        differs = _differences(mine.as_dict(), budget.as_dict(), "in code" if d.source == "code" else "there")
        if differs:
            notes[d.name] = (
                f"budget {d.name!r} is also defined {_by(d)} differently ({differs}); "
                "the budgets file's definition is shown"
            )
    return RecordedBudgets(out, notes)


def _by(d: BudgetDefinition) -> str:
    at = f"{_at(d.defined_us):%Y-%m-%d %H:%M} UTC"
    if d.source == "code":
        return f"in code by {d.origin or 'another process'}, last at {at},"
    return f"in the budgets file {d.origin}, read at {at},"


def _differences(file: dict[str, Any], other: dict[str, Any], there: str) -> str:
    keys = [k for k in {**file, **other} if file.get(k) != other.get(k)]
    return "; ".join(f"{k} {_text(file.get(k))} in the file, {_text(other.get(k))} {there}" for k in keys)


def _text(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_text(v)}" for k, v in value.items()) + "}" if value else "global"
    return str(value)


def budget_status(
    budgets: Iterable[Budget],
    ledger: Ledger,
    at: datetime | None = None,
    *,
    recorded: Iterable[tuple[Budget, BudgetDefinition]] = (),
) -> list[BudgetStatus]:
    """Status of every budget key at `at` (now): of `budgets`, then of the `recorded` ones (budgets
    defined elsewhere, from `recorded_budgets`), which carry their definition.

    Keys of `*` budgets with nothing spent or reserved in the window are left out.
    """
    at = at or datetime.now(UTC)
    out = []
    chosen: list[tuple[Budget, BudgetDefinition | None]] = [(b, None) for b in budgets]
    for budget, definition in [*chosen, *recorded]:
        pos = budget.window.position(at)
        starred = any(v is None for v in budget.scope.selectors.values())
        ids = ledger.key_ids(budget.name) if starred else [budget.name]
        for key_id in ids:
            key = BudgetKey(key_id, budget.limit_nanousd, pos.since_us, pos.bucket_us, budget.enforced)
            p = projection(ledger, budget, key, pos, at)
            if starred and p.spent_nanousd == 0 and p.reserved_nanousd == 0:
                continue
            crossed = tuple(t for t in budget.thresholds if p.spent_nanousd * 100 >= t * budget.limit_nanousd)
            out.append(
                BudgetStatus(
                    budget=budget,
                    key=key_id,
                    window_start=pos.start,
                    window_end=pos.end if budget.window.kind in CALENDAR else None,
                    spent_usd=Decimal(p.spent_nanousd) / NANO,
                    reserved_usd=Decimal(p.reserved_nanousd) / NANO,
                    projected_usd=_usd(p.projected_nanousd),
                    eta=p.eta,
                    thresholds_crossed=crossed,
                    recorded=definition,
                )
            )
    return out
