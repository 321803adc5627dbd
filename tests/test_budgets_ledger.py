"""The Ledger protocol, checked on every implementation (memory, SQLite, PostgreSQL, Redis): atomic
all-or-nothing reservations, TTL expiry, settle/release, once-only alerts; plus SQLite's migrations
and failures (the server ledgers' own tests are in tests/test_ledger_backends.py)."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costlens._errors import ConfigError
from costlens.budgets import (
    BudgetKey,
    Ledger,
    LedgerUnavailable,
    LimitReached,
    MemoryLedger,
    Spent,
    _ledger,
    open_ledger,
    register_ledger,
)
from costlens.budgets._ledger import HISTORY_BUCKET_US, Reservation, history_bucket, now_us
from costlens.budgets._sqlite_ledger import MIGRATIONS, SQLiteLedger
from costlens.budgets._window import to_us
from costlens.store._migrations import migration_hash

T0 = datetime(2025, 6, 1, 12, tzinfo=UTC)

# Append a line when you append a migration. NEVER edit a line: the SQL has shipped to user files.
PINNED = [
    ("0001_create_budget_ledger", "6531385414c8109116075e797605cb54b97e6a7ae4b5d564b9c21dc0f1658e73"),
    ("0002_expired_reservations", "5c4a7bf7ef117ae920b7e59b03a05c179056ff50f2b1b447c0dd514d66d41d5a"),
    ("0003_budget_limits", "5145b0db602a93ae4fc889e623edaed8ff437411b9e713592dd19ab5a5baccc5"),
    ("0004_budget_definitions", "ec431eac49557a0c4b17cbfa7e950dc9dc6632738c051c21ccd4eb2feac13f82"),
    ("0005_settle_trigger", "bc32815f46ff903e134391bf1e36a9d76a7eba18ca1414fae6d77bc958e1637f"),
]


def key(name: str, limit: int, *, since: int = 0, bucket: int = 0, enforce: bool = True) -> BudgetKey:
    return BudgetKey(name, limit, since, bucket, enforce)


def test_reserve_settle_release(ledger: Ledger) -> None:
    a = key("a", 1000)
    r = ledger.reserve([a], 300, 60, at=T0)
    assert ledger.usage(a, at=T0).reserved_nanousd == 300
    ledger.settle(r, 120)
    assert (ledger.usage(a, at=T0).spent_nanousd, ledger.usage(a, at=T0).reserved_nanousd) == (120, 0)
    r2 = ledger.reserve([a], 880, 60, at=T0)
    assert r2.before[0].spent_nanousd == 120
    ledger.release(r2)
    assert ledger.usage(a, at=T0).total_nanousd == 120


def test_a_limit_is_never_passed_and_the_answer_says_where_it_stands(ledger: Ledger) -> None:
    a = key("a", 1000)
    ledger.reserve([a], 600, 60, at=T0)
    ledger.reserve([a], 400, 60, at=T0)  # exactly at the limit is allowed
    with pytest.raises(LimitReached) as info:
        ledger.reserve([a], 1, 60, at=T0)
    assert (info.value.key, info.value.reserved_nanousd, info.value.limit_nanousd) == ("a", 1000, 1000)


def test_reservations_are_all_or_nothing_across_keys(ledger: Ledger) -> None:
    roomy, tight = key("roomy", 10_000), key("tight", 100)
    with pytest.raises(LimitReached, match="tight"):
        ledger.reserve([roomy, tight], 500, 60, at=T0)
    assert ledger.usage(roomy, at=T0).total_nanousd == 0


def test_many_keys_in_one_reservation_each_read_and_charged(ledger: Ledger) -> None:
    """More keys than the SQLite ledger reads in one statement (32), each with its own spend, and
    no keys at all: every key's spend is read and charged as its own."""
    keys = [key(f"k{i}", 1000 if i == 69 else 10_000) for i in range(70)]
    for i, k in enumerate(keys):
        ledger.settle(ledger.reserve([k], i, 60, at=T0), i)
    r = ledger.reserve(keys, 1000 - 69, 60, at=T0)
    assert [seen.spent_nanousd for seen in r.before] == list(range(70))
    ledger.settle(r, 7)
    assert [ledger.usage(k, at=T0).spent_nanousd for k in keys] == [i + 7 for i in range(70)]
    with pytest.raises(LimitReached, match="k69"):
        ledger.reserve(keys, 1000 - 76 + 1, 60, at=T0)  # only k69 (limit 1000, spent 76) is full
    ledger.settle(ledger.reserve([], 5, 60, at=T0), 5)


