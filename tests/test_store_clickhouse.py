"""ClickHouseStore against a real server (tests/servers.py): migrations, dedupe under replays and
races, exact equality with the MemoryStore reference across time zones, money, errors."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from costlens._errors import ConfigError
from costlens.store import SpendQuery, SpendRow, StoreNotFound, open_store
from costlens.store._base import SCAN_FIELDS, group_value, scan_calls
from costlens.store.memory import MemoryStore
from costlens.usage import CallRecord
from tests.servers import server_down

clickhouse = pytest.importorskip("costlens.store.clickhouse")
ClickHouseStore = clickhouse.ClickHouseStore
ClickHouseUnavailable = clickhouse.ClickHouseUnavailable

ZONES = ("UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe")
T0 = datetime(2024, 10, 20, tzinfo=UTC)  # the random records span the autumn and spring DST changes


@pytest.fixture
def store(clickhouse_url: str) -> Iterator[Any]:
    opened = clickhouse.from_url(clickhouse_url)
    yield opened
    opened.close()


def raw(url: str, sql: str) -> list[tuple[Any, ...]]:
    """A query on a client of the test's own, bypassing the store."""
    from clickhouse_driver import Client

    parts = urlsplit(url)
    client = Client(host=parts.hostname, port=parts.port)
    try:
        rows: list[tuple[Any, ...]] = client.execute(sql.format(db=parts.path.lstrip("/")))
        return rows
    finally:
        client.disconnect()


def random_records(n: int, seed: int) -> list[CallRecord]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        output = rng.randint(0, 500)
        record = CallRecord(
            provider=rng.choice(["openai", "anthropic", "acme"]),
            operation=rng.choice(["chat", "embeddings"]),
            request_model=rng.choice(["gpt-4o", "claude", "m3"]),
            response_model=rng.choice([None, "", "gpt-4o-2024", "claude-x"]),
            started_at=T0 + timedelta(microseconds=rng.randint(0, 200 * 86_400_000_000)),
            input_tokens=rng.randint(0, 5000),
            output_tokens=output,
            reasoning_tokens=rng.randint(0, output),
            cost_nanousd=rng.choice([None, 0, rng.randint(1, 10**12)]),
            status=rng.choice(["ok", "ok", "error"]),
            estimated=rng.random() < 0.2,
            service_tier=rng.choice([None, "", "flex"]),
            tags={k: rng.choice(["a", "b"]) for k in ("feature", "user") if rng.random() < 0.6},
            web_search_requests=rng.randint(0, 2),
        )
        out.append(record)
    return out


def rows(found: list[SpendRow]) -> list[SpendRow]:
    return sorted(found, key=lambda r: repr(sorted(r.keys.items(), key=str)))


# -- schema --------------------------------------------------------------------------------------


def test_opening_does_no_io_and_check_exists_creates_nothing(clickhouse_url: str) -> None:
    fresh = clickhouse.from_url(clickhouse_url)
    with pytest.raises(StoreNotFound, match="ClickHouse database"):
        fresh.check_exists()
    with pytest.raises(StoreNotFound):
        open_store(clickhouse_url, create=False)
    assert raw(clickhouse_url, "SELECT name FROM system.tables WHERE database = '{db}'") == []
    missing = clickhouse_url.rsplit("/", 1)[0] + "/no_such_db_here"
    with pytest.raises(StoreNotFound):
        open_store(missing, create=False)
    assert raw(clickhouse_url, "SELECT count() FROM system.databases WHERE name = 'no_such_db_here'") == [
        (0,)
    ]
    fresh.append([CallRecord("openai", "chat", "gpt-4o")])
    fresh.check_exists()
    open_store(clickhouse_url, create=False).close()
    fresh.close()


#: name -> sha256 of the migration's statements (whitespace-normalised): released SQL never changes.
PINNED = [
    ("0001_calls", "4683e81093a64282eae0c8c8ea1c54f4f976be75f38e1407cc42b67d17c25d23"),
    ("0002_rollup_hourly", "ed936b82bf87c227d5d5a364180f5fec056151b24a4ed2eb4e58b1b17ba3c538"),
]


