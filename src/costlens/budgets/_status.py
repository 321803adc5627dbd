"""Where each budget stands: spent, reserved, remaining, projected end-of-window spend, thresholds crossed.

The library function behind `costlens budgets status` (and, later, an API endpoint and a page).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from costlens.budgets._ledger import BudgetKey, Ledger
from costlens.budgets._model import Budget
from costlens.budgets._watch import projection
from costlens.budgets._window import CALENDAR
from costlens.usage import NANO

__all__ = ["BudgetStatus", "budget_status"]


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
        }


def budget_status(
    budgets: Iterable[Budget], ledger: Ledger, at: datetime | None = None
) -> list[BudgetStatus]:
    """Status of every budget key at `at` (now).

    Keys of `*` budgets with nothing spent or reserved in the window are left out.
    """
    at = at or datetime.now(UTC)
    out = []
    for budget in budgets:
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
                )
            )
    return out