def test_unenforced_keys_are_charged_but_never_refuse(ledger: Ledger) -> None:
    warn = key("warn", 10, enforce=False)
    r = ledger.reserve([warn], 500, 60, at=T0)
    ledger.settle(r, 400)
    assert ledger.usage(warn, at=T0).spent_nanousd == 400


def test_an_expired_reservation_is_charged_not_dropped(ledger: Ledger) -> None:
    """The call may have been billed (the process died, or its settle failed): the limit holds."""
    a = key("a", 2000)
    ledger.reserve([a], 1500, 10, at=T0)  # never settled
    with pytest.raises(LimitReached):
        ledger.reserve([a], 501, 10, at=T0 + timedelta(seconds=9))
    later = T0 + timedelta(seconds=11)
    assert ledger.usage(a, at=later) == Spent(1500, 0)  # spend from its expiry, before anyone moves it
    with pytest.raises(LimitReached):
        ledger.reserve([a], 501, 10, at=later)  # it still counts: the limit is never passed
    ledger.reserve([a], 500, 10, at=later)
    assert ledger.usage(a, at=later) == Spent(1500, 500)  # moved into spend once, not twice
    assert ledger.recent_spend("a", now_us(T0)) == 1500  # forecasts see it too


def test_expiry_charges_every_key_in_the_bucket_it_was_reserved_in(ledger: Ledger) -> None:
    hour, day = key("hour", 10**6, since=100, bucket=100), key("day", 10**6, since=50, bucket=70)
    ledger.reserve([hour, day], 700, 10, at=T0)
    later = T0 + timedelta(seconds=30)
    ledger.reserve([key("other", 10**6)], 1, 60, at=later)  # notices the expiry
    assert ledger.usage(hour, at=later).spent_nanousd == 700
    assert ledger.usage(day, at=later).spent_nanousd == 700
    assert ledger.usage(key("day", 10**6, since=71, bucket=71), at=later).spent_nanousd == 0
    assert ledger.usage(key("hour", 10**6, since=101, bucket=101), at=later).spent_nanousd == 0
    assert ledger.recent_spend("hour", now_us(T0)) == ledger.recent_spend("day", now_us(T0)) == 700


def test_a_late_settle_corrects_the_charge_of_an_expired_reservation(ledger: Ledger) -> None:
    a = key("a", 10**6)
    late, under = ledger.reserve([a], 1000, 10, at=T0), ledger.reserve([a], 300, 10, at=T0)
    later = T0 + timedelta(seconds=11)
    ledger.reserve([a], 1, 60, at=later)  # both expire and are charged: 1300
    assert ledger.usage(a, at=later).spent_nanousd == 1300
    ledger.settle(late, 200)  # 1000 reserved -> 200 actual
    ledger.settle(under, 450)  # more than it reserved: the real cost counts
    assert ledger.usage(a, at=later).spent_nanousd == 650
    assert ledger.recent_spend("a", now_us(T0)) == 650
    ledger.settle(late, 200)  # a retry changes nothing
    ledger.release(under)
    assert ledger.usage(a, at=later).spent_nanousd == 650


def test_a_late_settle_before_anyone_noticed_the_expiry_charges_once(ledger: Ledger) -> None:
    a = key("a", 10**6)
    r = ledger.reserve([a], 1000, 10, at=T0)
    later = T0 + timedelta(seconds=11)
    ledger.settle(r, 250)
    ledger.reserve([a], 1, 60, at=later)  # nothing left to expire
    assert ledger.usage(a, at=later) == Spent(250, 1)


