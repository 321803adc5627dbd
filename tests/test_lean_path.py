"""The lean path: on a pipeline with no step (no budgets, no router) whose only sink builds records
later, a plain chat completion, and a chat or text completion stream, is tracked without a `Call`
(`Pipeline.record_later`). Its records must be the ones the full path makes, for every response,
and anything unusual must take the full path: real `openai` clients against the fake provider,
each case run both ways."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costlens
from costlens.instrument.openai import OpenAIAdapter
from costlens.pipeline import Pipeline
from costlens.testing import FakeProvider, FakeUsage, Fault
from costlens.usage import CallRecord
from tests.conftest import Recorded

MSG: Any = [{"role": "user", "content": "hello there"}]
_VARIES = ("id", "started_at", "ended_at", "latency_ms")  # (the call's own time and id)


def _completion(usage: Any = "default", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Hi, how can I help?"},
            }
        ],
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 80,
            "total_tokens": 1280,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 20, "audio_tokens": 0},
        }
        if usage == "default"
        else usage,
    }
    body.update(fields)
    return body


# (what the provider answers, what the caller adds to the request)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "details, tier answered": (_completion(service_tier="default"), {}),
    "tier asked, none answered": (_completion(), {"service_tier": "flex"}),
    "tier asked, another answered": (_completion(service_tier="priority"), {"service_tier": "flex"}),
    "no response model": (_completion(model=None), {}),
    "a response model not text": (_completion(model=123), {}),
    "reasoning beside the completion (by the total)": (
        _completion(
            usage={
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "total_tokens": 75,
                "completion_tokens_details": {"reasoning_tokens": 60},
            }
        ),
        {},
    ),
    "no usage (counted)": (_completion(usage=None), {}),
    "no output count (counted)": (_completion(usage={"prompt_tokens": 12}), {}),
    "counts as text (counted, warned)": (
        _completion(usage={"prompt_tokens": "12", "completion_tokens": 3}),
        {},
    ),
    "negative counts (counted, warned)": (
        _completion(usage={"prompt_tokens": -1, "completion_tokens": 3}),
        {},
    ),
    "cached above the prompt (counted, warned)": (
        _completion(
            usage={
                "prompt_tokens": 10,
                "completion_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 20},
            }
        ),
        {},
    ),
    "audio inside the counts": (
        _completion(
            usage={
                "prompt_tokens": 100,
                "completion_tokens": 50,
                "prompt_tokens_details": {"audio_tokens": 40, "cached_tokens": 10},
                "completion_tokens_details": {"audio_tokens": 30, "reasoning_tokens": 5},
            }
        ),
        {},
    ),
    "extra_body (full path)": (_completion(), {"extra_body": {"metadata": {"k": "v"}}}),
    "an unknown model (unpriced)": (_completion(model="no-such-model-xyz"), {}),
}


def _client(fake: FakeProvider) -> openai.OpenAI:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
    return costlens.track(client, provider="openai", feature="lean")


def _comparable(record: CallRecord) -> dict[str, Any]:
    values = asdict(record)
    for name in _VARIES:
        values.pop(name)
    return values


def _the_new_one(recorded: Recorded, seen: list[CallRecord]) -> CallRecord:
    known = {r.id for r in seen}
    (new,) = [r for r in recorded.all() if r.id not in known]
    return new


def _lean_models(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model of every call that takes the lean path from now on (`Pipeline.record_later`)."""
    taken: list[str] = []
    real = Pipeline.record_later

    def spy(self: Pipeline, *args: Any, **stream_facts: Any) -> None:
        taken.append(args[2])
        real(self, *args, **stream_facts)

    monkeypatch.setattr(Pipeline, "record_later", spy)
    return taken


class _Deferring:
    """A sink that builds records later, as the recorder's does."""

    def __call__(self, record: CallRecord) -> None: ...

    def defer(self, ended: Any) -> None: ...


def _full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Pipeline, "lean", property(lambda self: False))
    monkeypatch.setattr(Pipeline, "gate", lambda self: None)  # (nor through a budget step)


