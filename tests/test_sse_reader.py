"""`costlens.instrument._sse.SSEReader` gives exactly the events of the SDK's own decoder (OpenAI's,
and Anthropic's, whose events keep their raw lines).

The reader replaces the SDK's `SSEDecoder` on a tracked stream, so every difference would reach the
caller: the events (every field), their order, where an error is raised, for any bytes cut into
reads at any place. Hypothesis makes streams of the usual `data:` events mixed with everything else
the standard allows (comments, `event:`, `id:` and `retry:` fields, CR and CRLF line ends, empty
events, multi-line data, text that is not ASCII, bytes that are not UTF-8) and compares.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic._streaming
import openai._streaming
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai._streaming import ServerSentEvent, SSEDecoder

from costlens.instrument import _sse as sse_module
from costlens.instrument._sse import SSEReader, faster_decoder

_VALUE = st.text(st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=12)
_LINE = st.one_of(
    _VALUE.map(lambda v: f"data: {v}"),
    _VALUE.map(lambda v: f"data:{v}"),
    st.just("data"),
    _VALUE.map(lambda v: f"event: {v}"),
    st.sampled_from(["event:", "id:", "id: 7", "id: a\0b", "retry: 10", "retry: x", "retry:"]),
    _VALUE.map(lambda v: f": {v}"),
    _VALUE.map(lambda v: f"{v}: {v}"),
    st.just(""),
)
_END = st.sampled_from(["\n", "\r\n", "\r"])
_USUAL = st.one_of(
    _VALUE.map(lambda v: f"data: {v}\n\n"),
    st.tuples(_VALUE, _VALUE).map(lambda kv: f"event: {kv[0]}\ndata: {kv[1]}\n\n"),  # (Anthropic's)
)

#: Each SDK's decoder, its event class, and whether its events keep their raw lines.
_SDKS = pytest.mark.parametrize(
    ("sdk_decoder", "event_class", "raw"),
    [
        (SSEDecoder, ServerSentEvent, False),
        (anthropic._streaming.SSEDecoder, anthropic._streaming.ServerSentEvent, True),
    ],
    ids=["openai", "anthropic"],
)


@st.composite
def _streams(draw: Any) -> tuple[bytes, list[int]]:
    """(bytes, places to cut them into reads): mostly whole `data:` events, some anything else."""
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.booleans()):
            parts.append(draw(_USUAL).encode())
        else:
            lines = draw(st.lists(st.tuples(_LINE, _END), max_size=4))
            parts.append("".join(line + end for line, end in lines).encode())
    if draw(st.integers(0, 9)) == 0:  # bytes that are not UTF-8, somewhere
        parts.insert(draw(st.integers(0, len(parts))), draw(st.sampled_from([b"data: \xff\n\n", b"\xc3"])))
    raw = b"".join(parts)
    cuts = sorted(draw(st.sets(st.integers(1, max(len(raw) - 1, 1)), max_size=8))) if raw else []
    if draw(st.booleans()):  # reads at the events' own ends, as a server that writes each one sends
        cuts = [i for i in range(1, len(raw)) if raw[i - 2 : i] == b"\n\n"]
    return raw, cuts


def _reads(raw: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *(c for c in cuts if 0 < c < len(raw)), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _fields(sse: Any) -> tuple[Any, ...]:
    return (type(sse), sse.event, sse.data, sse.id, sse.retry, vars(sse))  # (what `json()` and repr read)


def _decode_all(decoder: Any, reads: list[bytes]) -> tuple[list[tuple[Any, ...]], str | None]:
    events: list[tuple[Any, ...]] = []
    try:
        for sse in decoder.iter_bytes(iter(reads)):
            events.append(_fields(sse))
    except UnicodeDecodeError as exc:
        return events, f"{exc.reason} {exc.object!r}"
    return events, None


@_SDKS
@settings(max_examples=400, deadline=None)
@given(stream=_streams())
def test_the_reader_gives_the_sdk_decoders_events_for_any_bytes_cut_anywhere(
    sdk_decoder: Any, event_class: Any, raw: bool, stream: Any
) -> None:
    reads = _reads(*stream)
    assert _decode_all(SSEReader(event_class, raw), reads) == _decode_all(sdk_decoder(), reads)


async def _aiter(reads: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in reads:
        yield chunk


@_SDKS
@settings(max_examples=100, deadline=None)
@given(stream=_streams())
def test_the_async_reader_gives_the_same_events(
    sdk_decoder: Any, event_class: Any, raw: bool, stream: Any
) -> None:
    reads = _reads(*stream)

    async def collect(decoder: Any) -> tuple[list[tuple[Any, ...]], str | None]:
        events: list[tuple[Any, ...]] = []
        try:
            async for sse in decoder.aiter_bytes(_aiter(reads)):
                events.append(_fields(sse))
        except UnicodeDecodeError as exc:
            return events, exc.reason
        return events, None

    ours = asyncio.run(collect(SSEReader(event_class, raw)))
    assert ours == asyncio.run(collect(sdk_decoder()))


def test_whole_data_events_take_the_fast_path_and_others_the_line_by_line_one() -> None:
    reader = SSEReader(ServerSentEvent)
    fast = reader._feed(b'data: {"a":1}\n\ndata:[DONE]\n\n')
    assert isinstance(fast, list)
    assert [(s.data, s.id, s.event) for s in fast] == [('{"a":1}', None, None), ("[DONE]", None, None)]
    named = SSEReader(ServerSentEvent)._feed(b"event: x\ndata: a\n\nevent: y\ndata:b\n\n")
    assert [(s.event, s.data) for s in named] == [("x", "a"), ("y", "b")]
    assert isinstance(named, list)
    slow = (b"data: a\n", b"data: a\r\n\r\n", b"event:\ndata: a\n\n", b"data: a\nevent: x\n\n", b": hi\n\n")
    for chunk in (*slow, b"event: x\ndata: a\ndata: b\n\n", b"event: x\nid: 1\n\n", b"\n\n"):
        assert isinstance(SSEReader(ServerSentEvent)._feed(chunk), Iterator), chunk
    # a line cut between two reads: the next read goes line by line, then whole events are fast again
    assert list(reader._feed(b"data: x")) == []
    assert [s.data for s in reader._feed(b"yz\n\n")] == ["xyz"]
    assert isinstance(reader._feed(b"data: b\n\n"), list)


def test_anthropic_events_keep_their_lines_on_either_path() -> None:
    make = anthropic._streaming.ServerSentEvent
    (fast,) = SSEReader(make, raw=True)._feed(b"event: message_stop\ndata: {}\n\n")
    assert (fast.event, fast.data, fast.raw) == ("message_stop", "{}", ["event: message_stop", "data: {}"])
    reader = SSEReader(make, raw=True)
    (slow,) = reader._feed(b": ping\nevent: e\nwhat: ever\ndata: x\n\n")
    assert slow.raw == [": ping", "event: e", "what: ever", "data: x"]
    assert list(reader._feed(b": alone\n\n")) == [] and reader._raw == []  # (no event: no lines kept)


def test_the_last_event_id_is_carried_into_the_fast_paths_events() -> None:
    reader = SSEReader(ServerSentEvent)
    assert [s.id for s in reader._feed(b"id: 41\ndata: a\n\n")] == ["41"]
    assert [(s.data, s.id) for s in reader._feed(b"data: b\n\n")] == [("b", "41")]


@pytest.mark.parametrize(
    ("decoder", "replaced"),
    [
        (openai._streaming.SSEDecoder(), True),
        (anthropic._streaming.SSEDecoder(), True),  # (its events keep their raw lines: so do ours)
        (type("SSEDecoder", (openai._streaming.SSEDecoder,), {})(), False),  # a client's own
        (object(), False),
    ],
)
def test_only_the_sdks_own_decoder_is_replaced(decoder: object, replaced: bool) -> None:
    reader = faster_decoder(decoder)
    assert (reader is not None) is replaced
    if reader is not None:
        (sse,) = reader.iter_bytes(iter([b"data: x\n\n"]))
        assert type(sse) is sys_module_of(decoder).ServerSentEvent


def sys_module_of(obj: object) -> Any:
    return sys.modules[type(obj).__module__]


def test_a_decoder_that_decodes_otherwise_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # an SDK version whose decoder reads a CR alone as no line end: its streams keep their decoder
    class SSEDecoder(openai._streaming.SSEDecoder):
        def iter_bytes(self, iterator: Any) -> Any:
            return super().iter_bytes(chunk.replace(b"\r", b"") for chunk in iterator)

    monkeypatch.setattr(sse_module, "_VERIFIED", {})
    monkeypatch.setattr(openai._streaming, "SSEDecoder", SSEDecoder)
    SSEDecoder.__module__ = openai._streaming.__name__
    assert faster_decoder(SSEDecoder()) is None
    monkeypatch.undo()
    assert faster_decoder(openai._streaming.SSEDecoder()) is not None


def test_bytes_that_are_not_utf8_raise_after_the_events_before_them_as_in_the_sdk() -> None:
    reads = [b"data: a\n\ndata: \xff\n\ndata: c\n\n"]
    ours, sdks = _decode_all(SSEReader(ServerSentEvent), reads), _decode_all(SSEDecoder(), reads)
    assert ours == sdks
    assert [fields[2] for fields in ours[0]] == ["a"]
    assert ours[1] is not None


def test_a_tracked_openai_stream_is_read_by_the_reader_and_gives_the_raw_streams_chunks(
    fake: Any, recorded: Any
) -> None:
    import costlens

    messages: Any = [{"role": "user", "content": "Say hello"}]

    def client() -> openai.OpenAI:
        return openai.OpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=0)

    with client() as raw, costlens.track(client()) as tracked:
        raw_stream = raw.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
        stream = tracked.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
        assert type(stream._decoder) is SSEReader and type(raw_stream._decoder) is SSEDecoder
        chunks = [c.model_dump(exclude={"id", "created"}) for c in stream]
        assert chunks == [c.model_dump(exclude={"id", "created"}) for c in raw_stream]
    record = recorded.one()
    assert record.output_tokens > 0 and not record.estimated

    async def async_stream() -> tuple[type, int]:
        made = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=0)
        async with costlens.track(made) as tracked:
            answer = await tracked.chat.completions.create(
                model="gpt-4o-mini", messages=messages, stream=True
            )
            return type(answer._decoder), len([c async for c in answer])

    assert asyncio.run(async_stream()) == (SSEReader, len(chunks))
    assert len(recorded.all()) == 2