def test_a_late_release_refunds_an_expired_reservation(ledger: Ledger) -> None:
    a = key("a", 10**6)
    r = ledger.reserve([a], 1000, 10, at=T0)
    later = T0 + timedelta(seconds=11)
    ledger.reserve([a], 1, 60, at=later)
    assert ledger.usage(a, at=later).spent_nanousd == 1000
    ledger.release(r)
    assert ledger.usage(a, at=later).spent_nanousd == 0
    assert ledger.recent_spend("a", now_us(T0)) == 0
    ledger.release(r)
    ledger.settle(r, 70)  # released already: nothing to settle
    assert ledger.usage(a, at=later).spent_nanousd == 0


def test_settle_and_release_are_idempotent(ledger: Ledger) -> None:
    a = key("a", 10**6)
    r = ledger.reserve([a], 500, 60, at=T0)
    ledger.settle(r, 300)
    ledger.settle(r, 300)  # e.g. a retry after LedgerUnavailable that had in fact committed
    ledger.settle(r, 999)
    ledger.release(r)
    assert ledger.usage(a, at=T0) == Spent(300, 0)
    assert ledger.recent_spend("a", now_us(T0)) == 300
    released = ledger.reserve([a], 500, 60, at=T0)
    ledger.release(released)
    ledger.release(released)
    ledger.settle(released, 10)
    assert ledger.usage(a, at=T0) == Spent(300, 0)


def test_buckets_before_the_window_do_not_count(ledger: Ledger) -> None:
    yesterday, today = key("d", 1000, since=0, bucket=0), key("d", 1000, since=86_400, bucket=86_400)
    ledger.settle(ledger.reserve([yesterday], 900, 60, at=T0), 900)
    assert ledger.usage(today, at=T0).spent_nanousd == 0
    ledger.reserve([today], 1000, 60, at=T0)


def test_fire_once_is_true_once_per_key_window_and_alert(ledger: Ledger) -> None:
    assert ledger.fire_once("a", 0, "80%")
    assert not ledger.fire_once("a", 0, "80%")
    assert ledger.fire_once("a", 1, "80%")
    assert ledger.fire_once("a", 0, "forecast")
    assert ledger.fire_once("b", 0, "80%")


def test_key_ids_and_recent_spend(ledger: Ledger) -> None:
    at_us = now_us(T0)
    for k in ("users[user=a]", "users[user=b]", "users", "usersx", "other"):
        ledger.settle(ledger.reserve([key(k, 10**9)], 5, 60, at=T0), 5)
    assert ledger.key_ids("users") == ["users", "users[user=a]", "users[user=b]"]
    assert ledger.recent_spend("other", at_us - HISTORY_BUCKET_US) == 5
    assert ledger.recent_spend("other", at_us + HISTORY_BUCKET_US) == 0


def test_bad_arguments_are_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="negative"):
        ledger.reserve([key("a", 10)], -1, 60)
    with pytest.raises(ValueError, match="twice"):
        ledger.reserve([key("a", 10), key("a", 10)], 1, 60)
    r = ledger.reserve([key("a", 10)], 1, 60)
    with pytest.raises(ValueError, match="negative"):
        ledger.settle(r, -5)


@settings(max_examples=60, deadline=None)
@given(
    limits=st.lists(st.integers(0, 3000), min_size=1, max_size=4),
    calls=st.lists(
        st.tuples(st.integers(0, 900), st.sets(st.integers(0, 3), min_size=1), st.integers(0, 100)),
        max_size=30,
    ),
)
def test_nested_budgets_admit_a_call_iff_every_enclosing_budget_has_room(
    limits: list[int], calls: list[tuple[int, set[int], int]]
) -> None:
    """A reference model: spent per key; a call over keys S of amount x is admitted iff for every
    key in S spent + x <= limit; it is then settled at a fraction of x (never above it)."""
    ledger = MemoryLedger()
    keys = [key(f"k{i}", limit) for i, limit in enumerate(limits)]
    spent = [0] * len(keys)
    for amount, members, pct in calls:
        chosen = sorted(i for i in members if i < len(keys)) or [0]
        fits = all(spent[i] + amount <= limits[i] for i in chosen)
        try:
            r = ledger.reserve([keys[i] for i in chosen], amount, 60, at=T0)
        except LimitReached:
            assert not fits
            continue
        assert fits
        actual = amount * pct // 100
        ledger.settle(r, actual)
        for i in chosen:
            spent[i] += actual
    for i, k in enumerate(keys):
        assert ledger.usage(k, at=T0).spent_nanousd == spent[i] <= limits[i]


