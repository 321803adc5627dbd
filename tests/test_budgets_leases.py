"""Budget leases (`LeasedLedger`): calls admitted in memory against per-process slices of a budget,
on every ledger; exact admissions, spend that arrives once, retirement by age, failures, crashes,
and the engine and budgets file settings."""

from __future__ import annotations

import gc
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costlens
from costlens._errors import ConfigError
from costlens.budgets import (
    Budget,
    BudgetKey,
    EngineSettings,
    Ledger,
    LedgerUnavailable,
    LimitReached,
    MemoryLedger,
    Spent,
    open_ledger,
    parse_budgets,
)
from costlens.budgets._lease import LeasedLedger, _live
from costlens.budgets._sqlite_ledger import SQLiteLedger
from costlens.config import configure_budgets, reset_budgets
from costlens.testing import FakeProvider
from tests.conftest import Recorded

T0 = datetime(2025, 6, 1, 12, tzinfo=UTC)
BIG = 1_000_000  # a limit whose 1% slice (10,000) holds many calls


def key(name: str, limit: int = BIG, enforce: bool = True) -> BudgetKey:
    return BudgetKey(name, limit, 0, 0, enforce)


def leased(inner: Ledger, slice_nanousd: int = 10**9, **kw: Any) -> LeasedLedger:
    kw.setdefault("clock", lambda: T0)
    ledger = LeasedLedger(inner, slice_nanousd=slice_nanousd, **kw)
    ledger._stop.set()  # no timer thread: the tests retire slices themselves
    return ledger


def test_calls_share_one_slice_and_the_ledger_gets_their_real_cost(ledger: Ledger) -> None:
    inner = ledger
    ledger, a, b = leased(inner), key("a"), key("b")
    calls = [ledger.reserve([a, b], 100, 60, at=T0) for _ in range(10)]
    assert inner.usage(a, at=T0).reserved_nanousd == BIG // 100  # one slice, not ten reservations
    for r in calls:
        ledger.settle(r, 40)
    assert inner.usage(a, at=T0).spent_nanousd == 0  # not yet: the slice is still open
    ledger.flush()
    for k in (a, b):
        assert (inner.usage(k, at=T0).spent_nanousd, inner.usage(k, at=T0).reserved_nanousd) == (400, 0)
    assert len({r.id for r in calls}) == 10


def test_a_call_that_does_not_fit_retires_the_slice_and_takes_another(ledger: Ledger) -> None:
    inner = ledger
    ledger, a = leased(inner), key("a")
    first = ledger.reserve([a], 6_000, 60, at=T0)
    second = ledger.reserve([a], 6_000, 60, at=T0)  # 4,000 left in the first slice
    assert inner.usage(a, at=T0).reserved_nanousd == 20_000
    ledger.settle(first, 1_000)  # the retired slice's last call: it settles at once
    assert (inner.usage(a, at=T0).spent_nanousd, inner.usage(a, at=T0).reserved_nanousd) == (1_000, 10_000)
    ledger.release(second)
    ledger.flush()
    assert (inner.usage(a, at=T0).spent_nanousd, inner.usage(a, at=T0).reserved_nanousd) == (1_000, 0)


def test_near_the_limit_a_call_reserves_alone_and_is_refused_exactly(ledger: Ledger) -> None:
    inner = ledger
    ledger, a = leased(inner), key("a", 100_000)  # slices of 1,000
    r = ledger.reserve([a], 99_500, 60, at=T0)  # bigger than a slice: a slice of its own size
    ledger.settle(r, 99_500)
    ledger.flush()
    small = ledger.reserve([a], 400, 60, at=T0)  # a 1,000 slice does not fit: 400 alone
    assert inner.usage(a, at=T0).reserved_nanousd == 400
    ledger.settle(small, 400)
    with pytest.raises(LimitReached) as refused:
        ledger.reserve([a], 101, 60, at=T0)
    assert list(refused.value.failures) == [("a", 99_900, 0, 100_000)]
    ledger.reserve([a], 100, 60, at=T0)  # exactly to the limit


