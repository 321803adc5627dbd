"""PostgreSQL-only behaviour of `PostgresStore` (the shared contract runs in test_store.py).

Every test gets a fresh, empty database on the real server (`postgres_url`, tests/servers.py) and
skips when the server is absent. The reference for query answers is `MemoryStore`.
"""

from __future__ import annotations

import gc
import multiprocessing
import random
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from costlens._errors import ConfigError
from costlens.store import SpendQuery, SpendRow, Store, StoreNotFound, open_store
from costlens.store._base import SCAN_FIELDS, scan_calls, write_all
from costlens.store._migrations import migration_hash
from costlens.store.memory import MemoryStore
from costlens.usage import CallRecord

psycopg = pytest.importorskip("psycopg")

from costlens.store._pg_schema import MIGRATIONS  # noqa: E402
from costlens.store.postgres import PostgresStore, StoreUnavailable  # noqa: E402

PINNED = [
    ("0001_calls_partitioned", "6e8519c0d09751f6def3d4aad00f7f02971ca78d113a9ee5597fd583f28e2a47"),
    ("0002_call_ids", "984cd269421700679397ef15798b9881331ab43d30f1cf265fed2782f8c54b1d"),
    ("0003_tagsets", "414a3a24309d5abe973f4ff3b692baffa5aff009f76e3a40cb2862004b098fda"),
    ("0004_rollup_hourly", "c580b7ff2b5f245f73cd03ed2f18b5e9da4d9006ef895ab1e03edc65b359ffa3"),
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Asia/Kathmandu"]
T0 = datetime(2025, 3, 1, 10, 30, tzinfo=UTC)


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = open_store(postgres_url)
    assert isinstance(opened, PostgresStore)
    yield opened
    opened.close()


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """One statement on a connection of its own (what the database holds, not what the store says)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def rec(at: datetime = T0, **kw: Any) -> CallRecord:
    kw.setdefault("provider", "openai")
    kw.setdefault("operation", "chat")
    kw.setdefault("request_model", "gpt-4o")
    kw.setdefault("input_tokens", 100)
    kw.setdefault("output_tokens", 10)
    kw.setdefault("cost_nanousd", 1_000)
    return CallRecord(started_at=at, **kw)


def random_records(n: int, seed: int) -> list[CallRecord]:
    """Varied records over ~5 months (DST changes in several zones), all fields that group or sum."""
    rnd = random.Random(seed)
    start = datetime(2025, 1, 15, tzinfo=UTC)
    out = []
    for _ in range(n):
        inp, outp = rnd.randint(0, 10**6), rnd.randint(0, 10**5)
        cr = rnd.randint(0, inp // 2)
        tags = {k: v for k, v in (("feature", rnd.choice([None, "search", "chat"])),
                                  ("user", rnd.choice([None, "u1", "ü2"]))) if v is not None}  # fmt: skip
        out.append(
            CallRecord(
                provider=rnd.choice(["openai", "anthropic"]),
                operation=rnd.choice(["chat", "responses"]),
                request_model=rnd.choice(["gpt-4o", "claude", "o3"]),
                response_model=rnd.choice([None, "", "gpt-4o-2024", "claude-x"]),
                started_at=start + timedelta(microseconds=rnd.randint(0, 150 * 86_400 * 10**6)),
                input_tokens=inp,
                output_tokens=outp,
                cache_read_tokens=cr,
                cache_write_tokens=rnd.randint(0, inp - cr),
                reasoning_tokens=rnd.randint(0, outp),
                cost_nanousd=rnd.choice([None, rnd.randint(0, 10**12)]),
                status=rnd.choice(["ok", "ok", "error", "blocked"]),
                estimated=rnd.random() < 0.2,
                service_tier=rnd.choice([None, "", "flex"]),
                web_search_requests=rnd.randint(0, 3),
                tags=tags,
            )
        )
    return out


def by_keys(rows: list[SpendRow], keys: tuple[str, ...]) -> dict[tuple[str | None, ...], SpendRow]:
    return {tuple(row.keys[k] for k in keys): row for row in rows}


# -- migrations --------------------------------------------------------------------------------


def test_migrations_are_pinned_by_name_and_hash() -> None:
    assert [(name, migration_hash(text)) for name, text in MIGRATIONS] == PINNED


def test_migrations_apply_once(store: PostgresStore, postgres_url: str) -> None:
    store.migrate()
    store.migrate()
    store.append([rec()])
    applied = sql(postgres_url, "SELECT name, applied_at FROM schema_migrations ORDER BY name")
    assert [name for name, _ in applied] == [name for name, _ in PINNED]
    assert all(isinstance(at, datetime) for _, at in applied)


def _migrate_in_child(url: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    store = open_store(url)
    try:
        store.migrate()
        store.append([rec()])
        results.put("ok")
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")
    finally:
        store.close()


def test_three_processes_migrate_at_once(postgres_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    children = [
        ctx.Process(target=_migrate_in_child, args=(postgres_url, barrier, results)) for _ in range(3)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join()
    assert outcomes == ["ok"] * 3
    assert sql(postgres_url, "SELECT count(*), count(DISTINCT name) FROM schema_migrations") == [(4, 4)]
    assert sql(postgres_url, "SELECT count(*) FROM calls") == [(3,)]


def test_a_schema_from_a_newer_costlens_is_refused(store: PostgresStore, postgres_url: str) -> None:
    store.migrate()
    sql(postgres_url, "INSERT INTO schema_migrations (name) VALUES ('9999_from_the_future')")
    newer = open_store(postgres_url)
    try:
        with pytest.raises(ConfigError, match=r"9999_from_the_future.*upgrade costlens"):
            newer.query(SpendQuery())
    finally:
        newer.close()


# -- partitions and idempotence ------------------------------------------------------------------


def test_calls_get_one_partition_per_month_on_demand(store: PostgresStore, postgres_url: str) -> None:
    months = [datetime(2024, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)]
    months += [datetime(2025, 3, 15, tzinfo=UTC), datetime(1969, 12, 31, 23, tzinfo=UTC)]
    store.append([rec(at=at) for at in months] + [rec(at=months[2])])
    children = sql(
        postgres_url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'calls'::regclass ORDER BY 1",
    )
    assert [name for (name,) in children] == [
        "calls_1969_12", "calls_2024_12", "calls_2025_01", "calls_2025_03", "calls_default",
    ]  # fmt: skip
    placed = sql(postgres_url, "SELECT tableoid::regclass::text, count(*) FROM calls GROUP BY 1 ORDER BY 1")
    assert placed == [("calls_1969_12", 1), ("calls_2024_12", 1), ("calls_2025_01", 1), ("calls_2025_03", 2)]
    store.append([rec(at=months[2])])  # a month that has its partition: nothing new is created
    assert len(sql(postgres_url, "SELECT 1 FROM pg_inherits WHERE inhparent = 'calls'::regclass")) == 5


def test_the_same_batch_twice_is_stored_once(store: PostgresStore, postgres_url: str) -> None:
    batch = random_records(500, seed=1)
    store.append(batch)
    store.append(batch)
    with write_all(store) as write:
        assert write(batch[:100]) == 0
        assert write([rec()]) == 1
    assert sql(postgres_url, "SELECT count(*), count(DISTINCT id) FROM calls") == [(501, 501)]
    assert sql(postgres_url, "SELECT count(*) FROM call_ids") == [(501,)]
    reference = MemoryStore()
    reference.append([*batch, *store.iter_records(since=T0, until=T0 + timedelta(microseconds=1))])
    assert store.query(SpendQuery()) == reference.query(SpendQuery())


def test_two_threads_appending_the_same_batch_store_it_once(store: PostgresStore, postgres_url: str) -> None:
    batch = random_records(2000, seed=2)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def append() -> None:
        barrier.wait()
        try:
            store.append(batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sql(postgres_url, "SELECT count(*), count(DISTINCT id) FROM calls") == [(2000, 2000)]
    [total] = store.query(SpendQuery())
    assert total.calls == 2000  # the rollup counted each record once too


def _append_in_child(url: str, batch: list[CallRecord], barrier: Any, results: Any) -> None:
    store = open_store(url)
    try:
        barrier.wait()
        store.append(batch)
        results.put("ok")
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")
    finally:
        store.close()


def test_two_processes_appending_the_same_batch_store_it_once(postgres_url: str) -> None:
    open_store(postgres_url).migrate()
    batch = random_records(2000, seed=3)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    children = [
        ctx.Process(target=_append_in_child, args=(postgres_url, batch, barrier, results)) for _ in range(2)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join()
    assert outcomes == ["ok", "ok"]
    assert sql(postgres_url, "SELECT count(*), count(DISTINCT id) FROM calls") == [(2000, 2000)]
    assert sql(postgres_url, "SELECT sum(calls) FROM rollup_hourly") == [(2000,)]


# -- COPY bulk path, rollups vs raw, time zones --------------------------------------------------


def test_bulk_rollups_and_raw_scans_equal_the_reference(store: PostgresStore) -> None:
    records = random_records(4000, seed=4)
    with store.bulk() as write:
        written = [write(records[i : i + 700]) for i in range(0, len(records), 700)]
    assert sum(written) == len(records)
    reference = MemoryStore()
    reference.append(records)
    since = datetime(2025, 2, 3, 7, 13, 5, 17, tzinfo=UTC)  # mid-hour edges: rollup + raw parts
    until = datetime(2025, 5, 20, 18, 59, 59, 999_999, tzinfo=UTC)
    shapes: list[tuple[tuple[str, ...], dict[str, str]]] = [
        (("model", "day"), {}),
        (("week", "provider"), {"feature": "search"}),
        (("month", "tag:user", "service_tier"), {}),
        (("hour",), {"status": "error"}),
        (("request_model", "operation"), {"model": "claude-x"}),
        ((), {}),
    ]
    for zone in ZONES:
        for group_by, where in shapes:
            for window in ({}, {"since": since, "until": until}, {"since": since}):
                q = SpendQuery(group_by, where=where, timezone=zone, **window)  # type: ignore[arg-type]
                expected = by_keys(reference.query(q), group_by)
                assert by_keys(store.query(q), group_by) == expected, (zone, group_by, where, window)
                raw = SpendQuery(group_by, where=where, timezone=zone, use_rollups=False, **window)  # type: ignore[arg-type]
                assert by_keys(store.query(raw), group_by) == expected, (zone, group_by, where, window)


def test_scan_matches_the_reference(store: PostgresStore) -> None:
    records = random_records(300, seed=5)
    store.append(records)
    reference = MemoryStore()
    reference.append(records)
    q = SpendQuery(("model", "day", "feature"), timezone="America/New_York", where={"provider": "openai"})
    assert sorted(scan_calls(store, q, SCAN_FIELDS), key=repr) == sorted(
        scan_calls(reference, q, SCAN_FIELDS), key=repr
    )


def test_awkward_text_round_trips_through_copy(store: PostgresStore) -> None:
    odd = "tab\there\nnewline \\backslash ' quote \" \\N ü 🚀"
    record = rec(
        tags={"feature": odd, "big": "x" * 5000},
        error_type=odd,
        content={"prompt": odd},
        route={"policy": odd},
        budgets=[{"name": odd}],
        trace_id=odd,
    )
    store.append([record])
    assert list(store.iter_records()) == [record]
    assert by_keys(store.query(SpendQuery(("feature",))), ("feature",)).keys() == {(odd,)}


def test_iter_records_pages_through_many_records(store: PostgresStore) -> None:
    records = [rec(at=T0 + timedelta(seconds=i // 3)) for i in range(2500)]  # ties on time: ordered by id
    store.append(records)
    expected = sorted(records, key=lambda r: (r.started_at, r.id))
    assert [r.id for r in store.iter_records()] == [r.id for r in expected]
    assert [r.id for r in store.iter_records(newest_first=True, limit=1500)] == [
        r.id for r in expected[::-1][:1500]
    ]


# -- connections: fork, existence, errors ------------------------------------------------------


def _use_in_forked_child(store: Store, results: Any) -> None:
    try:
        store.append([rec(at=T0 + timedelta(days=40))])
        results.put(sum(row.calls for row in store.query(SpendQuery())))
        store.close()
        gc.collect()  # were the parent's pool collectable here, this would close its sockets
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def _backends(url: str) -> set[int]:
    """Server processes of the store's pooled connections (application_name costlens) to this database."""
    rows = sql(
        url,
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'costlens'",
    )
    return {pid for (pid,) in rows}


def test_a_forked_child_builds_its_own_pool(store: PostgresStore, postgres_url: str) -> None:
    store.append([rec()])
    parents = _backends(postgres_url)
    assert parents
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_use_in_forked_child, args=(store, results))
    child.start()
    seen = results.get(timeout=120)
    child.join()
    assert seen == 2
    assert child.exitcode == 0
    # The parent's connections outlived the child: it neither used nor closed them.
    assert parents <= _backends(postgres_url)
    assert sum(row.calls for row in store.query(SpendQuery())) == 2


