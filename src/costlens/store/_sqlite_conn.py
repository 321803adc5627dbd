"""One SQLite connection per thread, for one file: shared by `SQLiteStore` and `SQLiteLedger`.

`ThreadConnections.get()` returns this thread's connection, opening it on first use: the folder
and file are created, the busy timeout set, the file switched to WAL (retried while another
process holds a brand-new file, see `enable_wal`), then the caller's pragmas and setup run. A
connection that fails any of these steps is closed, never kept.

- Threads: each thread has its own connection (`threading.local`); the connections of threads that
  have ended are closed whenever a new one is opened, so short-lived threads leak nothing.
- Fork: a child never uses its parent's connections (SQLite forbids carrying one across `fork`).
  After a fork (seen by `os.register_at_fork`, and by a pid check for forks that bypass it) the
  child starts afresh: new connections, new locks (a lock held by another parent thread at fork
  time would never be released in the child). The inherited connections are kept open and never
  touched: closing one could release the POSIX locks the child's own connections hold on the file.
- `lock` serialises this process's writers (the ledger holds it around each transaction, so its
  threads queue on it cheaply instead of in SQLite's sleeping busy handler); the WAL switch takes it
  too, since switching wants the file to itself.
- `new_file_pragmas` run before the WAL switch: those that only shape a file not yet written
  (`page_size`); on an existing file SQLite ignores them.
- `close()` closes every connection; `get()` then raises `ConnectionsClosed`.

`insert_rows()` writes many rows with a handful of statements instead of one per row: Python's
`sqlite3` releases the GIL around every statement step, so `executemany` over N rows hands the GIL
away N times. In a process whose other threads want it (an event loop, worker threads) each hand-off
costs a context switch and up to the 5 ms switch interval before the writer gets it back: a writer
thread's CPU per row tripled and its wall time went from microseconds to milliseconds per row.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import chain
from pathlib import Path

__all__ = ["ConnectionsClosed", "ThreadConnections", "enable_wal", "insert_flat", "insert_rows"]

_MOST_ROWS = 256
"""Rows per multi-row statement (a power of two); fewer where SQLite allows fewer variables."""
_FEW_ROWS = 8
"""Up to this many rows (a ledger's keys) go in one statement of exactly those rows."""

# Connections a forked child inherited: referenced forever, so that they are never closed there.
_INHERITED: list[sqlite3.Connection] = []
_POOLS: weakref.WeakSet[ThreadConnections] = weakref.WeakSet()


class ConnectionsClosed(RuntimeError):
    """`get()` after `close()`."""


class ThreadConnections:
    """This thread's connection to one SQLite file, opened on first use; see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float,
        pragmas: Sequence[str] = (),
        new_file_pragmas: Sequence[str] = (),
        setup: Callable[[sqlite3.Connection], None] | None = None,
        owner: str = "",
    ) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._pragmas = tuple(pragmas)
        self._new_file_pragmas = tuple(new_file_pragmas)
        self._setup = setup
        self._owner = owner or repr(str(path))
        self._closed = False
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        """A fresh start (at creation, and in a forked child); inherited connections stay open."""
        _INHERITED.extend(conn for _, conn in getattr(self, "_conns", ()))
        self._pid = os.getpid()
        self._local = threading.local()
        self._guard = threading.Lock()  # guards _conns and _closed
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self.lock = threading.RLock()

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self) -> sqlite3.Connection:
        """This thread's connection (opened now if it has none)."""
        if self._pid != os.getpid():  # a fork that bypassed os.register_at_fork
            self._reset()
        if self._closed:
            raise ConnectionsClosed(f"{self._owner} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        return conn

    def _open(self) -> sqlite3.Connection:
        with self._guard:
            if self._closed:
                raise ConnectionsClosed(f"{self._owner} is closed")
            self._close_dead_threads_conns()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            for pragma in self._new_file_pragmas:  # before the WAL switch writes the file's header
                conn.execute(pragma)
            with self.lock:  # not while a thread of ours writes: the switch wants the file to itself
                enable_wal(conn, self.busy_timeout_s)
            for pragma in self._pragmas:
                conn.execute(pragma)
            if self._setup is not None:
                self._setup(conn)
        except BaseException:
            conn.close()
            raise
        with self._guard:
            if self._closed:  # closed while we opened it
                conn.close()
                raise ConnectionsClosed(f"{self._owner} is closed")
            self._conns.append((threading.current_thread(), conn))
        return conn

    def _close_dead_threads_conns(self) -> None:
        alive = []
        for thread, conn in self._conns:
            if thread.is_alive():
                alive.append((thread, conn))
            else:
                conn.close()
        self._conns = alive

    def close(self) -> None:
        """Close every thread's connection; later `get()` calls raise `ConnectionsClosed`."""
        with self._guard:
            self._closed = True
            conns, self._conns = self._conns, []
        for _, conn in conns:
            conn.close()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL. On a new file opened by several processes at once SQLite answers
    "database is locked" at once instead of waiting (the switch needs the file to itself), so retry."""
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


@lru_cache(maxsize=128)
def _values_sql(head: str, width: int, rows: int, tail: str) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([one] * rows)}{tail}"


@lru_cache(maxsize=8)
def _most_rows(limit: int, width: int) -> int:
    most = _MOST_ROWS
    while most > 1 and most * width > limit:
        most //= 2
    return most


def insert_rows(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[object]], tail: str = ""
) -> None:
    """`head` (`INSERT INTO t (a, b)`, without VALUES) for every row, in multi-row statements;
    `tail` follows the values (` ON CONFLICT ... DO UPDATE ...`: SQLite applies it row by row, so
    two rows with the same key add up as two statements would). See `insert_flat`."""
    if rows:
        insert_flat(conn, head, list(chain.from_iterable(rows)), len(rows[0]), tail)


def insert_flat(
    conn: sqlite3.Connection, head: str, values: list[object], width: int, tail: str = ""
) -> None:
    """`insert_rows` of rows given one after another in `values`, `width` values each (a caller
    with hundreds of rows then makes no object per row).

    Up to 8 rows go in one statement of exactly those rows; more go in statements of
    256, 128, ..., 1 rows (powers of two, fewer where the connection allows fewer variables), so a
    connection prepares a handful of statement texts per `head` and row width, and keeps them.
    """
    total = len(values) // width
    if not total:
        return
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    if total <= _FEW_ROWS and total * width <= limit:
        conn.execute(_values_sql(head, width, total, tail), values)
        return
    size = _most_rows(limit, width)
    done = 0
    while done < total:
        while size > total - done:
            size //= 2
        conn.execute(_values_sql(head, width, size, tail), values[done * width : (done + size) * width])
        done += size
