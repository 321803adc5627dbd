"""Admission: which budgets a call falls in, its worst-case reservation, modes, and settling.

Before the call (`BudgetEngine.admit`, the before-half of the pipeline's budget step):
1. every budget whose scope the call falls in applies (nested budgets: all of them must admit it);
2. the worst-case cost is reserved on all of their keys at once, all or nothing;
3. a key that cannot take it decides: `block` raises `BudgetExceeded`; `downgrade` retries with the
   budget's `downgrade_to` model (budgets are chosen again for that model) and reroutes the call;
   `warn` keys are charged but never refuse;
4. a model without a price follows each budget's `unknown_price` policy.
After the call (`BudgetEngine.settle`, the step's after-half): settle the real cost (retried when the
ledger fails; a reservation never settled is charged at its reserved amount when it expires), or
release it when the price is unknown. Streams settle when they end, are closed or are collected.

The engine records each budget it puts in force (or removes) in the ledger as a `BudgetDefinition`,
when it is configured, never on a call: `costlens budgets status` in another process then shows the
budgets defined in code. A ledger that cannot take them (down, or without the methods) is warned
about; the budgets are in force all the same.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from costlens._errors import ConfigError, internal_error
from costlens.budgets._alerts import Alert, AlertDispatcher, AlertSink
from costlens.budgets._errors import (
    BudgetExceeded,
    BudgetUnavailable,
    LedgerUnavailable,
    LimitReached,
    UnknownPriceBlocked,
)
from costlens.budgets._ledger import BudgetDefinition, BudgetKey, Ledger, Reservation, now_us, open_ledger
from costlens.budgets._model import Budget, money
from costlens.budgets._watch import Applied, Watch
from costlens.budgets._window import CALENDAR, Position, from_us, to_us
from costlens.pipeline import Call, Estimate, Request, estimate
from costlens.pipeline._estimate import cap_key

__all__ = ["BudgetEngine", "EngineSettings", "Ticket"]

log = logging.getLogger("costlens")
_MAX_DOWNGRADES = 4
_MAX_APPLIED_CACHED = 4096  # distinct (model, provider, tags) combinations remembered
_FOREVER_US = 2**63 - 1
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)
#: (budgets, valid from, valid until, applied, keys): an `_applicable` answer while the windows hold
_AppliedEntry = tuple[tuple[Budget, ...], datetime, datetime, list[Applied], tuple[BudgetKey, ...]]
#: Pauses between the attempts to settle a reservation when the ledger fails.
_SETTLE_BACKOFF_S = (0.01, 0.05, 0.2)
#: `Request.state` key: the ledger's refusal or failure that `admit_lean` met (see there).
_LEDGER_ANSWERED = "costlens.budgets.ledger_answered"


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """`fail_open`: let calls through unbudgeted when the ledger fails (default: refuse them).
    `default_max_output_tokens`: the output bound of a call that sets none; with `cap_output` it is
    also put into the request, so the reservation truly bounds the call. `reservation_ttl_s`: how
    long a reservation of a crashed process holds the budget. `lease_usd`: turns budget leases on
    (`costlens.budgets._lease`): this process holds up to this much of each budget (and at most 1%
    of it) at a time and admits its calls against it in memory; `lease_max_age_s`: how long a slice
    serves before it is settled into the ledger."""

    fail_open: bool = False
    default_max_output_tokens: int = 4096
    cap_output: bool = True
    reservation_ttl_s: float = 3600.0
    lease_usd: Decimal | None = None
    lease_max_age_s: float = 1.0

    def __post_init__(self) -> None:
        if self.lease_usd is not None:
            object.__setattr__(self, "lease_usd", money(self.lease_usd, "lease_usd"))
        if isinstance(self.lease_max_age_s, bool) or not (
            isinstance(self.lease_max_age_s, int | float) and 0 < self.lease_max_age_s < math.inf
        ):
            raise ConfigError(
                f"lease_max_age_s must be a positive number of seconds, got {self.lease_max_age_s!r}"
            )
        if not isinstance(self.default_max_output_tokens, int) or self.default_max_output_tokens <= 0:
            raise ConfigError(
                "default_max_output_tokens must be a positive integer, "
                f"got {self.default_max_output_tokens!r}"
            )
        if not self.reservation_ttl_s > 0:
            raise ConfigError(f"reservation_ttl_s must be positive, got {self.reservation_ttl_s!r}")


class Ticket:
    """One admitted call's reservation, settled once by `BudgetEngine.settle`, and the call's
    `record.budgets` entries for it, made only when the record is built (`Call.note_budgets_later`:
    for most calls on the recorder's thread, after the settle)."""

    __slots__ = ("applied", "charged", "made", "outcome", "reservation")

    def __init__(self, applied: list[Applied], reservation: Reservation) -> None:
        self.applied = applied
        self.reservation = reservation
        self.outcome = "reserved"
        self.charged: int | None = None
        self.made = False  # the entries exist: an outcome now changes them (`_mark`)

    def entries(self) -> list[dict[str, Any]]:
        self.made = True
        r, outcome = self.reservation, self.outcome
        if outcome == "reserved":
            return [_entry(a, r) for a in self.applied]
        # Settled already (most calls: made on the recorder's thread after the settle): what
        # `_entry` then `_mark` make, keys in the same order, in one literal per budget.
        rid, amount, charged = r.id, r.amount_nanousd, self.charged
        return [
            {
                "budget": a.budget.name,
                "key": a.key.id,
                "mode": a.budget.mode,
                "window_start": a.position.start_iso,
                "reservation": rid,
                "reserved_nanousd": amount,
                "outcome": outcome,
                "charged_nanousd": charged,
            }
            for a in self.applied
        ]

    #: The ticket is what the call waits on for its entries (`note_budgets_later(ticket)`): a bound
    #: `ticket.entries` would be one more object per call kept until the recorder writes it.
    __call__ = entries

    def mark(self, call: Call, outcome: str, charged: int | None) -> None:
        if self.made:
            _mark(call.budget_entries, self.reservation.id, outcome, charged)
        else:
            self.outcome, self.charged = outcome, charged


class BudgetEngine:
    """Budgets in force, the ledger they are kept in, and the alert sinks. Thread-safe.

    `budgets` are defined in code; `file_budgets` come from the budgets file `file` (a budget in
    both is the one from code). Both are recorded in the ledger as definitions (see the module)."""

    def __init__(
        self,
        budgets: Iterable[Budget] = (),
        *,
        ledger: Ledger | str = "memory://",
        sinks: Sequence[AlertSink | Callable[[Alert], object]] = (),
        settings: EngineSettings | None = None,
        clock: Callable[[], datetime] | None = None,
        file_budgets: Iterable[Budget] = (),
        file: str | None = None,
    ) -> None:
        self.ledger = open_ledger(ledger) if isinstance(ledger, str) else ledger
        self.dispatcher = AlertDispatcher(sinks)
        self.settings = settings or EngineSettings()
        self.clock = clock or _utcnow
        if self.settings.lease_usd is not None:
            from costlens.budgets._lease import LeasedLedger
            from costlens.usage import to_nanousd

            self.ledger = LeasedLedger(
                self.ledger,
                slice_nanousd=to_nanousd(self.settings.lease_usd),
                max_age_s=self.settings.lease_max_age_s,
                clock=self.clock,
            )
        self.watch = Watch(self.ledger, self.dispatcher)
        self._budgets: tuple[Budget, ...] = ()
        self._positions: dict[str, Position] = {}
        # (model, provider, *tag items) -> (budgets in force, valid from, valid until, applied, their keys)
        self._applied: dict[tuple[object, ...], _AppliedEntry] = {}
        self._defined: dict[str, BudgetDefinition] = {}
        self._lock = threading.Lock()
        for budget in file_budgets:
            self._put(budget, "file", file or "")
        for budget in budgets:
            self._put(budget, "code", _this_process())
        self._record(list(self._defined.values()))

    # -- the budgets in force ------------------------------------------------------------------------

    @property
    def budgets(self) -> tuple[Budget, ...]:
        return self._budgets

    def add(self, budget: Budget) -> Budget:
        """Put a budget defined in code in force; one with the same name is replaced (its spend is
        kept). Its definition is recorded in the ledger (see the module)."""
        self._record([self._put(budget, "code", _this_process())])
        return budget

    def _put(self, budget: Budget, source: Literal["file", "code"], origin: str) -> BudgetDefinition:
        if not isinstance(budget, Budget):
            raise ConfigError(f"expected a costlens.Budget, got {type(budget).__name__}")
        self.dispatcher.check_names(budget.notify, budget.name)
        defined = BudgetDefinition(budget.name, source, origin, budget.as_dict(), now_us(self.clock()))
        with self._lock:
            self._budgets = (*(b for b in self._budgets if b.name != budget.name), budget)
            self._positions.pop(budget.name, None)
            self._defined[budget.name] = defined
        return defined

    def remove(self, name: str) -> bool:
        """Take a budget out of force (its spend stays in the ledger; its definition is marked removed)."""
        with self._lock:
            kept = tuple(b for b in self._budgets if b.name != name)
            found, self._budgets = len(kept) != len(self._budgets), kept
            defined = self._defined.pop(name, None)
        if found and defined is not None:
            at = now_us(self.clock())
            self._record([replace(defined, defined_us=at, removed_us=at)])
        return found

    def _record(self, definitions: Sequence[BudgetDefinition]) -> None:
        """Record definitions in the ledger (configure time only). A ledger that is down, or cannot
        hold them, gets a warning: the budgets are in force in this process all the same."""
        record = getattr(self.ledger, "record_definitions", None)
        if not definitions or record is None:
            return
        try:
            record(definitions)
        except (LedgerUnavailable, ConfigError, NotImplementedError) as exc:
            log.warning(
                "costlens: could not record the definitions of budgets %s in the ledger %s (%s); they are "
                "in force in this process, but `costlens budgets status` elsewhere may not show them",
                ", ".join(repr(d.name) for d in definitions),
                self.ledger.url,
                exc,
            )
        except Exception as exc:
            internal_error("recording budget definitions in the ledger", exc)

    def get(self, name: str) -> Budget | None:
        return next((b for b in self._budgets if b.name == name), None)

    def position(self, budget: Budget, at: datetime, at_us: int) -> Position:
        """The window position of `at`, cached while it holds."""
        pos = self._positions.get(budget.name)
        if pos is None or not pos.bucket_us <= at_us < pos.valid_until_us:
            pos = self._positions[budget.name] = budget.window.position(at)
        return pos

    def applicable(self, tags: Mapping[str, str], model: str, provider: str, at: datetime) -> list[Applied]:
        """The budgets a call falls in, with their ledger keys at `at` (a shared list: do not change it).

        Cached per (model, provider, tags) while every window position in it holds: a busy process
        sends the same few combinations again and again, and matching scopes and building keys for
        each call cost more than the ledger's own bookkeeping (`memory://`)."""
        return self._applicable(tags, model, provider, at)[0]

    def _applicable(
        self, tags: Mapping[str, str], model: str, provider: str, at: datetime
    ) -> tuple[list[Applied], tuple[BudgetKey, ...]]:
        """`applicable(...)` and its keys, as one tuple that stays the same object while the cache
        entry holds: a lease ledger then finds its slice by the tuple's identity, without hashing
        every key of it on every call."""
        budgets = self._budgets
        cache_key: tuple[object, ...] | None = (model, provider, *tags.items())
        try:
            hit = self._applied.get(cache_key)  # type: ignore[arg-type]
        except TypeError:  # a tag value that cannot be hashed: answer afresh
            hit = cache_key = None
        if hit is not None and hit[0] is budgets and hit[1] <= at < hit[2]:  # (datetimes: no `to_us`)
            return hit[3], hit[4]
        at_us = to_us(at)
        out = []
        lo, hi = -1, _FOREVER_US
        for budget in budgets:
            key_id = budget.key_for(tags, model, provider)
            if key_id is not None:
                pos = self.position(budget, at, at_us)
                lo, hi = max(lo, pos.bucket_us), min(hi, pos.valid_until_us)
                key = BudgetKey(key_id, budget.limit_nanousd, pos.since_us, pos.bucket_us, budget.enforced)
                out.append(Applied(budget, key, pos))
        keys = tuple([a.key for a in out])
        if cache_key is not None:
            if len(self._applied) >= _MAX_APPLIED_CACHED:
                self._applied.clear()
            self._applied[cache_key] = (budgets, _instant(lo), _instant(hi), out, keys)
        return out, keys

    # -- before the call -----------------------------------------------------------------------------

    def admit(self, call: Call) -> Ticket | None:
        """Reserve the call's worst case on every budget it falls in (a ticket to settle after the
        call; None when nothing was reserved), or refuse it: raises `BudgetExceeded` /
        `BudgetUnavailable`, and the pipeline records the call as blocked."""
        if not self._budgets:
            return None
        try:
            return self._admit(call)
        except BudgetExceeded as exc:
            call.record.budgets.append(
                {
                    "budget": exc.budget,
                    "key": exc.key,
                    "outcome": "blocked",
                    "reason": type(exc).__name__,
                    "spent_nanousd": exc.spent_nanousd,
                    "reserved_nanousd": exc.reserved_nanousd,
                    "limit_nanousd": exc.limit_nanousd,
                    "estimate_nanousd": exc.estimate_nanousd,
                }
            )
            raise
        except LedgerUnavailable as exc:
            self._unavailable(call, exc)
        except Exception as exc:
            internal_error("checking budgets", exc)
            self._unavailable(call, exc)
        return None

    def _unavailable(self, call: Call, exc: Exception) -> None:
        if self.settings.fail_open:
            log.warning("costlens: budgets not checked (%s); the call goes on because fail_open=True", exc)
            call.record.budgets.append({"outcome": "unenforced", "reason": f"{type(exc).__name__}: {exc}"})
            return
        raise BudgetUnavailable(self.ledger.url, exc) from exc

    def _admit(self, call: Call) -> Ticket | None:
        request, tags = call.request, call.tags  # (not `call.record`: that would build it now)
        provider = request.provider
        at = self.clock()
        model = request.model
        notes: list[dict[str, Any]] = []
        answered = request.state.pop(_LEDGER_ANSWERED, None) if request.state else None  # (`admit_lean`)
        while True:  # ends: each pass reserves, refuses, or downgrades (at most _MAX_DOWNGRADES times)
            applied, keys = self._applicable(tags, model, provider, at)
            if not applied:
                break
            est = estimate(
                request, model=model, default_max_output=self.settings.default_max_output_tokens, at=at
            )
            outcome = self._try(applied, keys, est, at, notes, provider, answered)
            answered = None  # (it answered this model's reservation only)
            if isinstance(outcome, str):
                model = outcome  # downgraded: choose the budgets again for the cheaper model
                continue
            self._apply(call, model, notes, cap=outcome is not None and not est.output_bounded)
            if outcome is None:
                call.note_budgets(
                    {"budget": a.budget.name, "key": a.key.id, "outcome": "unpriced"} for a in applied
                )
                return None
            ticket = Ticket(applied, outcome)
            call.note_budgets_later(ticket)
            return ticket
        self._apply(call, model, notes, cap=False)  # no budget applies
        return None

    def admit_lean(self, request: Request, tags: Mapping[str, str]) -> Ticket | bool | None:
        """`admit` without a `Call`, for the common call (`costlens.pipeline.LeanStep`): a ticket when
        every budget the call falls in reserved its worst case (its body capped as `admit` caps it:
        `request.body` is then a new dict, for the adapter to send); False when no budget applies;
        None for anything else (a price unknown, a budget full, a ledger that fails): nothing was
        done but leave the ledger's answer on the request, and the call takes the full path, whose
        `admit` decides from that answer without asking the ledger again."""
        try:
            if not self._budgets:
                return False
            at = self.clock()
            model, provider, settings = request.model, request.provider, self.settings
            applied, keys = self._applicable(tags, model, provider, at)
            if not applied:
                return False
            est = estimate(request, model=model, default_max_output=settings.default_max_output_tokens, at=at)
            if est.cost_nanousd is None:
                return None
            body = request.body
            if not est.output_bounded and settings.cap_output and request.operation != "embeddings":
                body = {
                    **body,
                    cap_key(request.operation, provider, model): settings.default_max_output_tokens,
                }
            reservation = self.ledger.reserve(keys, est.cost_nanousd, settings.reservation_ttl_s, at=at)
        except (LimitReached, LedgerUnavailable) as answer:
            # The full path takes the call on from this request: the ledger's answer is given to its
            # `admit`, which would otherwise ask again (twice the wait on a ledger that is down)
            request.state[_LEDGER_ANSWERED] = answer
            return None
        except Exception as exc:
            internal_error("checking budgets", exc)
            return None
        request.body = body  # (what `Call.rewrite` does; nothing that can fail after the reservation)
        return Ticket(applied, reservation)

    def _try(
        self,
        applied: list[Applied],
        keys: tuple[BudgetKey, ...],
        est: Estimate,
        at: datetime,
        notes: list[dict[str, Any]],
        provider: str,
        answered: Exception | None = None,
    ) -> Reservation | str | None:
        """A reservation, a model to downgrade to, or None (unpriced and allowed). Raises to refuse.
        `answered`: what the ledger answered `admit_lean` for this reservation, instead of asking."""
        if est.cost_nanousd is None:
            blocker = next((a for a in applied if a.budget.unknown_price == "block"), None)
            if blocker is None:
                return None
            target = _downgrade(blocker.budget, _tried(est, notes))
            if target is not None:
                notes.append(_note(blocker, est.model, target, "price unknown"))
                return target
            raise UnknownPriceBlocked(
                blocker.budget.name, blocker.key.id, provider=provider, model=est.model,
                limit_nanousd=blocker.budget.limit_nanousd,
            )  # fmt: skip
        try:
            if answered is not None:
                raise answered
            return self.ledger.reserve(keys, est.cost_nanousd, self.settings.reservation_ttl_s, at=at)
        except LimitReached as full:
            # Order-independent: a full `downgrade` budget downgrades the call, even when a `block`
            # budget is full too (the cheaper model may fit it); otherwise the first full one refuses.
            failing = {f[0]: f for f in full.failures}
            full_ones = [a for a in applied if a.key.id in failing]
            tried = _tried(est, notes)
            hit = next((a for a in full_ones if _downgrade(a.budget, tried)), full_ones[0])
            target = _downgrade(hit.budget, tried)
            for item in full_ones:
                self.watch.refused(item, at, downgraded_to=target if item is hit else None)
            if target is not None:
                notes.append(_note(hit, est.model, target, "limit reached"))
                return target
            raise _exceeded(hit, failing[hit.key.id], est) from None

    def _apply(self, call: Call, model: str, notes: list[dict[str, Any]], *, cap: bool) -> None:
        """Reroute the call to the downgraded model, and cap its output (`cap`: a reserved call whose
        caller set no bound), so that the reservation bounds the call."""
        request = call.request
        if notes:
            call.note_budgets(notes)
        if model != request.model:
            call.reroute(model, "budget-downgrade", notes[-1]["reason"], budget=notes[0]["budget"])
        if cap and self.settings.cap_output and request.operation != "embeddings":
            key = cap_key(request.operation, request.provider, model)
            call.rewrite({key: self.settings.default_max_output_tokens})

    # -- after the call ------------------------------------------------------------------------------

    def settle(self, ticket: Ticket, call: Call) -> None:
        """Charge the call's real cost (release when its price is unknown); then check alerts.

        A ledger that fails is asked again (`_SETTLE_BACKOFF_S`); a reservation that still cannot be
        settled is charged at its reserved amount when it expires, never dropped."""
        actual = call.cost_nanousd  # (read on the call: `call.record` would build the record now)
        if actual == 0 and call.status == "error":
            actual = None  # failed before anything was billed: nothing to settle, release it
        outcome = self._charge(ticket.reservation, actual)
        ticket.mark(call, outcome, None if outcome == "unsettled" else actual)
        if outcome == "settled" and actual is not None:
            self._settled(ticket, actual, call.request)

    def settle_lean(self, ticket: Ticket, actual: int | None, request: Request) -> None:
        """`settle` for a call that `admit_lean` admitted and that ended well, priced at `actual`
        (None: its price is unknown, the reservation is released): the ticket's entries are made
        after it, by whoever builds the record."""
        outcome = self._charge(ticket.reservation, actual)
        ticket.outcome, ticket.charged = outcome, None if outcome == "unsettled" else actual
        if outcome == "settled" and actual is not None:
            self._settled(ticket, actual, request)

    def _charge(self, r: Reservation, actual: int | None) -> str:
        """Settle `actual` on the reservation (None: release it): "settled", "released", or
        "unsettled" when the ledger fails, also when asked again."""
        try:
            if actual is None:
                self.ledger.release(r)
            else:
                self.ledger.settle(r, actual)
        except LedgerUnavailable as exc:
            if not self._settle_again(r, actual, exc):
                return "unsettled"
        return "released" if actual is None else "settled"

    def _settled(self, ticket: Ticket, actual: int, request: Request) -> None:
        r = ticket.reservation
        if actual > r.amount_nanousd:
            _underestimated(request.provider, request.model, r.amount_nanousd, actual)
        self.watch.settled(ticket.applied, r, actual, clock=self.clock)

    def _settle_again(self, r: Reservation, actual: int | None, exc: LedgerUnavailable) -> bool:
        """Ask the ledger again after each pause of `_SETTLE_BACKOFF_S`; False (logged) when it
        still fails."""
        for pause in _SETTLE_BACKOFF_S:
            time.sleep(pause)
            try:
                if actual is None:
                    self.ledger.release(r)
                else:
                    self.ledger.settle(r, actual)
                return True
            except LedgerUnavailable as again:
                exc = again
        log.error(
            "costlens: budget reservation %s not settled (%s); when it expires it is charged at its "
            "reserved amount, %s nano-USD",
            r.id,
            exc,
            r.amount_nanousd,
        )
        return False

    def flush(self) -> None:
        """With budget leases: settle the slices no call holds now into the ledger, so that it shows
        this process's spend so far (without leases the ledger always does; this does nothing)."""
        flush = getattr(self.ledger, "flush", None)
        if flush is not None:
            flush()

    def close(self) -> None:
        self.dispatcher.close()
        self.ledger.close()


def _instant(us: int) -> datetime:
    """The instant `us` microseconds after the epoch; past year 9999 (a window that never ends),
    the last one a datetime has."""
    try:
        return from_us(us)
    except OverflowError:
        return _END_OF_TIME if us > 0 else datetime.min.replace(tzinfo=UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _this_process() -> str:
    """Who defined a budget in code: the program and its process id, e.g. `app.py (pid 4242)`."""
    argv = getattr(sys, "argv", None) or [""]
    program = os.path.basename(str(argv[0])) or "python"
    return f"{program} (pid {os.getpid()})"


_underestimated_models: set[tuple[str, str]] = set()


def _underestimated(provider: str, model: str, reserved: int, actual: int) -> None:
    """A call cost more than its worst case (inputs not counted: images, server-side conversation
    state...): budgets may then pass their limit by the difference. Warned once per model."""
    if (provider, model) in _underestimated_models:
        return
    _underestimated_models.add((provider, model))
    log.warning(
        "costlens: a call to %s/%s cost %s nano-USD, more than its reserved worst case %s; inputs the "
        "estimate cannot see (images, audio, files, previous_response_id) let budgets pass their limit "
        "by the difference",
        provider,
        model,
        actual,
        reserved,
    )


def _tried(est: Estimate, notes: list[dict[str, Any]]) -> set[str] | None:
    """Models a call may not be downgraded to: those tried already (no cycles); None once the chain
    is at its bound. (Built only when a call is refused or unpriced, not on every call.)"""
    if len(notes) >= _MAX_DOWNGRADES:
        return None
    return {est.model, *(n["from"] for n in notes), *(n["to"] for n in notes)}


def _downgrade(budget: Budget, tried: set[str] | None) -> str | None:
    target = budget.downgrade_to if budget.mode == "downgrade" and tried is not None else None
    return target if target is not None and tried is not None and target not in tried else None


def _note(item: Applied, model: str, target: str, why: str) -> dict[str, Any]:
    return {
        "budget": item.budget.name,
        "key": item.key.id,
        "outcome": "downgraded",
        "from": model,
        "to": target,
        "reason": why,
    }


def _entry(item: Applied, r: Reservation) -> dict[str, Any]:
    return {
        "budget": item.budget.name,
        "key": item.key.id,
        "mode": item.budget.mode,
        "window_start": item.position.start_iso,
        "reservation": r.id,
        "reserved_nanousd": r.amount_nanousd,
        "outcome": "reserved",
    }


def _mark(entries: list[dict[str, Any]], reservation: str, outcome: str, charged: int | None) -> None:
    for entry in entries:
        if entry.get("reservation") == reservation:
            entry["outcome"] = outcome
            entry["charged_nanousd"] = charged


def _exceeded(item: Applied, failure: tuple[str, int, int, int], est: Estimate) -> BudgetExceeded:
    calendar = item.budget.window.kind in CALENDAR
    key, spent, reserved, limit = failure
    return BudgetExceeded(
        item.budget.name,
        key,
        spent_nanousd=spent,
        reserved_nanousd=reserved,
        limit_nanousd=limit,
        estimate_nanousd=est.cost_nanousd,
        model=est.model,
        resets_at=item.position.end if calendar else None,
    )
