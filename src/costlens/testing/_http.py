"""The HTTP layer of the fake: a threaded stdlib server and the request handler.

Speed matters because the whole test suite goes through it: the handler disables Nagle and
buffers its writes (~1.5 ms per call instead of ~44 ms), keeps connections alive with
Content-Length, and sends streams chunked with one flush per event.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl

from costlens.testing import _openai
from costlens.testing._config import (
    Behaviour,
    Call,
    ConfigError,
    FakeUsage,
    Fault,
    Overrides,
    UsageMode,
    default_text,
    derive_input_tokens,
    parse_overrides,
    resolve_tokens,
)
from costlens.testing._finetune import FakeFineTuning
from costlens.testing._openai import SSE
from costlens.testing._routes import Route, match_route

__all__ = ["Backend", "FakeRequest", "Server"]

#: Credentials never reach `FakeProvider.requests`, so logs and snapshots can't leak them.
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"})


@dataclass(frozen=True, slots=True)
class FakeRequest:
    """One request as received; `headers` are lower-cased with credentials removed."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    body: bytes = field(repr=False)


class Backend(Protocol):
    """What the handler needs from `FakeProvider` (kept structural to avoid an import cycle)."""

    _stopping: threading.Event

    def _record(self, request: FakeRequest) -> None: ...

    def _next(self, overrides: Overrides, body: Any = None) -> tuple[Behaviour, str]: ...

    def _created(self) -> int: ...

    @property
    def fine_tuning(self) -> FakeFineTuning: ...


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() joins handlers itself, with a deadline
    request_queue_size = 128  # the default 5 drops SYNs under concurrent tests (1 s retransmits)

    def __init__(self, address: tuple[str, int], fake: Backend) -> None:
        self.fake = fake
        self._live: dict[socket.socket, threading.Thread] = {}
        self._live_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can hang offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def track(self, conn: socket.socket) -> None:
        with self._live_lock:
            self._live[conn] = threading.current_thread()

    def untrack(self, conn: socket.socket) -> None:
        with self._live_lock:
            self._live.pop(conn, None)

    def drop_connections(self) -> list[threading.Thread]:
        """Shut down every open connection (waking blocked reads); returns their handler threads."""
        with self._live_lock:
            live = list(self._live.items())
        for conn, _ in live:
            _shutdown(conn)
        return [thread for _, thread in live]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away: normal for timeouts and cut streams
        super().handle_error(request, client_address)


