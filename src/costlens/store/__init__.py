"""Call-record stores, opened by URL: `sqlite:///abs/path.db`, `memory://`,
`postgresql://user@host:port/db`, `clickhouse://host:port/db` (native protocol port).

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
from costlens.store._errors import StoreNotFound, StoreUnusable

__all__ = [
    "BUILTIN_KEYS",
    "SpendQuery",
    "SpendRow",
    "Store",
    "StoreFactory",
    "StoreNotFound",
    "StoreUnusable",
    "UnpricedModel",
    "check_store_url",
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


def check_store_url(url: str) -> None:
    """Raise ConfigError unless a backend is registered for the URL's scheme (opens nothing)."""
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
    store = _FACTORIES[_scheme(url)](url)
    if not create:
        check = getattr(store, "check_exists", None)
        if callable(check):
            try:
                check()
            except BaseException:
                store.close()
                raise
    return store


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
