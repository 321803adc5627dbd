"""costlens.testing: the real openai / anthropic SDKs against FakeProvider over local HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from costlens.testing import FakeProvider, FakeUsage, Fault, FixedClock, serve_forever

CLAUDE = "claude-haiku-4-5"
MSGS: list[Any] = [{"role": "user", "content": "hello there"}]  # 11 chars -> ceil(11/4) + 1 = 4 tokens
USAGE = FakeUsage(
    input_tokens=120, output_tokens=9, cached_tokens=50, reasoning_tokens=3, cache_write_tokens=20
)


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def fake(shared_fake: FakeProvider) -> FakeProvider:
    """One server per module (SDK clients cost ~25 ms each to build); `reset()` isolates the tests."""
    shared_fake.reset()
    return shared_fake


@pytest.fixture(scope="module")
def oai(shared_fake: FakeProvider) -> Iterator[openai.OpenAI]:
    url = shared_fake.openai_base_url
    with openai.OpenAI(base_url=url, api_key="sk-secret", max_retries=0, timeout=5) as client:
        yield client


@pytest.fixture(scope="module")
def claude(shared_fake: FakeProvider) -> Iterator[anthropic.Anthropic]:
    url = shared_fake.base_url
    with anthropic.Anthropic(base_url=url, api_key="sk-ant-secret", max_retries=0, timeout=5) as client:
        yield client


def chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o", messages=MSGS, **kwargs)


def message(client: anthropic.Anthropic, **kwargs: Any) -> Any:
    return client.messages.create(model=CLAUDE, max_tokens=100, messages=MSGS, **kwargs)


def raw_post(fake: FakeProvider, path: str, body: bytes) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        conn.request("POST", path, body, {"content-type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


# -- OpenAI chat completions -----------------------------------------------------------------------


def test_chat_reports_configured_usage(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.enqueue(usage=USAGE)
    response = chat(oai)
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (120, 9, 129)
    assert usage.prompt_tokens_details.cached_tokens == 50
    assert usage.prompt_tokens_details.cache_write_tokens == 20
    assert usage.completion_tokens_details.reasoning_tokens == 3
    assert response.choices[0].message.content == "tok tok tok tok tok tok"  # output minus reasoning
    assert response.model == "gpt-4o"
    assert response.object == "chat.completion"
    assert response.id.startswith("chatcmpl-")
    assert response.system_fingerprint.startswith("fp_")
    assert response.service_tier == "default"


def test_chat_derives_usage_from_request(fake: FakeProvider, oai: openai.OpenAI) -> None:
    response = chat(oai)
    assert response.usage.prompt_tokens == math.ceil(len("hello there") / 4) + 1
    assert response.usage.completion_tokens == 16
    assert response.choices[0].finish_reason == "stop"
    bounded = chat(oai, max_completion_tokens=3)
    assert bounded.usage.completion_tokens == 3
    assert bounded.choices[0].message.content == "tok tok tok"
    assert bounded.choices[0].finish_reason == "length"


def test_chat_text_and_service_tier(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.enqueue(text="Paris is the capital.")
    response = chat(oai, service_tier="flex")
    assert response.choices[0].message.content == "Paris is the capital."
    assert response.usage.completion_tokens == 4
    assert response.service_tier == "flex"
    assert fake.requests[-1].json["service_tier"] == "flex"


def test_chat_stream_has_no_usage_without_include_usage(fake: FakeProvider, oai: openai.OpenAI) -> None:
    with chat(oai, stream=True, max_tokens=4) as stream:
        chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == ["tok", " tok", " tok", " tok"]
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.usage is None and "usage" not in c.model_fields_set for c in chunks)


def test_chat_stream_usage_chunk_only_with_include_usage(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.enqueue(usage=USAGE)
    with chat(oai, stream=True, stream_options={"include_usage": True}) as stream:
        chunks = list(stream)
    *body, last = chunks
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (120, 9)
    assert last.usage.prompt_tokens_details.cached_tokens == 50
    assert last.usage.completion_tokens_details.reasoning_tokens == 3
    assert all(c.usage is None and "usage" in c.model_fields_set for c in body)
    assert "".join(c.choices[0].delta.content or "" for c in body) == "tok tok tok tok tok tok"
    assert len({c.id for c in chunks}) == 1


def test_legacy_completions(fake: FakeProvider, oai: openai.OpenAI) -> None:
    response = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="hello world", max_tokens=2)
    assert response.choices[0].text == "tok tok"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (4, 2)
    stream = oai.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="hi", stream=True, stream_options={"include_usage": True}
    )
    with stream:
        chunks = list(stream)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 16


# -- OpenAI Responses API --------------------------------------------------------------------------


def test_responses_plain(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.enqueue(usage=USAGE)
    response = oai.responses.create(model="gpt-5", input="hello there", instructions="be brief")
    assert response.output_text == "tok tok tok tok tok tok"
    assert [item.type for item in response.output] == ["reasoning", "message"]
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (120, 9, 129)
    assert usage.input_tokens_details.cached_tokens == 50
    assert usage.output_tokens_details.reasoning_tokens == 3
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.model == "gpt-5"


def test_responses_stream_events(fake: FakeProvider, oai: openai.OpenAI) -> None:
    with oai.responses.create(model="gpt-5", input="hi", max_output_tokens=2, stream=True) as stream:
        events = list(stream)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.usage is None
    assert events[-1].response.usage.output_tokens == 2
    assert events[-1].response.output_text == "tok tok"


def test_responses_stream_helper(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.enqueue(usage=USAGE)
    with oai.responses.stream(model="gpt-5", input="hello there") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "tok tok tok tok tok tok"
    assert final.usage.input_tokens == 120
    assert final.usage.output_tokens_details.reasoning_tokens == 3


# -- embeddings ------------------------------------------------------------------------------------


def test_embeddings_default_base64(fake: FakeProvider, oai: openai.OpenAI) -> None:
    response = oai.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert fake.requests[-1].json["encoding_format"] == "base64"  # what the SDK sends by default
    assert [d.index for d in response.data] == [0, 1]
    assert all(len(d.embedding) == 8 and all(-1 < x < 1 for x in d.embedding) for d in response.data)
    assert response.usage.prompt_tokens == response.usage.total_tokens == math.ceil(9 / 4) + 1
    floats = oai.embeddings.create(model="text-embedding-3-small", input="alpha", encoding_format="float")
    assert floats.data[0].embedding == response.data[0].embedding  # base64 decodes to the same vector


def test_embeddings_dimensions_and_token_input(fake: FakeProvider, oai: openai.OpenAI) -> None:
    response = oai.embeddings.create(model="text-embedding-3-large", input=[1, 2, 3], dimensions=4)
    assert len(response.data) == 1
    assert len(response.data[0].embedding) == 4
    assert response.usage.prompt_tokens == 3 + 1


# -- Anthropic -------------------------------------------------------------------------------------


def test_anthropic_usage_excludes_cache_from_input(fake: FakeProvider, claude: anthropic.Anthropic) -> None:
    fake.enqueue(usage=USAGE)
    response = message(claude)
    usage = response.usage
    assert usage.input_tokens == 120 - 50 - 20
    assert usage.cache_read_input_tokens == 50
    assert usage.cache_creation_input_tokens == 20
    assert usage.cache_creation.ephemeral_5m_input_tokens == 20
    assert usage.output_tokens == 9
    assert usage.service_tier == "standard"
    assert response.content[0].text == "tok tok tok tok tok tok"
    assert response.stop_reason == "end_turn"
    assert response.model == CLAUDE
    assert response.id.startswith("msg_01")


def test_anthropic_raw_stream_events(fake: FakeProvider, claude: anthropic.Anthropic) -> None:
    fake.enqueue(usage=USAGE)
    with message(claude, stream=True) as stream:
        events = list(stream)  # the SDK skips `ping`
    types = [e.type for e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start, delta = events[0].message.usage, events[-2].usage
    assert (start.input_tokens, start.cache_read_input_tokens, start.output_tokens) == (50, 50, 1)
    assert (delta.input_tokens, delta.cache_creation_input_tokens, delta.output_tokens) == (50, 20, 9)
    assert events[-2].delta.stop_reason == "end_turn"
    texts = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert texts == ["tok", " tok", " tok", " tok", " tok", " tok"]


def test_anthropic_stream_helper(fake: FakeProvider, claude: anthropic.Anthropic) -> None:
    fake.enqueue(usage=USAGE)
    with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=MSGS) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text == "tok tok tok tok tok tok"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (50, 50)
    assert (final.usage.cache_creation_input_tokens, final.usage.output_tokens) == (20, 9)


def test_anthropic_max_tokens_and_count_tokens(fake: FakeProvider, claude: anthropic.Anthropic) -> None:
    response = claude.messages.create(model=CLAUDE, max_tokens=5, system="sys", messages=MSGS)
    assert response.stop_reason == "max_tokens"
    assert response.usage.output_tokens == 5
    assert response.usage.input_tokens == math.ceil(len("syshello there") / 4) + 1
    counted = claude.messages.count_tokens(model=CLAUDE, messages=MSGS)
    assert counted.input_tokens == 4


# -- Azure -----------------------------------------------------------------------------------------


def test_azure_deployment_paths(fake: FakeProvider) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=fake.base_url, api_key="az-secret", api_version="2024-10-21"
    ) as az:
        response = az.chat.completions.create(model="prod-gpt4o", messages=MSGS)
        vectors = az.embeddings.create(model="prod-embed", input="x", dimensions=3)
    assert response.model == "prod-gpt4o"
    assert response.usage.prompt_tokens == 4
    assert len(vectors.data[0].embedding) == 3
    chat_req, embed_req = fake.requests
    assert chat_req.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert chat_req.query == {"api-version": "2024-10-21"}
    assert embed_req.path == "/openai/deployments/prod-embed/embeddings"
    assert "api-key" not in chat_req.headers


def test_azure_model_falls_back_to_deployment(fake: FakeProvider) -> None:
    status, body = raw_post(
        fake, "/openai/deployments/dep-1/chat/completions?api-version=x", b'{"messages": []}'
    )
    assert status == 200
    assert body["model"] == "dep-1"


# -- async clients ---------------------------------------------------------------------------------


def test_async_openai_and_anthropic(fake: FakeProvider) -> None:
    fake.default_usage = FakeUsage(input_tokens=30, output_tokens=2, cached_tokens=10)

    async def main() -> tuple[Any, Any, Any]:
        async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="x") as client:
            plain = await client.chat.completions.create(model="gpt-4o", messages=MSGS)
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}
            )
            async with stream:
                chunks = [chunk async for chunk in stream]
        async with (
            anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="x") as aclient,
            aclient.messages.stream(model=CLAUDE, max_tokens=50, messages=MSGS) as astream,
        ):
            final = await astream.get_final_message()
        return plain, chunks[-1], final

    plain, last_chunk, final = asyncio.run(main())
    assert plain.usage.prompt_tokens_details.cached_tokens == 10
    assert last_chunk.usage.total_tokens == 32
    usage = final.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (20, 10, 2)


# -- faults ----------------------------------------------------------------------------------------

STATUS_ERRORS = [
    (400, openai.BadRequestError, anthropic.BadRequestError),
    (401, openai.AuthenticationError, anthropic.AuthenticationError),
    (429, openai.RateLimitError, anthropic.RateLimitError),
    (500, openai.InternalServerError, anthropic.InternalServerError),
    (529, openai.InternalServerError, anthropic.OverloadedError),
]


@pytest.mark.parametrize(("status", "openai_error", "anthropic_error"), STATUS_ERRORS)
def test_http_faults_raise_sdk_errors(
    fake: FakeProvider,
    oai: openai.OpenAI,
    claude: anthropic.Anthropic,
    status: int,
    openai_error: type[Exception],
    anthropic_error: type[Exception],
) -> None:
    fake.enqueue(fault=Fault.http(status), times=2)
    with pytest.raises(openai_error) as oerr:
        chat(oai)
    with pytest.raises(anthropic_error) as aerr:
        message(claude)
    obody: Any = getattr(oerr.value, "body", None)
    abody: Any = getattr(aerr.value, "body", None)
    assert set(obody) == {"message", "type", "param", "code"}  # the SDK unwraps {"error": {...}}
    assert abody["type"] == "error"
    assert set(abody["error"]) == {"type", "message"}
    assert getattr(aerr.value, "request_id", "").startswith("req_")


def test_http_fault_custom_body_and_message(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.enqueue(fault=Fault.http(400, message="context too long"))
    body = {"error": {"message": "nope", "type": "x", "param": None, "code": "c"}}
    fake.enqueue(fault=Fault.http(403, body=body))
    with pytest.raises(openai.BadRequestError, match="context too long"):
        chat(oai)
    with pytest.raises(openai.PermissionDeniedError, match="nope"):
        chat(oai)


def test_rate_limit_retry_after_is_respected(fake: FakeProvider) -> None:
    # SDK backoff without a header is >= 0.375 s; 0.05 s proves the header was used.
    fake.enqueue(fault=Fault.http(429, retry_after=0.05))
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=1) as client:
        started = time.monotonic()
        response = chat(client)
        elapsed = time.monotonic() - started
    assert response.usage.completion_tokens == 16
    assert len(fake.requests) == 2
    assert 0.05 <= elapsed < 0.37


def test_anthropic_retries_overloaded(fake: FakeProvider) -> None:
    fake.enqueue(fault=Fault.http(529, retry_after=0.05))
    with anthropic.Anthropic(base_url=fake.base_url, api_key="x", max_retries=2) as client:
        assert message(client).usage.output_tokens == 16
    assert len(fake.requests) == 2


def test_timeout_fault(fake: FakeProvider, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fake.enqueue(fault=Fault.timeout(5), times=2)
    with pytest.raises(openai.APITimeoutError):
        chat(oai, timeout=0.3)
    with pytest.raises(anthropic.APITimeoutError):
        message(claude, timeout=0.3)


def test_stop_is_prompt_while_a_handler_waits() -> None:
    existing = set(threading.enumerate())
    fake = FakeProvider().start()
    fake.enqueue(fault=Fault.timeout(60))
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=0, timeout=0.3) as client:
        with pytest.raises(openai.APITimeoutError):
            chat(client)
        started = time.monotonic()
        fake.stop()
    assert time.monotonic() - started < 1.0
    assert set(threading.enumerate()) <= existing  # server and handler threads are gone


def test_cut_stream_openai(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.enqueue(fault=Fault.cut_stream(after_events=3))
    received = []
    with pytest.raises(openai.APIConnectionError) as err, chat(oai, stream=True) as stream:
        received.extend(stream)
    assert len(received) == 3
    assert isinstance(err.value.__cause__, httpx2.RemoteProtocolError)


#: What a cut anthropic stream raises: the transport's error (SDK < 2.17) or the SDK's (2.17 and later).
_CUT_ANTHROPIC_STREAM = (httpx2.RemoteProtocolError, anthropic.APIConnectionError)


def test_cut_stream_anthropic_raises_after_the_events_it_got(
    fake: FakeProvider, claude: anthropic.Anthropic
) -> None:
    # anthropic's stream iterator let the transport error through unwrapped before 2.17; it wraps it
    # in APIConnectionError since.
    fake.enqueue(fault=Fault.cut_stream(after_events=2))
    received = []
    with pytest.raises(_CUT_ANTHROPIC_STREAM), message(claude, stream=True) as stream:
        received.extend(stream)
    assert [e.type for e in received] == ["message_start", "content_block_start"]


def test_cut_after_the_last_event(
    fake: FakeProvider, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    # openai stops reading at `[DONE]`, so a drop after it goes unnoticed; anthropic reads to EOF.
    fake.enqueue(fault=Fault.cut_stream(after_events=100), times=2)
    with chat(oai, stream=True, max_tokens=2) as stream:
        assert len(list(stream)) == 4
    received = []
    with pytest.raises(_CUT_ANTHROPIC_STREAM), message(claude, stream=True) as astream:
        received.extend(astream)
    assert received[-1].type == "message_stop"


def test_cut_non_stream_is_a_connection_error(
    fake: FakeProvider, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    fake.enqueue(fault=Fault.cut_stream(), times=2)
    with pytest.raises(openai.APIConnectionError):
        chat(oai)
    with pytest.raises(anthropic.APIConnectionError):
        message(claude)


def test_malformed_json_raises_json_decode_error(
    fake: FakeProvider, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    # Neither SDK wraps a body it cannot parse: the raw json.JSONDecodeError escapes.
    fake.enqueue(fault=Fault.malformed_json(), times=3)
    with pytest.raises(json.JSONDecodeError):
        chat(oai)
    with pytest.raises(json.JSONDecodeError):
        message(claude)
    received = []
    with pytest.raises(json.JSONDecodeError), chat(oai, stream=True) as stream:
        received.extend(stream)
    assert len(received) == 1


def test_usage_missing(fake: FakeProvider, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fake.enqueue(fault=Fault.usage_missing(), times=5)
    assert chat(oai).usage is None
    assert oai.responses.create(model="gpt-5", input="hi").usage is None
    assert message(claude).usage is None
    with chat(oai, stream=True, stream_options={"include_usage": True}) as stream:
        chunks = list(stream)
    assert all(c.usage is None and c.choices for c in chunks)
    with message(claude, stream=True) as astream:
        events = list(astream)
    assert events[0].message.usage is None
    assert next(e for e in events if e.type == "message_delta").usage is None


def test_anthropic_stream_helper_fails_without_usage(fake: FakeProvider, claude: anthropic.Anthropic) -> None:
    # The SDK's accumulator assumes usage exists; documenting it so adapters don't rely on the helper here.
    fake.enqueue(fault=Fault.usage_missing())
    with (
        pytest.raises(AttributeError),
        claude.messages.stream(model=CLAUDE, max_tokens=10, messages=MSGS) as stream,
    ):
        stream.get_final_message()


def test_usage_negative(fake: FakeProvider, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fake.enqueue(usage=USAGE, fault=Fault.usage_negative(), times=3)
    usage = chat(oai).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (-120, -9, -129)
    assert usage.prompt_tokens_details.cached_tokens == -50
    assert message(claude).usage.input_tokens == -50
    with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=MSGS) as stream:
        assert stream.get_final_message().usage.output_tokens == -9


# -- headers, queue, request log -------------------------------------------------------------------


def test_header_overrides(fake: FakeProvider, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    headers = {
        "x-fake-input-tokens": "200",
        "x-fake-output-tokens": "7",
        "x-fake-cached-tokens": "100",
        "x-fake-cache-write-tokens": "30",
        "x-fake-reasoning-tokens": "2",
    }
    usage = chat(oai, extra_headers=headers).usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (200, 7)
    assert usage.prompt_tokens_details.cached_tokens == 100
    assert usage.completion_tokens_details.reasoning_tokens == 2
    ausage = message(claude, extra_headers=headers).usage
    assert (ausage.input_tokens, ausage.cache_read_input_tokens) == (70, 100)
    assert ausage.cache_creation_input_tokens == 30


def test_headers_beat_queue_beat_defaults(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.default_usage = FakeUsage(input_tokens=1000, output_tokens=100)
    fake.enqueue(usage=FakeUsage(input_tokens=50, output_tokens=5), times=2)
    first = chat(oai, extra_headers={"x-fake-output-tokens": "1"}).usage
    second = chat(oai).usage
    third = chat(oai).usage
    assert (first.prompt_tokens, first.completion_tokens) == (50, 1)
    assert (second.prompt_tokens, second.completion_tokens) == (50, 5)
    assert (third.prompt_tokens, third.completion_tokens) == (1000, 100)
    assert fake.pending == 0


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("http-429", openai.RateLimitError),
        ("http-500", openai.InternalServerError),
        ("timeout-2.0", openai.APITimeoutError),
        ("cut-0", openai.APIConnectionError),
        ("malformed", json.JSONDecodeError),
    ],
)
def test_fault_header(fake: FakeProvider, oai: openai.OpenAI, name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        chat(oai, timeout=0.3, extra_headers={"x-fake-fault": name})


def test_fault_header_usage_and_latency(fake: FakeProvider, oai: openai.OpenAI) -> None:
    assert chat(oai, extra_headers={"x-fake-fault": "usage-missing"}).usage is None
    assert chat(oai, extra_headers={"x-fake-fault": "usage-negative"}).usage.prompt_tokens == -4
    started = time.monotonic()
    chat(oai, extra_headers={"x-fake-latency-ms": "120"})
    assert time.monotonic() - started >= 0.12


@pytest.mark.parametrize(
    "fault",
    [
        Fault.http(429),
        Fault.http(429, retry_after=0.5),
        Fault.http(503),
        Fault.timeout(2.0),
        Fault.cut_stream(3),
        Fault.malformed_json(),
        Fault.usage_missing(),
        Fault.usage_negative(),
    ],
)
def test_fault_names_round_trip(fault: Fault) -> None:
    assert Fault.parse(fault.name) == fault


def test_bad_headers_get_a_400(fake: FakeProvider, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="x-fake-input-tokens"):
        chat(oai, extra_headers={"x-fake-input-tokens": "lots"})
    with pytest.raises(openai.BadRequestError, match="unknown fault"):
        chat(oai, extra_headers={"x-fake-fault": "explode"})
    with pytest.raises(openai.BadRequestError, match="exceed input_tokens"):
        chat(oai, extra_headers={"x-fake-input-tokens": "5", "x-fake-cached-tokens": "9"})


def test_concurrent_header_overrides(fake: FakeProvider, oai: openai.OpenAI) -> None:
    results: dict[int, int] = {}

    def worker(n: int) -> None:
        results[n] = chat(oai, extra_headers={"x-fake-input-tokens": str(n)}).usage.prompt_tokens

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(1, 17)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: n for n in range(1, 17)}


def test_requests_log_drops_credentials(
    fake: FakeProvider, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    chat(oai, extra_headers={"x-team": "search"})
    message(claude)
    openai_req, anthropic_req = fake.requests
    assert (openai_req.method, openai_req.path) == ("POST", "/v1/chat/completions")
    assert openai_req.json["messages"] == MSGS
    assert openai_req.headers["x-team"] == "search"
    assert anthropic_req.path == "/v1/messages"
    for request in fake.requests:
        assert not {"authorization", "x-api-key", "api-key"} & set(request.headers)
        assert "secret" not in repr(request.headers)


def test_reset_and_queue(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.default_usage = FakeUsage(input_tokens=9)
    fake.enqueue(fault=Fault.http(500), times=3)
    assert fake.pending == 3
    with pytest.raises(openai.InternalServerError):
        chat(oai)
    assert (fake.pending, len(fake.requests)) == (2, 1)
    fake.reset()
    assert (fake.pending, fake.requests, fake.default_usage) == (0, [], None)
    assert chat(oai).usage.prompt_tokens == 4


def test_unknown_path_and_bad_json(fake: FakeProvider) -> None:
    status, body = raw_post(fake, "/v1/nope", b"{}")
    assert status == 404
    assert body["error"]["code"] == "unknown_url"
    status, body = raw_post(fake, "/v1/messages", b"{not json")
    assert status == 400
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"


def test_ids_are_deterministic_and_clock_drives_created() -> None:
    clock = FixedClock(datetime(2025, 6, 1, tzinfo=UTC))
    ids = []
    for _ in range(2):
        with (
            FakeProvider(clock=clock) as fake,
            openai.OpenAI(base_url=fake.openai_base_url, api_key="x") as client,
        ):
            response = chat(client)
            ids.append(response.id)
            assert response.created == int(clock.now().timestamp())
    assert ids[0] == ids[1]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        FakeUsage(input_tokens=-1)
    with pytest.raises(ValueError, match="exceed input_tokens"):
        FakeUsage(input_tokens=10, cached_tokens=8, cache_write_tokens=3)
    with pytest.raises(ValueError, match="reasoning_tokens"):
        FakeUsage(output_tokens=1, reasoning_tokens=2)
    with pytest.raises(ValueError, match="4xx/5xx"):
        Fault.http(200)
    with pytest.raises(ValueError, match="unknown fault"):
        Fault.parse("http-abc")


def test_serve_forever_until_stopped() -> None:
    ready = threading.Event()
    started: list[FakeProvider] = []

    def on_ready(fake: FakeProvider) -> None:
        started.append(fake)
        ready.set()

    thread = threading.Thread(target=serve_forever, kwargs={"port": 0, "on_ready": on_ready}, daemon=True)
    thread.start()
    assert ready.wait(5)
    status, body = raw_post(started[0], "/v1/chat/completions", b'{"model": "m", "messages": []}')
    assert (status, body["model"]) == (200, "m")
    started[0].stop()
    thread.join(5)
    assert not thread.is_alive()


def test_restart_after_stop() -> None:
    fake = FakeProvider()
    with fake:
        first = fake.port
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.base_url
    with fake:
        assert raw_post(fake, "/v1/embeddings", b'{"input": "x"}')[0] == 200
        assert fake.port > 0
        assert first > 0


# -- FixedClock and lazy exports -------------------------------------------------------------------


def test_fixed_clock() -> None:
    start = datetime(2025, 1, 1, 12, tzinfo=UTC)
    clock = FixedClock(start)
    assert clock.now() == clock() == start
    assert clock.advance(90) == start + timedelta(seconds=90)
    assert clock.advance(delta=timedelta(hours=1)) == start + timedelta(seconds=3690)
    assert clock.time() == (start + timedelta(seconds=3690)).timestamp()
    clock.set(start)
    assert clock.now() == start
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2025, 1, 1))


def test_fixed_clock_is_thread_safe() -> None:
    clock = FixedClock(datetime(2025, 1, 1, tzinfo=UTC))

    def bump() -> None:
        for _ in range(1000):
            clock.advance(1)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.now() == datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=4000)


def test_memory_store_is_reexported_lazily() -> None:
    import costlens.testing as testing
    from costlens.store.memory import MemoryStore

    assert testing.MemoryStore is MemoryStore
    with pytest.raises(AttributeError):
        _ = testing.NoSuchThing  # type: ignore[attr-defined]


def test_stream_deltas_header_groups_words_without_changing_text() -> None:
    with FakeProvider() as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
        headers = {"x-fake-output-tokens": "40", "x-fake-stream-deltas": "4"}
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                extra_headers=headers,
            )
        )
        texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        client.close()
    assert len(texts) == 4
    assert "".join(texts) == " ".join(["tok"] * 40)