def test_migration_sql_is_pinned() -> None:
    from costlens.store._ch_schema import MIGRATIONS
    from costlens.store._migrations import migration_hash

    assert [(name, migration_hash(";".join(sql))) for name, sql in MIGRATIONS] == PINNED


def test_migrations_are_pinned_and_applied_once(clickhouse_url: str) -> None:
    first = clickhouse.from_url(clickhouse_url)
    assert first.pending_migrations() == ["0001_calls", "0002_rollup_hourly"]
    first.migrate()
    first.migrate()
    second = clickhouse.from_url(clickhouse_url)
    second.append([CallRecord("openai", "chat", "gpt-4o")])  # migrates on first use: nothing left
    assert second.pending_migrations() == []
    assert raw(
        clickhouse_url, "SELECT name, count() FROM {db}.schema_migrations GROUP BY name ORDER BY name"
    ) == [("0001_calls", 1), ("0002_rollup_hourly", 1)]
    tables = {
        name for (name,) in raw(clickhouse_url, "SELECT name FROM system.tables WHERE database = '{db}'")
    }
    assert tables == {
        "calls", "call_ids", "schema_migrations", "rollup_hourly", "call_ids_feed", "rollup_hourly_feed"
    }  # fmt: skip
    # One INSERT into `calls` wrote `call_ids` and the rollup through the views.
    assert raw(clickhouse_url, "SELECT count() FROM {db}.call_ids") == [(1,)]
    assert raw(clickhouse_url, "SELECT sum(sum_calls) FROM {db}.rollup_hourly") == [(1,)]
    raw(clickhouse_url, "INSERT INTO {db}.schema_migrations SELECT '9999_from_the_future', 0")
    third = clickhouse.from_url(clickhouse_url)
    with pytest.raises(ConfigError, match="9999_from_the_future"):
        third.query(SpendQuery())
    for s in (first, second, third):
        s.close()


# -- dedupe --------------------------------------------------------------------------------------


def assert_same(store: Any, reference: MemoryStore, *, rollups: bool = True) -> None:
    """Equal answers from the FINAL scan, and from the rollup too unless `rollups=False`."""
    for keys in ((), ("model",), ("feature", "day"), ("hour", "service_tier")):
        expected = rows(reference.query(SpendQuery(keys)))
        assert rows(store.query(SpendQuery(keys, use_rollups=False))) == expected
        if rollups:
            assert rows(store.query(SpendQuery(keys))) == expected
    assert [r.id for r in store.iter_records()] == [r.id for r in reference.iter_records()]
    assert store.unpriced_models() == reference.unpriced_models()


def test_a_replayed_batch_counts_once(store: Any) -> None:
    batch = random_records(500, seed=1)
    reference = MemoryStore()
    reference.append(batch)
    store.append(batch)
    store.append(batch)
    store.append(batch[::-1] + batch)
    assert_same(store, reference)


