"""Property: every backend's `query` equals a brute-force recomputation, and groups add up exactly.

Rollups and raw scans are both checked, and time buckets in several zones against `MemoryStore`.
The server backend (PostgreSQL) runs the same properties with fewer examples."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costlens.store import SpendQuery, SpendRow, Store, open_store
from costlens.store.memory import MemoryStore
from costlens.usage import CallRecord

try:  # one list of backends for every contract test, however pytest imports the tests folder
    from tests.test_store import BACKENDS
except ModuleNotFoundError:
    from test_store import BACKENDS  # type: ignore[no-redef]

KEYS = ["model", "request_model", "provider", "operation", "status", "day", "hour", "feature", "tag:user"]
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
#: Bucket edges, where floor-vs-truncate and rounding bugs live, mixed into random times.
EDGES = [
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2025, 3, 1, 13, 59, 59, 999_999, tzinfo=UTC),
    datetime(2025, 3, 1, 14, tzinfo=UTC),
]
TIMES = st.sampled_from(EDGES) | st.datetimes(
    datetime(1969, 12, 31), datetime(2031, 1, 1), timezones=st.sampled_from(ZONES)
)


@st.composite
def records(draw: st.DrawFn) -> CallRecord:
    inp = draw(st.integers(0, 10**7))
    out = draw(st.integers(0, 10**7))
    cache_read = draw(st.integers(0, inp))
    tags = {
        k: v
        for k, v in {
            "feature": draw(st.none() | st.sampled_from(["search", "chat"])),
            "user": draw(st.none() | st.sampled_from(["u1", "u2", "ü3"])),
        }.items()
        if v is not None
    }
    return CallRecord(
        provider=draw(st.sampled_from(["openai", "anthropic"])),
        operation=draw(st.sampled_from(["chat", "responses"])),
        request_model=draw(st.sampled_from(["gpt-4o", "claude"])),
        response_model=draw(st.none() | st.sampled_from(["", "gpt-4o-2024", "claude-x"])),
        started_at=draw(TIMES),
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=cache_read,
        cache_write_tokens=draw(st.integers(0, inp - cache_read)),
        reasoning_tokens=draw(st.integers(0, out)),
        cost_nanousd=draw(st.none() | st.integers(0, 10**13)),
        status=draw(st.sampled_from(["ok", "error", "blocked"])),
        estimated=draw(st.booleans()),
        tags=tags,
    )


def key_of(record: CallRecord, key: str) -> str | None:
    """Brute-force reference, written independently of the backends' helpers."""
    utc = record.started_at.astimezone(UTC)
    if key == "model":
        return record.response_model if record.response_model else record.request_model
    if key == "day":
        return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
    if key == "hour":
        return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:00Z"
    if key in ("request_model", "provider", "operation", "status"):
        value: str = getattr(record, key)
        return value
    return record.tags.get(key.removeprefix("tag:"))


def brute_force(batch: list[CallRecord], group_by: tuple[str, ...]) -> dict[tuple[str | None, ...], SpendRow]:
    out: dict[tuple[str | None, ...], dict[str, int]] = {}
    for r in batch:
        acc = out.setdefault(tuple(key_of(r, k) for k in group_by), {})
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        ):
            acc[name] = acc.get(name, 0) + getattr(r, name)
        acc["calls"] = acc.get("calls", 0) + 1
        acc["cost_nanousd"] = acc.get("cost_nanousd", 0) + (r.cost_nanousd or 0)
        acc["unpriced_calls"] = acc.get("unpriced_calls", 0) + (r.cost_nanousd is None)
        acc["error_calls"] = acc.get("error_calls", 0) + (r.status == "error")
        acc["estimated_calls"] = acc.get("estimated_calls", 0) + r.estimated
    return {k: SpendRow(dict(zip(group_by, k, strict=True)), **v) for k, v in out.items()}


#: Backends that need no server: each example gets fresh ones. Server backends get their own
#: tests below (one database per test, emptied before every example, fewer examples).
LOCAL = {name: make for name, make in BACKENDS.items() if name in ("memory", "sqlite")}


@contextmanager
def each_backend() -> Iterator[list[Store]]:
    with tempfile.TemporaryDirectory() as tmp:
        stores = [open_store(make(None, Path(tmp))) for make in LOCAL.values()]  # type: ignore[arg-type]
        try:
            yield stores
        finally:
            for store in stores:
                store.close()


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[Store]:
    store = open_store(postgres_url)
    store.migrate()
    yield store
    store.close()


