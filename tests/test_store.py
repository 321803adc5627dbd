"""The Store contract, run against every backend (PostgreSQL/ClickHouse join `BACKENDS` later)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from costlens._errors import ConfigError
from costlens.store import SpendQuery, SpendRow, Store, known_schemes, open_store, register_store
from costlens.store.memory import MemoryStore
from costlens.usage import CallRecord

T0 = datetime(2025, 3, 1, 10, 30, tzinfo=UTC)

#: name -> URL builder (given the test's request and a temp folder). A new backend adds one line
#: here; a server backend's fixture (tests/servers.py) skips, saying why, when its server is absent.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], str]] = {
    "memory": lambda request, tmp: "memory://",
    "sqlite": lambda request, tmp: f"sqlite://{tmp / 'calls.db'}",
    "postgres": lambda request, tmp: request.getfixturevalue("postgres_url"),
    "clickhouse": lambda request, tmp: request.getfixturevalue("clickhouse_url"),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend = open_store(BACKENDS[request.param](request, tmp_path))
    yield backend
    backend.close()


def rec(
    model: str = "gpt-4o", *, at: datetime = T0, provider: str = "openai", cost: int | None = 1_000, **kw: Any
) -> CallRecord:
    kw.setdefault("operation", "chat")
    kw.setdefault("input_tokens", 100)
    kw.setdefault("output_tokens", 10)
    return CallRecord(
        provider=provider,
        request_model=model,
        started_at=at,
        cost_nanousd=cost,
        price_known=cost is not None,
        **kw,
    )


def by(store: Store, *keys: str, **kw: Any) -> dict[tuple[str | None, ...], SpendRow]:
    rows = store.query(SpendQuery(tuple(keys), **kw))
    return {tuple(row.keys[k] for k in keys): row for row in rows}


def test_every_backend_is_a_store(store: Store) -> None:
    assert isinstance(store, Store)


def test_empty_store_has_no_rows(store: Store) -> None:
    assert store.query(SpendQuery()) == []
    assert store.query(SpendQuery(("model",))) == []
    assert list(store.iter_records()) == []
    assert store.unpriced_models() == []


def test_group_by_model_falls_back_to_request_model(store: Store) -> None:
    store.append(
        [
            rec("gpt-4o", response_model="gpt-4o-2024-08-06", cost=5),
            rec("gpt-4o", cost=7),
            rec("gpt-4o", response_model="", cost=11),
            rec("claude", provider="anthropic", cost=13),
        ]
    )
    rows = by(store, "model")
    assert {k: r.cost_nanousd for k, r in rows.items()} == {
        ("gpt-4o-2024-08-06",): 5,
        ("gpt-4o",): 18,
        ("claude",): 13,
    }
    assert {k: r.calls for k, r in by(store, "request_model").items()} == {("gpt-4o",): 3, ("claude",): 1}
    assert {k: r.calls for k, r in by(store, "provider").items()} == {("openai",): 3, ("anthropic",): 1}


def test_sums_every_token_kind_and_flag(store: Store) -> None:
    store.append(
        [
            rec(
                input_tokens=100,
                output_tokens=50,
                cache_read_tokens=30,
                cache_write_tokens=20,
                reasoning_tokens=5,
            ),
            rec(input_tokens=1, output_tokens=2, status="error", estimated=True, cost=None),
        ]
    )
    [row] = store.query(SpendQuery())
    assert row == SpendRow(
        keys={},
        calls=2,
        input_tokens=101,
        output_tokens=52,
        cache_read_tokens=30,
        cache_write_tokens=20,
        reasoning_tokens=5,
        cost_nanousd=1_000,
        unpriced_calls=1,
        error_calls=1,
        estimated_calls=1,
    )


def test_group_by_day_and_hour_in_utc(store: Store) -> None:
    plus2 = timezone(timedelta(hours=2))
    store.append(
        [
            rec(at=datetime(2025, 3, 1, 23, 59, 59, 999_999, tzinfo=UTC)),
            rec(at=datetime(2025, 3, 2, 1, 0, tzinfo=plus2)),  # 2025-03-01T23:00Z
            rec(at=datetime(2025, 3, 2, 0, 0, tzinfo=UTC)),
        ]
    )
    assert {k: r.calls for k, r in by(store, "day").items()} == {("2025-03-01",): 2, ("2025-03-02",): 1}
    assert {k: r.calls for k, r in by(store, "hour").items()} == {
        ("2025-03-01T23:00Z",): 2,
        ("2025-03-02T00:00Z",): 1,
    }


def test_group_by_tag_bare_or_prefixed_and_missing(store: Store) -> None:
    store.append(
        [
            rec(tags={"feature": "search", "user": "u1"}, cost=1),
            rec(tags={"feature": "search"}, cost=2),
            rec(tags={"feature": "chat", "user": "u1"}, cost=4),
            rec(cost=8),
        ]
    )
    assert {k: r.cost_nanousd for k, r in by(store, "feature").items()} == {
        ("search",): 3,
        ("chat",): 4,
        (None,): 8,
    }
    assert {k: r.cost_nanousd for k, r in by(store, "tag:feature", "user").items()} == {
        ("search", "u1"): 1,
        ("search", None): 2,
        ("chat", "u1"): 4,
        (None, None): 8,
    }


def test_tag_named_like_a_builtin_key_needs_the_prefix(store: Store) -> None:
    store.append([rec("gpt-4o", tags={"model": "mine"})])
    assert list(by(store, "tag:model")) == [("mine",)]
    assert list(by(store, "model")) == [("gpt-4o",)]


def test_where_filters_on_columns_tags_and_buckets(store: Store) -> None:
    store.append(
        [
            rec("a", tags={"feature": "search"}, cost=1),
            rec("b", tags={"feature": "search"}, cost=2),
            rec("a", tags={"feature": "chat"}, cost=4, at=T0 + timedelta(days=1)),
            rec("a", cost=8, status="error"),
        ]
    )
    assert by(store, where={"feature": "search"})[()].cost_nanousd == 3
    assert by(store, where={"model": "a", "feature": "search"})[()].cost_nanousd == 1
    assert by(store, "model", where={"feature": "search"}).keys() == {("a",), ("b",)}
    assert by(store, where={"day": "2025-03-02"})[()].cost_nanousd == 4
    assert by(store, where={"status": "error"})[()].error_calls == 1
    assert by(store, where={"feature": "nope"}) == {}


def test_since_is_inclusive_and_until_exclusive(store: Store) -> None:
    times = [T0 + timedelta(microseconds=i) for i in range(4)]
    store.append([rec(at=t, cost=10**i) for i, t in enumerate(times)])
    assert by(store, since=times[1], until=times[3])[()].cost_nanousd == 10 + 100
    assert by(store, since=times[3])[()].cost_nanousd == 1000
    assert by(store, until=times[0]) == {}
    naive = times[2].replace(tzinfo=None)  # naive datetimes are UTC
    assert by(store, since=naive)[()].calls == 2


def test_unpriced_calls_are_counted_not_costed(store: Store) -> None:
    store.append([rec("known", cost=500), rec("mystery", cost=None), rec("mystery", cost=None, provider="x")])
    rows = by(store, "model")
    assert rows[("mystery",)].cost_nanousd == 0
    assert rows[("mystery",)].unpriced_calls == 2
    assert rows[("known",)].unpriced_calls == 0
    [total] = store.query(SpendQuery())
    assert (total.cost_nanousd, total.unpriced_calls) == (500, 2)


def test_unpriced_models_lists_models_with_unknown_prices(store: Store) -> None:
    store.append(
        [
            rec("mystery", cost=None, at=T0),
            rec("mystery", cost=None, at=T0 + timedelta(hours=2)),
            rec("m2", response_model="m2-2025", cost=None, provider="acme"),
            rec("known", cost=1),
        ]
    )
    found = [(m.provider, m.model, m.calls, m.first_seen, m.last_seen) for m in store.unpriced_models()]
    assert found == [
        ("openai", "mystery", 2, T0, T0 + timedelta(hours=2)),
        ("acme", "m2-2025", 1, T0, T0),
    ]


def test_append_is_idempotent_by_id(store: Store) -> None:
    first = rec(cost=1, tags={"feature": "a"})
    store.append([first, first])
    store.append([first])
    clone = rec(cost=999, tags={"feature": "b", "user": "u"})
    clone.id = first.id
    store.append([clone, rec(cost=2)])
    [total] = store.query(SpendQuery())
    assert (total.calls, total.cost_nanousd) == (2, 3)
    assert by(store, "feature").keys() == {("a",), (None,)}
    assert by(store, "user").keys() == {(None,)}
    store.append([])


def test_records_round_trip_every_field(store: Store) -> None:
    full = CallRecord(
        provider="openai",
        operation="responses",
        request_model="gpt-5",
        started_at=datetime(2025, 3, 1, 10, 30, 1, 123_456, tzinfo=UTC),
        ended_at=datetime(2025, 3, 1, 10, 30, 2, 654_321, tzinfo=UTC),
        latency_ms=1531.2,
        ttft_ms=120.5,
        response_model="gpt-5-2025",
        input_tokens=1000,
        output_tokens=200,
        cache_read_tokens=300,
        cache_write_tokens=100,
        reasoning_tokens=50,
        cost_nanousd=123_456_789,
        price_known=True,
        price_version="genai-prices-0.2.3",
        estimated=True,
        status="error",
        error_type="RateLimitError",
        http_status=429,
        stream=True,
        service_tier="flex",
        tags={"feature": "search", "user": "ü-1"},
        route={"policy": "cheapest", "candidates": ["a", "b"]},
        budgets=[{"name": "team", "reserved_nanousd": 10}],
        trace_id="t" * 32,
        span_id="s" * 16,
        content={"prompt": [{"role": "user", "content": "hi"}]},
    )
    store.append([full])
    assert list(store.iter_records()) == [full]


def test_iter_records_order_limit_and_filters(store: Store) -> None:
    records = [rec(at=T0 + timedelta(seconds=s), tags={"n": str(s)}) for s in (3, 1, 2, 0)]
    same_time = [rec(at=T0 + timedelta(seconds=5)) for _ in range(3)]
    store.append(records + same_time)
    oldest_first = sorted(records, key=lambda r: r.started_at) + sorted(same_time, key=lambda r: r.id)
    assert [r.id for r in store.iter_records()] == [r.id for r in oldest_first]
    assert [r.id for r in store.iter_records(newest_first=True)] == [r.id for r in oldest_first[::-1]]
    assert [r.id for r in store.iter_records(limit=2)] == [r.id for r in oldest_first[:2]]
    assert [r.id for r in store.iter_records(limit=2, newest_first=True)] == [
        r.id for r in oldest_first[:-3:-1]
    ]
    window = store.iter_records(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3))
    assert [r.tags["n"] for r in window] == ["1", "2"]
    assert [r.tags["n"] for r in store.iter_records(where={"n": "2"})] == ["2"]


def test_bad_keys_are_rejected(store: Store) -> None:
    with pytest.raises(ValueError, match="bad group/filter key"):
        store.query(SpendQuery(("not a key",)))
    with pytest.raises(ValueError, match="bad group/filter key"):
        store.query(SpendQuery(where={"tag:": "x"}))
    with pytest.raises(TypeError):
        SpendQuery("model")  # type: ignore[arg-type]


def test_migrate_is_idempotent(store: Store) -> None:
    store.migrate()
    store.append([rec()])
    store.migrate()
    assert store.query(SpendQuery())[0].calls == 1


# -- the URL registry --------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Asia/Kolkata"])
def test_rollups_and_raw_scans_agree_with_the_reference(store: Store, zone: str) -> None:
    """Whole hours (a rollup, where the backend has one) plus partial edge hours (raw calls) add up
    to exactly what a raw scan and the in-memory reference give, for ranges cut inside hours."""
    records = [
        rec(model, at=T0 + timedelta(minutes=37 * i), cost=1_000 + i, tags={"feature": "ab"[i % 2]})
        for i, model in enumerate(["gpt-4o", "claude", "gpt-4o-mini"] * 40)
    ]
    store.append(records)
    store.append(records[:30])  # a sequential replay counts once
    reference = MemoryStore()
    reference.append(records)
    cuts = [None, T0 + timedelta(minutes=95), T0 + timedelta(hours=30), T0 + timedelta(hours=31, minutes=1)]
    for since, until in [
        (None, None),
        (cuts[1], cuts[2]),
        (cuts[1], cuts[3]),
        (cuts[2], None),
        (None, cuts[3]),
    ]:
        for keys in (("model", "day"), ("hour",), ("feature",), ()):
            expected = sorted(reference.query(SpendQuery(keys, since, until, timezone=zone)), key=repr)
            for use_rollups in (True, False):
                q = SpendQuery(keys, since, until, timezone=zone, use_rollups=use_rollups)
                assert sorted(store.query(q), key=repr) == expected, q


def test_per_call_json_parts_round_trip_in_a_mixed_batch(store: Store) -> None:
    """Budget entries (each naming its own reservation), routes and content differ per call; a batch
    mixing them with plain records keeps each record's own, and the rollup still adds up."""
    records = []
    for i in range(60):
        kw: dict[str, Any] = {}
        if i % 3 == 0:
            kw["budgets"] = [{"budget": "all", "reservation": f"r{i}", "reserved_nanousd": i}]
        if i % 4 == 1:
            kw["route"] = {"policy": "cheapest", "chosen": f"m{i}"}
        if i % 5 == 2:
            kw["content"] = {"prompt": [{"role": "user", "content": f"hi {i}"}]}
        records.append(rec(at=T0 + timedelta(seconds=i), cost=1_000 + i, **kw))
    store.append(records[:7])  # plain records first: a batch of core values only
    store.append(records[7:])
    assert sorted(store.iter_records(), key=lambda r: r.started_at) == records
    for use_rollups in (True, False):
        (row,) = store.query(SpendQuery(("model",), use_rollups=use_rollups))
        assert (row.calls, row.cost_nanousd) == (60, sum(1_000 + i for i in range(60)))


