"""The server ledgers' own rules (PostgreSQL, Redis), on real servers (tests/servers.py): pinned
migrations applied once, no overshoot under concurrent reserves, expiry charged once across
instances, the server going down mid-run (reserves raise `LedgerUnavailable`, the engine fails
closed or, with `fail_open`, lets calls through; the ledger works again once the server is back,
in the same process), what Redis does when it comes back empty, and no password in any message.
(The Ledger protocol itself is checked on both in tests/test_budgets_ledger.py.)"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import psycopg
import pytest
import redis

import costlens
from costlens._errors import ConfigError
from costlens.budgets import (
    Budget,
    BudgetKey,
    BudgetUnavailable,
    Ledger,
    LedgerUnavailable,
    LimitReached,
    Spent,
    open_ledger,
)
from costlens.budgets._ledger import BudgetDefinition, history_bucket, now_us
from costlens.budgets._pg_ledger import MIGRATIONS, PostgresLedger
from costlens.budgets._redis_ledger import RedisLedger
from costlens.config import configure_budgets, reset_budgets
from costlens.store._migrations import migration_hash
from costlens.testing import FakeProvider
from tests.conftest import Recorded
from tests.servers import server_down

T0 = datetime(2025, 6, 1, 12, tzinfo=UTC)
A = BudgetKey("a", 10**9, 0, 0)
SECRET = "hunter2-not-a-real-password"

# Append a line when you append a migration. NEVER edit a line: the SQL has shipped to databases.
PINNED = [
    ("0001_create_budget_ledger", "d8b31c11b16a20affdc1a9c20f3aae5e08cf4eea5622755eb9c33e0a852ca240"),
    ("0002_budget_definitions", "77b0a417e5f7d9aa01a54fc6207ada01a5ad1f1c54ed11b7f68fe68e111dbded"),
    ("0003_held_counters_and_functions", "fc4f053e15e2e869f5ce00772e829a4390d0711707ac1b723d737065797383cd"),
]


@pytest.fixture(params=["postgres", "redis"])
def server_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


def _join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _chat(fake: FakeProvider) -> Any:
    client = costlens.track(
        openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0), provider="openai"
    )
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=20,
        extra_headers={"x-fake-output-tokens": "5"},
    )


def _chain(exc: BaseException) -> str:
    """Every message and repr of an exception and its causes."""
    out = []
    seen: BaseException | None = exc
    while seen is not None:
        out += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(out)


# -- PostgreSQL ---------------------------------------------------------------------------------------


def test_postgres_migrations_are_pinned_and_apply_once(postgres_url: str) -> None:
    assert [(name, migration_hash(sql)) for name, sql in MIGRATIONS] == PINNED
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def first_use() -> None:  # four instances starting together on an empty database
        ledger = PostgresLedger(postgres_url)
        start.wait()
        try:
            ledger.usage(A)
        except BaseException as exc:
            errors.append(exc)
        ledger.close()

    _join([threading.Thread(target=first_use) for _ in range(4)])
    assert errors == []
    again = PostgresLedger(postgres_url)
    again.settle(again.reserve([A], 5, 60), 5)
    again.close()
    with psycopg.connect(postgres_url) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM budget_migrations ORDER BY applied_at, name")]
        other = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    assert names == [name for name, _ in MIGRATIONS]
    assert other == (None,)  # the store's migrations table is left to the store


def test_a_postgres_ledger_from_a_newer_costlens_is_refused(postgres_url: str) -> None:
    first = PostgresLedger(postgres_url)
    first.usage(A)
    first.close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("INSERT INTO budget_migrations (name) VALUES ('9999_future')")
    later = PostgresLedger(postgres_url)
    with pytest.raises(ConfigError, match=r"9999_future.*upgrade costlens"):
        later.usage(A)
    later.close()


def test_a_postgres_ledger_does_no_io_until_used() -> None:
    ledger = open_ledger(f"postgresql://app:{SECRET}@127.0.0.1:1/nothing?pool_timeout=1")
    assert isinstance(ledger, PostgresLedger)
    ledger.close()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_gets_its_own_postgres_connections(postgres_url: str) -> None:
    ledger = PostgresLedger(postgres_url)
    ledger.settle(ledger.reserve([A], 10, 60), 10)  # the parent's pool is open
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_settle_in_child, args=(ledger,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    ledger.settle(ledger.reserve([A], 10, 60), 10)  # the parent's connections still work
    assert ledger.usage(A) == Spent(30, 0)
    ledger.close()


def _settle_in_child(ledger: PostgresLedger) -> None:
    ledger.settle(ledger.reserve([A], 10, 60), 10)


# -- both servers ----------------------------------------------------------------------------------------


def test_concurrent_reserves_never_overshoot(server_url: str) -> None:
    """16 threads over 4 ledger instances (standing for processes) race for one key."""
    ledgers = [open_ledger(server_url) for _ in range(4)]
    shared, admitted = BudgetKey("shared", 100_000, 0, 0), []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def work(ledger: Ledger) -> None:
        start.wait()
        for _ in range(15):
            try:
                r = ledger.reserve([shared, BudgetKey("roomy", 10**12, 0, 0)], 997, 60)
            except LimitReached:
                continue
            ledger.settle(r, 997)
            with lock:
                admitted.append(r.id)

    _join([threading.Thread(target=work, args=(ledgers[n % 4],)) for n in range(16)])
    assert len(admitted) == 100_000 // 997
    assert ledgers[0].usage(shared) == Spent(len(admitted) * 997, 0)
    for ledger in ledgers:
        ledger.close()


def _history_calls(url: str, key: str) -> int:
    if url.startswith("postgres"):
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT SUM(calls) FROM budget_history WHERE key = %s", (key,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0
    client = redis.Redis.from_url(url, decode_responses=True)
    fields = client.hgetall(f"costlens:hist:{key}")
    client.close()
    return sum(int(v) for f, v in fields.items() if f.endswith(":n"))


def test_expiry_is_charged_once_by_instances_that_notice_it_together(server_url: str) -> None:
    ledgers = [open_ledger(server_url) for _ in range(2)]
    ledgers[0].reserve([A], 1000, 10, at=T0)  # never settled: its process died
    later = T0 + timedelta(seconds=11)
    start = threading.Barrier(8)

    def work(ledger: Ledger) -> None:
        start.wait()
        for _ in range(5):
            ledger.settle(ledger.reserve([A], 10, 60, at=later), 1)

    _join([threading.Thread(target=work, args=(ledgers[n % 2],)) for n in range(8)])
    assert ledgers[1].usage(A, at=later) == Spent(1000 + 40, 0)
    assert ledgers[0].recent_spend("a", now_us(T0)) == 1040
    assert _history_calls(server_url, "a") == 41
    for ledger in ledgers:
        ledger.close()


def test_fire_once_is_true_for_one_instance_of_many(server_url: str) -> None:
    ledgers = [open_ledger(server_url) for _ in range(4)]
    fired: list[bool] = []
    start = threading.Barrier(12)

    def work(ledger: Ledger) -> None:
        start.wait()
        fired.append(ledger.fire_once("a", 7, "80%"))

    _join([threading.Thread(target=work, args=(ledgers[n % 4],)) for n in range(12)])
    assert sorted(fired) == [False] * 11 + [True]
    for ledger in ledgers:
        ledger.close()


def test_definitions_limits_and_prune(server_url: str, caplog: pytest.LogCaptureFixture) -> None:
    one, two = open_ledger(server_url), open_ledger(server_url)
    d = BudgetDefinition("b", "code", "pid 1", {"name": "b", "limit_usd": "1"}, 5)
    one.record_definitions([d])
    two.record_definitions([BudgetDefinition("b", "file", "/etc/b.toml", {"name": "b"}, 6, 7)])
    assert [(x.source, x.removed) for x in one.definitions()] == [("file", True)]  # the last write wins
    with caplog.at_level(logging.WARNING, logger="costlens"):
        one.settle(one.reserve([BudgetKey("lim", 1000, 0, 0)], 1, 60, at=T0), 1)
        two.reserve([BudgetKey("lim", 5000, 0, 0)], 1, 60, at=T0)
        two.reserve([BudgetKey("lim", 5000, 0, 0)], 1, 60, at=T0)
    assert [r.getMessage().count("'lim'") for r in caplog.records] == [1]  # warned once
    assert one.fire_once("a", 0, "80%")
    assert one.recent_spend("lim", now_us(T0)) == 1
    prune: Callable[[int], int] = getattr(one, "prune")  # noqa: B009 - not part of the protocol
    assert prune(history_bucket(now_us(T0)) + 1) >= 1  # the history bucket of T0
    assert one.recent_spend("lim", now_us(T0)) == 0
    assert prune(now_us() + 10**9) >= 1  # the alert mark
    assert one.fire_once("a", 0, "80%")
    one.close()
    two.close()


def test_no_password_in_urls_reprs_or_errors(fake: FakeProvider, recorded: Recorded) -> None:
    urls = [
        f"postgresql://app:{SECRET}@127.0.0.1:1/costlens?pool_timeout=1",
        f"redis://app:{SECRET}@127.0.0.1:1/0",
    ]
    for url in urls:
        ledger = open_ledger(url)
        assert SECRET not in ledger.url and SECRET not in repr(ledger) and SECRET not in str(ledger)
        with pytest.raises(LedgerUnavailable, match=r"127\.0\.0\.1:1\b") as info:
            ledger.reserve([A], 1, 60)
        assert SECRET not in _chain(info.value)
        configure_budgets([Budget("b", limit_usd="1")], ledger=open_ledger(url))
        try:
            with pytest.raises(BudgetUnavailable) as engine_info:
                _chat(fake)
        finally:
            reset_budgets()
        assert SECRET not in _chain(engine_info.value)
        assert "127.0.0.1:1" in str(engine_info.value)
        ledger.close()
    assert fake.requests == []
    assert all(SECRET not in str(r.budgets) for r in recorded.all())


# -- the server going down mid-run ----------------------------------------------------------------------


@pytest.fixture
def engines(recorded: Recorded) -> Iterator[Callable[..., Any]]:
    def make(ledger: Ledger, **kw: Any) -> Any:
        return configure_budgets([Budget("b", limit_usd="1", window="day")], ledger=ledger, **kw)

    yield make
    reset_budgets()


def _calls_fail_closed_then_open(
    fake: FakeProvider, engines: Callable[..., Any], make: Callable[[], Ledger]
) -> None:
    engines(make())
    with pytest.raises(BudgetUnavailable, match="fail_open=True"):
        _chat(fake)
    assert fake.requests == []
    engines(make(), fail_open=True)
    _chat(fake)
    assert len(fake.requests) == 1


def test_postgres_going_down_mid_run(
    postgres_url: str, fake: FakeProvider, recorded: Recorded, engines: Callable[..., Any]
) -> None:
    url = postgres_url + "?pool_timeout=1"
    ledger = open_ledger(url)
    ledger.settle(ledger.reserve([A], 100, 60), 40)
    held = ledger.reserve([A], 500, 60)
    with server_down("postgres"):
        with pytest.raises(LedgerUnavailable, match=r"127\.0\.0\.1:\d+"):
            ledger.reserve([A], 1, 60)
        with pytest.raises(LedgerUnavailable):
            ledger.settle(held, 200)  # the caller may retry it: settle is idempotent
        _calls_fail_closed_then_open(fake, engines, lambda: open_ledger(url))
    # Back, and the same ledger object (this process was never restarted) works again.
    ledger.settle(held, 200)
    ledger.settle(held, 200)
    ledger.settle(ledger.reserve([A], 1, 60), 1)
    assert ledger.usage(A) == Spent(241, 0)  # nothing lost: PostgreSQL keeps its data
    engines(open_ledger(url))
    _chat(fake)
    ledger.close()


def test_redis_going_down_mid_run(
    redis_url: str,
    fake: FakeProvider,
    recorded: Recorded,
    engines: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis runs without persistence: it comes back empty. The default (on_reset=fail) fails closed
    until the loss is accepted; on_reset=continue starts the windows again from zero."""
    ledger = open_ledger(redis_url)
    ledger.settle(ledger.reserve([A], 100, 60), 40)
    carry_on = RedisLedger(redis_url, on_reset="continue")
    carry_on.usage(A)  # knows the epoch too
    with server_down("redis"):
        with pytest.raises(LedgerUnavailable, match=r"127\.0\.0\.1:\d+"):
            ledger.reserve([A], 1, 60)
        _calls_fail_closed_then_open(fake, engines, lambda: open_ledger(redis_url))
    with caplog.at_level(logging.WARNING, logger="costlens"):
        for _ in range(2):
            with pytest.raises(LedgerUnavailable, match="lost the budget state"):
                ledger.reserve([A], 1, 60)
        started_later = open_ledger(redis_url)  # a new instance: the db is marked lost, it stops too
        with pytest.raises(LedgerUnavailable, match="lost the budget state"):
            started_later.reserve([A], 1, 60)
        assert sum("lost its state" in r.getMessage() for r in caplog.records) == 2  # once per instance
        engines(open_ledger(redis_url))
        with pytest.raises(BudgetUnavailable):
            _chat(fake)  # enforced budgets fail closed
        # The instance running with on_reset=continue accepts the loss: windows start from zero,
        # and the others adopt its epoch (with a warning), in this process, without a restart.
        carry_on.settle(carry_on.reserve([A], 7, 60), 7)
        assert carry_on.usage(A) == Spent(7, 0)
        ledger.settle(ledger.reserve([A], 1, 60), 1)
        assert started_later.usage(A) == Spent(8, 0)  # the 40 settled before the restart is gone
    assert any("starts again from zero" in r.getMessage() for r in caplog.records)
    engines(open_ledger(redis_url))
    _chat(fake)
    for made in (ledger, carry_on, started_later):
        made.close()


