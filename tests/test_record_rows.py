"""Records as rows (`costlens.usage.ROW_FIELDS`): the recorder hands a store that takes rows (SQLite)
every record as one, and makes a deferred call's straight from its facts (`Pipeline._late_rows`).
A row must hold exactly what its record holds: the same values bound, the same record stored, the
same rollup; and no record may be lost on the way (a builder that fails, a store that is down)."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costlens.pipeline import Pipeline
from costlens.pipeline._price import Pricer
from costlens.recorder import Recorder
from costlens.store import SpendQuery
from costlens.store._sqlwrite import _split, _split_rows
from costlens.store.sqlite import SQLiteStore
from costlens.usage import ROW_FIELDS, USAGE_PARTS, CallRecord, Usage, record_of_row, record_row

ZONES = st.sampled_from([UTC, timezone(timedelta(hours=-8))])
TIMES = st.datetimes(datetime(1969, 12, 31), datetime(2031, 1, 1), timezones=ZONES)
JSON = st.none() | st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 9) | st.text(max_size=3))


@st.composite
def records(draw: st.DrawFn) -> CallRecord:
    """Records with every field drawn, the rare ones (trace ids, routes, content...) included."""
    inp, out = draw(st.integers(0, 10**7)), draw(st.integers(0, 10**7))
    started = draw(TIMES)
    latency = draw(st.none() | st.integers(0, 10**8))
    parts = {name: draw(st.integers(0, 50)) for name in USAGE_PARTS}
    parts["cache_write_1h_tokens"] = 0
    return CallRecord(
        provider=draw(st.sampled_from(["openai", "anthropic"])),
        operation=draw(st.sampled_from(["chat", "responses"])),
        request_model=draw(st.sampled_from(["gpt-4o", "claude"])),
        started_at=started,
        ended_at=None if latency is None else started + timedelta(microseconds=latency),
        latency_ms=None if latency is None else latency / 1000,
        ttft_ms=draw(st.none() | st.floats(0, 10**5)),
        response_model=draw(st.none() | st.sampled_from(["", "gpt-4o-2024"])),
        input_tokens=inp,
        output_tokens=out,
        cost_nanousd=draw(st.none() | st.integers(0, 10**13)),
        price_known=draw(st.booleans()),
        price_version=draw(st.sampled_from(["", "v1"])),
        estimated=draw(st.booleans()),
        status=draw(st.sampled_from(["ok", "error", "blocked"])),
        error_type=draw(st.none() | st.just("RateLimitError")),
        http_status=draw(st.none() | st.just(429)),
        stream=draw(st.booleans()),
        service_tier=draw(st.none() | st.sampled_from(["default", "flex"])),
        tags=draw(st.dictionaries(st.sampled_from(["feature", "user"]), st.sampled_from(["a", "ü"]))),
        route=draw(JSON),
        budgets=draw(st.lists(st.fixed_dictionaries({"budget": st.sampled_from(["all", "b"])}), max_size=2)),
        trace_id=draw(st.none() | st.just("0af7651916cd43dd8448eb211c80319c")),
        span_id=draw(st.none() | st.just("b7ad6b7169203331")),
        content=draw(JSON),
        **parts,
    )


def test_a_row_names_every_field_of_a_record_once() -> None:
    names = [name.removesuffix("_us") for name in ROW_FIELDS]
    assert sorted(names) == sorted(f.name for f in dataclasses.fields(CallRecord))
    assert len(set(ROW_FIELDS)) == len(ROW_FIELDS)


@given(st.lists(records(), max_size=12))
@settings(max_examples=150, deadline=None)
def test_a_row_holds_its_record_and_the_store_binds_the_same_values_from_either(
    batch: list[CallRecord],
) -> None:
    rows = [record_row(r) for r in batch]
    assert [record_of_row(row) for row in rows] == batch  # (times come back as UTC: equal instants)
    assert _split_rows(rows) == _split(batch)


def test_a_naive_time_is_taken_as_utc_as_the_stores_take_it() -> None:
    naive = CallRecord("openai", "chat", "m", started_at=datetime(2025, 3, 1, 14, 0, 0, 7))
    row = record_row(naive)
    assert row[ROW_FIELDS.index("started_at_us")] == 1_740_837_600_000_007
    assert record_of_row(row).started_at == datetime(2025, 3, 1, 14, 0, 0, 7, tzinfo=UTC)


@given(st.lists(records(), min_size=1, max_size=8))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_records_appended_as_rows_read_back_and_roll_up_as_appended_records(batch: list[CallRecord]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        as_records, as_rows = SQLiteStore(Path(tmp) / "a.db"), SQLiteStore(Path(tmp) / "b.db")
        try:
            as_records.append(batch)
            as_rows.append_rows([record_row(r) for r in batch])
            assert list(as_rows.iter_records()) == list(as_records.iter_records())
            for group_by in ((), ("model", "status", "hour"), ("feature",)):
                query = SpendQuery(group_by=group_by)
                assert sorted(as_rows.query(query), key=repr) == sorted(as_records.query(query), key=repr)
        finally:
            as_records.close()
            as_rows.close()


class Deferring:
    def __init__(self) -> None:
        self.later: list[tuple[Any, ...]] = []

    def __call__(self, record: CallRecord) -> None:
        raise AssertionError("a lean call's record is deferred")

    def defer(self, ended: tuple[Any, ...]) -> None:
        self.later.append(ended)


def _without_id(row: tuple[Any, ...]) -> tuple[Any, ...]:
    at = ROW_FIELDS.index("id")
    return (*row[:at], *row[at + 1 :])


def entries_of(ended: tuple[Any, ...]) -> dict[str, Any]:
    (entry,) = ended[12]
    return entry  # type: ignore[no-any-return]


def _facts(pipeline: Pipeline, sink: Deferring) -> list[tuple[Any, ...]]:
    """Deferred facts of every kind a pipeline makes: lean calls (counts inline or a `Usage`, a
    stream with its time to first event, `costlens.tags` context, an unknown model), and a call
    deferred from the full path (`Call.ended`: its start a `datetime`, priced already)."""
    started = 1_780_000_000_123_456_789
    tags = {"feature": "f", "user": "client"}
    pipeline.record_later("openai", "chat", "gpt-4o-mini", started, 2_500_001, "gpt-4o-mini-2024-07-18",
                          (1200, 340, 200, 0, 100, 0, 0), "default", tags)  # fmt: skip
    pipeline.record_later("openai", "chat", "gpt-4o-mini", started + 7, 999, None, Usage(50, 5, 10, 20, 0),
                          None, tags, ttft_ns=1234, stream=True,
                          context=MappingProxyType({"user": "u1"}))  # fmt: skip
    pipeline.record_later("openai", "chat", "no-such-model-xyz", started, 1, None, (3, 4, 0, 0, 0, 0, 0),
                          None, {})  # fmt: skip
    from costlens.pipeline import Request

    call = pipeline.start(Request.of("openai", "chat", {"model": "gpt-4o", "messages": []}, tags=tags))
    call.usage = Usage(10, 5)
    pipeline.finish(call)
    assert len(sink.later) == 4
    # A budgeted call's facts: its entries a list, or the function that makes them, its price held.
    full = sink.later[3]
    entries = [{"budget": "all", "key": "", "charged_nanousd": 7}]
    sink.later.append((*full[:12], entries, full[13], (123, True, "v"), *full[15:]))
    sink.later.append((*full[:12], lambda: list(entries), *full[13:]))
    return sink.later


def test_a_deferred_calls_row_is_the_row_of_the_record_its_facts_build() -> None:
    sink = Deferring()
    pipeline = Pipeline(sinks=[sink])
    facts = _facts(pipeline, sink)
    rows, failed = facts[0][0].rows(facts)
    assert failed == 0
    expected = [record_row(ended[0](ended)) for ended in facts]
    assert [_without_id(row) for row in rows] == [_without_id(row) for row in expected]
    ids = [row[ROW_FIELDS.index("id")] for row in rows]
    assert len(set(ids)) == 6 and ids == sorted(ids)  # new, and in time order as record ids are
    assert rows[1][ROW_FIELDS.index("tags")] == {"feature": "f", "user": "u1"}
    cost, known = ROW_FIELDS.index("cost_nanousd"), ROW_FIELDS.index("price_known")
    assert rows[2][cost] is None and rows[2][known] is False  # (an unknown model: unpriced, not $0)
    budgets = ROW_FIELDS.index("budgets")
    assert rows[3][budgets] is None and rows[4][budgets] == rows[5][budgets] == [entries_of(facts[4])]
    assert rows[4][cost] == 123 and rows[5][cost] == rows[3][cost]


def test_a_row_that_cannot_be_made_is_counted_and_the_others_are_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COSTLENS_STRICT", "0")
    sink = Deferring()
    pipeline = Pipeline(sinks=[sink])
    facts = _facts(pipeline, sink)
    broken = (*facts[0][:8], "not a usage", *facts[0][9:16])  # no counts inline: the usage is read
    rows, failed = facts[0][0].rows([facts[0], broken, facts[1]])
    assert failed == 1 and len(rows) == 2


def test_a_pricing_failure_keeps_the_row_unpriced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTLENS_STRICT", "0")

    def broken(self: Pricer, *args: object) -> None:
        raise RuntimeError("price table exploded")

    sink = Deferring()
    pipeline = Pipeline(sinks=[sink])
    facts = _facts(pipeline, sink)
    monkeypatch.setattr(Pricer, "price_of", broken)
    rows, failed = facts[0][0].rows(facts[:1])
    assert failed == 0
    assert rows[0][ROW_FIELDS.index("cost_nanousd")] is None
    assert rows[0][ROW_FIELDS.index("output_tokens")] == 340


def test_the_recorder_hands_a_rows_store_every_record_once(tmp_path: Path) -> None:
    """Deferred facts, records and a flush marker in one queue, and facts whose builder makes no
    rows (record by record then): every record reaches the store once, as it was."""
    sink = Deferring()
    pipeline = Pipeline(sinks=[sink])
    facts = _facts(pipeline, sink)
    store = SQLiteStore(tmp_path / "calls.db")
    recorder = Recorder(store, durability="async", batch_size=3)
    try:
        plain = CallRecord("anthropic", "chat", "claude", input_tokens=7, tags={"feature": "g"})
        recorder.defer(facts[0])
        recorder.submit(plain)
        for ended in facts[1:]:
            recorder.defer(ended)
        recorder.defer((lambda ended: CallRecord("openai", "chat", "own-builder"), "x"))
        assert recorder.flush(5)
        stored = {r.request_model: r for r in store.iter_records()}
        assert len(stored) == 5 and sum(1 for _ in store.iter_records()) == 8
        assert stored["claude"] == plain and "own-builder" in stored
        assert stored["gpt-4o-mini"].price_known and stored["no-such-model-xyz"].cost_nanousd is None
    finally:
        recorder.close()
        store.close()


class _Down(SQLiteStore):
    def append_rows(self, rows: Any) -> None:
        self.tried = [*getattr(self, "tried", []), [row[ROW_FIELDS.index("id")] for row in rows]]
        raise OSError("disk unplugged")


def test_rows_the_store_refuses_are_spooled_as_records_with_the_ids_every_attempt_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSTLENS_STRICT", "0")
    sink = Deferring()
    pipeline = Pipeline(sinks=[sink])
    facts = _facts(pipeline, sink)
    store = _Down(tmp_path / "calls.db")
    recorder = Recorder(store, durability="async", spool_dir=tmp_path / "spool", retries=2, retry_backoff_s=0)
    try:
        for ended in facts:
            recorder.defer(ended)
        recorder.flush(5)
        assert recorder.spooled == 6 and recorder.lost == 0
        assert len(store.tried) == 3 and store.tried[0] == store.tried[1] == store.tried[2]
        (spool,) = (tmp_path / "spool").glob("*.jsonl")
        spooled = [json.loads(line) for line in spool.read_text().splitlines()]
        assert [r["id"] for r in spooled] == store.tried[0]
        models = ["gpt-4o-mini", "gpt-4o-mini", "no-such-model-xyz", "gpt-4o", "gpt-4o", "gpt-4o"]
        assert [r["request_model"] for r in spooled] == models
        assert spooled[0]["input_tokens"] == 1200 and spooled[1]["tags"] == {"feature": "f", "user": "u1"}
    finally:
        recorder.close()


class _RowsFail:
    """A builder whose batch call fails as a whole (a bug in it): its records are made one by one."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.record = pipeline._late

    def __call__(self, ended: tuple[Any, ...]) -> CallRecord:
        return self.record(ended)

    def rows(self, facts: Any) -> Any:
        raise RuntimeError("batch builder broke")


def test_a_batch_builder_that_fails_as_a_whole_loses_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSTLENS_STRICT", "0")
    sink = Deferring()
    pipeline = Pipeline(sinks=[sink])
    builder = _RowsFail(pipeline)
    facts = [(builder, *ended[1:]) for ended in _facts(pipeline, sink)]
    store = SQLiteStore(tmp_path / "calls.db")
    recorder = Recorder(store, durability="async")
    try:
        for ended in facts:
            recorder.defer(ended)
        assert recorder.flush(5) and recorder.lost == 0
        stored = sorted((_without_id(record_row(r)) for r in store.iter_records()), key=repr)
        assert stored == sorted((_without_id(record_row(builder(ended))) for ended in facts), key=repr)
    finally:
        recorder.close()
        store.close()
