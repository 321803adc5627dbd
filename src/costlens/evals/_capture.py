"""The run's own pipeline: the process's steps and budgets, the run's cost cap in the `cap` slot, and
a sink that holds each call's records until the runner has written the item to its journal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal

from costlens._errors import internal_error
from costlens.pipeline import Step
from costlens.usage import CallRecord

__all__ = ["RunPipeline"]

_SLOT: ContextVar[list[CallRecord] | None] = ContextVar("costlens_eval_slot", default=None)
#: A cap already spent still needs a positive limit: the budget then refuses the first call.
_SMALLEST = Decimal("0.000000001")


class RunPipeline:
    """Built once per run from the process's pipeline (taken when the run starts)."""

    def __init__(self, run_id: str, max_cost_usd: Decimal | None, spent: Decimal) -> None:
        from costlens.config import get_pipeline

        base = get_pipeline()
        self._sinks = base.sinks
        self.pipeline = base.with_step("cap", _cap(run_id, max_cost_usd, spent)).with_sinks([self._sink])

    def _sink(self, record: CallRecord) -> None:
        slot = _SLOT.get()
        if slot is not None:
            slot.append(record)
        else:  # a call outside any item (none today): straight on
            self.hand_on([record])

    @contextmanager
    def capturing(self) -> Iterator[list[CallRecord]]:
        """Tracked calls in this block go through the run's pipeline; their records are collected
        in the list yielded, not sent on, until `hand_on`."""
        from costlens.instrument import using_pipeline

        slot: list[CallRecord] = []
        token = _SLOT.set(slot)
        try:
            with using_pipeline(self.pipeline):
                yield slot
        finally:
            _SLOT.reset(token)

    def hand_on(self, records: Iterable[CallRecord]) -> None:
        """Send records to the process's sinks (the recorder, so the store)."""
        for record in records:
            for sink in self._sinks:
                try:
                    sink(record)
                except Exception as exc:
                    internal_error("recording an experiment's call", exc)


def _cap(run_id: str, max_cost_usd: Decimal | None, spent: Decimal) -> Step | None:
    """A lifetime budget on the run's tag for what is left of the cap, in a ledger of its own."""
    if max_cost_usd is None:
        return None
    from costlens.budgets import Budget, BudgetEngine, BudgetStep

    left = max(max_cost_usd - spent, _SMALLEST)
    budget = Budget(
        "eval-run-cap",
        limit_usd=left,
        window="lifetime",
        scope={"eval_run": run_id},
        mode="block",
        unknown_price="block",
    )
    return BudgetStep(BudgetEngine([budget], ledger="memory://"))