def test_threads_never_overshoot_the_sqlite_ledger(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "b.db")
    shared, admitted = key("shared", 100_000), []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(40):
            try:
                r = ledger.reserve([shared], 997, 60)
            except LimitReached:
                continue
            ledger.settle(r, 997)
            with lock:
                admitted.append(r.id)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 100_000 // 997
    assert ledger.usage(shared).spent_nanousd == len(admitted) * 997 <= 100_000
    ledger.close()


def test_sqlite_migrations_are_pinned_and_apply_once(tmp_path: Path) -> None:
    assert [(name, migration_hash(sql)) for name, sql in MIGRATIONS] == PINNED
    path = tmp_path / "b.db"
    for _ in range(2):
        ledger = SQLiteLedger(path)
        ledger.usage(key("a", 1))
        ledger.close()
    with sqlite3.connect(path) as raw:
        names = [n for (n,) in raw.execute("SELECT name FROM budget_schema_migrations")]
    raw.close()
    assert names == [name for name, _ in MIGRATIONS]


def test_a_ledger_held_before_the_settle_trigger_settles_after_it(tmp_path: Path) -> None:
    """A file whose reservations were held under migrations 0001-0004 (settled by a transaction)
    is upgraded by 0005: they settle through its trigger, into the same spend and history buckets
    the transaction used (the trigger's bucket is `history_bucket`), and a second settle, a late
    settle of an expired one and a release behave as before."""
    path = tmp_path / "b.db"
    old = SQLiteLedger(path)
    with patch("costlens.budgets._sqlite_ledger.MIGRATIONS", MIGRATIONS[:4]):
        at = T0 + timedelta(seconds=437)
        a, b = key("a", 10**9, bucket=7), key("b", 10**9)
        held = old.reserve([a, b], 500, 60, at=at)
        released = old.reserve([a], 40, 60, at=at)
        lapsing = old.reserve([b], 30, 1, at=at)
    old.close()
    ledger = SQLiteLedger(path)
    ledger.settle(held, 321)
    ledger.settle(held, 999)  # a second settle changes nothing
    ledger.release(released)
    later = at + timedelta(seconds=5)
    ledger.reserve([key("c", 10)], 1, 60, at=later)  # moves the lapsed reservation into spend
    ledger.settle(lapsing, 12)  # late: corrects the charge of its reserved amount
    assert ledger.usage(a, at=later) == Spent(321, 0)
    assert ledger.usage(b, at=later) == Spent(321 + 12, 0)
    since = history_bucket(to_us(at)) - 1
    assert ledger.recent_spend("a", since) == 321 and ledger.recent_spend("b", since) == 333
    with sqlite3.connect(path) as raw:
        buckets = raw.execute("SELECT key, bucket_us, calls FROM budget_history ORDER BY key").fetchall()
        held_rows = raw.execute("SELECT COUNT(*) FROM budget_reservations WHERE key != 'c'").fetchone()
    raw.close()
    assert buckets == [("a", history_bucket(to_us(at)), 1), ("b", history_bucket(to_us(at)), 2)]
    assert held_rows == (0,)
    ledger.close()


def test_the_ledger_may_share_the_store_file(tmp_path: Path) -> None:
    from costlens.store.sqlite import SQLiteStore
    from costlens.usage import CallRecord

    path = tmp_path / "shared.db"
    store, ledger = SQLiteStore(path), SQLiteLedger(path)
    store.append([CallRecord("openai", "chat", "m")])
    ledger.settle(ledger.reserve([key("a", 10)], 5, 60), 5)
    assert len(list(store.iter_records())) == 1 and ledger.usage(key("a", 10)).spent_nanousd == 5
    store.close()
    ledger.close()


