"""The budget ledger: atomic reservations of worst-case cost, settled with the real cost.

This protocol is what every ledger implements: SQLite and memory now, PostgreSQL and Redis on
the roadmap. Money is integer nano-USD. The ledger knows nothing of windows or time zones: each
`BudgetKey` arrives with the bucket a charge goes to and the first bucket whose spend counts
(see `_window.Position`), so a window sum is a range query and nothing ever needs resetting.

Rules every implementation keeps (the shared tests in tests/test_budgets_ledger.py check them):
- `reserve` is all-or-nothing across its keys and atomic with respect to every other reserve on the
  same store (threads, asyncio tasks, processes): for each enforced key,
  `spent + reserved + amount <= limit` holds at commit, else `LimitReached` and nothing is reserved.
- A reservation expires `ttl_s` after it was made (a crashed process cannot hold a budget forever).
  An expired reservation is CHARGED, never dropped: the provider may have billed the call (the
  process died, or its settle failed). From its expiry its amount counts as spend in the bucket it
  was reserved in, on every key it held; the ledger moves it into spend and history exactly once
  (memory: at the next reserve; SQLite: in the transaction of a reserve that notices it, at most
  every 10 s per process), and keeps a mark of it for `EXPIRED_KEEP_US` after its expiry.
- `settle` charges `actual` to each key's bucket (and to 5-minute history used by forecasts) and
  drops the reservation; `release` drops it without a charge. Both are one transaction, and both
  are idempotent: a reservation the ledger no longer holds (already settled or released, or
  unknown) is left alone, so a caller may retry one that raised `LedgerUnavailable`.
- A late `settle` of an expired (hence charged) reservation corrects the charge to `actual` (it
  adds `actual - reserved`); a late `release` refunds it. After `EXPIRED_KEEP_US` the mark is gone
  and a late settle or release changes nothing: the reserved amount stays charged.
- `fire_once(key, period, alert)` is true for exactly one caller across all processes.
- Failures to reach the store raise `LedgerUnavailable`.
- `record_definitions` keeps the latest `BudgetDefinition` of each budget name (the last write wins,
  across processes) and `definitions` returns them: an engine records the budgets it puts in force
  (and marks one removed), so `costlens budgets status` in another process sees budgets defined in
  code. A ledger without these methods still enforces budgets: the engine then records nothing.

Ledgers are found by URL scheme (`open_ledger`). A scheme maps to a factory, or to the
`"module:attribute"` path of one, imported on first use: this module never imports a backend, so
the backends may import it (the protocol and the shared helpers live here).
"""

from __future__ import annotations

import heapq
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import import_module
from typing import Any, Literal, Protocol, runtime_checkable

from costlens._errors import ConfigError
from costlens.budgets._errors import LimitReached
from costlens.budgets._window import to_us
from costlens.usage import _new_id, _slots_twin

__all__ = [
    "EXPIRED_KEEP_US",
    "HISTORY_BUCKET_US",
    "BudgetDefinition",
    "BudgetKey",
    "Ledger",
    "LedgerFactory",
    "MemoryLedger",
    "Reservation",
    "Spent",
    "check_ledger_url",
    "now_us",
    "open_ledger",
    "register_ledger",
    "reservation_of",
    "spent_of",
]

#: Settled spend is also kept in 5-minute buckets, for forecasts and `costlens budgets status`.
HISTORY_BUCKET_US = 300_000_000
#: How long after its expiry the ledger remembers a reservation it charged for expiring, so that
#: a late settle can correct the charge (or a late release refund it).
EXPIRED_KEEP_US = 86_400_000_000


def now_us(at: datetime | None = None) -> int:
    """Microseconds since the epoch (UTC) of `at`, or of now."""
    at = at or datetime.now(UTC)
    return to_us(at.replace(tzinfo=UTC) if at.tzinfo is None else at)


@dataclass(frozen=True, slots=True)
class BudgetKey:
    """One budget (scope instance) as the ledger sees it, at the time of one call.

    `id`: `name` or `name[user=u-42]`. `bucket_us`: where this call's charge goes. `since_us`: the
    first bucket that counts. `enforce=False` (mode `warn`): charged, never refused.
    """

    id: str
    limit_nanousd: int
    since_us: int
    bucket_us: int
    enforce: bool = True