def _shutdown(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer
        conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 1 << 16
    server_version = "costlens-fake/1"
    sys_version = ""
    server: Server
    _seed = "0"  # the current request's number, for ids

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: test output stays clean."""

    def do_POST(self) -> None:
        try:
            self._respond()
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    # -- request ---------------------------------------------------------------------------------------

    def _respond(self) -> None:
        fake = self.server.fake
        self._seed = "0"
        path, _, query = self.path.partition("?")
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = _loads(raw)
        public = {k: v for k, v in headers.items() if k not in _SECRET_HEADERS}
        fake._record(FakeRequest(self.command, path, dict(parse_qsl(query)), public, body, raw))
        tuning = fake.fine_tuning.answer(self.command, path, dict(parse_qsl(query)), headers, raw)
        if tuning is not None:  # files and fine-tuning jobs: stateful, not per-call behaviours
            self._send_json(*tuning, [("x-request-id", "req_" + "0" * 24)])
            return
        route = match_route(path) if self.command == "POST" else None
        if route is None:
            message = f"Unknown request URL: {self.command} {path}. Please check the URL for typos."
            self._send_json(404, _openai.error_body(404, message, code="unknown_url"))
            return
        if not isinstance(body, dict):
            self._send_error(route, 400, "We could not parse the JSON body of your request.")
            return
        try:
            behaviour, self._seed = fake._next(parse_overrides(headers), body)
        except ConfigError as err:
            self._send_error(route, 400, f"costlens fake: {err}")
            return
        self._answer(route, body, behaviour)

    def _answer(self, route: Route, body: dict[str, Any], behaviour: Behaviour) -> None:
        fault = behaviour.fault
        delay = (behaviour.latency_s or 0.0) + (fault.seconds if fault and fault.kind == "timeout" else 0.0)
        if delay > 0 and self.server.fake._stopping.wait(delay):
            self._drop()
            return
        if fault is not None and fault.kind == "http":
            self._send_fault(route, fault)
            return
        if behaviour.raw is not None:
            self._send_raw(route, behaviour.raw)
            return
        call = _make_call(route, body, behaviour, self._seed, self.server.fake._created())
        kind = fault.kind if fault else None
        endpoint = route.endpoint
        if body.get("stream") is True and endpoint.stream is not None:
            self._send_sse(route, endpoint.stream(call), kind, fault.after_events if fault else 0)
        else:
            self._send_body(route, endpoint.plain(call), kind)

    # -- responses -------------------------------------------------------------------------------------

    def _request_headers(self, route: Route) -> list[tuple[str, str]]:
        request_id = "req_" + self._seed.rjust(24, "0")
        if route.provider == "anthropic":
            return [("request-id", request_id)]
        return [("x-request-id", request_id), ("openai-version", "2020-10-01"), ("openai-processing-ms", "1")]

    def _send_json(self, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        self._send_bytes(status, json.dumps(obj, separators=(",", ":")).encode(), headers)

    def _send_bytes(
        self, status: int, data: bytes, headers: Iterable[tuple[str, str]] = (), cut: bool = False
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if cut else data)
        if cut:
            self._drop()

    def _send_error(self, route: Route, status: int, message: str | None = None) -> None:
        headers = self._request_headers(route)
        self._send_json(status, route.error_body(status, message, headers[0][1]), headers)

    def _send_fault(self, route: Route, fault: Fault) -> None:
        headers = self._request_headers(route)
        if fault.retry_after is not None:
            headers.append(("retry-after", f"{fault.retry_after:g}"))
        body = (
            fault.body
            if fault.body is not None
            else route.error_body(fault.status, fault.message, headers[0][1])
        )
        self._send_json(fault.status, body, headers)

    def _send_body(self, route: Route, obj: dict[str, Any], fault: str | None) -> None:
        data = json.dumps(obj, separators=(",", ":")).encode()
        if fault == "malformed_json":
            data = data[: len(data) // 2]
        self._send_bytes(200, data, self._request_headers(route), cut=fault == "cut_stream")

    def _send_raw(self, route: Route, raw: Any) -> None:
        """A verbatim answer queued with `enqueue(raw=...)`: a JSON body, or a list of SSE events."""
        if isinstance(raw, dict):
            self._send_body(route, raw, None)
            return
        events: list[SSE] = []
        for item in raw:
            if isinstance(item, tuple):
                events.append((item[0], item[1]))
            elif isinstance(item, dict) and isinstance(item.get("type"), str):
                events.append((item["type"], item))
            else:
                events.append((None, item))
        self._send_sse(route, events, None, 0)

    def _send_sse(self, route: Route, events: list[SSE], fault: str | None, cut_after: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        for name, value in self._request_headers(route):
            self.send_header(name, value)
        self.end_headers()
        if fault == "malformed_json":
            events = events[:2]  # the second one truncated, then a clean end
        elif fault == "cut_stream":
            events = events[:cut_after]
        for index, event in enumerate(events):
            self._write_chunk(_encode_event(event, truncate=fault == "malformed_json" and index == 1))
        if fault == "cut_stream":
            self._drop()
        else:
            self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _drop(self) -> None:
        """Close abruptly (FIN mid-body): what a crashed upstream or a cut proxy looks like."""
        self.wfile.flush()
        self.close_connection = True
        _shutdown(self.connection)


def _loads(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _encode_event(event: SSE, *, truncate: bool = False) -> bytes:
    name, data = event
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    if truncate:
        payload = payload[: len(payload) // 2]
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {payload}\n\n".encode()


def _usage_mode(fault: Fault | None) -> UsageMode:
    if fault is not None and fault.kind == "usage_missing":
        return "missing"
    if fault is not None and fault.kind == "usage_negative":
        return "negative"
    if fault is not None and fault.kind == "usage_no_output":
        return "no_output"
    return "normal"


def _make_call(route: Route, body: Mapping[str, Any], behaviour: Behaviour, seed: str, created: int) -> Call:
    """Resolve the counts and the text for one answer."""
    endpoint = route.endpoint
    bound = endpoint.bound(body)
    tokens = resolve_tokens(
        behaviour.usage or FakeUsage(),
        derived_input=derive_input_tokens(body, endpoint.prompt_keys),
        bound=bound,
        text=behaviour.text,
    )
    model = body.get("model")
    return Call(
        model=model if isinstance(model, str) else route.deployment or "unknown",
        tokens=tokens,
        text=behaviour.text if behaviour.text is not None else default_text(tokens.visible_output),
        created=created,
        seed=seed,
        body=body,
        usage_mode=_usage_mode(behaviour.fault),
        truncated=bound is not None and tokens.output >= bound,
        max_deltas=behaviour.stream_deltas,
    )
