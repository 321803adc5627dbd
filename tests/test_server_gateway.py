"""The gateway (`costlens serve`): real uvicorn, real SDKs, the fake provider as the upstream.

Byte-for-byte claims are checked against a twin: two fresh fake providers with the same fixed
clock answer the same sequence of requests with the same bytes (ids derive from the request's
number), one called directly, one through the gateway.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anthropic
import httpx
import openai
import pytest
import uvicorn

from costlens.budgets import Budget
from costlens.config import configure_budgets, get_pipeline, reset_budgets, set_pipeline
from costlens.pricing import cost
from costlens.routing import Candidate, Fallbacks, Router
from costlens.server import ServerConfig, create_app
from costlens.testing import FakeProvider, FakeUsage, Fault, FixedClock
from costlens.usage import CallRecord
from tests.conftest import Recorded

ROOT = Path(__file__).resolve().parent.parent
MSG = [{"role": "user", "content": "Say hello to the gateway"}]
#: Response headers that must come back unchanged (the rest are the servers' own: date, server).
SAME_HEADERS = ("content-type", "x-request-id", "request-id", "openai-version", "openai-processing-ms")


# -- running things --------------------------------------------------------------------------------


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn in a thread on a socket bound (and listening) before the thread starts,
    so requests queue in the backlog until uvicorn accepts them: nothing to wait for."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio: TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def gateway_app(upstreams: dict[str, str], **config: Any) -> Any:
    return create_app(ServerConfig(upstreams=upstreams, **config), configure=False)


def upstreams_of(fake: FakeProvider) -> dict[str, str]:
    return {"openai": fake.openai_base_url, "anthropic": fake.base_url}


@dataclass
class Twin:
    """`direct` is called directly, `behind` through the gateway at `gateway`."""

    direct: FakeProvider
    behind: FakeProvider
    gateway: str
    app: Any


@pytest.fixture
def twin(recorded: Recorded) -> Iterator[Twin]:
    with FakeProvider(clock=FixedClock()) as direct, FakeProvider(clock=FixedClock()) as behind:
        app = gateway_app(upstreams_of(behind))
        with serving(app) as base:
            yield Twin(direct, behind, base, app)


@pytest.fixture(scope="module")
def gateway_for_fake(fake_server: FakeProvider) -> Iterator[tuple[str, Any]]:
    app = gateway_app(upstreams_of(fake_server))
    with serving(app) as base:
        yield base, app


@pytest.fixture
def gateway(gateway_for_fake: tuple[str, Any], fake: FakeProvider, recorded: Recorded) -> Iterator[str]:
    base, app = gateway_for_fake
    yield base
    app.state.ctx.extras.pop("router", None)


@dataclass
class Raw:
    status: int
    headers: httpx.Headers
    body: bytes


def post(base: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Raw:
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", base + path, json=body, headers=headers) as r,
    ):
        return Raw(r.status_code, r.headers, r.read())


def same_headers(a: httpx.Headers, b: httpx.Headers) -> None:
    for name in SAME_HEADERS:
        assert a.get(name) == b.get(name), name


def oa(base: str, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="client-key", max_retries=max_retries)


def an(base: str, max_retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base, api_key="client-key", max_retries=max_retries)


def priced(record: CallRecord, provider: str, model: str) -> int:
    nano = cost(record.usage, provider=provider, model=model, at=record.started_at).nanousd
    assert nano is not None
    return nano


# -- byte for byte ---------------------------------------------------------------------------------

CLAUDE = "claude-sonnet-4-5"
CASES = {
    "chat": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MSG}),
    "chat-stream": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MSG, "stream": True}),
    "chat-stream-usage": (
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": MSG, "stream": True, "stream_options": {"include_usage": True}},
    ),
    "completions": ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}),
    "completions-stream": (
        "/v1/completions",
        {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "stream": True},
    ),
    "responses": ("/v1/responses", {"model": "gpt-4o-mini", "input": "Say hello"}),
    "responses-stream": ("/v1/responses", {"model": "gpt-4o-mini", "input": "Say hello", "stream": True}),
    "embeddings": ("/v1/embeddings", {"model": "text-embedding-3-small", "input": ["one", "two"]}),
    "messages": ("/v1/messages", {"model": CLAUDE, "max_tokens": 20, "messages": MSG}),
    "messages-stream": ("/v1/messages", {"model": CLAUDE, "max_tokens": 20, "messages": MSG, "stream": True}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_endpoint_answers_the_upstreams_bytes_and_is_recorded(
    twin: Twin, recorded: Recorded, case: str
) -> None:
    path, body = CASES[case]
    headers = {"anthropic-version": "2023-06-01"} if path == "/v1/messages" else None
    direct = post(twin.direct.base_url, path, body, headers)
    through = post(twin.gateway, path, body, headers)
    assert direct.status == through.status == 200
    assert through.body == direct.body
    same_headers(direct.headers, through.headers)
    record = recorded.one()
    provider = "anthropic" if path == "/v1/messages" else "openai"
    assert (record.provider, record.request_model, record.status) == (provider, body["model"], "ok")
    assert record.stream is bool(body.get("stream")) and not record.estimated
    assert record.input_tokens > 0 and record.cost_nanousd == priced(record, provider, body["model"])
    if case != "embeddings":
        assert record.output_tokens > 0


def test_chat_stream_usage_is_asked_for_and_hidden(twin: Twin, recorded: Recorded) -> None:
    _, body = CASES["chat-stream"]
    through = post(twin.gateway, "/v1/chat/completions", body)
    direct = post(twin.direct.base_url, "/v1/chat/completions", body)
    assert through.body == direct.body
    assert b'"usage"' not in through.body  # neither the usage chunk nor the `"usage":null` members
    sent = twin.behind.requests[-1].json
    assert sent["stream_options"] == {"include_usage": True}  # the upstream was asked for usage
    record = recorded.one()
    # default usage: input = ceil(chars / 4) + 1, output 16 "tok"s
    assert record.input_tokens == math.ceil(len(MSG[0]["content"]) / 4) + 1
    assert record.output_tokens == 16 and not record.estimated and record.ttft_ms is not None


def test_openai_sdk_through_the_gateway_gets_the_same_bytes_and_an_exact_cost(
    twin: Twin, recorded: Recorded
) -> None:
    usage = FakeUsage(input_tokens=1000, output_tokens=500, cached_tokens=200)
    twin.direct.enqueue(usage=usage, times=2)
    twin.behind.enqueue(usage=usage, times=2)
    results = []
    for base in (twin.direct.base_url, twin.gateway):
        with oa(base) as client:
            raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
            with client.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", messages=MSG, stream=True
            ) as streamed:
                stream_bytes = b"".join(streamed.iter_bytes())
            results.append((raw.content, raw.parse().model_dump(), stream_bytes))
    assert results[0] == results[1]
    plain, stream = recorded.all()
    # gpt-4o-mini: $0.15 / 1M input, $0.075 / 1M cached input, $0.60 / 1M output
    exact = 800 * 150 + 200 * 75 + 500 * 600
    assert plain.cost_nanousd == stream.cost_nanousd == exact
    assert (stream.input_tokens, stream.cache_read_tokens, stream.output_tokens) == (1000, 200, 500)


def test_anthropic_sdk_through_the_gateway_gets_the_same_bytes_and_an_exact_cost(
    twin: Twin, recorded: Recorded
) -> None:
    usage = FakeUsage(input_tokens=1000, output_tokens=100, cached_tokens=400, cache_write_tokens=100)
    twin.direct.enqueue(usage=usage, times=2)
    twin.behind.enqueue(usage=usage, times=2)
    results = []
    for base in (twin.direct.base_url, twin.gateway):
        with an(base) as client:
            raw = client.messages.with_raw_response.create(model=CLAUDE, max_tokens=100, messages=MSG)
            with client.messages.with_streaming_response.create(
                model=CLAUDE, max_tokens=100, messages=MSG, stream=True
            ) as streamed:
                stream_bytes = b"".join(streamed.iter_bytes())
            results.append((raw.http_response.content, raw.parse().model_dump(), stream_bytes))
    assert results[0] == results[1]
    plain, stream = recorded.all()
    # claude-sonnet-4-5: $3 / 1M input, $0.30 cache reads, $3.75 cache writes (5 min), $15 output
    exact = 500 * 3000 + 400 * 300 + 100 * 3750 + 100 * 15000
    assert plain.cost_nanousd == stream.cost_nanousd == exact
    assert stream.status == "ok" and stream.stream


def test_us_only_inference_through_the_gateway_is_priced_at_its_premium(
    gateway: str, recorded: Recorded
) -> None:
    with an(gateway) as client:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MSG, inference_geo="us")
        list(
            client.messages.create(
                model="claude-sonnet-4-6", max_tokens=100, messages=MSG, inference_geo="us", stream=True
            )
        )
    plain, stream = recorded.all()
    assert plain.service_tier == stream.service_tier == "standard+us"
    assert plain.usage is not None and plain.usage == stream.usage
    us = cost(plain.usage, provider="anthropic", model="claude-sonnet-4-6", service_tier="standard+us")
    standard = cost(plain.usage, provider="anthropic", model="claude-sonnet-4-6")
    assert us.total is not None and standard.total is not None and us.total == standard.total * Decimal("1.1")
    assert plain.cost_nanousd == stream.cost_nanousd == us.nanousd


def test_curl_gets_the_same_bytes(twin: Twin, recorded: Recorded) -> None:
    curl = shutil.which("curl") or "/usr/bin/curl"
    if not os.path.exists(curl):
        pytest.skip("curl is not installed")
    outputs = []
    for base in (twin.direct.base_url, twin.gateway):
        for case in ("chat", "chat-stream", "messages-stream"):
            path, body = CASES[case]
            args = [curl, "-sS", "--no-buffer", "-X", "POST", base + path]
            args += ["-H", "content-type: application/json", "-H", "anthropic-version: 2023-06-01"]
            args += ["-d", json.dumps(body)]
            outputs.append(subprocess.run(args, capture_output=True, check=True, timeout=30).stdout)
    assert outputs[:3] == outputs[3:]
    assert outputs[1].endswith(b"data: [DONE]\n\n")
    assert len(recorded.all()) == 3


def test_node_openai_sdk_gets_the_same_answers(twin: Twin, recorded: Recorded) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (ROOT / "tests/node/node_modules/openai").is_dir():
        pytest.skip("tests/node/node_modules is missing: run scripts/node_deps.sh (make test does)")
    script = ROOT / "tests/node/gateway_check.mjs"
    done = subprocess.run(
        [node, str(script), twin.gateway, twin.direct.base_url], capture_output=True, timeout=60, text=True
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["gateway"] == out["direct"]
    assert out["gateway"]["chat_text"] and out["gateway"]["stream_text"] == out["gateway"]["chat_text"]
    assert not out["gateway"]["stream_usage_seen"]  # the usage the gateway asked for stays hidden
    assert len(recorded.all()) == 4


# -- attribution, budgets, routing -----------------------------------------------------------------


def test_tags_come_from_headers_and_the_api_key(fake: FakeProvider, recorded: Recorded) -> None:
    app = gateway_app(upstreams_of(fake))

    @app.middleware("http")
    async def pretend_auth(request: Any, call_next: Any) -> Any:  # the auth part sets this
        request.state.api_key = SimpleNamespace(id="key_42")
        return await call_next(request)

    headers = {
        "X-Costlens-User": "u-7",
        "X-Costlens-Feature": "search",
        "X-Costlens-Task": "summarize",
        "X-Costlens-Project": "atlas",
        "X-Costlens-Tag-Team": "growth",
    }
    with serving(app) as base, oa(base) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=headers)
    assert recorded.one().tags == {
        "user": "u-7",
        "feature": "search",
        "task": "summarize",
        "project": "atlas",
        "team": "growth",
        "api_key": "key_42",
    }
    assert not any(k.startswith("x-costlens") for k in fake.requests[-1].headers)


@pytest.fixture
def tiny_budget(recorded: Recorded) -> Iterator[None]:
    configure_budgets([Budget("tiny", limit_usd="0.000000001")], ledger="memory://")
    yield
    reset_budgets()


def test_a_budget_refusal_is_a_429_the_sdks_raise_without_retrying(
    gateway: str, fake: FakeProvider, recorded: Recorded, tiny_budget: None
) -> None:
    with oa(gateway, max_retries=2) as client, pytest.raises(openai.RateLimitError, match="tiny") as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    error = info.value.response.json()["error"]
    assert error["type"] == error["code"] == "budget_exceeded" and error["param"] is None
    assert "costlens budget 'tiny' refused a call to gpt-4o-mini" in error["message"]
    assert "Raise the limit" in error["message"]
    with an(gateway, max_retries=2) as client, pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=CLAUDE, max_tokens=10, messages=MSG)
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "tiny" in body["error"]["message"]
    records = recorded.all()
    assert [r.status for r in records] == ["blocked", "blocked"]  # one each: the SDKs did not retry
    assert fake.requests == []


def test_costlens_auto_is_routed(gateway_for_fake: tuple[str, Any], gateway: str, fake: FakeProvider) -> None:
    _, app = gateway_for_fake
    with oa(gateway) as client:
        with pytest.raises(openai.BadRequestError, match="needs a router"):
            client.chat.completions.create(model="costlens/auto", messages=MSG)
        app.state.ctx.extras["router"] = Router(
            [Candidate(name="mini", model="gpt-4o-mini"), Candidate(name="big", model="gpt-4o")]
        )
        answer = client.chat.completions.create(model="costlens/auto", messages=MSG)
    assert answer.model == "gpt-4o-mini" and fake.requests[-1].json["model"] == "gpt-4o-mini"


def test_routed_stream_keeps_usage_hidden_and_records_the_route(
    gateway_for_fake: tuple[str, Any], gateway: str, fake: FakeProvider, recorded: Recorded
) -> None:
    _, app = gateway_for_fake
    app.state.ctx.extras["router"] = Router([Candidate(name="mini", model="gpt-4o-mini")])
    raw = post(gateway, "/v1/chat/completions", {"model": "costlens/auto", "messages": MSG, "stream": True})
    assert raw.status == 200 and b'"usage"' not in raw.body and raw.body.endswith(b"data: [DONE]\n\n")
    record = recorded.one()
    assert record.request_model == "costlens/auto" and record.route is not None
    assert record.route["to"] == "gpt-4o-mini" and record.output_tokens == 16


def test_a_routed_call_falls_back_when_the_upstream_fails(
    gateway_for_fake: tuple[str, Any], gateway: str, fake: FakeProvider, recorded: Recorded
) -> None:
    _, app = gateway_for_fake
    app.state.ctx.extras["router"] = Router(
        [Candidate(name="mini", model="gpt-4o-mini"), Candidate(name="big", model="gpt-4o")],
        fallbacks=Fallbacks(retries=0, cooldown_s=0),
    )
    fake.enqueue(fault=Fault.http(500))
    with oa(gateway) as client:
        answer = client.chat.completions.create(model="costlens/auto", messages=MSG)
    assert answer.model == "gpt-4o"
    first, second = recorded.all()
    assert (first.status, first.http_status, first.error_type) == ("error", 500, "InternalServerError")
    assert second.status == "ok" and second.route is not None and second.route["attempt"] == 2


# -- failures --------------------------------------------------------------------------------------


def test_upstream_errors_pass_through_byte_for_byte(twin: Twin, recorded: Recorded) -> None:
    for fake in (twin.direct, twin.behind):
        fake.enqueue(fault=Fault.http(500))
        fake.enqueue(fault=Fault.http(429, retry_after=7))
        fake.enqueue(fault=Fault.http(529))
    answers = []
    for base in (twin.direct.base_url, twin.gateway):
        for path in ("/v1/chat/completions", "/v1/chat/completions", "/v1/messages"):
            answers.append(post(base, path, {"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 5}))
    for direct, through in zip(answers[:3], answers[3:], strict=True):
        assert (through.status, through.body) == (direct.status, direct.body)
        same_headers(direct.headers, through.headers)
    assert answers[4].headers["retry-after"] == "7"
    records = recorded.all()
    assert [(r.status, r.http_status, r.cost_nanousd) for r in records] == [
        ("error", 500, 0),
        ("error", 429, 0),
        ("error", 529, 0),
    ]
    assert [r.error_type for r in records] == ["InternalServerError", "RateLimitError", "InternalServerError"]


def test_an_unreachable_upstream_is_a_502_in_the_providers_shape(recorded: Recorded) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    app = gateway_app({"openai": closed + "/v1", "anthropic": closed})
    with serving(app) as base:
        with oa(base) as client, pytest.raises(openai.InternalServerError, match="could not reach") as info:
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert info.value.status_code == 502
        assert info.value.response.json()["error"]["code"] == "upstream_unreachable"
        with an(base) as client, pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(model=CLAUDE, max_tokens=10, messages=MSG)
        assert caught.value.status_code == 502
        assert caught.value.response.json()["error"]["type"] == "api_error"
    assert [(r.status, r.error_type) for r in recorded.all()] == [("error", "APIConnectionError")] * 2


def test_an_upstream_cut_mid_stream_cuts_the_client_and_is_recorded(
    gateway: str, fake: FakeProvider, recorded: Recorded
) -> None:
    fake.enqueue(fault=Fault.cut_stream(3))
    received = b""
    body = {"model": "gpt-4o-mini", "messages": MSG, "stream": True}
    # The gateway re-raises the upstream's failure, so uvicorn drops the client's connection without
    # the final chunk (httpx: RemoteProtocolError); a `BaseHTTPMiddleware` in front of the app ends
    # the response cleanly instead. Either way the client never sees the stream's `[DONE]`.
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", gateway + "/v1/chat/completions", json=body) as r,
    ):
        try:
            for chunk in r.iter_raw():
                received += chunk
        except httpx.RemoteProtocolError:
            pass
    assert received.count(b"data: ") == 3 and b"[DONE]" not in received
    record = recorded.one()
    assert (record.status, record.error_type) == ("error", "APIConnectionError")
    assert record.estimated and record.output_tokens == 2  # the two words seen, counted


def test_bad_bodies_are_refused_in_the_providers_shape(gateway: str, fake: FakeProvider) -> None:
    with httpx.Client() as client:
        bad = client.post(gateway + "/v1/chat/completions", content=b"{not json")
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        bad = client.post(gateway + "/v1/messages", content=b"[1, 2]")
        assert bad.status_code == 400 and bad.json()["type"] == "error"
    assert fake.requests == []


def test_bodies_over_the_limit_are_refused_even_without_a_length(
    fake: FakeProvider, recorded: Recorded
) -> None:
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 4000}]}
    ).encode()
    with serving(gateway_app(upstreams_of(fake), max_body_bytes=1024)) as base, httpx.Client() as client:
        declared = client.post(base + "/v1/chat/completions", content=body)
        chunked = client.post(base + "/v1/messages", content=iter([body[:2000], body[2000:]]))
    assert declared.status_code == chunked.status_code == 413
    assert chunked.json()["error"]["type"] == "request_too_large"
    assert fake.requests == [] and recorded.all() == []


# -- a controllable upstream: holds its stream until told, and keeps every header it got -----------


class HeldUpstream:
    """A minimal OpenAI-shaped upstream that sends the first chunk of a stream, then waits for
    `release` before the rest; `headers` keeps each request's headers, credentials included."""

    FIRST = (
        b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}'
        b"\n\n"
    )
    REST = (
        b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},'
        b'"finish_reason":"stop"}]}\n\n'
        b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,'
        b'"completion_tokens":1,"total_tokens":6}}\n\n'
        b"data: [DONE]\n\n"
    )

    def __init__(self) -> None:
        self.release = threading.Event()
        self.headers: list[dict[str, str]] = []
        held = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                held.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                try:
                    self.wfile.write(held.FIRST)
                    self.wfile.flush()
                    held.release.wait(30)
                    self.wfile.write(held.REST)
                    self.wfile.flush()
                except OSError:
                    pass  # the gateway let go of a stream its client left
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> HeldUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def recording_sink() -> Iterator[tuple[list[CallRecord], threading.Event]]:
    """Records every finished call's record, and sets the event when one arrives."""
    seen: list[CallRecord] = []
    arrived = threading.Event()

    def sink(record: CallRecord) -> None:
        seen.append(record)
        arrived.set()

    before = get_pipeline()
    set_pipeline(before.with_sinks([*before.sinks, sink]))
    try:
        yield seen, arrived
    finally:
        set_pipeline(before)


