"""Streams through the gateway: the upstream's bytes go to the client as they arrive, while they are
parsed as server-sent events on the side and each event (a dict) is shown to the SDK adapter's
`observe`, exactly as the SDK wrappers do.

Unless costlens asked the upstream for usage the client did not request (`Request.usage_added`),
each upstream chunk is relayed unchanged the moment it arrives. When it did, the stream is relayed
event by event (an event is complete at its blank line) with what the request added taken out:
the usage-only chunk the adapter hides, and the `"usage":null` member the upstream then puts in
every other chunk. The client receives the bytes the upstream sends for the client's own request.

The call is finished when the stream ends, when the upstream fails mid-stream (the client's
connection is then cut too, as the upstream's was), or when the client goes away (recorded with
what was seen; the upstream connection is closed, which stops the generation).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from costlens.pipeline import Call
    from costlens.server._gateway_client import UpstreamResponse
    from costlens.server._gateway_http import HttpxResponse

__all__ = ["SSEParser", "StreamRelay"]

# A blank line ends an event; lines end with CRLF, LF or CR (the SSE spec allows all three).
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\n\r\n|\r\n\n")
# What `stream_options.include_usage` adds to every chunk but the last (compact or spaced JSON).
_USAGE_NULL = (b',"usage":null', b', "usage": null', b'"usage":null,', b'"usage": null, ')


class SSEParser:
    """Splits a byte stream into complete events: (the event's raw bytes, its parsed data or None).

    Data that is not JSON (`[DONE]`, a comment, a keep-alive) parses to None."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, Any]]:
        data = self._buffer + chunk if self._buffer else chunk
        events = []
        start = 0
        while (end := _EVENT_END.search(data, start)) is not None:
            raw = data[start : end.end()]
            events.append((raw, _data_of(raw)))
            start = end.end()
        self._buffer = data[start:]
        return events

    def rest(self) -> bytes:
        """Bytes after the last complete event (a stream cut mid-event, or one without a final blank
        line); parsed too, since some servers end the last event with the stream."""
        rest, self._buffer = self._buffer, b""
        return rest


def _data_of(raw: bytes) -> Any:
    """The JSON of an event's `data:` lines (joined by newlines, as the SSE spec says), or None."""
    if raw.startswith(b"data: {"):  # the usual event: one data line of JSON, then the blank line
        payload = raw[6:].rstrip(b"\r\n")
        if b"\n" not in payload and b"\r" not in payload:
            try:
                return json.loads(payload)
            except ValueError:
                return None
    parts = [
        line[6:] if line.startswith(b"data: ") else line[5:]
        for line in raw.splitlines()
        if line.startswith(b"data:")
    ]
    if not parts:
        return None
    payload = parts[0] if len(parts) == 1 else b"\n".join(parts)
    if not payload.startswith((b"{", b"[")):
        return None  # "[DONE]" and the like
    try:
        return json.loads(payload)
    except ValueError:
        return None  # a malformed event reaches the client as it came; the SDK reports it there


def _without_usage_null(raw: bytes) -> bytes:
    for pattern in _USAGE_NULL:
        if raw.count(pattern) == 1:
            return raw.replace(pattern, b"", 1)
    return raw


class StreamRelay:
    """An ASGI response relaying one upstream stream to the client, feeding `watch` (the adapter's
    observer: True hides an event) and finishing `call` however the stream ends."""

    __slots__ = (
        "_call",
        "_ended",
        "_failure",
        "_hide",
        "_left",
        "_on_error",
        "_upstream",
        "_watch",
        "headers",
        "status",
    )

    def __init__(
        self,
        upstream: UpstreamResponse | HttpxResponse,
        headers: list[tuple[bytes, bytes]],
        call: Call,
        watch: Callable[[Any], bool],
        on_error: Callable[[BaseException], BaseException],
    ) -> None:
        self._upstream = upstream
        self.status = upstream.status_code
        self.headers = headers
        self._call = call
        self._watch = watch
        self._hide = call.request.usage_added
        self._on_error = on_error  # an `UpstreamError` -> the exception recorded (and raised) for it
        self._failure: BaseException | None = None
        self._ended = self._left = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # A plain asyncio task watches for the client leaving and cancels this one: an anyio task
        # group did the same at several times the cost, on every stream.
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.ensure_future(self._cancel_on_disconnect(receive, task))
        try:
            await self._pump(send)
        except asyncio.CancelledError:
            if not self._left or task.uncancel() > 0:
                raise  # cancelled from outside (the server stopping): not ours to swallow
        finally:
            watcher.cancel()
        if self._failure is not None:
            # The upstream cut the stream: cut the client's too (no final chunk), so its SDK reports
            # the broken stream exactly as it would have against the upstream.
            raise self._failure

    async def _cancel_on_disconnect(self, receive: Any, task: asyncio.Task[Any]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self._ended:  # a disconnect after the last chunk is the response's normal end
            self._left = True
            task.cancel()

    async def _pump(self, send: Any) -> None:
        from costlens.server._gateway_client import UpstreamError

        call, upstream = self._call, self._upstream
        parser = SSEParser()
        error: BaseException | None = None
        try:
            await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
            hide, see = self._hide, self._see
            async for chunk in upstream.aiter_raw():
                if hide:
                    out = self._relay(parser.feed(chunk))
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                    continue
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                for _, data in parser.feed(chunk):
                    see(data)
            rest = parser.rest()
            if rest:
                self._see(_data_of(rest))
            await upstream.aclose()
            call.finish()  # before the stream's end reaches the client: its record is there first
            self._ended = True
            await send({"type": "http.response.body", "body": rest, "more_body": False})
        except UpstreamError as exc:
            error = self._failure = self._on_error(exc)
        finally:
            await upstream.aclose()  # hands the connection back, or closes it: stops the generation
            call.finish(error)  # no error when the client left: recorded with what was seen

    def _see(self, data: Any) -> bool:
        return isinstance(data, dict) and self._watch(data)

    def _relay(self, events: list[tuple[bytes, Any]]) -> bytes:
        """What the client gets when hiding: the complete events, less what the request added."""
        out = []
        for raw, data in events:
            if self._see(data):
                continue  # the usage-only chunk the client did not ask for
            if isinstance(data, dict) and "usage" in data and data["usage"] is None:
                raw = _without_usage_null(raw)
            out.append(raw)
        return b"".join(out)
