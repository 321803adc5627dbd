"""Records built later: a call that ends plainly is handed to a deferring sink (the recorder) as
facts, and its record is built and priced on the sink's own thread. The record must be the one the
call would have had, the paths that need it at once must not defer, and nothing may be lost."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Generator
from datetime import timedelta
from types import MappingProxyType
from typing import Any

import openai
import pytest

import costlens
from costlens._errors import raise_late_error
from costlens.pipeline import Call, Pipeline, Request
from costlens.pipeline._price import Pricer
from costlens.recorder import Recorder
from costlens.store.memory import MemoryStore
from costlens.testing import FakeProvider
from costlens.usage import CallRecord, Usage

MSG = [{"role": "user", "content": "hello there"}]


class Deferring:
    """A sink that builds records later, as the recorder does."""

    def __init__(self) -> None:
        self.now: list[CallRecord] = []
        self.later: list[tuple[Any, ...]] = []

    def __call__(self, record: CallRecord) -> None:
        self.now.append(record)

    def defer(self, ended: tuple[Any, ...]) -> None:
        self.later.append(ended)

    def built(self) -> list[CallRecord]:
        return [ended[0](ended) for ended in self.later]


def _call(pipeline: Pipeline, usage: Usage | None, *, stream: bool = False, **state: str) -> Call:
    request = Request.of(
        "openai", "chat", {"model": "gpt-4o-mini", "messages": MSG}, stream=stream, tags={"feature": "f"}
    )
    request.state.update(state)
    call = pipeline.start(request)
    call.apply_facts({"response_model": "gpt-4o-mini-2024-07-18", "service_tier": "default"})
    if stream:
        call.event_seen()
    call.usage = usage
    return call


def _fields(record: CallRecord) -> dict[str, Any]:
    fields = dataclasses.asdict(record)
    for name in ("id", "started_at", "ended_at", "latency_ms", "ttft_ms"):
        fields.pop(name)
    return fields


USAGES = [
    Usage(1200, 340, 200, 0, 100),
    Usage(5000, 10, 0, 3000, 0, cache_write_1h_tokens=1000),
    Usage(0, 0),
]


@pytest.mark.parametrize("usage", USAGES)
@pytest.mark.parametrize("stream", [False, True])
def test_a_deferred_record_is_the_record_the_call_would_have_had(usage: Usage, stream: bool) -> None:
    sink, records = Deferring(), []
    deferring, direct = Pipeline(sinks=[sink]), Pipeline(sinks=[records.append])
    for pipeline in (deferring, direct):
        pipeline.finish(_call(pipeline, usage, stream=stream))
    assert sink.now == [] and len(sink.later) == 1
    (late,) = sink.built()
    assert _fields(late) == _fields(records[0])
    assert late.price_version == records[0].price_version
    assert (late.price_known, late.cost_nanousd) == (records[0].price_known, records[0].cost_nanousd)
    assert late.ended_at is not None and late.latency_ms is not None and late.latency_ms >= 0
    # the end is the start plus the latency, to the microsecond (the writer does not read the clock)
    assert abs(late.ended_at - late.started_at - timedelta(milliseconds=late.latency_ms)) < timedelta(
        microseconds=2
    )
    assert (late.ttft_ms is not None) is stream
    assert late.id != records[0].id


def test_a_deferred_call_is_priced_as_the_model_a_step_named() -> None:
    """`request.state["priced_as"]` (a deployment name standing for a model) is what is priced."""
    sink = Deferring()
    pipeline = Pipeline(sinks=[sink])
    request = Request.of("openai", "chat", {"model": "my-deployment", "messages": MSG})
    request.state["priced_as"] = "gpt-4.1-nano"
    call = pipeline.start(request)
    call.usage = Usage(1000, 1000)
    pipeline.finish(call)
    (record,) = sink.built()
    nano = costlens.cost(Usage(1000, 1000), provider="openai", model="gpt-4.1-nano").nanousd
    assert record.cost_nanousd == nano and record.request_model == "my-deployment"


class _ReadsAfter:
    """A step that waits for the call's end and reads its price there, on the call or on the record."""

    def __init__(self, *, record: bool) -> None:
        self.record = record
        self.seen: list[int | None] = []
        self.seen_record: CallRecord | None = None

    def flow(self, call: Call) -> Generator[None, None, None]:
        yield
        if self.record:
            self.seen_record = call.record
            self.seen.append(call.record.cost_nanousd)
        else:
            self.seen.append(call.cost_nanousd)
            call.budget_entries.append({"budget": "b", "outcome": "settled"})


class _NotesBudgets:
    """A step with no after-half that adds budget entries (as a budget that lets an unpriced call by)."""

    def flow(self, call: Call) -> Generator[None, None, None]:
        call.note_budgets([{"budget": "b", "outcome": "unpriced"}])
        return
        yield