def test_sqlite_batches_one_dims_row_for_calls_that_differ_only_in_json_parts() -> None:
    """SQLite stages what repeats once per batch (dims): per-call JSON parts are not part of it, or
    every budgeted call would make a dims row and a rollup group of its own."""
    from costlens.store._sqlwrite import _split

    batch = [
        rec(budgets=[{"reservation": f"r{i}"}], route={"n": i}, content={"p": str(i)}) for i in range(50)
    ]
    _, _, _, dims, _ = _split(batch)
    assert len(dims) == 1


def test_sqlite_stage_binds_only_the_extras_some_call_of_the_batch_has() -> None:
    """An extra column that every call of a batch lacks is left out of the stage INSERT (NULL by
    default) instead of bound as None, which costs `sqlite3` a failed adapter lookup per value."""
    from costlens.store._sqlwrite import _split

    plain = [rec(ended_at=T0 + timedelta(seconds=1), latency_ms=12.5) for _ in range(3)]
    head, values, width, _, _ = _split(plain)
    assert head.endswith("reasoning_tokens, cost_nanousd, estimated, cache_write_1h_tokens, "
                         "input_audio_tokens, output_audio_tokens, citation_tokens, web_search_requests, "
                         "file_search_requests, ended_at_us, latency_ms)")  # fmt: skip
    assert None not in values and width == head.count(",") + 1 and len(values) == 3 * width
    traced = [*plain, rec(trace_id="t1", span_id="s1", ttft_ms=3.0)]
    head, values, width, _, _ = _split(traced)
    assert head.endswith("ended_at_us, latency_ms, ttft_ms, trace_id, span_id)")
    assert width == head.count(",") + 1 and len(values) == 4 * width
    rows = [values[i : i + width] for i in range(0, len(values), width)]
    assert [row[-3:] for row in rows] == [[None, None, None]] * 3 + [[3.0, "t1", "s1"]]
    head, values, width, _, _ = _split([rec()])  # no extras at all: core values only
    assert head.endswith("file_search_requests)") and len(values) == width == head.count(",") + 1