@settings(max_examples=60, deadline=None)
@given(calls=st.lists(st.tuples(st.integers(1, 3_000), st.integers(0, 100)), max_size=80))
def test_one_process_admits_exactly_the_calls_it_admits_without_leases(calls: list[tuple[int, int]]) -> None:
    """Sequential calls on one key set: the same admissions and the same spend as the plain ledger."""
    plain, inner = MemoryLedger(), MemoryLedger()
    ledger, a = leased(inner), key("a", 40_000)
    for worst, pct in calls:
        outcomes = []
        for target in (plain, ledger):
            try:
                r = target.reserve([a], worst, 60, at=T0)
            except LimitReached:
                outcomes.append(False)
                continue
            target.settle(r, worst * pct // 100)
            outcomes.append(True)
        assert outcomes[0] == outcomes[1]
    ledger.flush()
    assert inner.usage(a, at=T0) == plain.usage(a, at=T0)


def test_threads_never_overshoot_and_every_cost_arrives_once(tmp_path: Path) -> None:
    inner = SQLiteLedger(tmp_path / "b.db")
    ledger = LeasedLedger(inner, slice_nanousd=10**9, max_age_s=0.05)  # its timer runs too
    shared, charged = key("shared", 100_000), []
    lock = threading.Lock()

    def work(seed: int) -> None:
        for i in range(60):
            worst = 300 + (seed * 7 + i * 13) % 700
            try:
                r = ledger.reserve([shared, key(f"t{seed % 4}")], worst, 60)
            except LimitReached:
                continue
            cost = worst * ((seed + i) % 5) // 4
            ledger.settle(r, cost)
            with lock:
                charged.append(cost)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger.close()
    after = SQLiteLedger(tmp_path / "b.db")
    usage = after.usage(shared)
    assert usage.reserved_nanousd == 0 and usage.spent_nanousd == sum(charged) <= 100_000
    assert sum(after.usage(key(f"t{n}")).spent_nanousd for n in range(4)) == sum(charged)
    after.close()


@pytest.mark.parametrize("slice_open", [False, True])
def test_bad_arguments_are_refused_and_leave_nothing_held(ledger: Ledger, slice_open: bool) -> None:
    inner = ledger
    ledger, a = leased(inner), key("a")
    if slice_open:  # the usual path (an open slice's keys are not checked again) must refuse too
        ledger.settle(ledger.reserve([a], 10, 60, at=T0), 10)
    with pytest.raises(ValueError, match="negative"):
        ledger.reserve([a], -1, 60, at=T0)
    with pytest.raises(ValueError, match="ttl"):
        ledger.reserve([a], 1, 0, at=T0)
    with pytest.raises(ValueError, match="twice"):
        ledger.reserve([a, a], 1, 60, at=T0)
    held = inner.usage(a, at=T0).reserved_nanousd
    r = ledger.reserve([a], 5, 60, at=T0)  # a refused call held nothing and blocks no one
    ledger.settle(r, 5)
    ledger.flush()
    assert inner.usage(a, at=T0) == Spent(15 if slice_open else 5, 0)
    assert held == (BIG // 100 if slice_open else 0)


def test_a_slice_is_retired_by_age(ledger: Ledger) -> None:
    inner = ledger
    ledger, a = leased(inner, max_age_s=1.0), key("a")
    ledger.settle(ledger.reserve([a], 100, 60, at=T0), 70)
    later = T0 + timedelta(seconds=2)
    ledger.retire_aged(T0 + timedelta(milliseconds=500))  # still young
    assert inner.usage(a, at=T0).spent_nanousd == 0
    ledger.retire_aged(later)
    assert (inner.usage(a, at=later).spent_nanousd, inner.usage(a, at=later).reserved_nanousd) == (70, 0)
    r = ledger.reserve([a], 100, 60, at=T0 + timedelta(seconds=4))  # an old slice is not reused either
    assert inner.usage(a, at=later).reserved_nanousd == 10_000 and r.amount_nanousd == 100


def test_the_timer_settles_an_idle_process_s_slice(tmp_path: Path) -> None:
    inner = SQLiteLedger(tmp_path / "b.db")
    ledger, a = LeasedLedger(inner, slice_nanousd=10**9, max_age_s=0.01), key("a")
    ledger.settle(ledger.reserve([a], 100, 60), 55)
    timer = ledger._timer
    assert timer is not None
    timer.join(10)  # it retires the slice, finds nothing open, and ends
    assert not timer.is_alive() and ledger._timer is None
    assert (inner.usage(a).spent_nanousd, inner.usage(a).reserved_nanousd) == (55, 0)
    ledger.close()


class _Flaky:
    """An inner ledger whose settles fail while `down` is set."""

    def __init__(self) -> None:
        self.ledger = MemoryLedger()
        self.url = "memory://"
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)

    def settle(self, reservation: Any, actual: int) -> None:
        if self.down:
            raise LedgerUnavailable("memory://: down")
        self.ledger.settle(reservation, actual)


def test_a_slice_the_ledger_cannot_take_is_settled_once_when_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = _Flaky()
    ledger, a = leased(flaky), key("a")  # type: ignore[arg-type]
    ledger.settle(ledger.reserve([a], 100, 60, at=T0), 80)
    flaky.down = True
    ledger.flush()
    assert "not settled yet" in caplog.text and flaky.ledger.usage(a, at=T0).spent_nanousd == 0
    flaky.down = False
    ledger.flush()
    ledger.flush()
    assert flaky.ledger.usage(a, at=T0) == Spent(80, 0)


def test_close_charges_calls_in_flight_their_worst_case_and_their_late_end_is_quiet(ledger: Ledger) -> None:
    inner = ledger
    ledger, a = leased(inner), key("a")
    ledger.settle(ledger.reserve([a], 100, 60, at=T0), 30)
    pending = ledger.reserve([a], 500, 60, at=T0)
    ledger.close()  # closes the inner ledger too
    ledger.settle(pending, 10)  # after close: nothing to do, nothing raised
    after = inner if isinstance(inner, MemoryLedger) else open_ledger(inner.url)
    assert after.usage(a, at=T0) == Spent(530, 0)
    after.close()


def test_a_crashed_process_s_slice_is_charged_in_full_when_it_expires(tmp_path: Path) -> None:
    inner = SQLiteLedger(tmp_path / "b.db")
    ledger, a = leased(inner), key("a")
    ledger.settle(ledger.reserve([a], 100, 60, at=T0), 30)
    # the process dies here: nothing settles the slice
    _live.discard(ledger)
    inner._conns.close()
    after = SQLiteLedger(tmp_path / "b.db")
    assert after.usage(a, at=T0 + timedelta(seconds=61)).spent_nanousd == BIG // 100
    after.close()


def test_lease_settings_are_checked() -> None:
    assert EngineSettings(lease_usd="0.5").lease_usd == EngineSettings(lease_usd=0.5).lease_usd  # type: ignore[arg-type]
    for bad in ("-1", "abc", 0, True):
        with pytest.raises(ConfigError, match="lease_usd"):
            EngineSettings(lease_usd=bad)  # type: ignore[arg-type]
    for bad_age in (0, -1.0, float("inf"), True):
        with pytest.raises(ConfigError, match="lease_max_age_s"):
            EngineSettings(lease_max_age_s=bad_age)
    with pytest.raises(ConfigError, match="positive amount"):
        LeasedLedger(MemoryLedger(), slice_nanousd=0)


def test_the_budgets_file_turns_leases_on() -> None:
    text = '[settings]\nlease_usd = "0.25"\nlease_max_age_s = 2\n\n[[budgets]]\nname = "d"\nlimit_usd = 5\n'
    config = parse_budgets(text)
    assert (str(config.settings.lease_usd), config.settings.lease_max_age_s) == ("0.25", 2.0)
    with pytest.raises(ConfigError, match=r"\[settings\]\): lease_usd must be a positive"):
        parse_budgets('[settings]\nlease_usd = "-2"\n')
    with pytest.raises(ConfigError, match="wrong type"):
        parse_budgets('[settings]\nlease_max_age_s = "1"\n')


def test_tracked_calls_with_leases_are_recorded_and_charged_once(
    fake: FakeProvider, recorded: Recorded, tmp_path: Path
) -> None:
    url = f"sqlite://{tmp_path / 'l.db'}"
    engine = configure_budgets(
        [Budget("all", limit_usd="10", window="day"), Budget("u", limit_usd="5", scope={"user": "*"})],
        ledger=url,
        lease_usd="0.01",
    )
    assert isinstance(engine.ledger, LeasedLedger)
    client = costlens.track(
        openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0), user="ann"
    )
    for _ in range(5):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    records = recorded.all()
    costs = [r.cost_nanousd or 0 for r in records]
    assert all(len(r.budgets) == 2 and {e["outcome"] for e in r.budgets} == {"settled"} for r in records)
    day = engine.budgets[0].window.position(datetime.now(UTC))
    everything = BudgetKey("all", 10**10, day.since_us, day.bucket_us)
    assert engine.ledger.usage(everything).reserved_nanousd > 0  # the slice, still open
    engine.flush()
    assert engine.ledger.usage(everything) == Spent(sum(costs), 0) and sum(costs) > 0
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    reset_budgets()  # closes the engine: its slice settles
    ledger = open_ledger(url)
    total = sum(r.cost_nanousd or 0 for r in recorded.all())
    assert ledger.usage(everything) == Spent(total, 0) and total > sum(costs)
    ledger.close()