def test_streams_are_relayed_unbuffered(recorded: Recorded) -> None:
    with HeldUpstream() as upstream, serving(gateway_app({"openai": upstream.base_url + "/v1"})) as base:
        body = {
            "model": "gpt-4o-mini",
            "messages": MSG,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with (
            httpx.Client(timeout=30) as client,
            client.stream("POST", base + "/v1/chat/completions", json=body) as r,
        ):
            chunks = r.iter_raw()
            first = next(chunks)  # arrives while the upstream still holds the rest
            assert first == HeldUpstream.FIRST and not upstream.release.is_set()
            upstream.release.set()
            assert first + b"".join(chunks) == HeldUpstream.FIRST + HeldUpstream.REST
    record = recorded.one()
    assert (record.input_tokens, record.output_tokens, record.status) == (5, 1, "ok")


def test_a_client_that_leaves_mid_stream_is_recorded_with_what_was_seen(recorded: Recorded) -> None:
    with (
        recording_sink() as (seen, arrived),
        HeldUpstream() as upstream,
        serving(gateway_app({"openai": upstream.base_url + "/v1"})) as base,
    ):
        body = {"model": "gpt-4o-mini", "messages": MSG, "stream": True}
        with (
            httpx.Client(timeout=30) as client,
            client.stream("POST", base + "/v1/chat/completions", json=body) as r,
        ):
            assert next(r.iter_raw()) == HeldUpstream.FIRST
        # the client closed its connection: the gateway finishes the call and lets go of the upstream
        assert arrived.wait(10)
    (record,) = seen
    assert record.status == "ok" and record.estimated and record.output_tokens == 1  # "Hi", counted


def test_the_upstream_gets_the_servers_key_never_the_clients(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-upstream")
    with HeldUpstream() as upstream:
        upstream.release.set()
        app = gateway_app({"openai": upstream.base_url + "/v1", "anthropic": upstream.base_url})
        with serving(app) as base:
            body = {"model": "gpt-4o-mini", "messages": MSG, "stream": True}
            headers = {"authorization": "Bearer client-secret", "x-api-key": "client-secret"}
            headers |= {"openai-beta": "assistants=v2", "idempotency-key": "idem-1", "x-other": "dropped"}
            post(base, "/v1/chat/completions", body, headers)
            headers = {
                "x-api-key": "client-secret",
                "anthropic-version": "2023-06-01",
                "anthropic-beta": "b1",
            }
            post(base, "/v1/messages", {**body, "model": CLAUDE, "max_tokens": 5}, headers)
    to_openai, to_anthropic = upstream.headers
    assert to_openai["authorization"] == "Bearer sk-upstream-openai" and "x-api-key" not in to_openai
    assert (to_openai["openai-beta"], to_openai["idempotency-key"]) == ("assistants=v2", "idem-1")
    assert "x-other" not in to_openai
    assert to_anthropic["x-api-key"] == "sk-ant-upstream" and "authorization" not in to_anthropic
    assert (to_anthropic["anthropic-version"], to_anthropic["anthropic-beta"]) == ("2023-06-01", "b1")
    assert not any("client-secret" in v for h in upstream.headers for v in h.values())


def test_model_prefix_names_another_upstream(fake: FakeProvider, recorded: Recorded) -> None:
    app = gateway_app({"openai": "http://127.0.0.1:9/v1", "groq": fake.openai_base_url})
    with serving(app) as base, oa(base) as client:
        answer = client.chat.completions.create(model="groq/llama-3.1-8b-instant", messages=MSG)
    assert answer.model == "llama-3.1-8b-instant" == fake.requests[-1].json["model"]
    record = recorded.one()
    assert (record.provider, record.request_model) == ("groq", "llama-3.1-8b-instant")
