"""Anthropic message streams read below the SDK's events (`AnthropicAdapter.prepare_stream`) record
what reading the SDK's events one by one (`observe`, on the full path) records.

Since stop 44 a tracked Anthropic stream's decoder is wrapped (`_EventReader`): each event's name is
looked at, `message_start` and `message_delta` are parsed by costlens, and on a lean pipeline the
stream needs no `Call`. Every case here runs both ways on the real SDK against the fake provider
(the new reader; then the old one, `prepare_stream` taken away and the full path forced) and
compares the records, what the caller saw and, under two nested budgets, what each way charged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest

import costlens
from costlens.budgets import BudgetEngine
from costlens.instrument.anthropic import AnthropicAdapter
from costlens.pipeline import Pipeline
from costlens.testing import FakeProvider, FakeUsage, Fault
from tests import test_lean_gate as gate_tests
from tests.conftest import Recorded
from tests.test_lean_gate import engine  # noqa: F401 (a fixture: two nested budgets)
from tests.test_lean_path import _comparable, _lean_models, _the_new_one

MSG: Any = [{"role": "user", "content": "hello there"}]
MODEL = "claude-sonnet-4-6"

#: case -> (the fake's behaviour, the request's extra arguments, events read before closing or None)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], int | None]] = {
    "usual": ({}, {}, None),
    "cache reads and writes, 1-hour ones": (
        {
            "usage": FakeUsage(
                3000, 120, cached_tokens=2000, cache_write_tokens=500, cache_write_1h_tokens=200
            )
        },
        {},
        None,
    ),
    "thinking": ({"usage": FakeUsage(200, 90, reasoning_tokens=40)}, {}, None),
    "fast mode": ({}, {"model": "claude-opus-4-8", "extra_body": {"speed": "fast"}}, None),
    "closed early (counted)": ({"text": "one two three four five six seven eight nine ten"}, {}, 8),
    "server sends no usage (counted)": ({"fault": Fault.usage_missing()}, {}, None),
    "usage without output (counted)": ({"fault": Fault.usage_no_output()}, {}, None),
    "negative usage (counted, warned)": ({"fault": Fault.usage_negative()}, {}, None),
    "cut midway (error)": ({"fault": Fault.cut_stream(4)}, {}, None),
    "a torn event (error)": ({"fault": Fault.malformed_json()}, {}, None),
    "refused (error)": ({"fault": Fault.http(529)}, {}, None),
    "an unknown model (unpriced)": ({}, {"model": "claude-no-such-model"}, None),
}
GOES_WELL = (
    "usual",
    "cache reads and writes, 1-hour ones",
    "thinking",
    "fast mode",
    "an unknown model (unpriced)",
)


def _client(fake: FakeProvider) -> anthropic.Anthropic:
    made = anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0)
    return costlens.track(made, feature="streams")


def _read(client: anthropic.Anthropic, extra: dict[str, Any], upto: int | None) -> tuple[str, list[Any]]:
    """Read a message stream as a caller would: ("ok" or the error's name, the events' types)."""
    seen: list[Any] = []
    try:
        stream = client.messages.create(
            **{"model": MODEL, **extra}, max_tokens=100, messages=MSG, stream=True
        )
        for event in stream:
            seen.append(event.type)
            if upto is not None and len(seen) == upto:
                stream.close()
                break
    except Exception as exc:  # (an API error, or the SDK's own on a torn event)
        return type(exc).__name__, seen
    return "ok", seen


def _old_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on: the SDK's events read one by one (`observe`), on the full path (a `Call`)."""
    monkeypatch.setattr(AnthropicAdapter, "prepare_stream", None)
    monkeypatch.setattr(AnthropicAdapter, "lean_streams", frozenset())


@pytest.mark.parametrize("case", list(CASES))
def test_a_stream_read_below_its_events_records_what_reading_its_events_records(
    case: str, fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    behaviour, extra, upto = CASES[case]
    client = _client(fake)
    taken = _lean_models(monkeypatch)
    records, outcomes = [], []
    for new in (True, False):
        if not new:
            _old_reader(monkeypatch)
        fake.enqueue(**behaviour)
        with costlens.tags(user="u1"):
            outcomes.append(_read(client, extra, upto))
        records.append(_the_new_one(recorded, records))
    assert outcomes[0] == outcomes[1]
    ours, theirs = records
    assert {**_comparable(ours), "ttft_ms": None} == {**_comparable(theirs), "ttft_ms": None}
    assert ours.stream and ours.tags == {"feature": "streams", "user": "u1"}
    assert (len(taken) == 1) == (case in GOES_WELL)  # (the lean path: no `Call`)
    if case in GOES_WELL:
        assert ours.ttft_ms is not None and not ours.estimated
    if case == "closed early (counted)":  # (not the 1 output token `message_start` announced)
        assert ours.estimated and ours.output_tokens >= 4 and ours.input_tokens == theirs.input_tokens


@pytest.mark.parametrize("case", ["usual", "closed early (counted)", "cut midway (error)", "refused (error)"])
def test_a_budgeted_stream_read_below_its_events_charges_what_reading_its_events_charges(
    case: str,
    fake: FakeProvider,
    recorded: Recorded,
    engine: BudgetEngine,  # noqa: F811 (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    behaviour, extra, upto = CASES[case]
    client = _client(fake)
    outcomes: list[tuple[str, list[Any]]] = []
    full_path = gate_tests._full_path

    def old_way(patch: pytest.MonkeyPatch) -> None:
        full_path(patch)
        _old_reader(patch)

    monkeypatch.setattr(gate_tests, "_full_path", old_way)

    def call() -> None:
        fake.enqueue(**behaviour)
        outcomes.append(_read(client, extra, upto))

    records, taken = gate_tests._both_ways(call, MODEL, recorded, engine, monkeypatch)
    assert outcomes[0] == outcomes[1] and records[0].stream
    assert taken == ([MODEL] if case == "usual" else [])  # (settled on the gate: no `Call`)


def test_an_async_stream_read_below_its_events_records_what_reading_its_events_records(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.default_usage = FakeUsage(1500, 60, cached_tokens=1000, cache_write_tokens=300)

    async def read() -> list[str]:
        made = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="k", max_retries=0)
        async with costlens.track(made) as client:
            stream = await client.messages.create(model=MODEL, max_tokens=100, messages=MSG, stream=True)
            return [event.type async for event in stream]

    taken = _lean_models(monkeypatch)
    ours = asyncio.run(read())
    _old_reader(monkeypatch)
    monkeypatch.setattr(Pipeline, "lean", property(lambda self: False))
    theirs = asyncio.run(read())
    assert ours == theirs and len(taken) == 1
    first, second = recorded.all()
    assert {**_comparable(first), "ttft_ms": None} == {**_comparable(second), "ttft_ms": None}
    assert first.cache_read_tokens == 1000 and first.input_tokens == 1500 and not first.estimated