@pytest.mark.parametrize("case", list(CASES))
def test_the_lean_path_records_what_the_full_path_records(
    case: str, fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer, extra = CASES[case]
    client = _client(fake)
    records = []
    for lean in (True, False):
        if not lean:
            _full_path(monkeypatch)
        fake.enqueue(raw=answer)
        before = datetime.now(UTC)
        with costlens.tags(user="u1"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG, **extra)
        after = datetime.now(UTC)
        records.append(_the_new_one(recorded, records))
        assert before <= records[-1].started_at <= after  # (a lean call's start: `time_ns` made a datetime)
    lean_record, full_record = records
    assert _comparable(lean_record) == _comparable(full_record)
    assert lean_record.tags == {"feature": "lean", "user": "u1"}
    assert lean_record.latency_ms is not None and lean_record.latency_ms > 0
    assert lean_record.ended_at is not None and lean_record.ended_at >= lean_record.started_at


def test_the_lean_path_is_taken_only_where_nothing_else_needs_the_call(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted by the calls to `record_later`: a plain call and a chat stream take it; a budget (a
    step), a Responses stream (read chunk by chunk) and a kept text do not (a budgeted call goes
    through the budget step's gate instead: `tests/test_lean_gate.py`)."""
    taken = _lean_models(monkeypatch)
    client = _client(fake)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert taken == ["gpt-4o-mini"]
    for _chunk in client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True):
        pass
    assert taken == ["gpt-4o-mini", "gpt-4o"]
    for _event in client.responses.create(model="gpt-4.1", input="hi", stream=True):
        pass
    costlens.configure_budgets([costlens.Budget("all", limit_usd="100", window="day")], ledger="memory://")
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        for _chunk in client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True):
            pass
    finally:
        costlens.configure_budgets([])
    assert taken == ["gpt-4o-mini", "gpt-4o"]
    assert len(recorded.all()) == 5


def test_pipeline_lean_only_without_steps_with_one_deferring_sink() -> None:
    class Step:
        def flow(self, call: Any) -> Any:
            yield

    assert Pipeline(sinks=[_Deferring()]).lean
    assert not Pipeline(sinks=[_Deferring(), _Deferring()]).lean
    assert not Pipeline(sinks=[lambda record: None]).lean
    assert not Pipeline(sinks=[_Deferring()], content_chars=100).lean
    assert not Pipeline({"budget": Step()}, sinks=[_Deferring()]).lean  # type: ignore[dict-item]
    with pytest.raises(RuntimeError, match="lean pipeline"):
        Pipeline(sinks=[lambda record: None]).record_later(
            "openai",
            "chat",
            "m",
            None,
            0,
            None,
            None,
            None,
            {},  # type: ignore[arg-type]
        )


def test_a_failed_lean_call_is_recorded_as_the_full_path_records_it(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(fake)
    records = []
    for lean in (True, False):
        if not lean:
            _full_path(monkeypatch)
        fake.enqueue(fault=Fault.http(500))
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        records.append(_the_new_one(recorded, records))
    assert records[0].status == "error" and records[0].http_status == 500
    assert _comparable(records[0]) == _comparable(records[1])


def test_a_lean_path_that_breaks_loses_no_call(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """costlens' own failure before the call or on reading the answer: reported, and the call is
    made, answered and recorded by the full path."""

    monkeypatch.setenv("COSTLENS_STRICT", "0")  # (tests raise costlens' own failures by default)

    def broken(self: OpenAIAdapter, *args: Any) -> Any:
        raise KeyError("bug")

    real_request = OpenAIAdapter.lean_request
    said: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("costlens").addHandler(handler)
    try:
        monkeypatch.setattr(OpenAIAdapter, "lean_request", broken)
        assert _client(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG).choices
        monkeypatch.setattr(OpenAIAdapter, "lean_request", real_request)
        monkeypatch.setattr(OpenAIAdapter, "lean_response", broken)
        assert _client(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG).choices
    finally:
        logging.getLogger("costlens").removeHandler(handler)
    assert said == [
        "costlens: preparing to record an LLM call failed; the call itself was not affected",
        "costlens: recording an LLM call failed; the call itself was not affected",
    ]
    records = recorded.all()
    assert len(records) == 2 and all(r.status == "ok" and r.price_known for r in records)
    assert all(r.input_tokens > 0 and r.output_tokens > 0 for r in records)


def twenty_async_users(fake: FakeProvider) -> None:
    """One tracked `AsyncOpenAI` client (`feature="a"`), 20 asyncio tasks at once, each a call in a
    `costlens.tags(user=...)` block of its own (users u0 to u19)."""

    async def main() -> None:
        client = costlens.track(
            openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0), feature="a"
        )

        async def one(user: str) -> None:
            with costlens.tags(user=user):
                await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)

        await asyncio.gather(*(one(f"u{i}") for i in range(20)))
        await client.close()

    asyncio.run(main())


def test_async_lean_calls_keep_their_tasks_tags(fake: FakeProvider, recorded: Recorded) -> None:
    twenty_async_users(fake)
    records = recorded.all()
    assert sorted(r.tags["user"] for r in records) == sorted(f"u{i}" for i in range(20))
    assert all(r.tags["feature"] == "a" and r.status == "ok" and r.price_known for r in records)


def test_budgets_turned_off_leave_an_idle_step_that_the_lean_path_skips_until_a_budget_arrives(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`configure_budgets([])` keeps an engine with no budgets in the `budget` slot (budgets may be
    added to it later): its calls take the lean path, and the first call after `engine.add` is
    reserved and settled on the budget again."""
    from costlens.config import get_pipeline

    taken = _lean_models(monkeypatch)
    engine = costlens.configure_budgets([], ledger="memory://")
    try:
        assert get_pipeline().step("budget") is not None and get_pipeline().lean
        client = _client(fake)
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        engine.add(costlens.Budget("all", limit_usd="100", window="day"))
        assert not get_pipeline().lean
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    finally:
        costlens.configure_budgets([])
    assert taken == ["gpt-4o-mini"]
    plain, budgeted = sorted(recorded.all(), key=lambda r: r.started_at)
    assert plain.budgets == [] and [e["budget"] for e in budgeted.budgets] == ["all"]
    assert budgeted.budgets[0]["outcome"] == "settled"


def test_a_step_that_cannot_say_it_is_idle_keeps_every_call_on_the_full_path() -> None:
    class Audit:
        def flow(self, call: Any) -> Any:
            yield

    class Quiet(Audit):
        def __init__(self) -> None:
            self.idle = True

        def is_idle(self) -> bool:
            return self.idle

    quiet = Quiet()
    assert not Pipeline({"cap": Audit()}, sinks=[_Deferring()]).lean  # type: ignore[dict-item]
    pipeline = Pipeline({"cap": quiet}, sinks=[_Deferring()])  # type: ignore[dict-item]
    assert pipeline.lean
    quiet.idle = False
    assert not pipeline.lean


_COUNT = st.one_of(st.none(), st.integers(-3, 400), st.sampled_from(["7", 1.5, True]))


@settings(max_examples=400, deadline=None)
@given(
    prompt=_COUNT,
    completion=_COUNT,
    cached=_COUNT,
    cache_write=_COUNT,
    audio_in=_COUNT,
    reasoning=_COUNT,
    audio_out=_COUNT,
    total=_COUNT,
    as_model=st.booleans(),
)
def test_chat_counts_are_chat_usage_or_send_it_to_the_full_path(
    prompt: Any,
    completion: Any,
    cached: Any,
    cache_write: Any,
    audio_in: Any,
    reasoning: Any,
    audio_out: Any,
    total: Any,
    as_model: bool,
) -> None:
    """Whatever the counts: `chat_counts` gives the `Usage` `chat_usage` gives (as its counts), or
    None where `chat_usage` does something else (raises, or reads a count that is not an int)."""
    from openai.types import CompletionUsage

    from costlens.instrument.openai import chat_counts, chat_usage
    from costlens.usage import usage_of_ints

    raw: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
    raw["prompt_tokens_details"] = {
        "cached_tokens": cached,
        "cache_write_tokens": cache_write,
        "audio_tokens": audio_in,
    }
    raw["completion_tokens_details"] = {"reasoning_tokens": reasoning, "audio_tokens": audio_out}
    usage: Any = CompletionUsage.model_construct(**raw) if as_model else raw
    if as_model:  # (the SDK builds the details as models too)
        from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails

        usage.prompt_tokens_details = PromptTokensDetails.model_construct(**raw["prompt_tokens_details"])
        usage.completion_tokens_details = CompletionTokensDetails.model_construct(
            **raw["completion_tokens_details"]
        )
    counts = chat_counts(usage)
    try:
        expected = chat_usage(usage)
    except Exception:
        assert counts is None
        return
    if counts is not None:
        assert usage_of_ints(*counts) == expected
    else:  # only where a count is not an exact int, or no prompt count (read as 0 by the full path)
        values = (prompt, completion, cached, cache_write, audio_in, reasoning, audio_out)
        assert prompt is None or any(v is not None and type(v) is not int for v in values)


# -- streams ------------------------------------------------------------------------------------

# (what the fake provider does, what the caller adds to the request, chunks read before closing:
# None reads all)
STREAM_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], int | None]] = {
    "usage asked by costlens": ({}, {}, None),
    "usage asked by the caller": ({}, {"stream_options": {"include_usage": True}}, None),
    "tier asked": ({}, {"service_tier": "flex"}, None),
    "closed early (counted)": ({}, {}, 3),
    "server sends no usage (counted)": ({"fault": Fault.usage_missing()}, {}, None),
    "usage without output (counted)": ({"fault": Fault.usage_no_output()}, {}, None),
    "negative usage (counted, warned)": ({"fault": Fault.usage_negative()}, {}, None),
    "cut midway (error)": ({"fault": Fault.cut_stream(3)}, {}, None),
    "a torn event (error)": ({"fault": Fault.malformed_json()}, {}, None),
    "refused (error)": ({"fault": Fault.http(500)}, {}, None),
    "an unknown model (unpriced)": ({}, {"model": "no-such-model-xyz"}, None),
}


def _read_stream(client: openai.OpenAI, extra: dict[str, Any], upto: int | None) -> str:
    """Read a chat stream as a caller would; the name of the error it raised, or "ok"."""
    options = {"model": "gpt-4o-mini", **extra}
    try:
        stream = client.chat.completions.create(messages=MSG, stream=True, **options)
        if upto is None:
            for _chunk in stream:
                pass
        else:
            for _ in range(upto):
                next(stream)
            stream.close()
    except Exception as exc:  # (an API error, or the SDK's own on a torn event: `JSONDecodeError`)
        return type(exc).__name__
    return "ok"


@pytest.mark.parametrize("case", list(STREAM_CASES))
def test_a_lean_stream_records_what_the_full_path_records(
    case: str, fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chat streams on a lean pipeline are tracked without a `Call` while they go well, and become
    one when they do not: either way, the record is the full path's."""
    behaviour, extra, upto = STREAM_CASES[case]
    client = _client(fake)
    taken = _lean_models(monkeypatch)
    records, outcomes = [], []
    for lean in (True, False):
        if not lean:
            _full_path(monkeypatch)
        fake.enqueue(**behaviour)
        with costlens.tags(user="u1"):
            outcomes.append(_read_stream(client, extra, upto))
        records.append(_the_new_one(recorded, records))
    lean_record, full_record = records
    assert outcomes[0] == outcomes[1]
    assert {**_comparable(lean_record), "ttft_ms": None} == {**_comparable(full_record), "ttft_ms": None}
    assert lean_record.tags == {"feature": "lean", "user": "u1"} and lean_record.stream
    goes_well = case in ("usage asked by costlens", "usage asked by the caller", "tier asked")
    assert (len(taken) == 1) == (goes_well or case == "an unknown model (unpriced)")
    if outcomes[0] == "ok" and upto is None:
        assert lean_record.ttft_ms is not None and 0 < lean_record.ttft_ms <= lean_record.latency_ms


def test_a_lean_stream_hides_the_usage_chunk_and_sees_the_sdks_chunks(
    fake: FakeProvider, recorded: Recorded
) -> None:
    raw = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
    seen = [
        [
            c.model_dump(exclude_unset=True, exclude={"id", "created", "system_fingerprint"})
            for c in client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
        ]
        for client in (raw, _client(fake))
    ]
    assert seen[0] == seen[1] and all("usage" not in chunk for chunk in seen[1])
    assert recorded.one().output_tokens > 0 and not recorded.one().estimated


@pytest.mark.parametrize("text_completion", [False, True], ids=["chat", "completions"])
def test_a_lean_async_stream_is_recorded_once_with_its_usage(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch, text_completion: bool
) -> None:
    taken = _lean_models(monkeypatch)
    fake.default_usage = FakeUsage(input_tokens=30, output_tokens=6)

    async def main() -> int:
        client = costlens.track(
            openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0),
            provider="openai",
        )
        async with client:
            if text_completion:
                stream: Any = await client.completions.create(
                    model="gpt-3.5-turbo-instruct", prompt="hi", stream=True
                )
            else:
                stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
            return len([chunk async for chunk in stream])

    assert asyncio.run(main()) > 0
    record = recorded.one()
    assert (record.input_tokens, record.output_tokens, record.stream) == (30, 6, True)
    assert len(taken) == 1 and record.ttft_ms is not None


def test_a_lean_stream_never_read_is_recorded_when_collected(fake: FakeProvider, recorded: Recorded) -> None:
    """Dropped unread: no usage came, so it becomes a `Call` and is recorded, counted."""
    import gc

    client = _client(fake)  # (kept, and closed after: its pool closes the dropped stream's socket)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    del stream
    gc.collect()
    client.close()
    record = recorded.one()
    assert record.estimated and record.stream and record.input_tokens > 0


# -- Anthropic messages -------------------------------------------------------------------------


def _message(usage: Any = "default", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hi, how can I help?"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 200,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 300,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
            "output_tokens": 80,
            "service_tier": "standard",
        }
        if usage == "default"
        else usage,
    }
    body.update(fields)
    return body