def test_racing_writers_count_once(store: Any, clickhouse_url: str) -> None:
    """Two threads append one batch at once; then the race the write-side check cannot see (both
    writers found the ids absent) is forced by inserting past the check. Reads still count once."""
    batch = random_records(400, seed=2)
    reference = MemoryStore()
    reference.append(batch)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            start.wait()
            store.append(batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Both writers may have passed the check at once: FINAL counts them once; the rollup once repaired.
    assert_same(store, reference, rollups=False)
    store.repair_rollups()
    assert_same(store, reference)
    store._insert(batch)  # what a writer that lost the race writes
    store._insert(batch[:10])
    (physical,) = raw(clickhouse_url, "SELECT count() FROM {db}.calls")[0]
    assert physical >= 2 * len(batch)
    # The FINAL scan stays exact; the rollup counted what the losers wrote, until it is repaired.
    assert_same(store, reference, rollups=False)
    assert store.query(SpendQuery())[0].calls > len(batch)
    assert store.repair_rollups() > 0
    assert store.repair_rollups() == 0
    assert_same(store, reference)
    # The first write wins: a later record reusing an id is not stored, even if inserted in a race.
    clone = random_records(1, seed=3)[0]
    clone.id, clone.started_at, clone.cost_nanousd = batch[0].id, batch[0].started_at, 123
    store.append([clone])
    store._insert([clone])
    assert_same(store, reference, rollups=False)
    assert store.repair_rollups(clone.started_at, clone.started_at + timedelta(seconds=1)) == 1  # its hour
    assert_same(store, reference)
    # Merges add correction rows up (and drop keys that reach zero) without changing an answer.
    raw(clickhouse_url, "OPTIMIZE TABLE {db}.rollup_hourly FINAL")
    assert_same(store, reference)


def test_a_store_from_before_the_rollup_is_back_filled_by_its_migration(clickhouse_url: str) -> None:
    """A database at `0001_calls` written the old way (`call_ids` by the client) gets the rollup
    filled from `calls FINAL` by `0002_rollup_hourly`; running the back-fill again adds nothing."""
    from costlens.store._ch_schema import CREATE_MIGRATIONS, MIGRATIONS

    old = ClickHouseStore(
        urlsplit(clickhouse_url).hostname, urlsplit(clickhouse_url).port,
        clickhouse_url.rsplit("/", 1)[1], auto_migrate=False,
    )  # fmt: skip
    old._execute(f"CREATE DATABASE IF NOT EXISTS {old._db}")
    old._execute(CREATE_MIGRATIONS.format(db=old._db))
    for statement in MIGRATIONS[0][1]:
        old._execute(statement.format(db=old._db))
    old._execute(f"INSERT INTO {old._db}.schema_migrations (name, applied_at_us) VALUES", [("0001_calls", 0)])
    assert old.pending_migrations() == ["0002_rollup_hourly"]
    batch = random_records(300, seed=11)
    old.append(batch)
    old._insert(batch[:50])  # a raced duplicate already in `calls`: FINAL counts it once
    assert raw(clickhouse_url, "SELECT count() FROM {db}.call_ids") == [(350,)]
    assert old.query(SpendQuery())[0].calls == 300  # no rollup yet: the FINAL scan
    reference = MemoryStore()
    reference.append(batch)
    upgraded = clickhouse.from_url(clickhouse_url)
    upgraded.migrate()
    assert raw(clickhouse_url, "SELECT sum(sum_calls) FROM {db}.rollup_hourly") == [(300,)]
    assert_same(upgraded, reference)
    assert upgraded.repair_rollups() == 0
    more = random_records(20, seed=12)
    upgraded.append(more + batch)  # new records reach the rollup through the view
    reference.append(more)
    assert_same(upgraded, reference)
    for s in (old, upgraded):
        s.close()


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_rollups_and_raw_agree_at_the_edges_of_hours(store: Any, zone: str) -> None:
    """Ranges starting and ending inside hours, on hour boundaries, and inside a single hour."""
    records = random_records(400, seed=13)
    for i, r in enumerate(records[:100]):  # some calls exactly on the hour
        r.started_at = r.started_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=i % 3)
    store.append(records)
    reference = MemoryStore()
    reference.append(records)
    hour = T0 + timedelta(days=3, hours=5)
    ranges = [
        (hour, hour + timedelta(days=20)),
        (hour + timedelta(minutes=17), hour + timedelta(days=20, minutes=43)),
        (hour + timedelta(minutes=5), hour + timedelta(minutes=55)),
        (hour + timedelta(minutes=5), None),
        (None, hour + timedelta(days=40, seconds=1)),
        (None, None),
    ]
    for since, until in ranges:
        for keys in (("day", "model"), ("hour",), ("tag:feature", "status"), ()):
            expected = rows(reference.query(SpendQuery(keys, since, until, timezone=zone)))
            for use_rollups in (True, False):
                q = SpendQuery(keys, since, until, timezone=zone, use_rollups=use_rollups)
                assert rows(store.query(q)) == expected, q


def test_each_thread_and_a_forked_child_get_their_own_connection(store: Any) -> None:
    store.append(random_records(5, seed=4))
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(store.query(SpendQuery())[0].calls)) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [5] * 8
    pid = os.fork()
    if pid == 0:  # the child: uses the inherited store object, which must reconnect
        code = 1
        try:
            store.append(random_records(3, seed=5))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.query(SpendQuery())[0].calls == 8  # and the parent's connection still works