def test_sqlite_stages_a_batch_as_one_list_of_values_with_no_object_per_call() -> None:
    """A batch's stage values are one flat list: a tuple per call would be hundreds of objects
    counted towards the garbage collector's next run, in the process the calls are made in."""
    from costlens.store._sqlwrite import _split

    batch = [
        rec(ended_at=T0 + timedelta(seconds=1), latency_ms=float(i), tags={"user": f"u{i % 3}"})
        for i in range(40)
    ]
    head, values, width, dims, tags = _split(batch)
    assert (
        head.endswith("ended_at_us, latency_ms)")
        and len(values) == 40 * width
        and not any(isinstance(value, tuple | list | dict) for value in values)
    )
    assert len(dims) == 3 and sorted(tags) == ['{"user":"u0"}', '{"user":"u1"}', '{"user":"u2"}']
    assert values[width - 1 :: width] == [float(i) for i in range(40)]  # each call's own latency, in order


def test_sqlite_round_trips_batches_whose_calls_have_different_extras(tmp_path: Path) -> None:
    """Each batch leaves out the extras none of its calls has; the records read back are exact."""
    store = open_store(f"sqlite:///{tmp_path}/x.db")
    end = T0 + timedelta(seconds=2)
    batches = [
        [rec(at=T0 + timedelta(seconds=i), ended_at=end, latency_ms=float(i)) for i in range(5)],
        [rec(at=T0 + timedelta(minutes=1, seconds=i), trace_id=f"t{i}" if i % 2 else None) for i in range(5)],
        [rec(at=T0 + timedelta(minutes=2, seconds=i), ttft_ms=1.5 * i, route={"p": i}) for i in range(5)],
        [rec(at=T0 + timedelta(minutes=3), cost=None)],
    ]
    for batch in batches:
        store.append(batch)
    expected = [r for batch in batches for r in batch]
    assert sorted(store.iter_records(), key=lambda r: r.started_at) == expected
    store.close()


