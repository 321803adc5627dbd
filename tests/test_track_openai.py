"""`costlens.track` on the real `openai` SDK clients, over HTTP, against the fake provider."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import openai
import pytest

import costlens
from costlens.pricing import cost
from costlens.testing import FakeProvider, FakeUsage
from costlens.usage import Usage
from tests.conftest import Recorded

MSG: Any = [{"role": "user", "content": "hello there"}]


def _client(fake: FakeProvider, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test-secret", max_retries=0, **kw)


def _expected_nanousd(usage: Usage, model: str, provider: str = "openai") -> int:
    priced = cost(usage, provider=provider, model=model)
    assert priced.known and priced.nanousd is not None
    return priced.nanousd


def test_chat_completion_recorded_exactly(fake: FakeProvider, recorded: Recorded) -> None:
    fake.enqueue(usage=FakeUsage(input_tokens=1200, output_tokens=80, cached_tokens=1024))
    client = costlens.track(_client(fake), provider="openai", feature="search")
    reply = client.chat.completions.create(model="gpt-4o", messages=MSG)
    record = recorded.one()
    assert reply.usage is not None and reply.usage.prompt_tokens == 1200
    assert (record.provider, record.operation, record.request_model) == ("openai", "chat", "gpt-4o")
    assert record.response_model == reply.model
    assert record.usage == Usage(1200, 80, cache_read_tokens=1024)
    assert record.cost_nanousd == _expected_nanousd(record.usage, reply.model)
    assert record.price_known and not record.estimated and record.status == "ok"
    assert record.tags == {"feature": "search"}
    assert record.latency_ms is not None and record.latency_ms > 0


def test_reasoning_tokens_are_part_of_output(fake: FakeProvider, recorded: Recorded) -> None:
    fake.enqueue(usage=FakeUsage(input_tokens=50, output_tokens=500, reasoning_tokens=384))
    client = costlens.track(_client(fake), provider="openai")
    client.chat.completions.create(model="o4-mini", messages=MSG)
    record = recorded.one()
    assert (record.output_tokens, record.reasoning_tokens) == (500, 384)
    assert record.cost_nanousd == _expected_nanousd(record.usage, record.response_model or "o4-mini")


def test_track_is_idempotent_and_reversible(fake: FakeProvider, recorded: Recorded) -> None:
    client = _client(fake)
    class_request = type(client).request
    assert costlens.track(client) is client
    patched = client.request
    assert costlens.track(client, feature="x") is client
    assert client.request is patched  # the second track changed nothing
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert len(recorded.all()) == 1
    costlens.untrack(client)
    assert "request" not in vars(client) and type(client).request is class_request
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert len(recorded.all()) == 1  # untracked calls are not recorded


def test_other_clients_are_untouched(fake: FakeProvider, recorded: Recorded) -> None:
    tracked = costlens.track(_client(fake))
    plain = _client(fake)
    plain.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert recorded.all() == []
    tracked.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert len(recorded.all()) == 1


def test_with_options_copy_is_tracked_with_same_tags(fake: FakeProvider, recorded: Recorded) -> None:
    client = costlens.track(_client(fake), feature="f1")
    client.with_options(timeout=5).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert recorded.one().tags == {"feature": "f1"}


def test_context_tags_merge_and_override(fake: FakeProvider, recorded: Recorded) -> None:
    client = costlens.track(_client(fake), feature="default", project="p")
    with costlens.tags(user="u1"), costlens.tags(feature="summary", task="t9"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    first, second = recorded.all()
    assert first.tags == {"feature": "summary", "project": "p", "user": "u1", "task": "t9"}
    assert second.tags == {"feature": "default", "project": "p"}


def _normalise(chunks: list[Any]) -> list[dict[str, Any]]:
    out = []
    for chunk in chunks:
        data = chunk.to_dict()
        data.pop("id", None)
        data.pop("created", None)
        out.append(data)
    return out


def test_stream_without_usage_request_is_identical_for_the_caller(
    fake: FakeProvider, recorded: Recorded
) -> None:
    fake.default_usage = FakeUsage(input_tokens=30, output_tokens=6)
    raw = list(_client(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    client = costlens.track(_client(fake), provider="openai")
    seen = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    assert _normalise(seen) == _normalise(raw)
    assert all(c.choices for c in seen)  # the usage-only chunk stayed hidden
    assert "stream_options" not in fake.requests[0].json
    assert fake.requests[1].json["stream_options"] == {"include_usage": True}
    record = recorded.one()
    assert record.stream and not record.estimated
    assert (record.input_tokens, record.output_tokens) == (30, 6)
    assert (
        record.ttft_ms is not None and record.latency_ms is not None and record.ttft_ms <= record.latency_ms
    )


def test_stream_with_caller_usage_passes_usage_chunk(fake: FakeProvider, recorded: Recorded) -> None:
    fake.default_usage = FakeUsage(input_tokens=30, output_tokens=6)
    client = costlens.track(_client(fake), provider="openai")
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert recorded.one().output_tokens == 6


def test_stream_closed_early_is_recorded_once(fake: FakeProvider, recorded: Recorded) -> None:
    fake.default_usage = FakeUsage(input_tokens=30, output_tokens=20)
    client = costlens.track(_client(fake), provider="openai")
    with client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True) as stream:
        chunks = iter(stream)
        seen = [next(chunks) for _ in range(4)]  # the role chunk, then three words
    record = recorded.one()
    text = "".join(c.choices[0].delta.content or "" for c in seen)
    from costlens.tokens import count_text

    assert record.estimated and record.output_tokens == count_text(text, "gpt-4o-mini").tokens > 0
    assert record.input_tokens > 0


def test_stream_without_any_usage_is_counted_and_flagged(fake: FakeProvider, recorded: Recorded) -> None:
    from costlens.testing import Fault

    fake.enqueue(usage=FakeUsage(output_tokens=5), fault=Fault.usage_missing())
    client = costlens.track(_client(fake), provider="openai")
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
        if c.choices
    )
    record = recorded.one()
    assert record.estimated and record.price_known
    from costlens.tokens import count_text

    assert record.output_tokens == count_text(text, "gpt-4o-mini").tokens


def test_responses_api_plain_and_streaming(fake: FakeProvider, recorded: Recorded) -> None:
    fake.default_usage = FakeUsage(input_tokens=400, output_tokens=90, cached_tokens=256, reasoning_tokens=40)
    client = costlens.track(_client(fake), provider="openai")
    response = client.responses.create(model="gpt-4.1", input="hi")
    events = list(client.responses.create(model="gpt-4.1", input="hi", stream=True))
    with client.responses.stream(model="gpt-4.1", input="hi") as helper:
        final = helper.get_final_response()
    plain, streamed, helped = recorded.all()
    expected = Usage(400, 90, cache_read_tokens=256, reasoning_tokens=40)
    assert plain.usage == streamed.usage == helped.usage == expected
    assert plain.operation == "responses" and streamed.stream and helped.stream
    assert response.usage is not None and final.usage is not None
    assert events[-1].type == "response.completed"
    assert plain.cost_nanousd == _expected_nanousd(expected, response.model)


def test_embeddings(fake: FakeProvider, recorded: Recorded) -> None:
    fake.enqueue(usage=FakeUsage(input_tokens=12))
    client = costlens.track(_client(fake), provider="openai")
    client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    record = recorded.one()
    assert (record.operation, record.input_tokens, record.output_tokens) == ("embeddings", 12, 0)
    assert record.price_known and record.cost_nanousd == _expected_nanousd(
        Usage(12), "text-embedding-3-small"
    )


def test_azure_client_is_priced_as_azure(fake: FakeProvider, recorded: Recorded) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=fake.base_url, api_key="k", api_version="2024-10-21", max_retries=0
    )
    costlens.track(client)
    fake.enqueue(usage=FakeUsage(input_tokens=100, output_tokens=10))
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    record = recorded.one()
    assert record.provider == "azure" and record.price_known


def test_provider_inferred_from_base_url() -> None:
    from costlens.instrument.openai import provider_from_base_url

    assert provider_from_base_url("https://api.openai.com/v1") == "openai"
    assert provider_from_base_url("https://api.groq.com/openai/v1") == "groq"
    assert provider_from_base_url("https://myres.openai.azure.com/") == "azure"
    assert provider_from_base_url("http://127.0.0.1:8000/v1") == "127.0.0.1"


def test_unknown_model_is_never_free(fake: FakeProvider, recorded: Recorded) -> None:
    client = costlens.track(_client(fake), provider="my-vllm")
    client.chat.completions.create(model="acme-private-llm-7b", messages=MSG)
    record = recorded.one()
    assert record.input_tokens > 0
    assert record.cost_nanousd is None and not record.price_known


def test_api_key_never_recorded(fake: FakeProvider, recorded: Recorded) -> None:
    client = costlens.track(_client(fake), provider="openai")
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert "sk-test-secret" not in repr(recorded.one())


def test_async_client_plain_and_stream(fake: FakeProvider, recorded: Recorded) -> None:
    fake.default_usage = FakeUsage(input_tokens=70, output_tokens=7)

    async def main() -> list[Any]:
        async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0) as client:
            costlens.track(client, provider="openai")
            with costlens.tags(feature="async"):
                await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
                stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
                return [chunk async for chunk in stream]

    chunks = asyncio.run(main())
    assert all(c.choices for c in chunks)
    plain, streamed = recorded.all()
    assert plain.usage == streamed.usage == Usage(70, 7)
    assert plain.tags == streamed.tags == {"feature": "async"}
    assert streamed.stream and not streamed.estimated


def test_async_tags_isolated_between_tasks(fake: FakeProvider, recorded: Recorded) -> None:
    async def one(client: openai.AsyncOpenAI, user: str) -> None:
        with costlens.tags(user=user):
            await asyncio.sleep(0)
            await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)

    async def main() -> None:
        async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0) as client:
            costlens.track(client, provider="openai")
            await asyncio.gather(*(one(client, f"u{i}") for i in range(20)))

    asyncio.run(main())
    assert sorted(r.tags["user"] for r in recorded.all()) == sorted(f"u{i}" for i in range(20))


def test_cost_parts_from_record_match_catalogue(fake: FakeProvider, recorded: Recorded) -> None:
    fake.enqueue(usage=FakeUsage(input_tokens=1_000_000, output_tokens=1_000_000))
    costlens.track(_client(fake), provider="openai").chat.completions.create(
        model="gpt-4o-mini", messages=MSG
    )
    record = recorded.one()
    expected = cost(
        Usage(1_000_000, 1_000_000), provider="openai", model=record.response_model or "gpt-4o-mini"
    )
    assert record.cost_usd == expected.total
    assert isinstance(record.cost_usd, Decimal)


@pytest.mark.parametrize("kind", ["untrack-untracked"])
def test_untrack_untracked_is_noop(fake: FakeProvider, kind: str) -> None:
    client = _client(fake)
    assert costlens.untrack(client) is client
    assert "request" not in vars(client)


def test_unsupported_client_raises_clear_error() -> None:
    from costlens._errors import CostlensError

    with pytest.raises(CostlensError, match="does not know clients of type"):
        costlens.track(object())