def test_engine_flush_without_leases_does_nothing() -> None:
    engine = configure_budgets([Budget("all", limit_usd="1")], ledger="memory://")
    engine.flush()
    assert isinstance(engine.ledger, MemoryLedger)
    reset_budgets()


def test_a_forked_child_takes_slices_of_its_own(tmp_path: Path) -> None:
    """A child must not spend its parent's slice (both would use one reservation)."""
    inner = SQLiteLedger(tmp_path / "b.db")
    ledger, a = leased(inner), key("a")
    parent_call = ledger.reserve([a], 100, 60, at=T0)
    pid = os.fork()
    if pid == 0:  # the child: one call, then out without running the parent's exit handlers
        code = 1
        try:
            ledger.settle(ledger.reserve([a], 100, 60, at=T0), 60)
            ledger.flush()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    usage = inner.usage(a, at=T0)
    assert (usage.spent_nanousd, usage.reserved_nanousd) == (60, 10_000)  # the child's own slice, settled
    ledger.settle(parent_call, 40)
    ledger.flush()
    assert inner.usage(a, at=T0) == Spent(100, 0)
    ledger.close()


def test_a_dropped_engine_still_settles_its_slices(tmp_path: Path) -> None:
    """`configure_budgets` again replaces the engine without closing it; once dropped, its open
    slices must still settle (not expire and be charged in full)."""
    inner = SQLiteLedger(tmp_path / "b.db")
    ledger, a = LeasedLedger(inner, slice_nanousd=10**9, max_age_s=0.01), key("a")
    ledger.settle(ledger.reserve([a], 100, 60), 25)
    timer = ledger._timer
    assert timer is not None
    del ledger
    gc.collect()
    timer.join(10)
    assert not timer.is_alive()
    assert (inner.usage(a).spent_nanousd, inner.usage(a).reserved_nanousd) == (25, 0)
    inner.close()


