"""`costlens.track` on the real `anthropic` SDK clients: messages plain, `stream=True` and `.stream()`."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import anthropic
from hypothesis import example, given, settings
from hypothesis import strategies as st

import costlens
from costlens.pricing import cost
from costlens.pricing._providers import normalize_tier
from costlens.testing import FakeProvider, FakeUsage
from costlens.usage import Usage
from tests.conftest import Recorded

MSG: Any = [{"role": "user", "content": "hello"}]
MODEL = "claude-sonnet-4-6"
# costlens' input includes cache reads and writes (Anthropic's own `input_tokens` does not).
CACHED = FakeUsage(input_tokens=3000, output_tokens=120, cached_tokens=2000, cache_write_tokens=500)
CACHED_USAGE = Usage(3000, 120, cache_read_tokens=2000, cache_write_tokens=500)


def _without_ids(events: list[Any]) -> list[dict[str, Any]]:
    out = []
    for event in events:
        data = event.to_dict()
        if "message" in data:
            data["message"].pop("id", None)
        out.append(data)
    return out


def _client(fake: FakeProvider) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-secret", max_retries=0)


def test_message_with_cache_read_and_write(fake: FakeProvider, recorded: Recorded) -> None:
    fake.enqueue(usage=CACHED)
    client = costlens.track(_client(fake), feature="support")
    message = client.messages.create(model=MODEL, max_tokens=200, messages=MSG)
    assert message.usage.input_tokens == 500  # what the SDK itself reports: uncached only
    record = recorded.one()
    assert record.provider == "anthropic" and record.usage == CACHED_USAGE
    expected = cost(CACHED_USAGE, provider="anthropic", model=message.model)
    assert expected.known and record.cost_nanousd == expected.nanousd
    assert record.tags == {"feature": "support"}


def test_stream_true_and_stream_helper(fake: FakeProvider, recorded: Recorded) -> None:
    fake.default_usage = CACHED
    client = costlens.track(_client(fake))
    raw_events = list(_client(fake).messages.create(model=MODEL, max_tokens=200, messages=MSG, stream=True))
    events = list(client.messages.create(model=MODEL, max_tokens=200, messages=MSG, stream=True))
    assert _without_ids(events) == _without_ids(raw_events)  # the caller sees the SDK's own stream
    with client.messages.stream(model=MODEL, max_tokens=200, messages=MSG) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens == 120
    streamed, helped = recorded.all()
    assert streamed.usage == helped.usage == CACHED_USAGE
    assert streamed.stream and helped.stream and not helped.estimated
    assert helped.ttft_ms is not None


FAST_MODEL = "claude-opus-4-8"  # fast mode at twice its standard prices (genai-prices `speed: fast`)


def test_fast_mode_is_priced_at_the_speed_the_message_ran_at(fake: FakeProvider, recorded: Recorded) -> None:
    fake.default_usage = FakeUsage(input_tokens=2000, output_tokens=300)
    client = costlens.track(_client(fake))
    client.messages.create(model=FAST_MODEL, max_tokens=400, messages=MSG, speed="fast")
    list(client.messages.create(model=FAST_MODEL, max_tokens=400, messages=MSG, speed="fast", stream=True))
    client.messages.create(model=FAST_MODEL, max_tokens=400, messages=MSG, speed="standard")
    plain, streamed, standard = recorded.all()
    usage = Usage(2000, 300)
    fast = cost(usage, provider="anthropic", model=FAST_MODEL, service_tier="fast")
    normal = cost(usage, provider="anthropic", model=FAST_MODEL)
    assert fast.known and normal.known and fast.nanousd == 2 * normal.nanousd  # type: ignore[operator]
    assert plain.service_tier == streamed.service_tier == "fast"
    assert plain.cost_nanousd == streamed.cost_nanousd == fast.nanousd
    assert standard.service_tier == "standard" and standard.cost_nanousd == normal.nanousd


def test_standard_only_requests_are_the_standard_tier() -> None:
    assert normalize_tier("standard_only") == normalize_tier("auto") == "standard"
    usage = Usage(1000, 100)
    standard_only = cost(usage, provider="anthropic", model=MODEL, service_tier="standard_only")
    assert standard_only.nanousd == cost(usage, provider="anthropic", model=MODEL).nanousd


def test_async_anthropic(fake: FakeProvider, recorded: Recorded) -> None:
    fake.default_usage = FakeUsage(input_tokens=40, output_tokens=4)

    async def main() -> None:
        async with anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="k", max_retries=0) as client:
            costlens.track(client)
            await client.messages.create(model=MODEL, max_tokens=10, messages=MSG)
            async with client.messages.stream(model=MODEL, max_tokens=10, messages=MSG) as stream:
                await stream.get_final_message()

    asyncio.run(main())
    plain, streamed = recorded.all()
    assert plain.usage == streamed.usage == Usage(40, 4)


def test_untrack_restores_anthropic(fake: FakeProvider, recorded: Recorded) -> None:
    client = costlens.untrack(costlens.track(_client(fake)))
    client.messages.create(model=MODEL, max_tokens=10, messages=MSG)
    assert recorded.all() == []


def test_thinking_tokens_are_the_records_reasoning_plain_and_streamed(
    fake: FakeProvider, recorded: Recorded
) -> None:
    """`output_tokens_details.thinking_tokens` is part of `output_tokens`: the record keeps it as its
    reasoning, and the cost is the same (Anthropic bills thinking as output)."""
    fake.default_usage = FakeUsage(input_tokens=200, output_tokens=900, reasoning_tokens=700)
    client = costlens.track(_client(fake))
    message = client.messages.create(model=MODEL, max_tokens=1000, messages=MSG)
    assert message.usage.output_tokens_details is not None
    assert message.usage.output_tokens_details.thinking_tokens == 700
    list(client.messages.create(model=MODEL, max_tokens=1000, messages=MSG, stream=True))
    with client.messages.stream(model=MODEL, max_tokens=1000, messages=MSG) as stream:
        stream.get_final_message()
    expected = Usage(200, 900, reasoning_tokens=700)
    price = cost(expected, provider="anthropic", model=MODEL)
    assert price.known and price.nanousd == cost(Usage(200, 900), provider="anthropic", model=MODEL).nanousd
    for record in recorded.all():
        assert record.usage == expected and not record.estimated
        assert record.cost_nanousd == price.nanousd


def test_a_thinking_count_past_the_output_is_held_to_it() -> None:
    from costlens.instrument.anthropic import messages_usage

    raw = {"input_tokens": 10, "output_tokens": 50, "output_tokens_details": {"thinking_tokens": 52}}
    assert messages_usage(raw) == Usage(10, 50, reasoning_tokens=50)
    assert messages_usage({"input_tokens": 10, "output_tokens": 50}).reasoning_tokens == 0


def test_a_streams_text_is_read_from_the_sdks_events_and_from_plain_dicts_alike() -> None:
    from types import SimpleNamespace

    from anthropic.types import RawContentBlockDeltaEvent, RawContentBlockStopEvent

    from costlens.instrument.anthropic import AnthropicAdapter

    def texts(events: list[Any]) -> list[str]:
        call: Any = SimpleNamespace(text=[])
        for event in events:
            assert AnthropicAdapter().observe(call, event) is False
        return list(call.text)

    deltas = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": "{"},
        },
        {"type": "content_block_stop", "index": 0},
    ]
    models = [RawContentBlockDeltaEvent.model_validate(d) for d in deltas[:3]]
    models.append(RawContentBlockStopEvent.model_validate(deltas[3]))
    assert texts(deltas) == texts(models) == ["Hel", "hm"]
    # a stream read below the SDK's events keeps the same text from the raw events
    from costlens.instrument.anthropic import _texts_of_deltas

    raw = [json.dumps(d) for d in deltas[:3]]
    assert _texts_of_deltas([*raw, '{"type": "content_block_delta", "delta": {"te']) == ["Hel", "hm"]


def test_a_tracked_stream_is_read_below_the_sdks_events_and_gives_the_raw_streams_events(
    fake: FakeProvider, recorded: Recorded
) -> None:
    from anthropic._streaming import SSEDecoder

    from costlens.instrument._sse import SSEReader
    from costlens.instrument.anthropic import _EventReader

    fake.default_usage = CACHED
    raw_stream = _client(fake).messages.create(model=MODEL, max_tokens=200, messages=MSG, stream=True)
    stream = costlens.track(_client(fake)).messages.create(
        model=MODEL, max_tokens=200, messages=MSG, stream=True
    )
    assert type(raw_stream._decoder) is SSEDecoder and type(stream._decoder) is _EventReader
    assert type(stream._decoder._decoder) is SSEReader  # (the SDK's own decoder: the faster one)
    events = _without_ids(list(stream))
    assert events == _without_ids(list(raw_stream))
    record = recorded.one()
    assert record.usage == CACHED_USAGE and record.stream and not record.estimated
    assert record.response_model == MODEL and record.ttft_ms is not None

    async def async_stream() -> tuple[type, list[Any]]:
        async with anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="k", max_retries=0) as client:
            costlens.track(client)
            answer = await client.messages.create(model=MODEL, max_tokens=200, messages=MSG, stream=True)
            return type(answer._decoder), [event async for event in answer]

    kind, async_events = asyncio.run(async_stream())
    assert kind is _EventReader and _without_ids(async_events) == events
    assert recorded.all()[1].usage == CACHED_USAGE


def test_a_stream_whose_iterator_was_made_already_is_read_event_by_event(
    fake: FakeProvider, recorded: Recorded
) -> None:
    # An SDK that makes a stream's iterator on first use, from a copy of the stream (this one): if
    # something made it before costlens hooked the stream, the copy keeps the SDK's decoder, so
    # costlens reads the SDK's events instead (`observe`), and still records the exact usage.
    from costlens.instrument.anthropic import AnthropicAdapter

    fake.default_usage = CACHED
    stream = _client(fake).messages.create(model=MODEL, max_tokens=200, messages=MSG, stream=True)
    stream._iterator  # noqa: B018 (made now)
    call: Any = type("Call", (), {"request": type("R", (), {"operation": "chat"})()})()
    adapter = AnthropicAdapter()
    assert adapter.prepare_stream(call, stream, False) == adapter.observe
    stream.close()
    fresh = _client(fake).messages.create(model=MODEL, max_tokens=200, messages=MSG, stream=True)
    assert adapter.prepare_stream(call, fresh, False) is None
    fresh.close()


_VALID = st.integers(0, 5000)
_COUNT = st.one_of(
    _VALID, _VALID, _VALID, st.sampled_from([None, True, "12", 3.0, -1, -2])
)  # (and malformed)
_SPLIT = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {}, optional={"ephemeral_5m_input_tokens": _COUNT, "ephemeral_1h_input_tokens": _COUNT}
    ),
    st.just("split"),
)
_USAGE_DICT = st.fixed_dictionaries(
    {},
    optional={
        "input_tokens": _COUNT,
        "output_tokens": _COUNT,
        "cache_read_input_tokens": _COUNT,
        "cache_creation_input_tokens": _COUNT,
        "cache_creation": _SPLIT,
        "server_tool_use": st.one_of(st.none(), st.fixed_dictionaries({"web_search_requests": _COUNT})),
        "output_tokens_details": st.one_of(st.none(), st.fixed_dictionaries({"thinking_tokens": _COUNT})),
        "service_tier": st.just("standard"),
    },
)
_START = st.builds(
    lambda i, cr, cw, c1, o, r, ws: Usage(
        i + cr + cw + c1, o + r, cr, cw + c1, r, c1, web_search_requests=ws
    ),
    *[st.integers(0, 300)] * 7,
)


def _outcome(read: Any) -> Any:
    from costlens.pipeline import OutputMissing

    try:
        return read()
    except OutputMissing as partial:
        return ("missing", partial.usage)
    except (ValueError, TypeError, AttributeError) as exc:
        return (type(exc).__name__, str(exc))


@settings(max_examples=500, deadline=None)
@given(usage=_USAGE_DICT, start=st.one_of(st.none(), _START))
@example(  # the usual message_start: writes split by lifetime, with their total
    usage={"input_tokens": 5, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 7,
           "cache_creation": {"ephemeral_5m_input_tokens": 3}, "output_tokens": 1},
    start=None,
)  # fmt: skip
@example(
    usage={"output_tokens": 25}, start=Usage(100, 20, 10, 30, 5, 10, web_search_requests=2)
)  # the usual delta
def test_the_usual_usage_reader_answers_as_the_general_one(
    usage: dict[str, Any], start: Usage | None
) -> None:
    """`_usual_usage` (a stream's usage events, parsed by costlens) gives what the general readers
    give, for a whole message (`messages_usage`) and for a `message_delta` after a `message_start`
    (each count it lacks keeps the start's), or declines: random usage dicts, malformed ones too."""
    from unittest import mock

    from costlens.instrument import anthropic as adapter_module

    call: Any = SimpleNamespace(usage=start, got=[])
    call.set_usage = lambda build, *args: call.got.append(_outcome(lambda: build(*args)))

    def both(read: Any) -> tuple[Any, Any]:
        quick = read()
        with mock.patch.object(adapter_module, "_usual_usage", return_value=None):
            return quick, read()

    if start is None:
        quick, general = both(lambda: _outcome(lambda: adapter_module.messages_usage(usage)))
    else:
        quick, general = both(lambda: (adapter_module._observe_delta(call, usage), call.got[-1])[1])
    assert quick == general


class _Seen:
    """What a stream reader fills (as `LeanStream` / `Call`), kept plain for a unit test."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.output_missing = False
        self.facts: tuple[Any, Any] | None = None

    def set_facts(self, response_model: Any, service_tier: Any) -> None:
        self.facts = (response_model, service_tier)

    def set_usage(self, build: Any, *args: Any) -> None:
        from costlens.pipeline import OutputMissing

        try:
            self.usage, self.output_missing = build(*args), False
        except OutputMissing as partial:
            self.usage, self.output_missing = partial.usage, True


def test_a_delta_with_only_its_output_count_keeps_the_starts_input_counts() -> None:
    # (the API's older `message_delta`: `{"output_tokens": N}` alone; the newer repeats every count)
    from costlens.instrument.anthropic import _read_event

    start = {"input_tokens": 500, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 300}
    message = {"model": MODEL, "usage": {**start, "output_tokens": 1, "service_tier": "standard"}}
    seen = _Seen()
    _read_event(seen, "message_start", json.dumps({"type": "message_start", "message": message}))
    assert seen.output_missing and seen.facts == (MODEL, "standard")  # (1 output token: provisional)
    assert seen.usage == Usage(2800, 1, cache_read_tokens=2000, cache_write_tokens=300)
    _read_event(seen, "message_delta", json.dumps({"type": "message_delta", "usage": {"output_tokens": 120}}))
    assert not seen.output_missing
    assert seen.usage == Usage(2800, 120, cache_read_tokens=2000, cache_write_tokens=300)
    # a model of the SDK's, read event by event (`observe`), gives the same
    from anthropic.types import RawMessageDeltaEvent

    from costlens.instrument.anthropic import AnthropicAdapter

    delta = RawMessageDeltaEvent.model_validate(
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 120}}
    )
    seen.usage, seen.output_missing = Usage(2800, 1, cache_read_tokens=2000, cache_write_tokens=300), True
    AnthropicAdapter().observe(seen, delta)
    assert seen.usage == Usage(2800, 120, cache_read_tokens=2000, cache_write_tokens=300)
