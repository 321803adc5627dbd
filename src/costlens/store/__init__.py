"""Call-record stores, opened by URL: `sqlite:///abs/path.db`, `memory://`,
`postgresql://user@host:port/db`, `clickhouse://host:port/db` (native protocol port), or a
comma-separated list of these: a `FanoutStore` that writes to all and reads from the first.

A backend registers a factory for its scheme (`register_store`); `open_store` looks the scheme
up, so a new backend (PostgreSQL, ClickHouse) is one registration, not another branch.
Backend modules are imported only when their scheme is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from costlens._errors import ConfigError
from costlens.store._base import (
    BUILTIN_KEYS,
    SpendQuery,
    SpendRow,
    Store,
    UnpricedModel,
    nanousd_to_usd,
    parse_key,
)
from costlens.store._copy import CopyResult, copy_records
from costlens.store._errors import StoreNotFound, StoreUnusable

__all__ = [
    "BUILTIN_KEYS",
    "CopyResult",
    "SpendQuery",
    "SpendRow",
    "Store",
    "StoreFactory",
    "StoreNotFound",
    "StoreUnusable",
    "UnpricedModel",
    "check_store_url",
    "copy_records",
    "known_schemes",
    "nanousd_to_usd",
    "open_store",
    "parse_key",
    "register_store",
]

#: Builds a store from the full URL (`sqlite:///tmp/x.db`).
StoreFactory = Callable[[str], Store]

_FACTORIES: dict[str, StoreFactory] = {}


def register_store(scheme: str, factory: StoreFactory) -> None:
    """Make `open_store("<scheme>://...")` call `factory(url)`; a later registration replaces one."""
    _FACTORIES[scheme.lower()] = factory


def known_schemes() -> list[str]:
    return sorted(_FACTORIES)


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def _split(url: str) -> list[str] | None:
    """The parts of a comma-separated URL list, or None for a single URL; ConfigError for an empty part."""
    if "," not in url:
        return None
    parts = [part.strip() for part in url.split(",")]
    from costlens.store.fanout import safe_url

    for i, part in enumerate(parts, 1):
        if not part:
            raise ConfigError(
                f"store URL list {safe_url(url)!r}: part {i} is empty; separate store URLs with single "
                "commas, the store to read from first (e.g. sqlite:///abs/calls.db,clickhouse://host:9000/db)"
            )
    seen: set[str] = set()
    for part in parts:
        if part in seen:
            raise ConfigError(f"store URL list {safe_url(url)!r}: {safe_url(part)!r} is listed twice")
        seen.add(part)
    return parts


def _in_list(i: int, part: str, exc: ConfigError) -> ConfigError:
    """`exc` (about one part of a URL list) saying which part it is, passwords masked."""
    from costlens.store.fanout import safe_url

    return ConfigError(f"store URL list, part {i} ({safe_url(part)!r}): {safe_url(str(exc))}")


def check_store_url(url: str) -> None:
    """Raise ConfigError unless a backend is registered for the URL's scheme (opens nothing).

    A comma-separated list is checked part by part; the error names the bad part."""
    parts = _split(url)
    if parts is not None:
        for i, part in enumerate(parts, 1):
            try:
                check_store_url(part)
            except ConfigError as exc:
                raise _in_list(i, part, exc) from None
        return
    if _scheme(url) not in _FACTORIES:
        schemes = ", ".join(s + "://" for s in known_schemes())
        raise ConfigError(
            f"unknown store URL {url!r}: use one of the schemes {schemes} "
            "(for example sqlite:///abs/path/costlens.db or memory://)"
        )


def open_store(url: str, *, create: bool = True) -> Store:
    """Open the store a URL names. Opening does no I/O until the first read or write.

    `create=False` (read commands) opens only a store that exists: a backend with a
    `check_exists()` method is asked at once, and raises `StoreNotFound` (nothing is created) or
    `StoreUnusable` (the file is a folder, not a database...).
    """
    check_store_url(url)
    parts = _split(url)
    store = _FACTORIES[_scheme(url)](url) if parts is None else _open_fanout(parts)
    if not create:
        check = getattr(store, "check_exists", None)
        if callable(check):
            try:
                check()
            except BaseException:
                store.close()
                raise
    return store


def _open_fanout(parts: list[str]) -> Store:
    """A FanoutStore over the parts (the first is read from); the ones opened are closed on an error."""
    from costlens.store.fanout import FanoutStore, safe_url

    stores: list[Store] = []
    try:
        for i, part in enumerate(parts, 1):
            try:
                stores.append(_FACTORIES[_scheme(part)](part))
            except ConfigError as exc:
                raise _in_list(i, part, exc) from None
    except BaseException:
        for opened in stores:
            opened.close()
        raise
    return FanoutStore(*stores, names=[safe_url(part) for part in parts])


def _lazy(module: str) -> StoreFactory:
    """A factory that imports `module` on first use and calls its `from_url`."""

    def factory(url: str) -> Store:
        built: Store = import_module(module).from_url(url)
        return built

    return factory


register_store("sqlite", _lazy("costlens.store.sqlite"))
register_store("memory", _lazy("costlens.store.memory"))
register_store("postgresql", _lazy("costlens.store.postgres"))
register_store("postgres", _lazy("costlens.store.postgres"))
register_store("clickhouse", _lazy("costlens.store.clickhouse"))
