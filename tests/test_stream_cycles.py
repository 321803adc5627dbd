"""A tracked stream read to its end is freed when its last reference goes, as a raw one is; no tracked
call (plain or streamed, sync or async, budgets on or off, routed) leaves a reference cycle.

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
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

import costlens
from costlens.config import reset_budgets
from costlens.testing import FakeProvider
from tests.conftest import Recorded
from tests.test_routing_router import founding_router

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


# -- every kind of call: a tracked one leaves no more cyclic garbage than the raw SDK's ------------------


def _garbage_of(make_calls: Callable[[], None]) -> list[Any]:
    """What the collector would free after `make_calls()` (which runs a few calls): objects that only
    a reference cycle kept alive."""
    make_calls()  # warm: imports, pools, caches
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        make_calls()
        costlens.flush()
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()


class _Calls:
    """Three calls at a time on one client (async ones in one event loop of their own); `close()`
    closes both. The client lives across `_garbage_of`'s two runs, so only what calls leave counts."""

    def __init__(
        self, client: Any, sdk: str, is_async: bool, stream: bool, model: str = "gpt-4o-mini"
    ) -> None:
        self.client, self.sdk, self.stream, self.model = client, sdk, stream, model
        self.loop = asyncio.new_event_loop() if is_async else None

    def _create(self) -> Any:
        if self.sdk == "openai":
            return self.client.chat.completions.create(model=self.model, messages=MSG, stream=self.stream)
        return self.client.messages.create(
            model="claude-3-5-haiku-latest", max_tokens=50, messages=MSG, stream=self.stream
        )

    async def _three_async(self) -> None:
        for _ in range(3):
            made = await self._create()
            if self.stream:
                assert [chunk async for chunk in made]

    def __call__(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self._three_async())
            return
        for _ in range(3):
            made = self._create()
            if self.stream:
                assert list(made)

    def close(self) -> None:
        if self.loop is None:
            self.client.close()
            return
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


def _garbage_of_calls(calls: _Calls) -> list[Any]:
    try:
        return _garbage_of(calls)
    finally:
        calls.close()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("sdk", "make"), SDKS, ids=[s for s, _ in SDKS])
@pytest.mark.parametrize("with_budgets", [False, True], ids=["", "budgets"])
def test_a_tracked_call_leaves_no_reference_cycle(
    fake: FakeProvider,
    recorded: Recorded,
    sdk: str,
    make: Any,
    is_async: bool,
    stream: bool,
    with_budgets: bool,
) -> None:
    """Objects a cycle keeps wait for the collector, and make it run more often; under load each run
    walks memory that the caches no longer hold. A tracked call must leave none the raw SDK does not."""
    raw = _garbage_of_calls(_Calls(make(fake, is_async), sdk, is_async, stream))
    if with_budgets:
        costlens.configure_budgets(
            [
                costlens.Budget("all", limit_usd="1000"),
                costlens.Budget("m", limit_usd="1000", scope={"model": "*"}),
            ],
            ledger="memory://",
            lease_usd="1",
        )
    try:
        tracked = _garbage_of_calls(_Calls(costlens.track(make(fake, is_async)), sdk, is_async, stream))
    finally:
        reset_budgets()
    kinds = Counter(type(o).__qualname__ for o in tracked)
    assert len(tracked) <= len(raw), kinds.most_common(10)
    assert len(recorded.all()) == 6


def test_a_routed_call_leaves_no_reference_cycle(fake: FakeProvider, recorded: Recorded) -> None:
    router = founding_router()
    client = costlens.track(_openai(fake, False), router=router)
    tracked = _garbage_of_calls(_Calls(client, "openai", False, False, "costlens/auto"))
    assert not tracked, Counter(type(o).__qualname__ for o in tracked).most_common(10)
    assert {r.route["policy"] for r in recorded.all() if r.route} == {"router:cheapest"}


def test_a_stream_closed_half_read_leaves_no_more_garbage_than_a_raw_one(
    fake: FakeProvider, recorded: Recorded
) -> None:
    """Closed before its usage came, a lean stream becomes a `Call` to be recorded (counted): its
    stand-in for the call and the events it kept must not stay in a cycle of their own."""

    def half_read(client: Any) -> Callable[[], None]:
        def calls() -> None:
            for _ in range(3):
                stream = _open(client, "openai")
                next(iter(stream))
                stream.close()

        return calls

    with _openai(fake, False) as raw, costlens.track(_openai(fake, False)) as tracked:
        raw_garbage = _garbage_of(half_read(raw))
        tracked_garbage = _garbage_of(half_read(tracked))
    kinds = sorted({type(o).__name__ for o in tracked_garbage} - {type(o).__name__ for o in raw_garbage})
    assert len(tracked_garbage) <= len(raw_garbage), kinds
    assert len(recorded.all()) == 6 and all(r.estimated for r in recorded.all())