@pytest.mark.parametrize(
    "case",
    [
        "error",
        "no usage",
        "output missing",
        "record read",
        "content kept",
        "two sinks",
    ],
)
def test_what_needs_its_record_now_is_not_deferred(case: str) -> None:
    sink = Deferring()
    others: list[CallRecord] = []
    steps: dict[str, Any] = {}
    sinks: list[Any] = [sink, others.append] if case == "two sinks" else [sink]
    pipeline = Pipeline(steps, sinks, content_chars=100 if case == "content kept" else 0)
    call = _call(pipeline, None if case == "no usage" else Usage(10, 5))
    call.text.append("hi")
    if case == "output missing":
        call.output_missing = True
    if case == "record read":
        assert call.record.tags == {"feature": "f"}
    pipeline.finish(call, TimeoutError("slow") if case == "error" else None)
    assert sink.later == [] and len(sink.now) == 1
    assert sink.now[0].status == ("error" if case == "error" else "ok")


def test_a_step_that_reads_the_price_after_the_call_sees_the_deferred_records_price() -> None:
    sink, records = Deferring(), []
    reader = _ReadsAfter(record=False)
    pipeline = Pipeline({"budget": reader}, [sink])
    pipeline.finish(_call(pipeline, Usage(1200, 340)))
    direct = Pipeline(sinks=[records.append])
    direct.finish(_call(direct, Usage(1200, 340)))
    (record,) = sink.built()
    assert sink.now == [] and reader.seen == [record.cost_nanousd] == [records[0].cost_nanousd]
    assert record.price_known and record.budgets == [{"budget": "b", "outcome": "settled"}]
    assert _fields(record) == {**_fields(records[0]), "budgets": record.budgets}


def test_a_step_that_reads_the_record_after_the_call_gets_it_whole_and_it_is_not_deferred() -> None:
    sink, records = Deferring(), []
    reader = _ReadsAfter(record=True)
    pipeline = Pipeline({"budget": reader}, [sink])
    pipeline.finish(_call(pipeline, Usage(1200, 340), stream=True))
    direct = Pipeline(sinks=[records.append])
    direct.finish(_call(direct, Usage(1200, 340), stream=True))
    assert sink.later == [] and sink.now == [reader.seen_record]
    (record,) = sink.now
    assert reader.seen == [record.cost_nanousd] and record.price_known
    assert _fields(record) == _fields(records[0])
    assert record.ttft_ms is not None and record.latency_ms is not None


def test_budget_entries_noted_before_the_call_reach_the_deferred_record() -> None:
    sink = Deferring()
    pipeline = Pipeline({"budget": _NotesBudgets()}, [sink])
    pipeline.finish(_call(pipeline, Usage(10, 5)))
    (record,) = sink.built()
    assert record.budgets == [{"budget": "b", "outcome": "unpriced"}]


class _NotesLater:
    """A step that adds entries to be made later, and changes what they will say after the call."""

    def __init__(self, *, read_during: bool = False, note_after: bool = False) -> None:
        self.read_during, self.note_after = read_during, note_after
        self.made = 0

    def flow(self, call: Call) -> Generator[None, None, None]:
        outcome = ["reserved"]

        def make() -> list[dict[str, Any]]:
            self.made += 1
            return [{"budget": "b", "outcome": outcome[0]}]

        call.note_budgets([{"budget": "n", "outcome": "downgraded"}])
        call.note_budgets_later(make)
        if self.read_during:
            assert call.budget_entries[-1] == {"budget": "b", "outcome": "reserved"}
        yield
        outcome[0] = "settled"
        if self.made:  # made already: change them where they are (as `Ticket.mark`)
            call.budget_entries[-1]["outcome"] = "settled"
        if self.note_after:
            call.note_budgets([{"budget": "c", "outcome": "unpriced"}])


@pytest.mark.parametrize("read_during", [False, True])
@pytest.mark.parametrize("note_after", [False, True])
@pytest.mark.parametrize("deferred", [False, True])
def test_entries_noted_for_later_are_made_once_in_order_and_as_they_stand_at_the_end(
    read_during: bool, note_after: bool, deferred: bool
) -> None:
    sink = Deferring()
    step = _NotesLater(read_during=read_during, note_after=note_after)
    pipeline = Pipeline({"budget": step}, [sink] if deferred else [sink.now.append])
    pipeline.finish(_call(pipeline, Usage(10, 5)))
    (record,) = sink.built() if deferred else sink.now
    expected = [{"budget": "n", "outcome": "downgraded"}, {"budget": "b", "outcome": "settled"}]
    assert record.budgets == expected + ([{"budget": "c", "outcome": "unpriced"}] if note_after else [])
    assert step.made == 1