def test_a_new_ledger_file_has_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """1 KiB pages for a new file (each commit writes its pages whole); a file made with the 4 KiB
    default before keeps it and its spend."""
    new, old = tmp_path / "new.db", tmp_path / "old.db"
    with sqlite3.connect(old) as raw:
        raw.execute("PRAGMA page_size = 4096")
        raw.execute("CREATE TABLE unrelated (x)")
    raw.close()
    for path in (new, old):
        ledger = SQLiteLedger(path)
        ledger.settle(ledger.reserve([key("a", 10)], 5, 60), 4)
        ledger.close()
    sizes = []
    for path in (new, old):
        with sqlite3.connect(path) as raw:
            sizes.append(raw.execute("PRAGMA page_size").fetchone()[0])
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        raw.close()
        assert SQLiteLedger(path).usage(key("a", 10)).spent_nanousd == 4
    assert sizes == [1024, 4096]


def test_a_ledger_from_a_newer_costlens_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    SQLiteLedger(path).usage(key("a", 1))
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO budget_schema_migrations VALUES ('9999_future', 'later')")
    raw.close()
    with pytest.raises(ConfigError, match=r"9999_future.*upgrade costlens"):
        SQLiteLedger(path).usage(key("a", 1))


def test_an_unreachable_sqlite_ledger_raises_ledger_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    ledger = SQLiteLedger(blocker / "budgets.db")
    with pytest.raises(LedgerUnavailable, match="not-a-folder"):
        ledger.reserve([key("a", 10)], 1, 60)


def test_open_ledger_by_url(tmp_path: Path) -> None:
    assert isinstance(open_ledger("memory://"), MemoryLedger)
    ledger = open_ledger(f"sqlite://{tmp_path / 'x.db'}")
    assert isinstance(ledger, SQLiteLedger) and ledger.url == f"sqlite://{tmp_path / 'x.db'}"
    with pytest.raises(ConfigError, match="unknown ledger URL"):
        open_ledger("mongodb://nowhere")
    with pytest.raises(ConfigError, match="name a file"):
        open_ledger("sqlite://:memory:")