ANTHROPIC_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "cache reads and writes, 1-hour writes": (_message(), {}),
    "thinking and web searches": (
        _message(
            usage={
                "input_tokens": 50,
                "output_tokens": 400,
                "output_tokens_details": {"thinking_tokens": 300},
                "server_tool_use": {"web_search_requests": 2},
            }
        ),
        {},
    ),
    "priority tier, US-only inference": (
        _message(
            usage={"input_tokens": 10, "output_tokens": 5, "service_tier": "priority", "inference_geo": "us"}
        ),
        {},
    ),
    "tier asked, none answered": (
        _message(usage={"input_tokens": 10, "output_tokens": 5}),
        {"service_tier": "auto"},
    ),
    "no usage (counted)": (_message(usage=None), {}),
    "no output count (counted)": (_message(usage={"input_tokens": 12}), {}),
    "negative counts (counted, warned)": (_message(usage={"input_tokens": -1, "output_tokens": 3}), {}),
    "extra_body (full path)": (_message(), {"extra_body": {"metadata": {"user_id": "u"}}}),
    "an unknown model (unpriced)": (_message(model="claude-no-such-model"), {}),
}


@pytest.mark.parametrize("case", list(ANTHROPIC_CASES))
def test_an_anthropic_message_on_the_lean_path_is_recorded_as_the_full_path_records_it(
    case: str, fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anthropic

    answer, extra = ANTHROPIC_CASES[case]
    client = costlens.track(
        anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0), feature="lean"
    )
    taken = _lean_models(monkeypatch)
    records = []
    for lean in (True, False):
        if not lean:
            _full_path(monkeypatch)
        fake.enqueue(raw=answer)
        with costlens.tags(user="u1"):
            client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=MSG, **extra)
        records.append(_the_new_one(recorded, records))
    lean_record, full_record = records
    assert _comparable(lean_record) == _comparable(full_record)
    assert lean_record.tags == {"feature": "lean", "user": "u1"} and lean_record.provider == "anthropic"
    plain = "counted" not in case and "full path" not in case
    assert taken == (["claude-sonnet-4-5"] if plain else [])


