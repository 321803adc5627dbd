"""The exceptions budgets raise on purpose. They reach the caller; internal failures never do.

`BudgetExceeded` (and its `UnknownPriceBlocked` case) refuse one call before any money is spent.
`BudgetUnavailable` refuses it because the ledger could not be reached and budgets fail closed.
`LimitReached` is the ledger's answer to a reservation that does not fit (the engine turns it into
`BudgetExceeded` or a downgrade).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from costlens._errors import CostlensError
from costlens.usage import NANO

__all__ = [
    "BudgetExceeded",
    "BudgetUnavailable",
    "LedgerUnavailable",
    "LimitReached",
    "UnknownPriceBlocked",
    "usd_text",
]


def usd_text(nanousd: int) -> str:
    """`$4.98`, `$0.0001234`: exact, trailing zeros trimmed to cents."""
    whole, _, frac = format(Decimal(nanousd) / NANO, "f").partition(".")
    return f"${whole}.{frac.rstrip('0').ljust(2, '0')}"


class LimitReached(Exception):
    """A reservation would take budget keys past their limits; nothing was reserved.

    `failures` lists every key that could not take it, as (key, spent, reserved, limit) in the
    order the keys were given; the attributes describe the first.
    """

    def __init__(self, failures: Sequence[tuple[str, int, int, int]]) -> None:
        if not failures:
            raise ValueError("LimitReached needs at least one failing key")
        self.failures = tuple(failures)
        self.key, self.spent_nanousd, self.reserved_nanousd, self.limit_nanousd = self.failures[0]
        super().__init__(
            f"budget key {self.key!r}: spent {self.spent_nanousd} + reserved {self.reserved_nanousd} "
            f"+ this call would pass the limit {self.limit_nanousd} (nano-USD)"
        )


class LedgerUnavailable(Exception):
    """A ledger could not be read or written (file, server, lock timeout). Every backend raises this."""


class BudgetExceeded(CostlensError):
    """A call was refused before it was made: it could take a budget past its limit.

    Attributes say which budget (`budget`, and `key` for the scope instance such as
    `daily[user=u-42]`), what is spent and reserved in the window, the limit, this call's
    worst-case cost (`estimate_usd`, None when its price is unknown) and when the window resets.
    """

    def __init__(
        self,
        budget: str,
        key: str,
        *,
        spent_nanousd: int,
        reserved_nanousd: int,
        limit_nanousd: int,
        estimate_nanousd: int | None,
        model: str,
        resets_at: datetime | None,
        message: str | None = None,
    ) -> None:
        self.budget = budget
        self.key = key
        self.spent_nanousd = spent_nanousd
        self.reserved_nanousd = reserved_nanousd
        self.limit_nanousd = limit_nanousd
        self.estimate_nanousd = estimate_nanousd
        self.model = model
        self.resets_at = resets_at
        super().__init__(message or self._message())

    @property
    def spent_usd(self) -> Decimal:
        return Decimal(self.spent_nanousd) / NANO

    @property
    def limit_usd(self) -> Decimal:
        return Decimal(self.limit_nanousd) / NANO

    @property
    def estimate_usd(self) -> Decimal | None:
        return None if self.estimate_nanousd is None else Decimal(self.estimate_nanousd) / NANO

    def _message(self) -> str:
        estimate = "unknown" if self.estimate_nanousd is None else usd_text(self.estimate_nanousd)
        resets = f"; the window resets at {self.resets_at.isoformat()}" if self.resets_at else ""
        return (
            f"costlens budget {self.key!r} refused a call to {self.model}: spent "
            f"{usd_text(self.spent_nanousd)} + reserved {usd_text(self.reserved_nanousd)} + this call's "
            f"worst case {estimate} would pass the limit {usd_text(self.limit_nanousd)}{resets}. "
            f"Raise the limit (`costlens budgets set {self.budget} --limit ...`), lower max_tokens, "
            "or use mode 'downgrade' or 'warn'"
        )


class UnknownPriceBlocked(BudgetExceeded):
    """A call to a model without a known price was refused by a budget's unknown-price policy."""

    def __init__(self, budget: str, key: str, *, provider: str, model: str, limit_nanousd: int) -> None:
        message = (
            f"costlens budget {key!r} refused a call to {provider}/{model}: its price is unknown, so its "
            "worst-case cost cannot be reserved. Add the price to a prices overrides file (a [[models]] "
            f'table with provider = "{provider}", model = "{model}", input = <USD per 1M tokens>, '
            "output = <USD per 1M tokens>; point COSTLENS_PRICES at it and check with "
            f"`costlens prices show {model}`), or set unknown_price = 'allow' on budget {budget!r}"
        )
        super().__init__(
            budget,
            key,
            spent_nanousd=0,
            reserved_nanousd=0,
            limit_nanousd=limit_nanousd,
            estimate_nanousd=None,
            model=model,
            resets_at=None,
            message=message,
        )


class BudgetUnavailable(CostlensError):
    """Budgets could not be checked (the ledger failed, or the budgets file is invalid), and budgets
    fail closed: the call was refused. `ledger` names the ledger, `file` the budgets file at fault."""

    def __init__(self, ledger: str, cause: BaseException, *, file: str | None = None) -> None:
        if file is not None:
            message = (
                f"costlens could not check budgets: the budgets file {file} is invalid ({cause}). "
                "The call was refused because budgets fail closed; fix the file (`costlens budgets "
                "list` shows what it reads), or remove it to turn budgets off"
            )
        else:
            message = (
                f"costlens could not check budgets: the ledger {ledger} failed "
                f"({type(cause).__name__}: {cause}). "
                "The call was refused because budgets fail closed; fix the ledger, or pass fail_open=True "
                "to configure_budgets() (fail_open = true in the budgets file) to let calls through "
                "unbudgeted"
            )
        super().__init__(message)
        self.ledger = ledger
        self.file = file
        self.cause = cause
