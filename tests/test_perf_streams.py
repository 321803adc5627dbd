"""The cheap stream path: the usage-only chunk costlens asks for is read from its server-sent event,
so the SDK never builds a chunk model for it; what the caller sees and what is recorded are unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

import costlens
from costlens.instrument.openai import _usage_follows
from costlens.testing import FakeProvider, FakeUsage
from tests.conftest import Recorded

MSG: Any = [{"role": "user", "content": "hello there"}]


def _client(fake: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test-secret", max_retries=0)


def _async_client(fake: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="sk-test-secret", max_retries=0)


def _dumps(chunks: list[Any]) -> list[dict[str, Any]]:
    out = []
    for chunk in chunks:
        data = chunk.model_dump(exclude_unset=True)
        data.pop("id", None)
        data.pop("created", None)
        out.append(data)
    return out


def _count_built(client: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every chunk the SDK builds from an event (its `_process_response_data`)."""
    built: list[Any] = []
    original = client._process_response_data

    def process(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        built.append(result)
        return result

    monkeypatch.setattr(client, "_process_response_data", process)
    return built


def test_usage_chunk_never_built_by_the_sdk(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.default_usage = FakeUsage(input_tokens=30, output_tokens=6)
    raw = list(_client(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    client = costlens.track(_client(fake), provider="openai")
    built = _count_built(client, monkeypatch)
    seen = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    assert _dumps(seen) == _dumps(raw)
    assert len(built) == len(seen)  # no extra chunk built for the usage event
    record = recorded.one()
    assert (record.input_tokens, record.output_tokens) == (30, 6)
    assert record.stream and not record.estimated and record.price_known
    assert record.response_model == seen[0].model


def test_async_usage_chunk_never_built_by_the_sdk(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.default_usage = FakeUsage(input_tokens=40, output_tokens=7)

    async def run() -> tuple[list[Any], list[Any], list[Any]]:
        async with _async_client(fake) as raw_client, _async_client(fake) as client:
            raw_stream = await raw_client.chat.completions.create(
                model="gpt-4o-mini", messages=MSG, stream=True
            )
            raw = [c async for c in raw_stream]
            costlens.track(client, provider="openai")
            built = _count_built(client, monkeypatch)
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
            return raw, [c async for c in stream], built

    raw, seen, built = asyncio.run(run())
    assert _dumps(seen) == _dumps(raw)
    assert len(built) == len(seen)
    assert (recorded.one().input_tokens, recorded.one().output_tokens) == (40, 7)


def test_caller_asked_usage_chunk_still_reaches_the_caller(fake: FakeProvider, recorded: Recorded) -> None:
    fake.default_usage = FakeUsage(input_tokens=30, output_tokens=6)
    client = costlens.track(_client(fake), provider="openai")
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert recorded.one().output_tokens == 6


def test_without_the_sdk_hook_the_chunk_is_still_hidden(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SDK without `_iter_events`: `observe` reads and hides the usage chunk, as before."""
    from costlens.instrument.openai import OpenAIAdapter

    monkeypatch.setattr(OpenAIAdapter, "prepare_stream", lambda self, call, stream, is_async: self.observe)
    fake.default_usage = FakeUsage(input_tokens=30, output_tokens=6)
    raw = list(_client(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    client = costlens.track(_client(fake), provider="openai")
    seen = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    assert _dumps(seen) == _dumps(raw)
    assert (recorded.one().input_tokens, recorded.one().output_tokens) == (30, 6)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"choices":[],"usage":{"prompt_tokens":1}}', True),
        ('{"choices": [], "usage" :  {"prompt_tokens": 1}}', True),
        ('{"choices":[{"delta":{"content":"x"}}],"usage":null}', False),
        ('{"choices":[{"delta":{"content":"usage"}}]}', False),  # a value, not a key
        ('{"choices":[{"delta":{"content":"say \\"usage\\": {"}}]}', False),  # escaped quotes
        ('{"choices":[]}', False),
    ],
)
def test_usage_key_detection(data: str, expected: bool) -> None:
    assert _usage_follows(data) is expected


class _Event:
    """What `_screen` needs of the SDK's `ServerSentEvent`: `data`, kept in `_data`."""

    def __init__(self, data: str) -> None:
        self._data = data

    @property
    def data(self) -> str:
        return self._data


@pytest.mark.parametrize(
    ("data", "bare"),
    [
        ('{"id":"c","choices":[],"usage":null}', '{"id":"c","choices":[]}'),  # OpenAI's layout
        ('{"id":"c","usage":null,"choices":[]}', '{"id":"c","choices":[]}'),
        ('{"id": "c", "usage" : null, "choices": []}', '{"id": "c", "choices": []}'),
        ('{"usage": null, "id": "c"}', '{"id": "c"}'),
        ('{"usage":null}', "{}"),
        ('{"choices":[{"delta":{"content":"\\"usage\\":null"}}]}', None),  # the model's text: kept
    ],
)
def test_added_null_usage_is_cut_before_the_sdk_parses(data: str, bare: str | None) -> None:
    import json

    from costlens.instrument.openai import _screen
    from costlens.pipeline import Call, Pipeline, Request

    call = Call(Pipeline(), Request("openai", "chat", "gpt-4o-mini", {}, stream=True, usage_added=True), {})
    event = _Event(data)
    kept = _screen(call, event, True)
    assert kept == event.data == (bare if bare is not None else data)
    assert "usage" not in json.loads(kept) or bare is None
    assert _screen(call, _Event(data), False) == data  # the caller asked for usage: left alone


def test_text_is_parsed_only_when_usage_never_came(fake: FakeProvider, recorded: Recorded) -> None:
    """A stream the caller leaves early has no usage chunk: its kept events give the text to count."""
    fake.default_usage = FakeUsage(input_tokens=30, output_tokens=40)
    client = costlens.track(_client(fake), provider="openai")
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    seen = [next(stream) for _ in range(5)]
    stream.close()
    record = recorded.one()
    assert record.estimated and record.response_model == seen[0].model
    assert 0 < record.output_tokens < 40
    complete = costlens.track(_client(fake), provider="openai")
    for _ in complete.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True):
        pass
    assert not recorded.all()[-1].estimated and recorded.all()[-1].output_tokens == 40


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_an_event_whose_data_cannot_be_cut_still_streams(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch, is_async: bool
) -> None:
    """An SDK whose events refuse a new `_data`: the added `"usage": null` stays in (the SDK then
    sets the field to None), the usage-only chunk is still dropped, the usage still recorded."""
    from openai._streaming import ServerSentEvent

    original = ServerSentEvent.__setattr__

    def frozen(self: Any, name: str, value: Any) -> None:
        if name == "_data" and "_data" in vars(self):
            raise AttributeError("read-only")
        original(self, name, value)

    async def read_async(client: openai.AsyncOpenAI) -> list[Any]:
        async with client:
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
            return [chunk async for chunk in stream]

    monkeypatch.setattr(ServerSentEvent, "__setattr__", frozen)
    fake.default_usage = FakeUsage(input_tokens=30, output_tokens=6)
    raw = list(_client(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    if is_async:
        seen = asyncio.run(read_async(costlens.track(_async_client(fake))))
    else:
        tracked = costlens.track(_client(fake))
        seen = list(tracked.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    assert [c.choices for c in seen] == [c.choices for c in raw]
    assert all(c.usage is None for c in seen)
    usage = recorded.one().usage
    assert (usage.input_tokens, usage.output_tokens) == (30, 6)