@pytest.mark.parametrize("deferred", [False, True])
def test_entries_that_fail_to_be_made_lose_no_record_and_strict_mode_raises_later(
    deferred: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("COSTLENS_STRICT", "1")

    def make() -> list[dict[str, Any]]:
        raise ZeroDivisionError("a bug in a step")

    class Broken:
        def flow(self, call: Call) -> Generator[None, None, None]:
            call.note_budgets_later(make)
            yield

    sink = Deferring()
    pipeline = Pipeline({"budget": Broken()}, [sink] if deferred else [sink.now.append])
    call = _call(pipeline, Usage(10, 5))
    if not deferred:
        assert call.budget_entries == []  # made on this read: the failure is kept, not raised here
    pipeline.finish(call)
    (record,) = sink.built() if deferred else sink.now
    assert record.budgets == [] and record.cost_nanousd
    assert "making a call's budget entries" in caplog.text
    with pytest.raises(ZeroDivisionError):
        raise_late_error()


def test_entries_noted_for_later_on_a_call_whose_record_exists_are_made_at_once() -> None:
    pipeline = Pipeline(sinks=[])
    call = _call(pipeline, Usage(10, 5))
    assert call.record.budgets == []
    call.note_budgets_later(lambda: [{"budget": "b", "outcome": "reserved"}])
    assert call.record.budgets == [{"budget": "b", "outcome": "reserved"}]


def test_budgeted_calls_reach_the_store_with_entries_settled_at_their_cost(fake: FakeProvider) -> None:
    """End to end, the real engine: entries made after the settle, on the recorder's thread."""
    store = MemoryStore()
    costlens.configure(store=store, durability="async")
    budgets = [
        costlens.Budget("all", limit_usd="100", window="month"),
        costlens.Budget("per-model", limit_usd="50", window="day", scope={"model": "*"}),
    ]
    costlens.configure_budgets(budgets, ledger="memory://")
    try:
        client = costlens.track(openai.OpenAI(api_key="test", base_url=fake.openai_base_url, max_retries=0))
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
        assert costlens.flush()
        records = list(store.iter_records())
        assert len(records) == 3
        for record in records:
            assert [e["budget"] for e in record.budgets] == ["all", "per-model"]
            reservations = {e["reservation"] for e in record.budgets}
            assert len(reservations) == 1 and record.cost_nanousd
            for entry in record.budgets:
                assert entry["outcome"] == "settled" and entry["charged_nanousd"] == record.cost_nanousd
                assert entry["reserved_nanousd"] >= record.cost_nanousd and entry["mode"] == "block"
        assert len({next(iter(e["reservation"] for e in r.budgets)) for r in records}) == 3
    finally:
        costlens.configure_budgets([])
        costlens.configure(store="memory://", durability="sync")


@pytest.mark.parametrize("lean", [False, True])
def test_a_pricing_failure_keeps_the_record_unpriced_and_strict_mode_raises_it_later(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, lean: bool
) -> None:
    """A deferred call's facts (`Call.ended`), or a lean call's (`record_later`, its counts inline)."""

    def broken(self: Pricer, *args: object) -> None:
        raise RuntimeError("price table exploded")

    monkeypatch.setattr(Pricer, "price_of", broken)
    sink = Deferring()
    pipeline = Pipeline(sinks=[sink])
    if lean:
        counts = (10, 5, 0, 0, 0, 0, 0)
        pipeline.record_later("openai", "chat", "gpt-4o-mini", 0, 1000, None, counts, None, {})
    else:
        pipeline.finish(_call(pipeline, Usage(10, 5)))  # nothing raised to the caller
    with caplog.at_level(logging.ERROR, logger="costlens"):
        (record,) = sink.built()  # strict under pytest, yet the builder does not raise: it keeps it
    assert record.cost_nanousd is None and not record.price_known and record.output_tokens == 5
    assert "pricing an LLM call failed" in caplog.text
    with pytest.raises(RuntimeError, match="price table exploded"):
        raise_late_error()
    raise_late_error()  # raised once, then forgotten


def test_the_recorder_builds_deferred_records_on_its_writer_thread() -> None:
    threads: list[str] = []
    sink = Deferring()
    pipeline = Pipeline(sinks=[sink])
    for _ in range(3):
        pipeline.finish(_call(pipeline, Usage(10, 5)))

    def build(ended: tuple[Any, ...]) -> CallRecord:  # the real builder, behind one that notes its thread
        threads.append(threading.current_thread().name)
        return sink.later[0][0](ended)

    store = MemoryStore()
    for durability, expected in (("async", "costlens-recorder"), ("sync", threading.current_thread().name)):
        recorder = Recorder(store, durability=durability)  # type: ignore[arg-type]
        for ended in sink.later:
            recorder.defer((build, *ended[1:]))
        assert recorder.flush(5)
        recorder.close()
        assert threads == [expected] * 3
        threads.clear()
    records = list(store.iter_records())
    assert len(records) == 6 and len({r.id for r in records}) == 6
    assert all(r.price_known and r.cost_nanousd for r in records)


def test_a_builder_that_fails_on_the_writer_thread_is_counted_lost_and_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(ended: tuple[Any, ...]) -> CallRecord:
        raise ValueError("bad facts")

    recorder = Recorder(MemoryStore(), durability="async")
    try:
        recorder.defer((explode,))
        with pytest.raises(ValueError, match="bad facts"):  # strict mode: the flush raises it
            recorder.flush(5)
        assert recorder.lost == 1
        monkeypatch.setenv("COSTLENS_STRICT", "0")
        recorder.defer((explode,))
        assert recorder.flush(5) is False  # outside strict mode: the flush says a record was lost
        assert recorder.lost == 2
    finally:
        recorder.close()


def test_tracked_calls_from_threads_reach_the_store_once_each_with_async_durability(
    fake: FakeProvider,
) -> None:
    """End to end: the real SDK, the process's recorder writing in the background, many threads."""
    store = MemoryStore()
    costlens.configure(store=store, durability="async")
    try:
        client = costlens.track(
            openai.OpenAI(api_key="test", base_url=fake.openai_base_url, max_retries=0), feature="t"
        )

        def work() -> None:
            for _ in range(10):
                client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]

        workers = [threading.Thread(target=work) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert costlens.flush()
        records = list(store.iter_records())
        assert len(records) == 40 and len({r.id for r in records}) == 40
        expected = costlens.cost(records[0].usage, provider="openai", model="gpt-4o-mini").nanousd
        assert expected and all(r.cost_nanousd == expected and r.tags == {"feature": "t"} for r in records)
        assert all(r.status == "ok" and not r.estimated and r.ended_at >= r.started_at for r in records)  # type: ignore[operator]
    finally:
        costlens.configure(store="memory://", durability="sync")


def test_hashed_user_ids_apply_to_deferred_records(fake: FakeProvider) -> None:
    store = MemoryStore()
    costlens.configure(store=store, durability="async", hash_user_ids=True)
    try:
        client = costlens.track(openai.OpenAI(api_key="test", base_url=fake.openai_base_url, max_retries=0))
        with costlens.tags(user="alice@example.com"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
        assert costlens.flush()
        (record,) = store.iter_records()
        assert record.tags["user"] == costlens.config.hash_user_id("alice@example.com")
    finally:
        costlens.configure(store="memory://", durability="sync")


@pytest.mark.parametrize("usage", [(1200, 340, 200, 0, 100, 0, 0), Usage(1200, 340, 200, 0, 100)])
def test_a_lean_calls_facts_hold_its_counts_inline_and_build_the_same_record(usage: Any) -> None:
    """`record_later`'s counts go into the facts themselves, not as a tuple of their own, and the
    tags are merged where the record is built: every object a queued call keeps counts towards the
    garbage collector's next run."""
    sink = Deferring()
    pipeline = Pipeline(sinks=[sink])
    assert pipeline.lean
    started_ns = 1_780_000_000_123_456_789
    client_tags = {"feature": "f", "user": "client"}
    pipeline.record_later(
        "openai", "chat", "gpt-4o-mini", started_ns, 2_500_000, "gpt-4o-mini-2024-07-18", usage, None,
        client_tags, context=MappingProxyType({"user": "u1"}),
    )  # fmt: skip
    (ended,) = sink.later
    assert not any(type(value) is tuple for value in ended)
    assert ended[-7:] == usage if type(usage) is tuple else usage in ended  # (a `Usage` is kept as given)
    (record,) = sink.built()
    assert (record.input_tokens, record.output_tokens, record.cache_read_tokens) == (1200, 340, 200)
    assert record.reasoning_tokens == 100 and record.latency_ms == 2.5 and record.price_known
    assert record.started_at.timestamp() == pytest.approx(started_ns / 1e9, abs=1e-6)
    # the tags merged where the record is built, into a dict of its own
    assert record.tags == {"feature": "f", "user": "u1"} and client_tags == {"feature": "f", "user": "client"}
    pipeline.record_later("openai", "chat", "gpt-4o-mini", started_ns, 1, None, usage, None, client_tags)
    alone = sink.built()[-1]  # (no `costlens.tags` block: the client's tags, copied)
    assert alone.tags == client_tags and alone.tags is not client_tags