# -- equality with the reference ------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, MemoryStore, list[CallRecord]]]:
    """3000 random records in one ClickHouse database (shared by the module's comparisons)."""
    from clickhouse_driver import Client

    from tests.servers import base_url

    admin = base_url("clickhouse")
    parts = urlsplit(admin)
    client = Client(host=parts.hostname, port=parts.port)
    name = f"t_ref_{os.getpid()}"
    client.execute(f"DROP DATABASE IF EXISTS {name}")
    store = clickhouse.from_url(admin.rsplit("/", 1)[0] + "/" + name)
    records = random_records(3000, seed=7)
    reference = MemoryStore()
    reference.append(records)
    with store.bulk() as write:
        for i in range(0, len(records), 1000):
            assert write(records[i : i + 1000]) == len(records[i : i + 1000])
    yield store, reference, records
    store.close()
    client.execute(f"DROP DATABASE IF EXISTS {name}")
    client.disconnect()


GROUPINGS = (
    (),
    ("hour",),
    ("day",),
    ("week", "model"),
    ("month", "feature"),
    ("service_tier", "request_model"),
    ("provider", "tag:user", "status", "operation"),
)


@pytest.mark.parametrize("zone", ZONES)
def test_query_and_scan_equal_the_reference(loaded: Any, zone: str) -> None:
    store, reference, records = loaded
    rng = random.Random(zone)
    for keys in GROUPINGS:
        for _ in range(3):
            lo, hi = sorted(rng.sample(records, 2), key=lambda r: r.started_at)
            sample = rng.choice(records)
            where = rng.choice([{}, {"feature": "a"}, {"day": group_value(sample, "day", zone)}])
            where |= rng.choice([{}, {"hour": group_value(sample, "hour", zone)}, {"model": "claude"}])
            for since, until in ((None, None), (lo.started_at, hi.started_at), (lo.started_at, None)):
                base = SpendQuery(keys, since=since, until=until, where=where, timezone=zone)
                expected = rows(reference.query(base))
                for use_rollups in (True, False):
                    q = SpendQuery(keys, since, until, where, zone, use_rollups)
                    assert rows(store.query(q)) == expected, (q, zone)
            scanned = sorted(scan_calls(store, base, SCAN_FIELDS), key=repr)
            assert scanned == sorted(scan_calls(reference, base, SCAN_FIELDS), key=repr)


def test_time_filters_with_labels_that_are_not_the_reference_match_nothing(loaded: Any) -> None:
    store, reference, _ = loaded
    for where in (
        {"day": "2024-11-3"},
        {"week": "2024-11-05"},  # a Tuesday: weeks are labelled by their Monday
        {"hour": "2024-11-03T01:00-04:00"},  # wrong offset for Berlin
        {"month": "2024-13"},
        {"hour": "garbage"},
    ):
        q = SpendQuery(("day",), where=where, timezone="Europe/Berlin")
        assert store.query(q) == reference.query(q) == []


def test_iter_records_equal_the_reference(loaded: Any) -> None:
    store, reference, records = loaded
    lo, hi = records[10].started_at, records[20].started_at
    for kw in (
        {},
        {"newest_first": True, "limit": 7},
        {"since": min(lo, hi), "until": max(lo, hi), "where": {"feature": "b", "model": "claude"}},
        {"where": {"day": "2024-11-03", "service_tier": "flex"}, "newest_first": True},
        {"limit": 0},
    ):
        assert list(store.iter_records(**kw)) == list(reference.iter_records(**kw)), kw
    assert store.unpriced_models() == reference.unpriced_models()


def test_breaking_off_a_stream_leaves_the_store_usable(loaded: Any) -> None:
    store, reference, _ = loaded
    stream = store.iter_records()
    next(stream)
    assert store.query(SpendQuery())[0].calls == len(list(reference.iter_records()))  # mid-stream
    stream.close()
    assert next(store.iter_records(newest_first=True)) == next(reference.iter_records(newest_first=True))


