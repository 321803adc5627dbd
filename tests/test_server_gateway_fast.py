"""The gateway's fast paths: the plain-ASGI dispatch (`_gateway_asgi`) still runs auth, the body
limit and CORS; the caller's bytes go upstream unchanged; the lean upstream client
(`_gateway_client`) keeps connections alive, reads every response framing, times out, and hands
over to httpx where a proxy applies."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from costlens.server import _gateway_http
from costlens.server._keys import KeyStore
from costlens.testing import FakeProvider
from tests.conftest import Recorded
from tests.test_server_gateway import MSG, gateway_app, serving, upstreams_of

CHAT = "/v1/chat/completions"


@pytest.fixture
def fast(fake: FakeProvider, recorded: Recorded) -> Iterator[str]:
    with serving(gateway_app(upstreams_of(fake))) as base:
        yield base


def test_keys_and_scopes_are_enforced_on_the_fast_path(tmp_path: Path, fake: FakeProvider) -> None:
    db = tmp_path / "keys.db"
    gateway_key, _ = KeyStore(db).create("gw", ["gateway"])
    read_key, _ = KeyStore(db).create("reader", ["read"])
    app = gateway_app(upstreams_of(fake), keys_db=db, require_keys=True)
    body = {"model": "gpt-4o-mini", "messages": MSG}
    with serving(app) as base, httpx.Client(base_url=base) as client:
        none = client.post(CHAT, json=body)
        assert none.status_code == 401 and none.json()["error"]["type"] == "authentication_error"
        bad = client.post(CHAT, json=body, headers={"authorization": "Bearer clk_not_a_key"})
        assert bad.status_code == 401
        wrong = client.post("/v1/messages", json=body, headers={"x-api-key": read_key})
        assert wrong.status_code == 403 and wrong.json()["type"] == "error"  # Anthropic's shape
        ok = client.post(CHAT, json=body, headers={"authorization": f"Bearer {gateway_key}"})
        assert ok.status_code == 200, ok.text
    assert len(fake.requests) == 1  # refused requests never went upstream


def test_the_body_limit_holds_with_and_without_a_length(fake: FakeProvider, recorded: Recorded) -> None:
    app = gateway_app(upstreams_of(fake), max_body_bytes=1024)
    big = json.dumps({"model": "gpt-4o-mini", "messages": MSG, "pad": "x" * 2000}).encode()

    def chunked() -> Iterator[bytes]:
        yield big[:1000]
        yield big[1000:]

    with serving(app) as base, httpx.Client(base_url=base) as client:
        assert client.post(CHAT, content=big).status_code == 413
        refused = client.post(CHAT, content=chunked())
        assert refused.status_code == 413 and refused.json()["error"]["type"] == "request_too_large"
        small = json.dumps({"model": "gpt-4o-mini", "messages": MSG}).encode()
        assert client.post(CHAT, content=iter([small[:10], small[10:]])).status_code == 200
    assert len(fake.requests) == 1


def test_cors_wraps_the_fast_path(fake: FakeProvider, recorded: Recorded) -> None:
    app = gateway_app(upstreams_of(fake), cors_origins=["https://app.example"])
    origin = {"origin": "https://app.example"}
    with serving(app) as base, httpx.Client(base_url=base) as client:
        answer = client.post(CHAT, json={"model": "gpt-4o-mini", "messages": MSG}, headers=origin)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "https://app.example"
        preflight = client.options(CHAT, headers={**origin, "access-control-request-method": "POST"})
        assert preflight.status_code == 200
        assert "POST" in preflight.headers["access-control-allow-methods"]
        other = client.post(
            CHAT, json={"model": "gpt-4o-mini", "messages": MSG}, headers={"origin": "https://evil"}
        )
        assert "access-control-allow-origin" not in other.headers


def test_other_methods_and_paths_still_reach_the_router(fast: str) -> None:
    with httpx.Client(base_url=fast) as client:
        assert client.get(CHAT).status_code == 405
        assert client.post("/v1/unknown", json={}).status_code == 404


def test_the_callers_bytes_go_upstream_unchanged(fast: str, fake: FakeProvider) -> None:
    raw = b'{ "messages": [{"content": "caf\\u00e9", "role": "user"}],\n  "model": "gpt-4o-mini" }'
    with httpx.Client(base_url=fast) as client:
        answer = client.post(CHAT + "?trace=1", content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 200
    (seen,) = fake.requests
    assert seen.body == raw and seen.query == {"trace": "1"}


# -- upstreams of other kinds ------------------------------------------------------------------


CHAT_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


@contextmanager
def upstream(kind: str) -> Iterator[tuple[str, list[int]]]:
    """A hand-made upstream answering every POST in the framing `kind` names; yields its base URL
    and the client ports it saw (one per connection)."""
    peers: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            if self.client_address[1] not in peers:
                peers.append(self.client_address[1])
            data = json.dumps(CHAT_ANSWER).encode()
            if kind == "slow":
                time.sleep(1.0)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            if kind == "gzip":
                data = gzip.compress(data)
                self.send_header("content-encoding", "gzip")
            if kind == "chunked":
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for piece in (data[:7], data[7:]):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
                return
            if kind == "eof":
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True
                return
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", peers
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["length", "chunked", "eof", "gzip"])
def test_every_response_framing_is_read(kind: str, recorded: Recorded) -> None:
    with upstream(kind) as (base, peers):
        app = gateway_app({"openai": base + "/v1"})
        with serving(app) as gw, httpx.Client(base_url=gw) as client:
            for _ in range(3):
                answer = client.post(CHAT, json={"model": "gpt-4o-mini", "messages": MSG})
                assert answer.status_code == 200 and answer.json() == CHAT_ANSWER
    assert len(peers) == (3 if kind == "eof" else 1)  # kept alive unless the upstream closes
    assert [r.usage.output_tokens for r in recorded.all()] == [1, 1, 1]


def test_an_upstream_too_slow_is_a_504(recorded: Recorded) -> None:
    with upstream("slow") as (base, _):
        app = gateway_app({"openai": base + "/v1"}, upstream_timeout_s=0.2)
        with serving(app) as gw, httpx.Client(base_url=gw) as client:
            answer = client.post(CHAT, json={"model": "gpt-4o-mini", "messages": MSG})
    assert answer.status_code == 504 and answer.json()["error"]["code"] == "upstream_timeout"
    assert [(r.status, r.error_type) for r in recorded.all()] == [("error", "APITimeoutError")]


def test_a_proxied_upstream_goes_through_httpx(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_gateway_http, "_proxied", lambda base: True)
    body = {"model": "gpt-4o-mini", "messages": MSG}
    with serving(gateway_app(upstreams_of(fake))) as gw, httpx.Client(base_url=gw) as client:
        plain = client.post(CHAT, json=body)
        with client.stream("POST", CHAT, json={**body, "stream": True}) as streamed:
            text = b"".join(streamed.iter_raw())
    assert plain.status_code == 200 and plain.json()["choices"]
    assert text.endswith(b"data: [DONE]\n\n") and b'"usage":{' not in text  # the added usage hidden
    assert [r.status for r in recorded.all()] == ["ok", "ok"]


def test_proxies_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert not _gateway_http._proxied("https://api.openai.com/v1")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert _gateway_http._proxied("https://api.openai.com/v1")
    assert not _gateway_http._proxied("http://127.0.0.1:9/v1")
    monkeypatch.setenv("NO_PROXY", "api.openai.com")
    assert not _gateway_http._proxied("https://api.openai.com/v1")


def test_a_header_with_a_line_break_never_goes_upstream(
    fast: str, fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test\r\nx-injected: 1")
    with httpx.Client(base_url=fast) as client:
        answer = client.post(CHAT, json={"model": "gpt-4o-mini", "messages": MSG})
    assert answer.status_code == 502
    assert "sk-test" not in answer.text
    assert fake.requests == []
