"""Budgets as a pipeline step: reserve before the call, settle after it."""

from __future__ import annotations

from collections.abc import Generator

from costlens.budgets._enforce import BudgetEngine, Ticket
from costlens.budgets._errors import BudgetUnavailable
from costlens.pipeline import Call

__all__ = ["BrokenBudgets", "BudgetStep"]


class BudgetStep:
    """The `budget` slot: `engine.admit` before the call (may refuse it), `engine.settle` after."""

    def __init__(self, engine: BudgetEngine) -> None:
        self.engine = engine
        # the lean path's halves (`costlens.pipeline.LeanStep`), the engine's own: a frame less per call
        self.admit_lean = engine.admit_lean
        self.settle_lean = engine.settle_lean

    def is_idle(self) -> bool:
        """No budget in force (`configure_budgets([])`): `admit` would reserve nothing, so a call
        may skip the step (`Pipeline.lean`); budgets added later are seen by the next call."""
        return not self.engine.budgets

    def flow(self, call: Call) -> Generator[None, None, None]:
        engine = self.engine
        ticket = engine.admit(call)
        if ticket is None:
            return
        try:
            yield
        finally:  # success or error: the price is on the record (0 when nothing was billed)
            engine.settle(ticket, call)

    def admitted_flow(self, ticket: Ticket, call: Call) -> Generator[None, None, None]:
        """The after-half of a call that `admit_lean` admitted and that became a `Call` (it failed,
        or its answer needs the full path): its entries on its record, settled at its end (as `flow`)."""
        call.note_budgets_later(ticket)
        try:
            yield
        finally:
            self.engine.settle(ticket, call)


class BrokenBudgets:
    """The `budget` slot while the budgets file cannot be read: every call is refused with
    `BudgetUnavailable` naming the file and the problem (budgets fail closed)."""

    def __init__(self, file: str, error: Exception) -> None:
        self.file = file
        self.error = error

    def flow(self, call: Call) -> Generator[None, None, None]:
        raise BudgetUnavailable("(not opened)", self.error, file=self.file) from self.error
        yield  # a generator, like every step
