"""The background writer between tracked calls and the store.

`submit()` runs on the hot path of every tracked LLM call, so in `async` durability it only appends
to a deque (a few hundred nanoseconds); a daemon thread wakes every `flush_interval_s`, or as soon
as `batch_size` records wait, and appends what was queued when it woke in batches of one
transaction each (what arrives while it writes waits for the next wake, unless it is a batch).
What waits counts towards CPython's next young collection until it is written (a run walks
every young object and what it refers to: 0.8-2.5 ms under 100 asyncio tasks here), so a lean
call hands over one flat tuple (`costlens.pipeline.Pipeline.record_later`) and the SQLite store's
write keeps no object per record (`bench_load.py` counts them per call). A store with `append_rows`
(SQLite's) is handed rows (`costlens.usage.ROW_FIELDS`) instead of `CallRecord`s: the deferred
calls' are made as rows straight from their facts, a batch in one call of the pipeline's builder
(`ended[0].rows`), with no record object made and read back per call; the spool gets records.

Failure policy (records are never silently lost):
- store raises: retry with exponential backoff, then write the batch to a JSONL file in the spool
  folder and log an error. The first batch the store accepts again triggers a replay of the spool
  (`replay_spool()` does it by hand; appends are idempotent by id, so a record counts once).
  While the store keeps failing, later batches are spooled after a single attempt so the queue drains.
- a starved writer: a process that keeps the GIL busy (an event loop that never waits) may not
  schedule the writer thread for seconds. When `4 * batch_size` records wait and no batch was written
  for a second (the writer is woken as soon as a batch waits), the calling thread writes the oldest
  batch (one append, one attempt), or, when the writer is stuck inside a write, waits on it for
  50 ms once a second (which hands it the GIL), so the backlog stays bounded and records reach
  the store meanwhile.
- queue full (`max_queue`): the caller writes synchronously (backpressure instead of blocking
  forever or dropping): the oldest batch plus its own record when the writer thread is not writing
  (in a process that keeps the GIL busy, CPython may starve that thread for seconds), else its own
  record alone; one store attempt (bounded by the store's own timeout) then the spool, or straight
  to the spool while the store is known to be failing; a warning is logged once.
- store and spool both fail (disk full, folder not writable): the batch is lost; this is logged
  critically, counted in `Recorder.lost`, and the next `flush()` returns False.
- a process that dies while spooling leaves a `.part` file; `replay_spool()` replays its complete
  lines once its writer is gone.
- `flush()` waits for a marker placed behind everything submitted so far; `atexit` flushes.

SIGTERM (what Docker, Kubernetes and systemd send to stop a process) ends a Python process without
running `atexit`, which would silently lose what an `async` recorder still queues (up to
`flush_interval_s` of calls). So when an `async` recorder starts in the main thread, a SIGTERM handler
is installed, once per process: it flushes every live recorder (`SIGTERM_FLUSH_S` seconds at most, in
all), then ends the process as the default action would (exit status: killed by SIGTERM). A Python
handler already installed is chained, not replaced: the flush runs first, then that handler. A SIGTERM
that is ignored (`SIG_IGN`) or handled outside Python is left alone. The environment variable
`COSTLENS_SIGTERM=0` turns this off. Only the main thread may set a signal handler: a recorder started
in another thread installs nothing, and the next `async` recorder started in the main thread does
(or call `install_sigterm_handler()` from the main thread).
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from costlens import _paths
from costlens._errors import ConfigError, internal_error, late_error, raise_late_error
from costlens.store import Store
from costlens.store._codec import dumps, record_from_dict, record_to_dict
from costlens.usage import CallRecord, record_of_row, record_row

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_FLUSH_INTERVAL_S",
    "SIGTERM_FLUSH_S",
    "Durability",
    "Recorder",
    "install_sigterm_handler",
    "replay_spool",
]

log = logging.getLogger("costlens.recorder")

Durability = Literal["async", "sync"]
#: When the async writer wakes by default: this many records waiting, or this long after its last wake.
DEFAULT_BATCH_SIZE = 500
DEFAULT_FLUSH_INTERVAL_S = 0.5
_DEGRADED_FOR_S = 5.0
_EXIT_TIMEOUT_S = 10.0
SIGTERM_FLUSH_S = 5.0
"""How long the SIGTERM handler waits, in all, for the recorders to write what they queue."""
#: How long the writer may go without draining a batch, a backlog waiting, before callers write it
#: (`_help`): it is woken as soon as a batch waits, so a second without one means it is starved.
_STALE_S = 1.0
#: How long such a caller waits on a writer stuck inside a write (at most once per `_STALE_S`).
_HAND_OFF_S = 0.05
_PART_STALE_S = 10.0
"""A spool `.part` file this old (seconds) was left by a process that died while writing it."""


class _Marker:
    """Placed in the queue by `flush()`; set once everything ahead of it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class Recorder:
    """Batches call records into a store; see the module docstring for the guarantees."""

    def __init__(
        self,
        store: Store,
        *,
        durability: Durability = "async",
        max_queue: int = 10_000,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        spool_dir: str | Path | None = None,
        retries: int = 3,
        retry_backoff_s: float = 0.05,
        owns_store: bool = False,
    ) -> None:
        if durability not in ("async", "sync"):
            raise ConfigError(f"durability must be 'async' or 'sync', got {durability!r}")
        if max_queue < 1 or batch_size < 1 or flush_interval_s <= 0 or retries < 0:
            raise ConfigError(
                "Recorder needs max_queue >= 1, batch_size >= 1, flush_interval_s > 0, retries >= 0"
            )
        self.store = store
        # A store that takes rows (`append_rows`) is handed every record as one, and a deferred
        # call's record is made as one (see `costlens.usage.ROW_FIELDS`).
        rows = getattr(store, "append_rows", None)
        self._append_rows: Callable[[Sequence[Any]], None] | None = rows if callable(rows) else None
        self.durability = durability
        self._sync = durability == "sync"
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._interval = flush_interval_s
        # A backlog this long while no batch was written for `_STALE_S`: the writer thread is
        # starved (see `_help`), and callers write the oldest batches or hand it the GIL.
        self._help_at = min(max_queue, 4 * batch_size)
        self._progress = time.monotonic()  # when the writer last woke or drained a batch
        # when a caller last waited on a writer stuck inside a write: never yet (not 0.0: the
        # monotonic clock starts at the machine's boot, and a machine up for less than `_STALE_S`
        # would then wait for no writer)
        self._handed_off = -math.inf
        self._spool_dir = None if spool_dir is None else Path(spool_dir)
        self._attempts = retries + 1
        self._backoff = retry_backoff_s
        self._owns_store = owns_store
        # records, flush markers, and facts of calls whose record the writer builds (`defer`)
        self._queue: deque[CallRecord | _Marker | tuple[Any, ...]] = deque()
        self._degraded_until = 0.0
        self._overflow_warned = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._lost = 0
        self._lost_reported = 0  # `_lost` as the previous flush() saw it
        self._spooled = 0
        self._start()
        _RECORDERS.add(self)

    def _start(self) -> None:
        self._wake = threading.Event()
        self._drain_lock = threading.Lock()
        # reentrant: the SIGTERM handler runs flush() in the main thread, which may hold it already
        self._counts_lock = threading.RLock()
        self._stopping = False
        if not self._sync:
            self._thread = threading.Thread(target=self._run, name="costlens-recorder", daemon=True)
            self._thread.start()
            atexit.register(self._at_exit)
            install_sigterm_handler()

    @property
    def lost(self) -> int:
        """Records lost since this recorder was made (the store failed, then the spool too)."""
        return self._lost

    @property
    def spooled(self) -> int:
        """Records written to the spool since this recorder was made (see `replay_spool()`)."""
        return self._spooled

    # -- hot path ----------------------------------------------------------------------------

    def submit(self, record: CallRecord) -> None:
        """Hand one record over. Async: O(1), blocks only when the queue is full. Sync: written on return."""
        if self._sync:
            self._write([record], self._attempts)
            return
        queue = self._queue
        n = len(queue)
        if n >= self._help_at:  # one comparison on the hot path: a long backlog is rare
            if n >= self._max_queue:
                self._overflow(record)
            else:
                queue.append(record)
                self._help()
            return
        queue.append(record)
        if n + 1 == self._batch_size:
            self._wake.set()

    def defer(self, ended: tuple[Any, ...]) -> None:
        """Hand over a call's facts (`costlens.pipeline.Call.ended`) whose record `ended[0](ended)`
        builds: async, on the writer thread, a batch at a time; sync, or with a long backlog, here."""
        queue = self._queue
        n = len(queue)
        if self._sync or n >= self._help_at:
            self.submit(self._built(ended))
            return
        queue.append(ended)
        if n + 1 == self._batch_size:
            self._wake.set()

    def _built(self, ended: tuple[Any, ...]) -> CallRecord:
        return ended[0](ended)  # type: ignore[no-any-return]

    def _help(self) -> None:
        """A long backlog: write its oldest batch here if the writer thread made no progress for a while.

        A process whose event loop (or threads) never waits keeps the GIL, and CPython hands it to a
        waiting thread only when asked: the writer may not run for seconds while calls queue up.
        The backlog then stays near `_help_at` records: callers write a batch every batch's worth of
        calls, as the writer would. A writer that runs but is slower than the calls (it holds the
        drain lock and finishes batches) is left to it, up to `max_queue` (`_overflow`)."""
        now = time.monotonic()
        if now - self._progress < _STALE_S or now < self._degraded_until:
            return
        if self._write_oldest_here(()):
            return
        if now - self._handed_off >= _STALE_S:
            # The writer is inside a write and has not finished a batch for a second: starved of
            # the GIL mid-write (every SQLite step hands it away, and a busy loop takes it back at
            # once), or waiting on a store that is down. Waiting on its lock hands it the GIL for
            # real; briefly, and once a second, so that an outage does not stall every call.
            self._handed_off = now
            if self._drain_lock.acquire(timeout=_HAND_OFF_S):
                self._drain_lock.release()

    def _overflow(self, record: CallRecord) -> None:
        if not self._overflow_warned:
            self._overflow_warned = True
            log.warning(
                "costlens: recorder queue is full (%d records): the store is slower than the call rate; "
                "writing in the calling thread until it catches up",
                self._max_queue,
            )
        if time.monotonic() < self._degraded_until:  # the store is failing: don't wait on it here
            self._spool([record], RuntimeError("store failing; record spooled by the caller"))
        # The writer not draining (in a process whose event loop or threads keep the GIL busy,
        # CPython may not schedule it for seconds): the oldest batch goes with this record, in one
        # transaction, rather than one transaction per call from now on. The writer busy with a
        # batch: this record alone, rather than wait for it.
        elif not self._write_oldest_here((record,)):
            self._write([record], 1)

    def _write_oldest_here(self, extra: Sequence[CallRecord]) -> bool:
        """In the calling thread: write the oldest batch plus `extra` in one append (one attempt)
        if the writer is not draining; False, writing nothing, if it is."""
        if not self._drain_lock.acquire(blocking=False):
            return False
        try:
            batch, marker, _ = self._next_batch(self._batch_size)
            self._write_batch([*batch, *extra], marker, 1)
        finally:
            self._drain_lock.release()
        return True

    # -- writer ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            # A batch's worth already queued (it came in during the last write, the queue above a
            # batch all along, so no `submit` crossed the mark to wake it): no wait.
            if len(self._queue) < self._batch_size:
                self._wake.wait(self._interval)
            self._wake.clear()
            self._progress = time.monotonic()
            # What is queued now, and no more: what arrives meanwhile waits for the next wake (a
            # batch's worth, a flush, the interval). Chasing the queue's tail wrote a transaction
            # for the one or two records that came in during each write, dozens per batch, each
            # costing what a full one does (see `_drain`).
            self._drain(most=None if self._stopping else len(self._queue))
            if self._stopping and not self._queue:
                return

    def _drain(self, lock_timeout: float | None = None, most: int | None = None) -> bool:
        """Write what is queued, batch by batch; a marker ends its batch and is then released.
        `most`: the items to take at most (the writer's wake takes those queued when it woke);
        None: until the queue is empty.

        False if another drain kept the lock longer than `lock_timeout` seconds (nothing written then).

        A transaction has a cost of its own, whatever its size (SQLite: a dozen statements, and the
        last page of every B-tree written to the WAL again). The writer used to write what it woke
        for, then the record or two that came in meanwhile, and so on until none was left: 56 to
        60 transactions for 8,000 calls made back to back (median size 2), 21 now (median ~400);
        the store's CPU per record on the writer went from 7.4-7.8 µs to 6.1-6.6 µs (three runs
        each way). Where other work comes between tracked calls (`bench_load.py`'s paired loads)
        there was little to chase, and no change shows.
        """
        if not self._drain_lock.acquire(timeout=-1 if lock_timeout is None else max(lock_timeout, 0.0)):
            return False
        left = sys.maxsize if most is None else most
        try:
            while self._queue and left > 0:
                batch, marker, taken = self._next_batch(left)
                left -= taken
                attempts = 1 if time.monotonic() < self._degraded_until else self._attempts
                self._write_batch(batch, marker, attempts)
                self._progress = time.monotonic()  # not in `_help`: callers' batches are no progress
        finally:
            self._drain_lock.release()
        return True

    def _next_batch(self, most: int) -> tuple[list[Any], _Marker | None, int]:
        """The oldest records (or rows, for a store that takes them: `_write`), up to a batch
        (taking `most` queue items at most), the marker that ended it early (if one did), and how
        many items it took off the queue."""
        queue = self._queue
        rows = self._append_rows is not None
        batch: list[Any] = []
        facts: list[tuple[Any, ...]] = []  # deferred calls' facts, made into rows a run at a time
        taken = 0
        while queue and taken < most and len(batch) + len(facts) < self._batch_size:
            item = queue.popleft()
            taken += 1
            if type(item) is tuple:  # a deferred call's facts (the usual item)
                if rows:
                    facts.append(item)
                    continue
                try:
                    batch.append(self._built(item))
                except Exception as exc:  # (the pipeline's builder keeps the record when pricing fails)
                    self._count_lost(1)
                    late_error("building a call record", exc)
                continue
            if facts:
                self._add_rows(batch, facts)
            if isinstance(item, _Marker):
                return batch, item, taken
            batch.append(item)
        if facts:
            self._add_rows(batch, facts)
        return batch, None, taken

    def _add_rows(self, batch: list[Any], facts: list[tuple[Any, ...]]) -> None:
        """Append the rows of `facts` to `batch`, each run of one builder made in one call of its
        `rows` (`costlens.pipeline`), else record by record; then clear `facts`."""
        start = 0
        while start < len(facts):
            builder = facts[start][0]
            end = start + 1
            while end < len(facts) and facts[end][0] is builder:
                end += 1
            run = facts[start:end]
            start = end
            make_rows = getattr(builder, "rows", None)
            if make_rows is not None:
                try:
                    made, failed = make_rows(run)
                except Exception as exc:  # (it reports each record's own failure): record by record
                    late_error("building call records", exc)
                else:
                    batch += made
                    if failed:
                        self._count_lost(failed)
                    continue
            for ended in run:
                try:
                    batch.append(record_row(self._built(ended)))
                except Exception as exc:
                    self._count_lost(1)
                    late_error("building a call record", exc)
        facts.clear()

    def _count_lost(self, count: int) -> None:
        with self._counts_lock:
            self._lost += count

    def _write_batch(self, batch: list[Any], marker: _Marker | None, attempts: int) -> None:
        """Write `batch` (call with the drain lock held), then release the marker that ended it."""
        try:
            if batch:
                self._write(batch, attempts)
        finally:
            if marker is not None:
                marker.done.set()

    def _write(self, batch: Sequence[Any], attempts: int) -> None:
        """Append records (rows, as `_next_batch` makes them, may come among them), retrying; the
        spool takes them when every attempt fails."""
        error: Exception | None = None
        append: Callable[[Sequence[Any]], None] = self.store.append
        if self._append_rows is not None:
            append = self._append_rows
            batch = [item if type(item) is tuple else record_row(item) for item in batch]
        for attempt in range(attempts):
            try:
                append(batch)
            except Exception as exc:
                error = exc
                if attempt + 1 < attempts:
                    time.sleep(self._backoff * 2**attempt)
                continue
            if self._degraded_until:
                self._degraded_until = 0.0
                self._replay_after_outage()
            return
        assert error is not None
        self._spool(batch, error)

    def _replay_after_outage(self) -> None:
        """The store is back: hand it what was spooled while it was down (appends skip ids the store
        holds, so records another process replayed already count once)."""
        try:
            replayed = replay_spool(self.store, self.spool_dir)
        except Exception as exc:
            log.warning(
                "costlens: the store accepts writes again, but replaying the spool failed (%r); "
                "it is kept and replayed on the next recovery, or with costlens.replay_spool()",
                exc,
            )
            return
        log.warning("costlens: the store accepts writes again; replayed %d spooled records", replayed)

    def _spool(self, batch: Sequence[Any], error: Exception) -> None:
        first = not self._degraded_until
        self._degraded_until = time.monotonic() + _DEGRADED_FOR_S
        try:
            records = [record_of_row(item) if type(item) is tuple else item for item in batch]
            path = spool_records(records, self.spool_dir)
        except Exception as exc:
            with self._counts_lock:
                self._lost += len(batch)
            log.critical("costlens: LOST %d call records: the store and the spool both failed", len(batch))
            internal_error(f"spooling {len(batch)} call records after the store failed ({error!r})", exc)
            return
        with self._counts_lock:
            self._spooled += len(batch)
        (log.error if first else log.debug)(
            "costlens: store %r failed (%r); spooled %d records to %s (replayed when the store is back)",
            self.store,
            error,
            len(batch),
            path,
            exc_info=error if first else None,
        )

    @property
    def spool_dir(self) -> Path:
        """The folder given to the constructor, else `costlens._paths.spool_dir()` (read on first use)."""
        if self._spool_dir is None:
            self._spool_dir = _paths.spool_dir()
        return self._spool_dir

    # -- control -----------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every record submitted before this call is written (or spooled).

        Returns True when everything handed over up to now reached the store or the spool.
        Returns False if `timeout` (seconds) ran out first, or if records were lost since the
        previous `flush()`: the store and the spool both failed (each loss is also logged and
        counted in `lost`). A loss is reported by the first `flush()` after it, not again.
        In strict mode, a failure on the writer thread (building a deferred record) is raised here.
        """
        thread = self._thread
        if self._sync or thread is None or not thread.is_alive():
            done = self._drain(timeout)
        else:
            marker = _Marker()
            self._queue.append(marker)
            self._wake.set()
            done = marker.done.wait(timeout)
        with self._counts_lock:
            lost_since = self._lost != self._lost_reported
            self._lost_reported = self._lost
        raise_late_error()  # strict mode (tests): what failed on the writer thread fails here
        return done and not lost_since

    def replay_spool(self) -> int:
        """Re-append every spooled file to this recorder's store; returns the number of records read."""
        return replay_spool(self.store, self.spool_dir)

    def close(self, timeout: float | None = _EXIT_TIMEOUT_S) -> None:
        """Write what is queued, stop the thread, close the store if this recorder opened it.

        A record submitted afterwards is written synchronously.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._at_exit)
        thread = self._thread
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join(timeout)
        self._sync = True
        if thread is not None and thread.is_alive():
            log.error(
                "costlens: %d records still queued after %ss; not waiting longer", len(self._queue), timeout
            )
        else:
            self._drain()
        if self._owns_store:
            self.store.close()

    def _at_exit(self) -> None:
        try:
            self.close()
        except Exception as exc:
            internal_error("writing call records at exit", exc)

    def _after_fork(self) -> None:
        """In a forked child: the parent writes what it queued; the child needs its own thread."""
        self._queue.clear()
        if self._closed:
            self._counts_lock = threading.RLock()  # another thread may have held it at fork time
        else:
            self._start()


_RECORDERS: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for recorder in list(_RECORDERS):
        recorder._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


# -- SIGTERM -----------------------------------------------------------------------------------------

_SigHandler = Callable[[int, FrameType | None], Any]
_sigterm_pid: int | None = None  # the process our handler is installed in
_previous_sigterm: _SigHandler | None = None  # the Python handler ours chains to; None: SIG_DFL
_in_sigterm = False
_OFF = ("0", "false", "no", "off")


def install_sigterm_handler() -> bool:
    """Flush every recorder on SIGTERM (see the module docstring); True if the handler is in place.

    `Recorder` calls it when an `async` recorder starts. It installs nothing (and returns False)
    outside the main thread, when `COSTLENS_SIGTERM=0`, when SIGTERM is ignored or handled outside
    Python, and off POSIX. It installs at most once per process (a forked child inherits it).
    """
    global _sigterm_pid, _previous_sigterm
    if _sigterm_pid == os.getpid():
        return True
    if os.name != "posix" or os.environ.get("COSTLENS_SIGTERM", "1").strip().lower() in _OFF:
        return False
    if threading.current_thread() is not threading.main_thread():
        return False  # only the main thread may set handlers: a later recorder will try again
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is not _on_sigterm:  # else: inherited from the parent of this forked child
            if current is signal.SIG_DFL:
                previous = None
            elif callable(current):
                previous = current
            else:  # SIG_IGN: SIGTERM ends nothing; None: a handler not set from Python
                return False
            signal.signal(signal.SIGTERM, _on_sigterm)
            _previous_sigterm = previous
    except (ValueError, OSError) as exc:  # e.g. an embedding application forbids it
        log.debug("costlens: cannot install the SIGTERM handler (%r)", exc)
        return False
    _sigterm_pid = os.getpid()
    return True


def _flush_all(timeout: float) -> bool:
    """Flush every live recorder within `timeout` seconds in all; False if one did not finish."""
    deadline = time.monotonic() + timeout
    ok = True
    for recorder in list(_RECORDERS):
        try:
            done = recorder.flush(max(0.0, deadline - time.monotonic()))
        except Exception as exc:
            log.error("costlens: writing call records on SIGTERM failed (%r)", exc)
            done = False
        left = sum(1 for item in list(recorder._queue) if not isinstance(item, _Marker))
        if not done and left:
            ok = False
            log.error("costlens: SIGTERM: %d call records still queued after %ss; lost", left, timeout)
    return ok


def _flush_in_a_fresh_thread(timeout: float) -> None:
    """Flush from a new thread and wait for it at most `timeout` (+1 s).

    A signal handler runs in the main thread between two bytecodes, possibly while that thread holds
    a lock the flush needs (inside `Event.set()` of the recorder's wake-up, in a store write):
    flushing in the handler itself could then wait forever. A fresh thread (started without any
    `threading` lock, which the main thread may hold too) does the flush; if it blocks, the handler
    gives up after the timeout and the process still ends."""
    finished = _thread.allocate_lock()
    finished.acquire()

    def run() -> None:
        try:
            _flush_all(timeout)
        finally:
            finished.release()

    _thread.start_new_thread(run, ())
    if not finished.acquire(timeout=timeout + 1.0):
        log.error(
            "costlens: SIGTERM: the flush did not finish within %ss; records still queued are lost", timeout
        )


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Write what is queued, then call the handler we chained to, or end the process like SIG_DFL."""
    global _in_sigterm
    if not _in_sigterm:  # a second SIGTERM during the flush ends the process at once
        _in_sigterm = True
        try:
            _flush_in_a_fresh_thread(SIGTERM_FLUSH_S)
        finally:
            _in_sigterm = False
    previous = _previous_sigterm
    if previous is not None:
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # the exit status says "killed by SIGTERM", as without us
    os._exit(128 + signum)  # reached only if this thread blocks the signal


def spool_records(records: Sequence[CallRecord], spool_dir: Path) -> Path:
    """Write records to a new JSONL file atomically (temp file, fsync, rename); returns its path.

    On failure (disk full) the temp file is removed and the error raised.
    """
    spool_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = spool_dir / f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
    tmp = path.with_suffix(".part")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.writelines(dumps(record_to_dict(r)) + "\n" for r in records)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path


def replay_spool(store: Store, spool_dir: str | Path) -> int:
    """Append every spooled record to `store`, deleting each file once it is written.

    Safe to run twice or from two processes at once: appends skip ids already stored.
    A file that cannot be parsed is left in place and logged. A `.part` file is one being written;
    one whose writer died (the pid in its name is gone, or it is older than `_PART_STALE_S`) is
    replayed too: its complete lines are appended, a torn last line or an unreadable line is
    logged and skipped, and the file is deleted. Returns the number of records read.
    """
    folder = Path(spool_dir)
    total = 0
    for path in sorted([*folder.glob("*.jsonl"), *folder.glob("*.part")], key=lambda p: p.name):
        try:
            if path.suffix == ".part":
                if not _orphaned(path):
                    continue
                records = _read_orphan(path)
            else:
                lines = path.read_text(encoding="utf-8").splitlines()
                records = [record_from_dict(json.loads(line)) for line in lines if line.strip()]
        except FileNotFoundError:  # another process replayed it, or its writer renamed it
            continue
        except (ValueError, TypeError) as exc:
            log.error("costlens: cannot read spool file %s (%r); left in place", path, exc)
            continue
        for i in range(0, len(records), 500):
            store.append(records[i : i + 500])
        path.unlink(missing_ok=True)
        total += len(records)
    return total


def _orphaned(part: Path) -> bool:
    """True if the process that was writing `part` is gone: its pid is dead, or the file is stale."""
    if time.time() - part.stat().st_mtime > _PART_STALE_S:
        return True
    fields = part.stem.split("-")
    if len(fields) < 2 or not fields[1].isdigit():
        return False  # no pid to check: wait until it is stale
    pid = int(fields[1])
    if pid == os.getpid():
        return False  # a thread of this process is writing it now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, another user's
        return False
    return False


def _read_orphan(part: Path) -> list[CallRecord]:
    """The complete, readable lines of a `.part` file whose writer died midway."""
    *lines, tail = part.read_bytes().split(b"\n")
    if tail.strip():
        log.warning("costlens: spool file %s ends in a torn line (%d bytes); skipped", part, len(tail))
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(record_from_dict(json.loads(line.decode("utf-8"))))
        except (ValueError, TypeError) as exc:
            log.warning("costlens: spool file %s line %d is unreadable (%r); skipped", part, number, exc)
    log.warning(
        "costlens: replaying %d records from %s, left by a process that died while spooling",
        len(records),
        part,
    )
    return records
