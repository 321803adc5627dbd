"""A faster decoder of server-sent events for the streams of the Stainless-made SDKs (OpenAI's, Anthropic's).

A tracked stream asks for its usage event: one more event than the caller's raw stream, which the
SDK's HTTP stack reads and decodes (the usage event alone, no costlens, is about +65 µs per stream
here). The SDK's own decoder (`SSEDecoder`) spends ~4.5 µs per event in Python generators, a
regular expression per line and a copy of every line through a `bytearray`, ~90 µs for a 20-event
stream (the Anthropic SDK's: a bytes concatenation and a test per line, each event's lines split
twice); most of a stream's reads are one or more whole events (a `data:` line, or an `event:` line
and a `data:` line), which `SSEReader` decodes with one `split`, so a tracked stream reads its
events for less than a raw one.

It makes the same events (the SDK's `ServerSentEvent`, with the same fields; with `raw`, the lines
each was decoded from, as the Anthropic SDK's keep them) from the same bytes, in the same order,
with the same errors: a read that is anything else (a line cut between two reads, a CR, a comment,
an `id:` or `retry:` field, an empty event, bytes that are not UTF-8) is decoded line by line as the
SDK's decoder does (`_by_line`, the same state machine). A test checks that each SDK's decoder and
this one give the same events for random streams cut at random places. It replaces a stream's
decoder only when that is exactly its SDK's `SSEDecoder` and a probe gives the same events
(`faster_decoder`): a client's own decoder (`_make_sse_decoder`) is left alone.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

__all__ = ["SSEReader", "faster_decoder"]

_LINE_END = re.compile(b"[\r\n]")
_LF, _CR = 10, 13


class SSEReader:
    """Decodes a stream's bytes into the SDK's `ServerSentEvent`s (`make`); see the module docstring.
    `iter_bytes` / `aiter_bytes`, as the SDK's `SSEBytesDecoder` protocol."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_keep_raw", "_make", "_raw", "_retry", "_skip_lf")

    def __init__(self, make: Any, raw: bool = False) -> None:
        self._make = make
        self._keep_raw = raw  # (each event gets the lines it was decoded from: `make(..., raw=)`)
        self._buffer = bytearray()  # a line not yet ended
        self._skip_lf = False  # the last read ended with CR: a LF that starts the next ends no line
        self._reset()

    def _reset(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._raw: list[str] = []

    def iter_bytes(self, iterator: Iterable[bytes]) -> Iterator[Any]:
        try:
            for chunk in iterator:
                yield from self._feed(chunk)
            self._finish()
        finally:
            self._reset()

    async def aiter_bytes(self, iterator: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        try:
            async for chunk in iterator:
                for sse in self._feed(chunk):
                    yield sse
            self._finish()
        finally:
            self._reset()

    def _feed(self, chunk: bytes) -> Iterable[Any]:
        """The events that end in `chunk`: whole events at once, anything else by line."""
        if (
            self._buffer or self._skip_lf or self._data or self._event is not None or self._raw
            or self._retry is not None or not chunk.endswith(b"\n\n") or b"\r" in chunk
        ):  # fmt: skip
            return self._by_line(chunk)
        events = []
        new, make, last_id, keep_raw = object.__new__, self._make, self._id, self._keep_raw
        try:
            for block in chunk[:-2].split(b"\n\n"):
                # a `data:` line, or an `event:` line then a `data:` line; then the blank line that
                # dispatches the event (the split ate it)
                text = block.decode("utf-8")
                if text.startswith("data:") and "\n" not in text:
                    kind, data = None, text[5:]
                else:
                    head, _, data = text.partition("\n")
                    kind = head[6:]
                    kind = kind[1:] if kind.startswith(" ") else kind
                    if not (kind and head.startswith("event:") and data.startswith("data:")) or "\n" in data:
                        return self._by_line(chunk)
                    data = data[5:]
                # `make(data=..., event=..., id=...)` filled in place, in half the time
                # (`faster_decoder` checked that this makes the event the class's `__init__` makes)
                sse = new(make)
                sse._id, sse._event, sse._retry = last_id, kind, None
                sse._data = data[1:] if data.startswith(" ") else data
                if keep_raw:
                    sse._raw = text.split("\n")
                events.append(sse)
        except UnicodeDecodeError:  # (the SDK raises it after the events before: by line, as it)
            return self._by_line(chunk)
        return events

    def _by_line(self, chunk: bytes) -> Iterator[Any]:
        """`chunk` split into lines at CR, LF or CRLF (a line may span reads), each decoded as
        the SDK's `_SSELineDecoder` and `SSEDecoder.decode` do."""
        start = 0
        for match in _LINE_END.finditer(chunk):
            end = match.start()
            if self._skip_lf and end == start and chunk[end] == _LF:
                self._skip_lf = False
                start = end + 1
                continue
            self._skip_lf = False
            if self._buffer:
                self._buffer += chunk[start:end]
                line = bytes(self._buffer)
                self._buffer.clear()
            else:
                line = chunk[start:end]
            self._skip_lf = chunk[end] == _CR
            start = end + 1
            sse = self._decode(line.decode("utf-8"))
            if sse is not None:
                yield sse
        if start < len(chunk):
            self._skip_lf = False
            self._buffer += chunk[start:]

    def _finish(self) -> None:
        """The stream's last line, when it did not end: decoded for its errors (it ends no event)."""
        if self._buffer:
            line = bytes(self._buffer)
            self._buffer.clear()
            self._decode(line.decode("utf-8"))

    def _decode(self, line: str) -> Any:
        """One line, as the SSE standard reads it: an event on the blank line that ends one."""
        if not line:
            if not self._event and not self._data and not self._id and self._retry is None:
                self._raw = []  # (its comments, an empty event name: no event, and no lines kept)
                return None  # (an empty event name or id counts as none, as in the SDK)
            fields: dict[str, object] = {
                "event": self._event,
                "data": "\n".join(self._data),
                "id": self._id,
                "retry": self._retry,
            }
            if self._keep_raw:
                fields["raw"] = self._raw
            self._event, self._data, self._retry, self._raw = None, [], None, []  # (the last event id stays)
            return self._make(**fields)
        if self._keep_raw:
            self._raw.append(line)
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry":
            with contextlib.suppress(ValueError):  # (a retry that is not a number is ignored)
                self._retry = int(value)
        return None


#: Reads that take every path of `SSEReader`: whole events (with an event name too), lines cut
#: between reads (a CRLF too), a CR alone, comments, unknown fields, every field, an empty event
#: name, an id carried into later events, multi-line data, a character cut between reads, an empty
#: event with an id, a comment alone, a last line that never ends.
_PROBE = (
    b"data: a\n\n", b"data:b\r\n\r\n", b": c\nevent: e\nid: 1\nretry: 5\ndata: x\ndata: y\n\n",
    b"data: z\r", b"\n\r\n", b"data: after id 1\n\nevent: named\ndata: {}\n\n", b"data: \xc3", b"\xa9\n\n",
    b"event:\ndata\n\n", b"id: 2\n\n", b"retry: x\n\n", b"what: ever\ndata: cr\r\r", b": ping\n\n",
    b"event: e\n", b"data: cut\n\n", b"data: tail",
)  # fmt: skip
#: By decoder class: how to make its events (the event class, and whether they keep their lines),
#: or None where `SSEReader` does not give its events.
_VERIFIED: dict[type, tuple[Callable[..., Any], bool] | None] = {}


def faster_decoder(decoder: object) -> SSEReader | None:
    """An `SSEReader` to use instead of `decoder`, when that is its SDK's `SSEDecoder` (in a module
    that defines `ServerSentEvent`) and gives the events `SSEReader` gives for `_PROBE` (every
    attribute; with `raw` lines or without): checked once per class, so an SDK version that decodes
    otherwise keeps its own decoder. Else None."""
    kind = type(decoder)
    if kind not in _VERIFIED:
        _VERIFIED[kind] = _event_class(kind)
    verified = _VERIFIED[kind]
    return None if verified is None else SSEReader(*verified)


def _event_class(kind: type) -> tuple[Callable[..., Any], bool] | None:
    module = sys.modules.get(kind.__module__)
    make = getattr(module, "ServerSentEvent", None)
    if kind.__name__ != "SSEDecoder" or make is None or getattr(module, "SSEDecoder", None) is not kind:
        return None
    try:
        theirs = [(type(sse), vars(sse)) for sse in kind().iter_bytes(iter(_PROBE))]
    except Exception:  # (a decoder that cannot be made without arguments, or fails: its own then)
        return None
    for raw in (False, True):
        try:
            ours = [(type(sse), vars(sse)) for sse in SSEReader(make, raw).iter_bytes(iter(_PROBE))]
        except Exception:  # (an event class that takes no `raw`)
            continue
        if ours == theirs and ours:
            return make, raw
    return None
