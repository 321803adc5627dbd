"""A tracked stream read to its end is freed when its last reference goes, as a raw one is.

costlens wraps a stream's `close` (and, for OpenAI chat streams, its `_iter_events`) on the
instance. Each wrapper holds one of the stream's own bound methods: left in place they make a
reference cycle that keeps the stream, its response and ~100 more objects until the garbage
collector runs, and under load a stream a call made the collector run every few streams (and
evict the caches each time). These tests hold the collector off and check the stream is gone
as soon as the caller drops it, and that it was recorded once.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

import costlens
from costlens.testing import FakeProvider
from tests.conftest import Recorded

MSG: Any = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _openai(fake: FakeProvider, is_async: bool) -> Any:
    kind = openai.AsyncOpenAI if is_async else openai.OpenAI
    return kind(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)


def _anthropic(fake: FakeProvider, is_async: bool) -> Any:
    kind = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return kind(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0)


def _open(client: Any, sdk: str) -> Any:
    if sdk == "openai":
        return client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    return client.messages.create(model="claude-3-5-haiku-latest", max_tokens=50, messages=MSG, stream=True)


def _read_and_drop(
    make: Callable[[], Any], sdk: str, is_async: bool, then: Callable[[Any], Any] | None = None
) -> Any:
    """With a client from `make()`: read one stream to its end, drop it, close the client; a weak
    reference to the stream."""

    async def read_async() -> Any:
        client = make()
        stream = await _open(client, sdk)
        chunks = [chunk async for chunk in stream]
        assert chunks
        if then is not None:
            await then(stream)
        gone = weakref.ref(stream)
        del stream
        await client.close()
        return gone

    if is_async:
        return asyncio.run(read_async())
    client = make()
    stream = _open(client, sdk)
    assert list(stream)
    if then is not None:
        then(stream)
    gone = weakref.ref(stream)
    del stream
    client.close()
    return gone


SDKS = [("openai", _openai), ("anthropic", _anthropic)]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("sdk", "make"), SDKS, ids=[s for s, _ in SDKS])
def test_finished_stream_freed_without_the_collector(
    fake: FakeProvider, recorded: Recorded, no_gc: None, sdk: str, make: Any, is_async: bool
) -> None:
    if _read_and_drop(lambda: make(fake, is_async), sdk, is_async)() is not None:
        pytest.skip(f"this {sdk} SDK keeps a raw stream in a reference cycle itself")
    gone = _read_and_drop(lambda: costlens.track(make(fake, is_async)), sdk, is_async)
    assert gone() is None, gc.get_referrers(gone())
    record = recorded.one()
    assert record.status == "ok" and record.usage.output_tokens > 0


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_close_after_the_end_still_closes_and_records_once(
    fake: FakeProvider, recorded: Recorded, no_gc: None, is_async: bool
) -> None:
    """After the end the SDK's own `close` is back on the stream: closing it again is harmless."""
    closed: list[bool] = []

    def close_sync(stream: Any) -> None:
        assert "close" not in vars(stream)  # costlens' wrapper is off
        stream.close()
        closed.append(stream.response.is_closed)

    async def close_async(stream: Any) -> None:
        assert "close" not in vars(stream)
        await stream.close()
        closed.append(stream.response.is_closed)

    make = lambda: costlens.track(_openai(fake, is_async))  # noqa: E731
    gone = _read_and_drop(make, "openai", is_async, close_async if is_async else close_sync)
    assert closed == [True]
    assert gone() is None
    assert recorded.one().status == "ok"


def test_closed_before_the_end_is_recorded_once(fake: FakeProvider, recorded: Recorded) -> None:
    """Closed half-read, the wrapper still finishes the call (and only once)."""
    with costlens.track(_openai(fake, False)) as client:
        stream = _open(client, "openai")
        next(iter(stream))
        stream.close()
        stream.close()
    record = recorded.one()
    assert record.request_model == "gpt-4o-mini" and record.status == "ok"
