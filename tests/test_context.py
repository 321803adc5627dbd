"""`costlens.tags`: nesting, threads, asyncio tasks, sync and async forms."""

from __future__ import annotations

import asyncio
import threading

import pytest

import costlens
from costlens.context import current_tags


def test_nesting_merges_and_restores() -> None:
    with costlens.tags(feature="a", user="u"):
        with costlens.tags(feature="b", task="t") as inner:
            assert dict(inner) == {"feature": "b", "user": "u", "task": "t"}
            assert dict(current_tags()) == dict(inner)
        assert dict(current_tags()) == {"feature": "a", "user": "u"}
    assert dict(current_tags()) == {}


def test_none_leaves_key_and_values_become_strings() -> None:
    with costlens.tags(user="u", n=3), costlens.tags(user=None):
        assert dict(current_tags()) == {"user": "u", "n": "3"}


def test_threads_do_not_share_tags() -> None:
    seen: dict[str, dict[str, str]] = {}
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        with costlens.tags(user=f"u{i}"):
            barrier.wait()
            seen[f"u{i}"] = dict(current_tags())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(tags == {"user": user} for user, tags in seen.items()) and len(seen) == 8


def test_async_with_and_task_isolation() -> None:
    async def one(i: int) -> dict[str, str]:
        async with costlens.tags(user=f"u{i}"):
            await asyncio.sleep(0)
            return dict(current_tags())

    async def main() -> list[dict[str, str]]:
        async with costlens.tags(feature="f"):
            return await asyncio.gather(*(one(i) for i in range(50)))

    results = asyncio.run(main())
    assert results == [{"feature": "f", "user": f"u{i}"} for i in range(50)]


def test_tags_reject_bad_names_and_reentry() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        costlens.tags(**{"": "x"})
    block = costlens.tags(a="1")
    with block, pytest.raises(RuntimeError, match="already active"), block:
        pass
