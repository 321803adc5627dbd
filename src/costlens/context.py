"""Attribution tags carried by `contextvars`: safe across threads and asyncio tasks.

    with costlens.tags(feature="search", user="u-42"):
        client.chat.completions.create(...)   # recorded with both tags

Nesting merges (inner keys win); leaving the block restores the outer tags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType

__all__ = [
    "WELL_KNOWN_TAGS",
    "current_router",
    "current_tags",
    "read_router",
    "read_tags",
    "routing_with",
    "tags",
]

#: Tags with a meaning across costlens (reports, budgets); any other key is allowed too.
WELL_KNOWN_TAGS = ("project", "feature", "user", "environment", "task", "api_key")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_tags: ContextVar[Mapping[str, str]] = ContextVar("costlens_tags", default=_EMPTY)


def current_tags() -> Mapping[str, str]:
    """The tags in force here (read-only)."""
    return _tags.get()


#: `current_tags` for the call path: the context variable's own bound `get`, no Python frame.
read_tags: Callable[[], Mapping[str, str]] = _tags.get


def _clean(kv: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in kv.items():
        if not key or not isinstance(key, str):
            raise ValueError(f"tag names must be non-empty strings, got {key!r}")
        if value is None:
            continue
        out[key] = str(value)
    return out


class tags:
    """Attribute every call made inside the block to these tags.

    Use `with costlens.tags(...)` or `async with costlens.tags(...)`; contextvars follow asyncio
    tasks, so concurrent tasks never see each other's tags. A value of None leaves the key untouched.
    """

    __slots__ = ("_kv", "_token")

    def __init__(self, **kv: object) -> None:
        self._kv = _clean(kv)
        self._token: Token[Mapping[str, str]] | None = None

    def __enter__(self) -> Mapping[str, str]:
        if self._token is not None:
            raise RuntimeError("this costlens.tags(...) block is already active; create a new one")
        merged = MappingProxyType({**_tags.get(), **self._kv})
        self._token = _tags.set(merged)
        return merged

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _tags.reset(self._token)
            self._token = None

    async def __aenter__(self) -> Mapping[str, str]:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)


# The router an explicit `router.create(client, ...)` call asked for, seen by the SDK wrapper of that
# call only (contextvars: other threads and tasks never see it).
_router: ContextVar[object | None] = ContextVar("costlens_router", default=None)


def current_router() -> object | None:
    """The router `router.create()` is routing through here, or None."""
    return _router.get()


#: `current_router` for the call path, without a Python frame (as `read_tags`).
read_router: Callable[[], object | None] = _router.get


@contextmanager
def routing_with(router: object) -> Iterator[None]:
    """Route the calls made inside the block through `router` (used by `Router.create`)."""
    token = _router.set(router)
    try:
        yield
    finally:
        _router.reset(token)