def test_times_before_1970_and_after_2106_round_trip_and_bucket(store: Any) -> None:
    """Outside ClickHouse's DateTime range, fine as Int64 microseconds (and many offset changes)."""
    records = [
        CallRecord("openai", "chat", "old", started_at=datetime(1965, 6, 1, 12, tzinfo=UTC), cost_nanousd=5),
        CallRecord("openai", "chat", "far", started_at=datetime(2200, 1, 1, 0, 30, tzinfo=UTC)),
        *random_records(50, seed=8),
    ]
    reference = MemoryStore()
    reference.append(records)
    store.append(records)
    assert list(store.iter_records()) == list(reference.iter_records())
    for zone in ("Europe/Berlin", "Asia/Kolkata"):
        for keys in (("hour",), ("day", "model"), ("week",), ("month",)):
            q = SpendQuery(keys, timezone=zone)
            assert rows(store.query(q)) == rows(reference.query(q))


# -- money ---------------------------------------------------------------------------------------


def test_huge_costs_sum_exactly(store: Any) -> None:
    big = 2**63 - 1
    records = [CallRecord("x", "chat", "m", cost_nanousd=big, price_known=True) for _ in range(5)]
    records += [CallRecord("x", "chat", "m", cost_nanousd=1), CallRecord("x", "chat", "m", cost_nanousd=None)]
    store.append(records)
    [row] = store.query(SpendQuery(("model",)))
    assert row.cost_nanousd == 5 * big + 1
    assert row.cost_usd == Decimal(5 * big + 1).scaleb(-9) == Decimal("46116860184.273879036")
    assert (row.calls, row.unpriced_calls) == (7, 1)
    assert [r.cost_nanousd for r in store.iter_records()].count(None) == 1
    with pytest.raises(ValueError, match="64-bit"):
        store.append([CallRecord("x", "chat", "m", cost_nanousd=2**63)])


# -- errors --------------------------------------------------------------------------------------


def test_a_down_server_fails_fast_saying_where_and_what_to_do(store: Any) -> None:
    store.append([CallRecord("openai", "chat", "gpt-4o")])
    with server_down("clickhouse"):
        cold = clickhouse.from_url(f"clickhouse://{store.host}:{store.port}/{store.database}")  # no I/O
        for s in (store, cold):
            started = time.monotonic()
            with pytest.raises(ClickHouseUnavailable, match=f"{store.host}:{store.port}.*start the server"):
                s.query(SpendQuery())
            assert time.monotonic() - started < 10
        with pytest.raises(ClickHouseUnavailable):
            list(store.iter_records())
        with pytest.raises(ConnectionError):
            store.append([CallRecord("openai", "chat", "gpt-4o")])
    assert store.query(SpendQuery())[0].calls == 1  # reconnects once the server is back
    cold.close()


def test_the_password_stays_out_of_repr_and_messages() -> None:
    s = clickhouse.from_url("clickhouse://bob:s3cr%40t@127.0.0.1:1/db")
    assert "s3cr" not in repr(s) and "s3cr" not in s.url
    assert repr(s) == "ClickHouseStore('clickhouse://bob:***@127.0.0.1:1/db')"
    with pytest.raises(ClickHouseUnavailable) as caught:
        s.query(SpendQuery())
    assert "s3cr" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)
    with pytest.raises(ConfigError) as bad:
        clickhouse.from_url("clickhouse://bob:s3cret@/db")
    assert "s3cret" not in str(bad.value)
    with pytest.raises(ConfigError, match="database name"):
        clickhouse.from_url("clickhouse://h:9000/bad-name")
    s.close()


def test_a_closed_store_refuses_work(store: Any) -> None:
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.query(SpendQuery())


def test_store_migrate_repairs_rollups_from_the_cli(clickhouse_url: str, tmp_path: Path) -> None:
    """`store migrate --repair-rollups`: ClickHouse rebuilds hours; SQLite has nothing to repair."""
    from typer.testing import CliRunner

    from costlens.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["store", "migrate", "--store", clickhouse_url, "--repair-rollups"])
    assert done.exit_code == 0, done.output
    assert "rollups: 0 hour group(s) corrected" in done.output
    sqlite = runner.invoke(
        app, ["store", "migrate", "--store", f"sqlite:///{tmp_path / 'x.db'}", "--repair-rollups"]
    )
    assert sqlite.exit_code == 1
    assert "nothing to repair" in sqlite.output
