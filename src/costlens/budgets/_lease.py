"""Budget leases: a process holds a slice of each budget it uses and admits its calls in memory.

Under load a shared ledger (SQLite, PostgreSQL, Redis) costs a call far more than the budget logic
itself: every statement hands the GIL away and back, and callers queue on the ledger's lock
(`docs/ledger-leases.md` has the figures). `LeasedLedger` wraps such a ledger. For each key set (the
budgets one call falls in) it reserves a *slice*, one ledger reservation of `slice_nanousd`
(at most 1% of the smallest limit it holds, at least the call's worst case), and reserves each call's
worst case inside that slice, in memory. When the slice is retired (a call does not fit, it is older
than `max_age_s`, `flush`, `close`, process exit) and its last call has ended, the ledger reservation
is settled with the sum of the real costs of the calls it covered.

Why exactness holds: the ledger's invariant (`spent + reserved <= limit` on every enforced key) holds
at each of its commits, and a slice admits a call only when the call's worst case fits in what the
slice has left. When the ledger refuses a slice, the call reserves its own worst case in the ledger
directly, as without leases, so the last calls before a limit are admitted or refused call by call.

What changes (the README's Budgets section says it to users): other processes see a slice as
reserved and its spend when it settles (at most `max_age_s` late, or when the last call under it
ends); threshold alerts see this process's spend under a slice at once and other processes' at the
next slice; a process that dies with slices open is charged each of them in full when they expire
(`reservation_ttl_s`), where without leases it is charged each call's worst case.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from costlens._errors import ConfigError
from costlens.budgets._errors import LedgerUnavailable, LimitReached
from costlens.budgets._ledger import (
    BudgetDefinition,
    BudgetKey,
    Ledger,
    Reservation,
    Spent,
    check_reserve,
    new_reservation_id,
    now_us,
    reservation_of,
)

__all__ = ["LeasedLedger"]

log = logging.getLogger("costlens")
#: A slice holds at most this share of the smallest limit it is taken on (fairness near a limit).
_MAX_SHARE_OF_LIMIT = 100
_live: weakref.WeakSet[LeasedLedger] = weakref.WeakSet()
#: How long a call waits for another thread to open its key set's slice before reserving alone (a
#: ledger that slow is failing: the call then meets the ledger's own timeout and error).
_WAIT_FOR_SLICE_S = 1.0


class _Slice:
    """One ledger reservation shared by many calls of this process."""

    __slots__ = (
        "born_us",
        "charged",
        "held",
        "in_flight",
        "keyset",
        "reservation",
        "retired",
    )

    def __init__(self, reservation: Reservation, keyset: tuple[BudgetKey, ...], born_us: int) -> None:
        self.reservation = reservation
        self.keyset = keyset  # the key set it was opened for (kept alive: `LeasedLedger._by_id`)
        self.born_us = born_us
        self.held = 0  # worst cases of the calls in flight under it
        self.charged = 0  # real costs of the calls that ended under it
        self.in_flight = 0
        self.retired = False

    def room(self) -> int:
        return self.reservation.amount_nanousd - self.held - self.charged


class LeasedLedger:
    """A `Ledger` that admits calls against per-process slices of an inner ledger (see the module)."""

    def __init__(
        self,
        inner: Ledger,
        *,
        slice_nanousd: int,
        max_age_s: float = 1.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not isinstance(slice_nanousd, int) or slice_nanousd <= 0:
            raise ConfigError(f"a budget lease must be a positive amount, got {slice_nanousd!r} nano-USD")
        if not max_age_s > 0:
            raise ConfigError(f"lease_max_age_s must be positive, got {max_age_s!r}")
        self.inner = inner
        self.url = inner.url
        self.slice_nanousd = slice_nanousd
        self.max_age_us = int(max_age_s * 1_000_000)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._opened = threading.Condition(self._lock)  # notified when a slice's opening ends
        self._open: dict[tuple[BudgetKey, ...], _Slice] = {}  # the slice new calls of a key set use
        # the same slices by `id()` of the tuple they were opened with: a caller that passes one
        # tuple per key set (the engine) finds its slice without hashing every key on every call
        self._by_id: dict[int, _Slice] = {}
        self._opening: set[tuple[BudgetKey, ...]] = set()
        self._calls: dict[str, _Slice] = {}  # local reservation id -> its slice
        self._retired: list[_Slice] = []  # retired, waiting for their last call or a failed settle
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        _live.add(self)

    def __repr__(self) -> str:
        return f"LeasedLedger({self.inner!r}, slice_nanousd={self.slice_nanousd})"

    # -- per call ------------------------------------------------------------------------------------

    def reserve(
        self, keys: Sequence[BudgetKey], amount_nanousd: int, ttl_s: float, *, at: datetime | None = None
    ) -> Reservation:
        keyset = keys if type(keys) is tuple else tuple(keys)
        at_us = now_us(at)
        if amount_nanousd >= 0 and ttl_s > 0:  # the usual call: its key set's slice has room
            with self._lock:
                current = self._by_id.get(id(keyset))
                if current is None or current.keyset is not keyset:
                    current = self._open.get(keyset)
                if (  # `_fits`, without its two frames (every leased call asks it)
                    current is not None
                    and current.reservation.amount_nanousd - current.held - current.charged >= amount_nanousd
                    and at_us - current.born_us < self.max_age_us
                ):
                    return self._admit(current, keyset, amount_nanousd, at_us)
        check_reserve(keys, amount_nanousd, ttl_s)  # (the keys of an open slice passed it already)
        with self._lock:
            current = self._open.get(keyset)
            if current is not None:
                if self._fits(current, amount_nanousd, at_us):
                    return self._admit(current, keyset, amount_nanousd, at_us)
                self._retire(current, keyset)
            opening = keyset in self._opening
            if opening:
                # Another thread is taking this key set's slice, one ledger round trip: what this
                # call would spend reserving alone, with a transaction more on the ledger (under 16
                # threads, a retired slice sent every call that came meanwhile to the ledger). Wait
                # for it, then join the new slice; alone only if it did not open or has no room.
                self._opened.wait_for(lambda: keyset not in self._opening, timeout=_WAIT_FOR_SLICE_S)
                current = self._open.get(keyset)
                if current is not None and self._fits(current, amount_nanousd, at_us):
                    return self._admit(current, keyset, amount_nanousd, at_us)
                current = None
            else:
                self._opening.add(keyset)
        ready = [] if current is None else self._ready()
        try:
            self._settle_slices(ready)
            if opening:
                return self.inner.reserve(keys, amount_nanousd, ttl_s, at=at)
            return self._open_slice(keyset, amount_nanousd, ttl_s, at, at_us)
        finally:
            if not opening:
                with self._lock:
                    self._opening.discard(keyset)
                    self._opened.notify_all()

    def _fits(self, held: _Slice, amount: int, at_us: int) -> bool:
        return held.room() >= amount and at_us - held.born_us < self.max_age_us

    def _open_slice(
        self, keyset: tuple[BudgetKey, ...], amount: int, ttl_s: float, at: datetime | None, at_us: int
    ) -> Reservation:
        size = max(amount, self._slice_size(keyset))
        try:
            taken = self.inner.reserve(keyset, size, ttl_s, at=at)
        except LimitReached:
            if size == amount:
                raise
            return self.inner.reserve(keyset, amount, ttl_s, at=at)  # near the limit: call by call
        with self._lock:
            new = _Slice(taken, keyset, at_us)
            self._open[keyset] = new
            self._by_id[id(keyset)] = new
            mine = self._admit(new, keyset, amount, at_us)
        self._start_timer()
        return mine

    def _slice_size(self, keyset: tuple[BudgetKey, ...]) -> int:
        limits = [k.limit_nanousd for k in keyset if k.enforce] or [k.limit_nanousd for k in keyset]
        return min(self.slice_nanousd, min(limits) // _MAX_SHARE_OF_LIMIT)

    def _admit(self, held: _Slice, keyset: tuple[BudgetKey, ...], amount: int, at_us: int) -> Reservation:
        """A call's reservation inside `held` (under the lock)."""
        held.held += amount
        held.in_flight += 1
        r = held.reservation
        # the spend the call sees: the slice's view, plus what the calls that ended under it cost
        rid = new_reservation_id()
        mine = reservation_of(rid, keyset, amount, at_us, r.expires_us, r.before, held.charged)
        self._calls[mine.id] = held
        return mine

    def settle(self, reservation: Reservation, actual_nanousd: int | None) -> None:
        """Charge a call's real cost to its slice (`None`: release it, as `release`)."""
        actual = actual_nanousd
        with self._lock:
            held = self._calls.pop(reservation.id, None)
            if held is not None:
                held.held -= reservation.amount_nanousd
                held.in_flight -= 1
                if actual is not None:
                    held.charged += actual
                done = held.retired and held.in_flight == 0 and self._take(held)
        if held is None:  # reserved directly in the inner ledger (or ended already: a no-op there)
            if self._closed:
                return  # closed: its slice was charged its worst case
            if actual is None:
                self.inner.release(reservation)
            else:
                self.inner.settle(reservation, actual)
        elif done:
            self._settle_slices([held])

    def release(self, reservation: Reservation) -> None:
        self.settle(reservation, None)

    # -- retiring slices -----------------------------------------------------------------------------

    def _retire(self, held: _Slice, keyset: tuple[BudgetKey, ...]) -> None:
        """Under the lock: no new call joins `held`; it settles when its last call ends."""
        held.retired = True
        if self._open.get(keyset) is held:
            del self._open[keyset]
        if self._by_id.get(id(held.keyset)) is held:
            del self._by_id[id(held.keyset)]
        self._retired.append(held)

    def _retire_open(self, which: Callable[[_Slice], bool]) -> None:
        """Under the lock: retire the open slices `which` picks."""
        for keyset, held in list(self._open.items()):
            if which(held):
                self._retire(held, keyset)

    def _take(self, held: _Slice) -> bool:
        """Under the lock: take `held` off the retired list; False if another thread took it."""
        if held in self._retired:
            self._retired.remove(held)
            return True
        return False

    def _ready(self) -> list[_Slice]:
        """Retired slices with no call in flight, taken off the list (to settle outside the lock)."""
        with self._lock:
            ready = [s for s in self._retired if s.in_flight == 0]
            self._retired = [s for s in self._retired if s.in_flight != 0]
        return ready

    def _settle_slices(self, slices: list[_Slice]) -> None:
        """Settle each slice with what its calls cost; one the ledger cannot take now is retried by
        the next pass (if it expires first it is charged in full, and the late settle corrects it)."""
        for held in slices:  # each taken off the retired list by the caller
            try:
                if held.charged == 0:
                    self.inner.release(held.reservation)
                else:
                    self.inner.settle(held.reservation, held.charged)
            except LedgerUnavailable as exc:
                log.warning(
                    "costlens: budget lease %s not settled yet (%s); retried", held.reservation.id, exc
                )
                with self._lock:
                    self._retired.append(held)

    def retire_aged(self, at: datetime | None = None) -> None:
        """Retire the slices older than `max_age_s` at `at` (now) and settle those no call holds."""
        at_us = now_us(at or self._clock())
        with self._lock:
            self._retire_open(lambda held: at_us - held.born_us >= self.max_age_us)
        self._settle_slices(self._ready())

    def flush(self) -> None:
        """Retire every slice; settle those no call holds now (the others settle when their last call
        ends). After it, the inner ledger shows this process's spend so far."""
        with self._lock:
            self._retire_open(lambda held: True)
        self._settle_slices(self._ready())

    def _start_timer(self) -> None:
        """A daemon thread retires aged slices while any is open, so an idle process never leaves
        one to expire (and be charged in full). It ends when none is left; a new slice starts it."""
        with self._lock:
            if self._timer is not None or self._stop.is_set():
                return
            self._timer = threading.Thread(
                target=_tick, args=(self,), name="costlens-budget-leases", daemon=True
            )
            self._timer.start()

    def _idle(self) -> bool:
        with self._lock:
            idle = not self._open and not self._retired
            if idle:
                self._timer = None
            return idle

    def close(self) -> None:
        """Settle every slice (calls still in flight are charged their worst case, as an expiry
        would) and close the inner ledger."""
        self._stop.set()
        with self._lock:
            self._closed = True
            self._retire_open(lambda held: True)
            slices, self._retired = self._retired, []
            for held in slices:
                held.charged += held.held  # the worst case of calls that never reported
                held.held = held.in_flight = 0
            self._calls.clear()
        self._settle_slices(slices)
        self.inner.close()

    # -- everything else is the inner ledger's -------------------------------------------------------

    def usage(self, key: BudgetKey, *, at: datetime | None = None) -> Spent:
        return self.inner.usage(key, at=at)

    def recent_spend(self, key_id: str, since_us: int) -> int:
        return self.inner.recent_spend(key_id, since_us)

    def fire_once(self, key_id: str, period_us: int, alert: str) -> bool:
        return self.inner.fire_once(key_id, period_us, alert)

    def key_ids(self, budget: str) -> list[str]:
        return self.inner.key_ids(budget)

    def record_definitions(self, definitions: Sequence[BudgetDefinition]) -> None:
        self.inner.record_definitions(definitions)

    def definitions(self) -> list[BudgetDefinition]:
        return self.inner.definitions()


