"""The gateway's upstream HTTP/1.1 client: asyncio protocols parsed by `httptools` (a declared
dependency of the server extra, the parser uvicorn itself uses), kept alive in a per-origin pool.

Why not httpx: profiled in the gateway, httpx + httpcore + h11 were about three quarters of the
time the gateway spent on a call (request/response models, cookie extraction, URL merging, h11's
pure-Python parser, anyio checkpoints, and the request head and body sent as two writes, which
wakes the upstream twice). Here a request is one `transport.write`, the response is parsed in C as
it arrives, and nothing is built that the gateway does not read.

What it keeps from the httpx client it replaces: one pool per event loop, at most 1024 connections
and 256 idle ones, `upstream_timeout_s` for connecting and between two reads, TLS verified against
the same trust store (`httpx.create_ssl_context`), no redirects followed, gzip/deflate bodies
decoded for complete responses. A proxy named in the environment (`HTTPS_PROXY`...) is not
supported here: `HttpPool` keeps using httpx for an upstream a proxy applies to.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import httptools

__all__ = ["Origin", "UpstreamError", "UpstreamPool", "UpstreamResponse"]

_MAX_CONNECTIONS = 1024
_MAX_IDLE = 256
_READ_HIGH_WATER = 256 * 1024  # unread body bytes at which the socket stops being read (backpressure)


class UpstreamError(Exception):
    """The upstream could not be reached, broke the exchange, or did not answer in time. Named
    after httpx's kinds (`kind`), so records and messages read as they did with httpx."""

    def __init__(self, kind: str, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.timeout = timeout


class Origin:
    """One upstream origin, parsed once: where to connect and the `Host` header to send."""

    __slots__ = ("host", "host_header", "port", "prefix", "tls")

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        default = 443 if self.tls else 80
        self.port = parts.port or default
        name = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = (name if self.port == default else f"{name}:{self.port}").encode("ascii")
        self.prefix = parts.path.encode("latin-1")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one exchange at a time. `httptools` calls the `on_*`
    methods while `data_received` feeds it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._error: UpstreamError | None = None
        self._paused = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.headers_done = False
        self.keep_alive = False
        self.done = False
        self._framed = False  # a length or chunked body: EOF before its end is a truncation

    def reset(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        self._parser = httptools.HttpResponseParser(self)
        self.status, self.headers, self.buffered = 0, [], 0
        self.chunks.clear()
        self.headers_done = self.done = self._framed = self.keep_alive = False

    # -- asyncio.Protocol

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError("RemoteProtocolError", f"malformed upstream response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.done and not self._framed:
            self.done = True  # a body delimited by the end of the connection
            self._wake()
        elif not self.done:
            message = str(exc) if exc else "the upstream closed the connection"
            self._fail(UpstreamError("RemoteProtocolError" if exc is None else "ReadError", message))

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        low = name.lower()
        if low == b"content-length" or (low == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()  # llhttp forgets it once the body is read
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _READ_HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.done = True
        self._wake()

    # -- the exchange

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    async def wait(self, timeout_s: float) -> None:
        """Until the parser has news (headers, body, the end) or `timeout_s` passes without any."""
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout_s, self._expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _expire(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(UpstreamError("ReadTimeout", "timed out reading", timeout=True))

    def take(self) -> bytes:
        """The body bytes parsed so far (and reading resumed, if it was paused)."""
        chunks = self.chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        return self.done and self.keep_alive and not self.closed and self._error is None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamResponse:
    """An upstream's answer: `status_code`, the raw `headers`, then the body, read whole (`aread`)
    or as it arrives (`aiter_raw`). `aclose` hands the connection back (or closes a used one)."""

    __slots__ = ("_conn", "_pool", "_timeout", "content", "headers", "status_code")

    def __init__(self, pool: UpstreamPool, key: Origin, conn: _Connection, timeout_s: float) -> None:
        self._pool: tuple[UpstreamPool, Origin] | None = (pool, key)
        self._conn = conn
        self._timeout = timeout_s
        self.status_code = conn.status
        self.headers = conn.headers
        self.content = b""

    async def aiter_raw(self) -> Any:
        """The body as it arrives (transfer-decoded, not content-decoded); `UpstreamError` if cut."""
        conn = self._conn
        while True:
            if conn.chunks:
                yield conn.take()
            if conn.done:
                if conn.chunks:
                    yield conn.take()
                return
            await conn.wait(self._timeout)

    async def aread(self) -> bytes:
        try:
            parts = [piece async for piece in self.aiter_raw()]
        finally:
            await self.aclose()
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self.content = _decoded(self.headers, body)
        return self.content

    async def aclose(self) -> None:
        owner, self._pool = self._pool, None
        if owner is not None:
            owner[0].release(owner[1], self._conn)


def _decoded(headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """gzip/deflate bodies decoded, as httpx did (identity is asked for, so this is rare)."""
    for name, value in headers:
        if name.lower() == b"content-encoding":
            coding = value.strip().lower()
            if coding in (b"gzip", b"x-gzip", b"deflate") and body:
                try:
                    wbits = 47 if coding != b"deflate" else 15
                    return zlib.decompress(body, wbits)
                except zlib.error:
                    return zlib.decompress(body, -15) if coding == b"deflate" else body
    return body


class UpstreamPool:
    """Keep-alive connections per origin for one event loop."""

    def __init__(self, timeout_s: float, ssl_context: ssl.SSLContext | None = None) -> None:
        self._timeout = timeout_s
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._slots = asyncio.Semaphore(_MAX_CONNECTIONS)
        self._closed = False

    async def send(
        self, origin: Origin, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse:
        """POST `body` to `path` (below the origin's base path); returns once the headers are in."""
        head = [b"POST ", origin.prefix, path, b" HTTP/1.1\r\nhost: ", origin.host_header, b"\r\n"]
        for name, value in headers:
            if b"\r" in value or b"\n" in value or b"\0" in value:
                raise UpstreamError("LocalProtocolError", f"illegal character in the {name.decode()} header")
            head += (name, b": ", value, b"\r\n")
        head += (b"content-length: ", b"%d" % len(body), b"\r\n\r\n", body)
        await self._slots.acquire()
        try:
            conn = await self._connection(origin)
        except BaseException:
            self._slots.release()
            raise
        try:
            assert conn.transport is not None
            conn.transport.write(b"".join(head))  # one write: the upstream wakes once
            while not conn.headers_done:
                await conn.wait(self._timeout)
        except BaseException:
            self._slots.release()
            conn.close()
            raise
        return UpstreamResponse(self, origin, conn, self._timeout)

    async def _connection(self, origin: Origin) -> _Connection:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reset()
                return conn
        loop = asyncio.get_running_loop()
        ssl_context = self._ssl if origin.tls else None
        if origin.tls and ssl_context is None:
            ssl_context = self._ssl = _ssl_context()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    _Connection,
                    origin.host,
                    origin.port,
                    ssl=ssl_context,
                    server_hostname=origin.host if ssl_context else None,
                ),
                self._timeout,
            )
        except TimeoutError:
            raise UpstreamError("ConnectTimeout", "timed out connecting", timeout=True) from None
        except OSError as exc:
            raise UpstreamError("ConnectError", str(exc) or type(exc).__name__) from exc
        return conn

    def release(self, origin: Origin, conn: _Connection) -> None:
        self._slots.release()
        if self._closed or not conn.reusable():
            conn.close()
            return
        idle = self._idle.setdefault(origin, [])
        if len(idle) < _MAX_IDLE:
            idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _ssl_context() -> ssl.SSLContext:
    import httpx

    return httpx.create_ssl_context()