def test_an_anthropic_error_on_the_lean_path_is_recorded_as_the_full_path_records_it(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anthropic

    client = costlens.track(anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0))
    records = []
    for lean in (True, False):
        if not lean:
            _full_path(monkeypatch)
        fake.enqueue(fault=Fault.http(529))
        with pytest.raises(anthropic.APIStatusError):
            client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=MSG)
        records.append(_the_new_one(recorded, records))
    assert _comparable(records[0]) == _comparable(records[1])
    assert records[0].status == "error" and records[0].http_status == 529 and records[0].cost_nanousd == 0


def test_an_async_anthropic_message_on_the_lean_path_is_recorded_as_the_full_path_records_it(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anthropic

    taken = _lean_models(monkeypatch)

    async def send() -> None:
        client = costlens.track(
            anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0),
            feature="lean",
        )
        async with client:
            with costlens.tags(user="u1"):
                await client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=MSG)

    records = []
    for lean in (True, False):
        if not lean:
            _full_path(monkeypatch)
        fake.enqueue(raw=_message())
        asyncio.run(send())
        records.append(_the_new_one(recorded, records))
    assert _comparable(records[0]) == _comparable(records[1])
    assert records[0].tags == {"feature": "lean", "user": "u1"} and records[0].cache_write_1h_tokens == 200
    assert taken == ["claude-sonnet-4-5"]
