"""When to alert: thresholds of settled spend, forecasts from the recent rate, and refusals.

Every alert is claimed with the ledger's `fire_once(key, window, name)`, so it fires once per budget
key per window across every process sharing the ledger; a per-process cache then spares the ledger
further claims. Threshold checks after a settle are arithmetic on the spend the reservation saw plus
this call's cost (a lower bound of the true spend, so a crossing seen here is real); a crossing
missed because of concurrent calls is seen by the next settle. Forecasts are checked at most once a
minute per key per process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from costlens._errors import internal_error
from costlens.budgets._alerts import Alert, AlertDispatcher, AlertKind, limit_effect
from costlens.budgets._errors import LedgerUnavailable, usd_text
from costlens.budgets._ledger import BudgetKey, Ledger, Reservation, Spent
from costlens.budgets._model import Budget
from costlens.budgets._window import CALENDAR, Position, to_us
from costlens.usage import NANO, _utcnow

__all__ = ["Applied", "Projection", "Watch", "projection"]

log = logging.getLogger("costlens")
_FORECAST_EVERY_US = 60_000_000
_MAX_MARKS = 100_000


class Applied(NamedTuple):
    """A budget that applies to one call: the budget, its ledger key and window position."""

    budget: Budget
    key: BudgetKey
    position: Position


@dataclass(frozen=True, slots=True)
class Projection:
    """Spend in the window now, and at its end at the recent rate (None before 1/24 of the window)."""

    spent_nanousd: int
    reserved_nanousd: int
    projected_nanousd: int | None
    eta: datetime | None  # when the limit is reached at that rate (None: not within the window)


def projection(
    ledger: Ledger, budget: Budget, key: BudgetKey, position: Position, at: datetime
) -> Projection:
    """Project a calendar window's spend to its end from the rate of the last 1/8 of the window."""
    usage = ledger.usage(key, at=at)
    if budget.window.kind not in CALENDAR or position.end is None:
        return Projection(usage.spent_nanousd, usage.reserved_nanousd, None, None)
    now_us, start_us, end_us = to_us(at), to_us(position.start), to_us(position.end)
    length, elapsed, remaining = end_us - start_us, now_us - start_us, end_us - now_us
    if elapsed < length // 24 or remaining <= 0:
        return Projection(usage.spent_nanousd, usage.reserved_nanousd, None, None)
    lookback = min(length // 8, elapsed)
    recent = ledger.recent_spend(key.id, now_us - lookback)
    projected = usage.spent_nanousd + recent * remaining // lookback
    eta = None
    left = key.limit_nanousd - usage.spent_nanousd
    if recent > 0 and left > 0 and left * lookback // recent <= remaining:
        eta = at + timedelta(microseconds=left * lookback // recent)
    return Projection(usage.spent_nanousd, usage.reserved_nanousd, projected, eta)


def _usd(nanousd: int) -> Decimal:
    return Decimal(nanousd) / NANO


class Watch:
    """Turns ledger events into alerts for one engine."""

    def __init__(self, ledger: Ledger, dispatcher: AlertDispatcher) -> None:
        self.ledger = ledger
        self.dispatcher = dispatcher
        self._marks: set[tuple[str, int, str]] = set()
        self._forecast_checked: dict[str, int] = {}
        self._lock = threading.Lock()

    def settled(
        self,
        applied: Sequence[Applied],
        reservation: Reservation,
        actual: int,
        at: datetime | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """After a settle at `at` (None: `clock()`, read only when an alert may be due): thresholds
        and forecasts. Never raises (the call is over).

        Every budgeted call ends here, and almost every one is below its budgets' first threshold
        and within a minute of their last forecast: those two tests are made here, inline. Without
        `at`, whether a forecast is due is judged at the reservation's time (`reservation.at_us`,
        the call's start): forecasts are a minute apart, a call's length does not matter to them."""
        try:
            at_us = reservation.at_us if at is None else to_us(at)
            checked, every = self._forecast_checked, _FORECAST_EVERY_US
            added = actual + reservation.lease_charged_nanousd  # (the call saw that on top of `before`)
            for item, before in zip(applied, reservation.before, strict=True):
                budget = item.budget
                marks = budget.threshold_marks
                if marks and before.spent_nanousd + added >= marks[0]:
                    at = at or clock()
                    self._thresholds(item, before, added, at)
                if budget.forecast and budget.window.kind in CALENDAR:
                    last = checked.get(item.key.id)  # without the lock: the usual answer
                    if last is None or not -every < at_us - last < every:
                        at = at or clock()
                        self._forecast(item, at, at_us)
        except LedgerUnavailable as exc:
            log.warning("costlens: budget alerts not checked: %s", exc)
        except Exception as exc:
            internal_error("checking budget alerts", exc)

    def _thresholds(self, item: Applied, before: Spent, added: int, at: datetime) -> None:
        budget = item.budget
        spent = before.spent_nanousd + added  # (at or past the first mark: `settled` tested it)
        for pct, mark in zip(budget.thresholds, budget.threshold_marks, strict=True):
            if spent >= mark:
                self._fire(item, "threshold", f"{pct}%", at, threshold_pct=pct)

    def _forecast(self, item: Applied, at: datetime, now_us: int) -> None:
        with self._lock:
            last = self._forecast_checked.get(item.key.id)
            # (due a minute after the last check, or a minute before it: a clock set back; calls
            # that settle out of the order they started in are not a reason to check again)
            if last is not None and -_FORECAST_EVERY_US < now_us - last < _FORECAST_EVERY_US:
                return
            if len(self._forecast_checked) >= _MAX_MARKS:
                self._forecast_checked.clear()
            self._forecast_checked[item.key.id] = now_us
        if (item.key.id, item.position.period_us, "forecast") in self._marks:
            return
        p = projection(self.ledger, item.budget, item.key, item.position, at)
        limit = item.budget.limit_nanousd
        if p.projected_nanousd is not None and p.projected_nanousd > limit > p.spent_nanousd:
            self._fire(item, "forecast", "forecast", at, projected=p.projected_nanousd, eta=p.eta)

    def refused(self, item: Applied, at: datetime, *, downgraded_to: str | None) -> None:
        """A budget refused (or downgraded) a call. Never raises: the refusal stands without its alert."""
        try:
            self._fire(item, "exhausted", "exhausted", at, downgraded_to=downgraded_to)
        except LedgerUnavailable as exc:
            log.warning("costlens: budget alert not sent: %s", exc)
        except Exception as exc:
            internal_error("sending a budget alert", exc)

    def _fire(self, item: Applied, kind: AlertKind, name: str, at: datetime, **facts: Any) -> None:
        mark = (item.key.id, item.position.period_us, name)
        if mark in self._marks:
            return
        first = self.ledger.fire_once(*mark)
        with self._lock:
            if len(self._marks) >= _MAX_MARKS:
                self._marks.clear()
            self._marks.add(mark)
        if first:
            usage = self.ledger.usage(item.key, at=at)
            self.dispatcher.submit(_alert(item, kind, usage, at, facts))


def _alert(item: Applied, kind: AlertKind, usage: Spent, at: datetime, facts: dict[str, Any]) -> Alert:
    budget, key, pos = item
    spent, limit = usage.spent_nanousd, budget.limit_nanousd
    where = f"budget {key.id!r} ({budget.window.describe()}, window from {pos.start.isoformat()})"
    projected, eta = facts.get("projected"), facts.get("eta")
    if kind == "threshold":
        pct = facts["threshold_pct"]
        message = f"{where}: {pct}% of {usd_text(limit)} spent ({usd_text(spent)})"
    elif kind == "forecast":
        when = f"on {eta:%Y-%m-%d at %H:%M} UTC" if eta is not None else "before the window ends"
        message = (
            f"{where}: at the recent rate you will hit {usd_text(limit)} {when}; projected spend at the "
            f"window's end {usd_text(projected or 0)} (spent so far {usd_text(spent)})"
        )
    else:
        # worded by what the budget does, not by the one call that tripped it: a downgrade budget whose
        # cheaper model did not fit either still downgrades the calls that do fit
        did = limit_effect(budget.mode, budget.downgrade_to)
        message = f"{where}: limit {usd_text(limit)} reached ({usd_text(spent)} spent); {did}"
    return Alert(
        kind=kind,
        budget=budget.name,
        key=key.id,
        mode=budget.mode,
        message=message,
        limit_usd=budget.limit_usd,
        spent_usd=_usd(spent),
        reserved_usd=_usd(usage.reserved_nanousd),
        window=budget.window.describe(),
        window_start=pos.start,
        window_end=pos.end if budget.window.kind != "rolling" else None,
        at=at,
        threshold_pct=facts.get("threshold_pct"),
        projected_usd=None if projected is None else _usd(projected),
        eta=eta,
        notify=budget.notify,
    )