@dataclass(frozen=True, slots=True)
class Spent:
    """Settled spend in the window, and the worst case of calls in flight now."""

    spent_nanousd: int
    reserved_nanousd: int

    @property
    def total_nanousd(self) -> int:
        return self.spent_nanousd + self.reserved_nanousd


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money held for one call on every key. `before` is each key's spend as the ledger showed it
    when the call was admitted (same order); `lease_charged_nanousd` is what this process had
    charged on top of it, under a budget lease, and the ledger did not show yet (0 without leases):
    the spend the call saw on a key is `before[i].spent_nanousd + lease_charged_nanousd`."""

    id: str
    keys: tuple[BudgetKey, ...]
    amount_nanousd: int
    at_us: int
    expires_us: int
    before: tuple[Spent, ...]
    lease_charged_nanousd: int = 0


_SpentSlots = _slots_twin(Spent)
_ReservationSlots = _slots_twin(Reservation)


def spent_of(spent_nanousd: int, reserved_nanousd: int) -> Spent:
    """`Spent(spent_nanousd, reserved_nanousd)` in half the time, for a caller that knows both are
    ints (a leased call makes them): filled as a plain object of the same slots, then made a `Spent`
    (the frozen dataclass's `__init__` sets every field through `object.__setattr__`)."""
    blank: Any = object.__new__(_SpentSlots)
    blank.spent_nanousd, blank.reserved_nanousd = spent_nanousd, reserved_nanousd
    blank.__class__ = Spent
    return blank  # type: ignore[no-any-return]


def reservation_of(
    id: str,
    keys: tuple[BudgetKey, ...],
    amount_nanousd: int,
    at_us: int,
    expires_us: int,
    before: tuple[Spent, ...],
    lease_charged_nanousd: int = 0,
) -> Reservation:
    """`Reservation(...)` in half the time (every leased call makes one), as `spent_of`."""
    blank: Any = object.__new__(_ReservationSlots)
    blank.id, blank.keys, blank.amount_nanousd = id, keys, amount_nanousd
    blank.at_us, blank.expires_us, blank.before = at_us, expires_us, before
    blank.lease_charged_nanousd = lease_charged_nanousd
    blank.__class__ = Reservation
    return blank  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class BudgetDefinition:
    """A budget as a process last put it in force (or took it out: `removed_us`), kept in the ledger.

    `definition` is `Budget.as_dict()` (JSON-ready). `source`: `"file"` (a budgets file, named by
    `origin`) or `"code"` (`costlens.budget(...)`, `configure_budgets([...])`; `origin` names the
    process). `defined_us`: when it was last put in force (or removed), microseconds since the epoch.
    """

    name: str
    source: Literal["file", "code"]
    origin: str
    definition: dict[str, Any]
    defined_us: int
    removed_us: int | None = None

    @property
    def removed(self) -> bool:
        return self.removed_us is not None


@runtime_checkable
class Ledger(Protocol):
    url: str

    def reserve(
        self, keys: Sequence[BudgetKey], amount_nanousd: int, ttl_s: float, *, at: datetime | None = None
    ) -> Reservation: ...

    def settle(self, reservation: Reservation, actual_nanousd: int) -> None: ...

    def release(self, reservation: Reservation) -> None: ...

    def usage(self, key: BudgetKey, *, at: datetime | None = None) -> Spent: ...

    def recent_spend(self, key_id: str, since_us: int) -> int:
        """Settled spend of calls started at or after `since_us` (5-minute resolution)."""

    def fire_once(self, key_id: str, period_us: int, alert: str) -> bool: ...

    def key_ids(self, budget: str) -> list[str]:
        """Every key of a budget seen so far: `budget` and its `budget[...]` instances."""

    def record_definitions(self, definitions: Sequence[BudgetDefinition]) -> None:
        """Keep each definition as the latest one of its budget name (one transaction)."""

    def definitions(self) -> list[BudgetDefinition]:
        """The latest definition of every budget name recorded, removed ones included, by name."""

    def close(self) -> None: ...


def check_reserve(keys: Sequence[BudgetKey], amount_nanousd: int, ttl_s: float) -> None:
    if amount_nanousd < 0:
        raise ValueError(f"a reservation cannot be negative ({amount_nanousd} nano-USD)")
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    if len({k.id for k in keys}) != len(keys):
        raise ValueError("a reservation names the same budget key twice")


def check_limits(keys: Sequence[BudgetKey], before: Sequence[Spent], amount_nanousd: int) -> None:
    """Raise `LimitReached` naming every enforced key that cannot take `amount_nanousd` more."""
    failures = [
        (key.id, seen.spent_nanousd, seen.reserved_nanousd, key.limit_nanousd)
        for key, seen in zip(keys, before, strict=True)
        if key.enforce and seen.total_nanousd + amount_nanousd > key.limit_nanousd
    ]
    if failures:
        raise LimitReached(failures)


#: A new reservation's id: a record's (time-ordered, unique across processes), and the same
#: function, not one that calls it (every leased call makes one: a frame less).
new_reservation_id: Callable[[], str] = _new_id


def history_bucket(at_us: int) -> int:
    return at_us - at_us % HISTORY_BUCKET_US


class MemoryLedger:
    """A ledger in this process's memory: exact across threads and asyncio tasks, not processes."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._lock = threading.Lock()
        self._spend: dict[str, dict[int, int]] = defaultdict(dict)
        self._history: dict[str, dict[int, int]] = defaultdict(dict)
        self._held: dict[str, Reservation] = {}
        self._expired: dict[str, Reservation] = {}  # charged when they expired, kept EXPIRED_KEEP_US
        self._fired: set[tuple[str, int, str]] = set()
        self._definitions: dict[str, BudgetDefinition] = {}
        # Indexes that keep a reserve O(its keys) however many calls are in flight: the amount held
        # per key, held reservations by expiry (entries of settled ones are skipped, and dropped when
        # they outnumber the held), expired ones in the order they expired.
        self._held_per_key: dict[str, int] = {}
        self._by_expiry: list[tuple[int, str]] = []
        self._expiry_order: deque[tuple[int, str]] = deque()

    def _reserved(self, key_id: str, at_us: int) -> int:
        return sum(
            r.amount_nanousd
            for r in self._held.values()
            if r.expires_us > at_us and any(k.id == key_id for k in r.keys)
        )

    def _spent(self, key: BudgetKey, at_us: int) -> int:
        """Settled spend, plus reservations expired by `at_us` but not yet moved into spend."""
        settled = sum(v for bucket, v in self._spend.get(key.id, {}).items() if bucket >= key.since_us)
        lapsed = sum(
            r.amount_nanousd
            for r in self._held.values()
            if r.expires_us <= at_us
            for k in r.keys
            if k.id == key.id and k.bucket_us >= key.since_us
        )
        return settled + lapsed

    def _charge(self, reservation: Reservation, amount_nanousd: int) -> None:
        hb = history_bucket(reservation.at_us)
        for key in reservation.keys:
            spend = self._spend[key.id]
            spend[key.bucket_us] = spend.get(key.bucket_us, 0) + amount_nanousd
            history = self._history[key.id]
            history[hb] = history.get(hb, 0) + amount_nanousd

    def _hold(self, r: Reservation) -> None:
        self._held[r.id] = r
        heapq.heappush(self._by_expiry, (r.expires_us, r.id))
        per_key = self._held_per_key
        for key in r.keys:
            per_key[key.id] = per_key.get(key.id, 0) + r.amount_nanousd
        if len(self._by_expiry) > 2 * len(self._held) + 1024:  # mostly settled entries: rebuild
            self._by_expiry = [(held.expires_us, rid) for rid, held in self._held.items()]
            heapq.heapify(self._by_expiry)

    def _unhold(self, reservation_id: str) -> Reservation | None:
        r = self._held.pop(reservation_id, None)
        if r is not None:
            per_key = self._held_per_key
            for key in r.keys:
                left = per_key[key.id] - r.amount_nanousd
                if left:
                    per_key[key.id] = left
                else:
                    del per_key[key.id]
        return r

    def _expire(self, at_us: int) -> None:
        """Charge every reservation expired by `at_us` (once: it moves from held to expired)."""
        by_expiry = self._by_expiry
        while by_expiry and by_expiry[0][0] <= at_us:
            _, rid = heapq.heappop(by_expiry)
            r = self._unhold(rid)
            if r is None:
                continue  # settled or released before it expired
            self._charge(r, r.amount_nanousd)
            self._expired[rid] = r
            self._expiry_order.append((r.expires_us, rid))
        order = self._expiry_order
        while order and order[0][0] + EXPIRED_KEEP_US < at_us:
            self._expired.pop(order.popleft()[1], None)

    def _settled(self, key: BudgetKey) -> int:
        buckets = self._spend.get(key.id)
        return sum(v for bucket, v in buckets.items() if bucket >= key.since_us) if buckets else 0

    def reserve(
        self, keys: Sequence[BudgetKey], amount_nanousd: int, ttl_s: float, *, at: datetime | None = None
    ) -> Reservation:
        check_reserve(keys, amount_nanousd, ttl_s)
        at_us = now_us(at)
        with self._lock:
            self._expire(at_us)
            # Every reservation expired by now has just been charged: what is held is all in force
            # and nothing lapsed is left uncharged, so the indexes give what `usage` scans for.
            held = self._held_per_key
            before = [Spent(self._settled(key), held.get(key.id, 0)) for key in keys]
            check_limits(keys, before, amount_nanousd)
            expires = at_us + int(ttl_s * 1_000_000)
            r = Reservation(new_reservation_id(), tuple(keys), amount_nanousd, at_us, expires, tuple(before))
            self._hold(r)
        return r

    def settle(self, reservation: Reservation, actual_nanousd: int) -> None:
        if actual_nanousd < 0:
            raise ValueError(f"a settled cost cannot be negative ({actual_nanousd} nano-USD)")
        with self._lock:
            held = self._unhold(reservation.id)
            if held is not None:
                self._charge(held, actual_nanousd)
                return
            expired = self._expired.pop(reservation.id, None)
            if expired is not None:  # charged its reserved amount when it expired: correct that
                self._charge(expired, actual_nanousd - expired.amount_nanousd)

    def release(self, reservation: Reservation) -> None:
        with self._lock:
            if self._unhold(reservation.id) is not None:
                return
            expired = self._expired.pop(reservation.id, None)
            if expired is not None:  # charged its reserved amount when it expired: refund it
                self._charge(expired, -expired.amount_nanousd)

    def usage(self, key: BudgetKey, *, at: datetime | None = None) -> Spent:
        at_us = now_us(at)
        with self._lock:
            return Spent(self._spent(key, at_us), self._reserved(key.id, at_us))

    def recent_spend(self, key_id: str, since_us: int) -> int:
        with self._lock:
            return sum(v for b, v in self._history.get(key_id, {}).items() if b >= history_bucket(since_us))

    def fire_once(self, key_id: str, period_us: int, alert: str) -> bool:
        with self._lock:
            if (key_id, period_us, alert) in self._fired:
                return False
            self._fired.add((key_id, period_us, alert))
            return True

    def key_ids(self, budget: str) -> list[str]:
        with self._lock:
            held = {k.id for r in self._held.values() for k in r.keys}
            ids = set(self._spend) | held
        return sorted(i for i in ids if i == budget or i.startswith(budget + "["))

    def record_definitions(self, definitions: Sequence[BudgetDefinition]) -> None:
        with self._lock:
            self._definitions.update((d.name, d) for d in definitions)

    def definitions(self) -> list[BudgetDefinition]:
        with self._lock:
            return [self._definitions[name] for name in sorted(self._definitions)]

    def close(self) -> None:
        pass


LedgerFactory = Callable[[str], Ledger]
#: scheme -> a factory, or the "module:attribute" path of one (imported on first use).
_FACTORIES: dict[str, LedgerFactory | str] = {}


def register_ledger(scheme: str, factory: LedgerFactory | str) -> None:
    """Make `open_ledger("<scheme>://...")` call `factory(url)` (PostgreSQL, Redis later).

    `factory` may be given as `"package.module:function"`: the module is imported only when a
    ledger of that scheme is opened (so registering one costs nothing at import)."""
    if isinstance(factory, str) and not all(factory.partition(":")[::2]):
        raise ValueError(f"a ledger factory path is 'package.module:function', got {factory!r}")
    _FACTORIES[scheme.lower()] = factory


def _factory(scheme: str) -> LedgerFactory | None:
    found = _FACTORIES.get(scheme.lower())
    if not isinstance(found, str):
        return found
    module, _, name = found.partition(":")
    factory: LedgerFactory = getattr(import_module(module), name)
    return factory


def check_ledger_url(url: str) -> None:
    """Raise ConfigError unless a ledger is registered for the URL's scheme (opens nothing)."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in _FACTORIES:
        schemes = ", ".join(f"{s}://" for s in sorted(_FACTORIES))
        raise ConfigError(
            f"unknown ledger URL {url!r}: use one of {schemes} (e.g. sqlite:///var/lib/app/budgets.db, "
            "postgresql://app@db:5432/costlens or redis://cache:6379/0)"
        )


def open_ledger(url: str) -> Ledger:
    """Open the ledger a URL names: `sqlite:///abs/path/budgets.db` (shared by every process using
    the file), `postgresql://user@host:port/db` or `redis://host:port/0` (shared by every instance
    of an app), `memory://` (this process only)."""
    check_ledger_url(url)
    factory = _factory(url.partition("://")[0])
    assert factory is not None
    return factory(url)


register_ledger("sqlite", "costlens.budgets._sqlite_ledger:from_url")
register_ledger("memory", lambda url: MemoryLedger())
register_ledger("postgresql", "costlens.budgets._pg_ledger:from_url")
register_ledger("postgres", "costlens.budgets._pg_ledger:from_url")
register_ledger("redis", "costlens.budgets._redis_ledger:from_url")