def test_expiry_is_charged_once_by_ledgers_and_threads_that_notice_it_together(tmp_path: Path) -> None:
    """Two ledgers on one file stand for two processes; each has 4 threads reserving after the expiry."""
    path = tmp_path / "b.db"
    ledgers = [SQLiteLedger(path), SQLiteLedger(path)]
    a = key("a", 10**9)
    ledgers[0].reserve([a], 1000, 10, at=T0)
    later = T0 + timedelta(seconds=11)
    start = threading.Barrier(8)

    def work(ledger: SQLiteLedger) -> None:
        start.wait()
        for _ in range(5):
            ledger.settle(ledger.reserve([a], 10, 60, at=later), 1)

    threads = [threading.Thread(target=work, args=(ledgers[n % 2],)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledgers[1].usage(a, at=later) == Spent(1000 + 40, 0)
    assert ledgers[0].recent_spend("a", now_us(T0)) == 1040
    with sqlite3.connect(path) as raw:
        history_calls = raw.execute("SELECT SUM(calls) FROM budget_history WHERE key = 'a'").fetchone()
        left = raw.execute("SELECT COUNT(*) FROM budget_reservations").fetchone()
    raw.close()
    assert (history_calls, left) == ((41,), (0,))
    for ledger in ledgers:
        ledger.close()


def test_two_ledgers_giving_a_budget_different_limits_warn_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "b.db"
    one, two = SQLiteLedger(path), SQLiteLedger(path)
    with caplog.at_level(logging.WARNING, logger="costlens"):
        one.settle(one.reserve([key("shared", 1000), key("other", 7)], 1, 60, at=T0), 1)
        one.reserve([key("shared", 1000)], 1, 60, at=T0)
        assert caplog.records == []  # one limit per key so far
        two.reserve([key("shared", 5000), key("other", 7)], 1, 60, at=T0)
        two.reserve([key("shared", 5000)], 1, 60, at=T0)
        one.reserve([key("shared", 1000)], 1, 60, at=T0)  # disagrees again: this process said so already
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "'shared'" in message and "5000" in message and "1000" in message and str(path) in message
    with sqlite3.connect(path) as raw:
        stored = dict(raw.execute("SELECT key, limit_nanousd FROM budget_limits").fetchall())
    raw.close()
    assert stored == {"shared": 1000, "other": 7}  # the limit last used
    one.close()
    two.close()


def _open_fds(path: Path) -> int:
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += Path(os.readlink(fd)) == path
        except OSError:  # closed while listing
            continue
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_threads_that_ended_leave_no_open_ledger_connection(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    ledger = SQLiteLedger(path)
    ledger.usage(key("a", 1))
    one = _open_fds(path)
    for _ in range(6):
        t = threading.Thread(target=ledger.usage, args=(key("a", 1),))
        t.start()
        t.join()
    ledger.usage(key("a", 1))
    t = threading.Thread(
        target=ledger.usage, args=(key("a", 1),)
    )  # opening a connection closes the dead ones
    t.start()
    t.join()
    assert _open_fds(path) <= 2 * one
    ledger.close()
    assert _open_fds(path) == 0


def test_a_closed_sqlite_ledger_is_unavailable_in_every_thread(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "b.db")
    ledger.usage(key("a", 1))
    ledger.close()
    with pytest.raises(LedgerUnavailable, match="closed"):
        ledger.usage(key("a", 1))
    errors: list[BaseException] = []

    def other() -> None:
        try:
            ledger.reserve([key("a", 1)], 1, 60)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert [type(e) for e in errors] == [LedgerUnavailable]


def test_a_ledger_scheme_may_name_its_factory_by_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_ledger, "_FACTORIES", dict(_ledger._FACTORIES))
    register_ledger("lite", "costlens.budgets._sqlite_ledger:from_url")
    made = open_ledger(f"lite://{tmp_path / 'l.db'}")
    assert isinstance(made, SQLiteLedger) and made.path == tmp_path / "l.db"
    with pytest.raises(ValueError, match="module:function"):
        register_ledger("broken", "costlens.budgets._sqlite_ledger")


def test_the_ledger_registry_imports_no_backend() -> None:
    """`_ledger` holds the protocol and the registry; backends import it, never the reverse."""
    code = (
        "import sys, costlens.budgets; "
        "assert 'costlens.budgets._sqlite_ledger' not in sys.modules, 'imported at import'; "
        "from costlens.budgets import open_ledger; "
        "assert type(open_ledger('sqlite:///tmp/x/never-opened.db')).__name__ == 'SQLiteLedger'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    source = Path(_ledger.__file__).read_text(encoding="utf-8")
    assert 'import_module("costlens.budgets._sqlite_ledger")' not in source


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["reserve", "settle", "release"]),
            st.integers(0, 3),  # which keys
            st.integers(1, 500),  # amount
            st.integers(-5, 120),  # seconds after T0 (time may step back)
            st.integers(1, 60),  # ttl seconds
        ),
        max_size=60,
    )
)
def test_memory_ledger_indexes_agree_with_a_full_scan(ops: list[tuple[str, int, int, int, int]]) -> None:
    """The memory ledger answers a reserve from per-key totals and an expiry heap; `usage` still
    scans every reservation. Whatever the order of reserves, settles, releases and expiries, the
    spend a reserve saw is what the scan gives at that instant, and spend never drifts."""
    ledger = MemoryLedger()
    keys = [key("a", 10**12), key("b", 10**12), key("a[x]", 10**12)]
    chosen = [keys[:1], keys[1:2], keys, keys[::2]]
    held: list[Reservation] = []
    for op, which, amount, seconds, ttl in ops:
        at = T0 + timedelta(seconds=seconds)
        if op == "reserve" or not held:
            scanned = [ledger.usage(k, at=at) for k in chosen[which]]
            r = ledger.reserve(chosen[which], amount, ttl, at=at)
            assert list(r.before) == scanned
            held.append(r)
        elif op == "settle":
            ledger.settle(held.pop(which % len(held)), amount)
        else:
            ledger.release(held.pop(which % len(held)))
    for k in keys:
        assert ledger.usage(k, at=T0 + timedelta(days=2)).reserved_nanousd == 0