def test_check_exists_on_an_empty_database_creates_nothing(postgres_url: str) -> None:
    with pytest.raises(StoreNotFound):
        open_store(postgres_url, create=False)
    tables = sql(postgres_url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    assert tables == []
    missing = postgres_url.rpartition("/")[0] + "/no_such_database_here"
    with pytest.raises(StoreNotFound):
        open_store(missing, create=False)


def test_check_exists_accepts_a_migrated_database(store: PostgresStore, postgres_url: str) -> None:
    store.migrate()
    reader = open_store(postgres_url, create=False)
    assert reader.query(SpendQuery()) == []
    reader.close()


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_down_server_gives_a_clear_error_without_the_password() -> None:
    port = _unused_port()
    url = f"postgresql://costlens:hunter2secret@127.0.0.1:{port}/costlens"
    store = open_store(url)  # opening does no I/O
    with pytest.raises(StoreUnavailable) as caught:
        store.append([rec()])
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "start the server" in message
    assert "hunter2secret" not in message
    with pytest.raises(StoreUnavailable):
        store.query(SpendQuery())
    store.close()


def test_repr_masks_the_password() -> None:
    store = open_store("postgresql://me:s3cr3t@db.example.com:5432/costlens?sslmode=disable")
    assert "s3cr3t" not in repr(store)
    assert repr(store) == "PostgresStore('postgresql://me:***@db.example.com:5432/costlens?sslmode=disable')"
    store.close()
    other = open_store("postgres://me@db/costlens?password=s3cr3t")
    assert "s3cr3t" not in repr(other)


@pytest.mark.parametrize(
    "url", ["postgresql://db.example.com", "postgresql://db:99999/x", "postgresql://me:pw@db:port/x"]
)
def test_a_bad_url_is_a_config_error_with_an_example(url: str) -> None:
    with pytest.raises(ConfigError, match=r"bad PostgreSQL store URL.*e\.g\. postgresql://") as caught:
        open_store(url)
    assert ":pw@" not in str(caught.value)


def test_closed_store_refuses_work(store: PostgresStore) -> None:
    store.append([rec()])
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.append([rec()])