def test_redis_losing_its_state_fails_closed_until_the_loss_is_accepted(redis_url: str) -> None:
    ledger = RedisLedger(redis_url)
    r = ledger.reserve([A], 100, 60)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()  # what a restart without persistence leaves
    client.close()
    with pytest.raises(LedgerUnavailable, match="lost the budget state"):
        ledger.reserve([A], 1, 60)
    with pytest.raises(LedgerUnavailable, match="lost the budget state"):
        ledger.settle(r, 50)
    ledger.accept_reset()
    ledger.settle(r, 50)  # held in the lost state: nothing to settle any more
    assert ledger.usage(A) == Spent(0, 0)
    ledger.settle(ledger.reserve([A], 3, 60), 3)
    assert ledger.usage(A) == Spent(3, 0)
    ledger.close()


def test_redis_on_reset_continue_and_the_prefix_come_from_the_url(redis_url: str) -> None:
    ledger = open_ledger(redis_url + "?prefix=app1:&on_reset=continue")
    assert isinstance(ledger, RedisLedger) and (ledger.prefix, ledger.on_reset) == ("app1:", "continue")
    ledger.settle(ledger.reserve([A], 5, 60), 5)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.exists("app1:epoch") and not client.exists("costlens:epoch")
    client.flushdb()
    client.close()
    ledger.settle(ledger.reserve([A], 2, 60), 2)  # continues from zero
    assert ledger.usage(A) == Spent(2, 0)
    with pytest.raises(ConfigError, match="on_reset"):
        open_ledger(redis_url + "?on_reset=maybe")
    ledger.close()
