"""Connections of the ClickHouse store: one client per thread, and the error an unreachable server raises."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from costlens._errors import CostlensError

__all__ = ["ClickHouseUnavailable", "Clients", "network_errors"]


class ClickHouseUnavailable(CostlensError, ConnectionError):
    """The ClickHouse server did not answer; the message names host:port and what to check."""

    def __init__(self, where: str, exc: BaseException) -> None:
        self.where = where
        super().__init__(
            f"cannot reach ClickHouse at {where} ({type(exc).__name__}: {exc}): start the server, or check "
            "the host and port in the store URL (the native protocol port, 9000 by default, not the "
            "HTTP port 8123)"
        )


def network_errors() -> tuple[type[BaseException], ...]:
    from clickhouse_driver import errors

    return (errors.NetworkError, errors.SocketTimeoutError, EOFError, OSError)


class Clients:
    """One client per thread, made on first use; a forked child starts over (the parent's sockets
    are not ours to use, and not ours to close either)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pid = os.getpid()
        self._open: list[tuple[weakref.ref[threading.Thread], Any]] = []
        self._closed = False

    def get(self) -> Any:
        if self._closed:
            raise RuntimeError("this ClickHouse store is closed")
        if os.getpid() != self._pid:
            with self._lock:
                self._local, self._open, self._pid = threading.local(), [], os.getpid()
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._factory()
            with self._lock:
                # Threads come and go (executors): disconnect the clients of threads that ended.
                alive = []
                for thread, old in self._open:
                    owner = thread()
                    if owner is None or not owner.is_alive():
                        old.disconnect()
                    else:
                        alive.append((thread, old))
                self._open = [*alive, (weakref.ref(threading.current_thread()), client)]
        return client

    def close(self) -> None:
        with self._lock:
            self._closed = True
            mine = os.getpid() == self._pid
            for _, client in self._open if mine else ():
                client.disconnect()
            self._open = []
