"""Attribution tags carried by `contextvars`: safe across threads and asyncio tasks.

    with costlens.tags(feature="search", user="u-42"):
        client.chat.completions.create(...)   # recorded with both tags

Nesting merges (inner keys win); leaving the block restores the outer tags.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

__all__ = ["WELL_KNOWN_TAGS", "current_tags", "tags"]

#: Tags with a meaning across costlens (reports, budgets); any other key is allowed too.
WELL_KNOWN_TAGS = ("project", "feature", "user", "environment", "task", "api_key")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_tags: ContextVar[Mapping[str, str]] = ContextVar("costlens_tags", default=_EMPTY)


def current_tags() -> Mapping[str, str]:
    """The tags in force here (read-only)."""
    return _tags.get()


def _clean(kv: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in kv.items():
        if not key or not isinstance(key, str):
            raise ValueError(f"tag names must be non-empty strings, got {key!r}")
        if value is None:
            continue
        out[key] = str(value)
    return out


@contextmanager
def tags(**kv: object) -> Iterator[Mapping[str, str]]:
    """Attribute every call made inside the block to these tags.

    Works as `with` and, because contextvars follow asyncio tasks, inside `async` code too
    (`with costlens.tags(...)` around `await`). A value of None leaves the key untouched.
    """
    merged = MappingProxyType({**_tags.get(), **_clean(kv)})
    token = _tags.set(merged)
    try:
        yield merged
    finally:
        _tags.reset(token)
