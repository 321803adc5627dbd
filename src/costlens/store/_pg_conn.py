"""Connections of the PostgreSQL store: URL checks, a lazy fork-safe pool, errors that say what to do.

- Lazy: nothing connects until the first read or write. The first use opens one plain connection
  (a probe) before building the pool, so a server that is down fails at once with libpq's own reason
  (a pool would only time out, without saying why).
- Fork-safe: a child process never touches its parent's pool. Closing it, or even letting it be
  garbage collected, would send libpq's terminate message down sockets the parent still uses; so
  the inherited pool is parked in `_INHERITED` forever and the child builds its own.
- Errors: losing the server (refused, reset, shut down) becomes `StoreUnavailable`, naming host:port
  and what to do; after one, the next use probes first, so an outage fails fast instead of waiting
  for the pool's timeout on every call. No message or repr ever carries the password.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from costlens._errors import ConfigError, CostlensError

__all__ = ["PgPool", "StoreUnavailable", "Target", "connection_lost", "mask_url", "parse_url"]

_EXAMPLE = "postgresql://costlens:secret@db.example.com:5432/costlens"
_SECRETS = ("password", "passwd")
_DEFAULT_CONNECT_TIMEOUT_S = 10
# Pools a forked child inherited: kept referenced so they are never closed or collected there.
_INHERITED: list[ConnectionPool[psycopg.Connection[Any]]] = []


class StoreUnavailable(CostlensError):
    """The PostgreSQL server cannot be reached (down, refused, connection lost) or refused us.

    `missing_database` is True when the server answered that the database does not exist."""

    def __init__(self, message: str, *, missing_database: bool = False) -> None:
        super().__init__(message)
        self.missing_database = missing_database


def mask_url(url: str) -> str:
    """The URL with its password (in the user part or a `?password=` parameter) replaced by `***`."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.partition("://")[0] + "://***"
    netloc = parts.netloc
    if password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(k, "***" if k.lower() in _SECRETS else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class Target:
    """A checked store URL: what to connect with, and what messages may show of it."""

    def __init__(self, url: str, params: dict[str, Any]) -> None:
        self.url = url
        self.masked = mask_url(url)
        self.password = str(params.get("password") or "")
        host = str(params.get("host") or "localhost")
        self.where = f"{host}:{params.get('port') or 5432}"
        self.dbname = str(params["dbname"])
        self.kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            self.kwargs["connect_timeout"] = _DEFAULT_CONNECT_TIMEOUT_S
        if "application_name" not in params:
            self.kwargs["application_name"] = "costlens"

    def scrub(self, text: str) -> str:
        """`text` with the password, were libpq ever to echo it, replaced by `***`."""
        return text.replace(self.password, "***") if self.password else text

    def unavailable(self, exc: BaseException, doing: str = "reach") -> StoreUnavailable:
        reason = self.scrub(" ".join(str(exc).split())) or type(exc).__name__
        missing = "does not exist" in reason and f'"{self.dbname}"' in reason
        if missing:
            advice = f"create it (createdb -h HOST -p PORT {self.dbname}) or fix the database name in the URL"
        else:
            advice = "start the server, or fix the host, port or credentials in the store URL"
        return StoreUnavailable(
            f"cannot {doing} the PostgreSQL store at {self.where} (database {self.dbname!r}, "
            f"{self.masked}): {reason}. What to do: {advice}",
            missing_database=missing,
        )


def parse_url(url: str) -> Target:
    """Check a `postgresql://` / `postgres://` URL; ConfigError with an example when it is unusable."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"bad PostgreSQL store URL {mask_url(url)!r}: {why}, e.g. {_EXAMPLE}")

    try:
        port = urlsplit(url).port
        params = conninfo_to_dict(url)
    except (ValueError, psycopg.Error):
        raise bad("it cannot be parsed") from None
    if port is not None and not 0 < port < 65536:
        raise bad(f"port {port} is out of range")
    if not params.get("dbname"):
        raise bad("name a database after the host")
    return Target(url, params)


def connection_lost(exc: BaseException) -> bool:
    """Whether a psycopg error means the server is out of reach, not that a statement failed."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


class PgPool:
    """A small `psycopg_pool.ConnectionPool`, built on first use, rebuilt in a forked child."""

    def __init__(
        self,
        target: Target,
        *,
        configure: Callable[[psycopg.Connection[Any]], None] | None = None,
        min_size: int = 1,
        max_size: int = 4,
        timeout_s: float = 15.0,
    ) -> None:
        self.target = target
        self._configure = configure
        self._sizes = (min_size, max_size)
        self._timeout_s = timeout_s
        self._closed = False
        self._reset()

    def _reset(self) -> None:
        """A fresh start (at creation, and in a forked child: a parent thread may hold the old lock)."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._suspect = True  # probe before the first pooled use

    def _get(self) -> ConnectionPool[psycopg.Connection[Any]]:
        if self._pid != os.getpid():
            if self._pool is not None:
                _INHERITED.append(self._pool)
            self._reset()
        if self._closed:
            raise RuntimeError(f"{self.target.masked}: the store is closed")
        if self._suspect:
            self.probe()
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError(f"{self.target.masked}: the store is closed")
                pool = self._pool
                if pool is None:
                    pool = self._pool = self._build()
        return pool

    def _build(self) -> ConnectionPool[psycopg.Connection[Any]]:
        min_size, max_size = self._sizes
        pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self.target.url,
            kwargs=self.target.kwargs,
            min_size=min_size,
            max_size=max_size,
            timeout=self._timeout_s,
            configure=self._configure,
            check=ConnectionPool.check_connection,  # a server restart leaves dead sockets behind
            name="costlens-store",
            open=False,
        )
        pool.open(wait=False)
        return pool

    def probe(self) -> None:
        """Connect once, plainly: StoreUnavailable with libpq's reason when the server is out of reach."""
        with self.direct():
            pass
        self._suspect = False

    @contextmanager
    def direct(self) -> Iterator[psycopg.Connection[Any]]:
        """A plain autocommit connection outside the pool (probes, migrations, bulk side work)."""
        try:
            conn = psycopg.connect(self.target.url, **self.target.kwargs)
        except psycopg.OperationalError as exc:
            self._suspect = True
            raise self.target.unavailable(exc) from None
        try:
            with self._translated():
                yield conn
        finally:
            conn.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection; connection-level failures become StoreUnavailable."""
        pool = self._get()
        try:
            with self._translated(), pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            self._suspect = True
            self.probe()  # raises with the server's reason when it is down
            raise self.target.unavailable(exc, "get a connection to") from None

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            if isinstance(exc, PoolTimeout) or not connection_lost(exc):
                raise
            self._suspect = True
            raise self.target.unavailable(exc, "use") from exc

    def close(self) -> None:
        """Close the pool (not an inherited one: the parent process still uses it)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close()