def test_unknown_scheme_lists_the_known_ones() -> None:
    known = r"clickhouse://, memory://, postgres://, postgresql://, sqlite://"
    with pytest.raises(ConfigError, match=rf"unknown store URL 'mysql://x'.*{known}"):
        open_store("mysql://x")
    with pytest.raises(ConfigError, match="unknown store URL"):
        open_store("/no/scheme.db")


def test_register_store_adds_a_scheme() -> None:
    seen: list[str] = []

    def factory(url: str) -> Store:
        seen.append(url)
        return MemoryStore()

    register_store("testonly", factory)
    try:
        assert isinstance(open_store("TestOnly://anything"), MemoryStore)
        assert seen == ["TestOnly://anything"]
        assert "testonly" in known_schemes()
    finally:
        from costlens.store import _FACTORIES

        _FACTORIES.pop("testonly")


def test_named_memory_stores_are_shared_in_process() -> None:
    a, b = open_store("memory://shared-test"), open_store("memory://shared-test")
    assert a is b
    assert open_store("memory://") is not open_store("memory://")


def test_sqlite_url_needs_a_file() -> None:
    with pytest.raises(ConfigError, match="name a file"):
        open_store("sqlite://")
    with pytest.raises(ConfigError, match="memory://"):
        open_store("sqlite:///:memory:")