def emptied(store: Store, url: str) -> list[Store]:
    """The server store with no calls (its partitions and tag sets stay: they are only lookups)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE calls, call_ids, rollup_hourly")
    return [store]


SERVER = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


QUERY_ARGS = {
    "batch": st.lists(records(), max_size=40),
    "group_by": st.lists(st.sampled_from(KEYS), max_size=3, unique=True).map(tuple),
    "where_key": st.none() | st.sampled_from(["provider", "feature", "model"]),
}


def check_query(
    stores: list[Store], batch: list[CallRecord], group_by: tuple[str, ...], where_key: str | None
) -> None:
    where = {} if where_key is None or not batch else {where_key: key_of(batch[0], where_key) or "none"}
    expected_batch = [r for r in batch if all(key_of(r, k) == v for k, v in where.items())]
    expected = brute_force(expected_batch, group_by)
    grand_cost = sum(r.cost_nanousd or 0 for r in expected_batch)
    for store in stores:
        store.append(batch)
        for use_rollups in (True, False):
            rows = store.query(SpendQuery(group_by, where=where, use_rollups=use_rollups))
            got = {tuple(row.keys[k] for k in group_by): row for row in rows}
            assert got == expected, store
            assert all(isinstance(row.cost_nanousd, int) for row in rows)
            assert sum(row.cost_nanousd for row in rows) == grand_cost
            assert sum(row.calls for row in rows) == len(expected_batch)
        totals = store.query(SpendQuery(where=where))
        assert [t.cost_nanousd for t in totals] == ([grand_cost] if expected_batch else [])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**QUERY_ARGS)
def test_query_matches_brute_force_and_groups_sum_exactly(
    batch: list[CallRecord], group_by: tuple[str, ...], where_key: str | None
) -> None:
    with each_backend() as stores:
        check_query(stores, batch, group_by, where_key)


@SERVER
@given(**QUERY_ARGS)
def test_postgres_query_matches_brute_force(
    postgres_store: Store,
    postgres_url: str,
    batch: list[CallRecord],
    group_by: tuple[str, ...],
    where_key: str | None,
) -> None:
    check_query(emptied(postgres_store, postgres_url), batch, group_by, where_key)


SPLIT_ARGS = {
    "batch": st.lists(records(), max_size=30),
    "cut": st.datetimes(datetime(1969, 12, 31), datetime(2031, 1, 1)),
}


def check_split(stores: list[Store], batch: list[CallRecord], cut: datetime) -> None:
    cut = cut.replace(tzinfo=UTC)
    for store in stores:
        store.append(batch)
        before = sum(r.calls for r in store.query(SpendQuery(until=cut)))
        after = sum(r.calls for r in store.query(SpendQuery(since=cut)))
        assert before == sum(1 for r in batch if r.started_at < cut)
        assert before + after == len(batch)
        assert [r.id for r in store.iter_records(since=cut)] == [
            r.id for r in sorted(batch, key=lambda r: (r.started_at, r.id)) if r.started_at >= cut
        ]


@settings(max_examples=50, deadline=None)
@given(**SPLIT_ARGS)
def test_since_until_partition_the_records(batch: list[CallRecord], cut: datetime) -> None:
    with each_backend() as stores:
        check_split(stores, batch, cut)


@SERVER
@given(**SPLIT_ARGS)
def test_postgres_since_until_partition_the_records(
    postgres_store: Store, postgres_url: str, batch: list[CallRecord], cut: datetime
) -> None:
    check_split(emptied(postgres_store, postgres_url), batch, cut)


ZONE_NAMES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
ZONE_ARGS = {
    "batch": st.lists(records(), max_size=30),
    "group_by": st.lists(
        st.sampled_from(["day", "hour", "week", "month", "model"]), min_size=1, max_size=2, unique=True
    ).map(tuple),
    "zone": st.sampled_from(ZONE_NAMES),
    "cut": st.datetimes(datetime(1969, 12, 31), datetime(2031, 1, 1)),
}


def check_zones(
    stores: list[Store], batch: list[CallRecord], group_by: tuple[str, ...], zone: str, cut: datetime
) -> None:
    """Time buckets in any zone, from rollups or raw, with a window edge mid-hour, equal the reference."""
    reference = MemoryStore()
    reference.append(batch)
    cut = cut.replace(tzinfo=UTC)
    for window in ({}, {"since": cut}, {"until": cut}):
        q = SpendQuery(group_by, timezone=zone, **window)  # type: ignore[arg-type]
        expected = {tuple(row.keys.values()): row for row in reference.query(q)}
        for store in stores:
            store.append(batch)
            for use_rollups in (True, False):
                got = store.query(replace(q, use_rollups=use_rollups))
                assert {tuple(row.keys.values()): row for row in got} == expected, (store, window)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**ZONE_ARGS)
def test_time_buckets_in_any_zone_match_the_reference(
    batch: list[CallRecord], group_by: tuple[str, ...], zone: str, cut: datetime
) -> None:
    with each_backend() as stores:
        check_zones(stores, batch, group_by, zone, cut)


@SERVER
@given(**ZONE_ARGS)
def test_postgres_time_buckets_in_any_zone_match_the_reference(
    postgres_store: Store,
    postgres_url: str,
    batch: list[CallRecord],
    group_by: tuple[str, ...],
    zone: str,
    cut: datetime,
) -> None:
    check_zones(emptied(postgres_store, postgres_url), batch, group_by, zone, cut)