def test_a_key_set_passed_as_one_tuple_or_as_equal_ones_finds_the_same_slice(ledger: Ledger) -> None:
    """The engine passes one tuple per key set (found by identity); another caller's equal tuple or
    list finds the same slice by value; a retired slice is never found again by either."""
    inner = ledger
    ledger, a, b = leased(inner), key("a"), key("b")
    keys = (a, b)
    first = ledger.reserve(keys, 100, 60, at=T0)
    same = ledger.reserve(keys, 100, 60, at=T0)
    equal = ledger.reserve((key("a"), key("b")), 100, 60, at=T0)
    as_list = ledger.reserve([a, b], 100, 60, at=T0)
    assert inner.usage(a, at=T0).reserved_nanousd == BIG // 100  # one slice for all four
    ledger.flush()  # retired: the next call by the same tuple takes a new slice
    after = ledger.reserve(keys, 100, 60, at=T0)
    assert inner.usage(a, at=T0).reserved_nanousd == 2 * (BIG // 100)
    for r in (first, same, equal, as_list, after):
        ledger.settle(r, 10)
    ledger.flush()
    assert (inner.usage(a, at=T0).spent_nanousd, inner.usage(a, at=T0).reserved_nanousd) == (50, 0)


def test_each_call_sees_the_spend_its_slice_has_charged_so_far(ledger: Ledger) -> None:
    """The spend a leased call sees: the slice's view (`Reservation.before`, shared by its calls)
    plus what the calls that ended under it cost (`lease_charged_nanousd`)."""
    ledger, a = leased(ledger), key("a")
    first = ledger.reserve([a], 100, 60, at=T0)
    ledger.settle(first, 30)
    second, third = ledger.reserve([a], 100, 60, at=T0), ledger.reserve([a], 100, 60, at=T0)
    ledger.settle(second, 5)
    fourth = ledger.reserve([a], 100, 60, at=T0)
    base = first.before[0].spent_nanousd
    calls = (first, second, third, fourth)
    seen = [r.before[0].spent_nanousd + r.lease_charged_nanousd - base for r in calls]
    assert seen == [0, 30, 30, 35]
    assert first.before is second.before is fourth.before and type(second.before[0]) is Spent
    for r in (third, fourth):
        ledger.release(r)
    ledger.flush()


class _SlowFirstReserve(MemoryLedger):
    """A ledger whose first reserve waits for `go` (a slice being opened while other calls come),
    and fails with LedgerUnavailable when `fail` is set."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.started, self.go, self.fail = threading.Event(), threading.Event(), fail
        self.reserves = 0

    def reserve(self, keys: Any, amount_nanousd: int, ttl_s: float, *, at: datetime | None = None) -> Any:
        self.reserves += 1
        if self.reserves == 1:
            self.started.set()
            assert self.go.wait(10)
            if self.fail:
                raise LedgerUnavailable("slow://", RuntimeError("down"))
        return super().reserve(keys, amount_nanousd, ttl_s, at=at)


class _TellsWhenWaiting(threading.Condition):
    """The lease ledger's condition, telling the test when a call waits on it."""

    def __init__(self, lock: Any) -> None:
        super().__init__(lock)
        self.waits = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.set()  # (under the lock: the opener cannot notify before this call waits)
        return super().wait(timeout)


def _while_a_slice_opens(inner: _SlowFirstReserve) -> tuple[LeasedLedger, list[Any], list[Any]]:
    """Thread 1 opens `a`'s slice (held in the inner ledger); thread 2 reserves meanwhile."""
    ledger, a = leased(inner), key("a")
    ledger._opened = waiting = _TellsWhenWaiting(ledger._lock)
    results: list[Any] = []
    errors: list[Any] = []

    def call() -> None:
        try:
            results.append(ledger.reserve([a], 100, 60, at=T0))
        except Exception as exc:
            errors.append(exc)

    opener = threading.Thread(target=call)
    opener.start()
    assert inner.started.wait(10)
    joiner = threading.Thread(target=call)
    joiner.start()
    waiting.waits.wait(2)  # the joiner waits on the opener (a ledger that never waits: 2 s, then on)
    inner.go.set()
    opener.join(10)
    joiner.join(10)
    return ledger, results, errors


def test_a_call_waits_for_the_slice_another_thread_is_opening() -> None:
    """It joins the new slice instead of reserving alone: one ledger reservation, not two."""
    inner = _SlowFirstReserve()
    ledger, results, errors = _while_a_slice_opens(inner)
    assert not errors and len(results) == 2
    assert inner.reserves == 1
    assert inner.usage(key("a"), at=T0).reserved_nanousd == BIG // 100
    for r in results:
        ledger.settle(r, 30)
    ledger.flush()
    after = inner.usage(key("a"), at=T0)
    assert (after.spent_nanousd, after.reserved_nanousd) == (60, 0)


def test_when_the_slice_fails_to_open_the_waiting_call_reserves_alone() -> None:
    inner = _SlowFirstReserve(fail=True)
    ledger, results, errors = _while_a_slice_opens(inner)
    assert [type(e) for e in errors] == [LedgerUnavailable]  # the opener's call
    assert len(results) == 1 and inner.reserves == 2  # the waiter's own reservation
    assert inner.usage(key("a"), at=T0).reserved_nanousd == 100
    ledger.settle(results[0], 70)
    assert inner.usage(key("a"), at=T0).spent_nanousd == 70


def test_a_threshold_crossed_inside_one_slice_alerts_on_the_call_that_crosses_it() -> None:
    """The spend a leased call sees includes what the slice's earlier calls cost, though the ledger
    does not show it yet: a 0.5% threshold (5,000,000 nano-USD of $1) is crossed by the third call
    of 2,000,000, all three inside one slice, and alerts then, once."""
    from costlens.budgets._alerts import AlertDispatcher
    from costlens.budgets._watch import Applied, Watch

    budget = Budget("b", limit_usd="1", window="day", thresholds=["0.5"], forecast=False)
    position = budget.window.position(T0)
    key_b = BudgetKey("b", budget.limit_nanousd, position.since_us, position.bucket_us)
    applied = [Applied(budget, key_b, position)]
    ledger, alerts = leased(MemoryLedger()), []
    dispatcher = AlertDispatcher([alerts.append])
    watch = Watch(ledger, dispatcher)
    fired_after = []
    for _ in range(4):
        r = ledger.reserve([applied[0].key], 100_000, 60, at=T0)
        ledger.settle(r, 2_000_000)
        watch.settled(applied, r, 2_000_000, at=T0)
        dispatcher.flush()
        fired_after.append(len(alerts))
    assert fired_after == [0, 0, 1, 1]
    assert ledger.inner.usage(applied[0].key, at=T0).spent_nanousd == 0  # (all inside the open slice)
    dispatcher.close()