def _tick(ledger: LeasedLedger) -> None:
    """The timer's loop. It holds the ledger while slices are open: an engine that was replaced
    (`configure_budgets` again) and then dropped still settles its slices, instead of leaving them
    to expire and be charged in full. It ends, letting go, once no slice is left."""
    wait_s = ledger.max_age_us / 1_000_000
    while not ledger._stop.wait(wait_s):
        try:
            ledger.retire_aged()
        except Exception as exc:  # a timer that dies would leave slices to expire: log and go on
            log.warning("costlens: budget leases not retired: %s: %s", type(exc).__name__, exc)
        if ledger._idle():
            return


def _forget_in_child() -> None:
    """After a fork the child must not admit calls against its parent's slices: both would spend
    the same reservation. It starts with none (the parent settles its own); a lock held at the fork
    is left behind with them."""
    for ledger in list(_live):
        ledger._lock = threading.Lock()
        ledger._opened = threading.Condition(ledger._lock)
        ledger._open, ledger._opening, ledger._calls, ledger._retired = {}, set(), {}, []
        ledger._by_id = {}
        ledger._timer = None


os.register_at_fork(after_in_child=_forget_in_child)


@atexit.register
def _settle_at_exit() -> None:
    """Settle the slices of every live lease ledger: a slice left open is charged in full when it
    expires. (The inner ledgers stay open: other exit handlers may still use them.)"""
    for ledger in list(_live):
        try:
            ledger.flush()
        except Exception as exc:
            log.warning("costlens: budget leases not settled at exit: %s: %s", type(exc).__name__, exc)
