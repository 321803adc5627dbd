"""The background writer between tracked calls and the store.

`submit()` runs on the hot path of every tracked LLM call, so in `async` durability it only appends
to a deque (a few hundred nanoseconds); a daemon thread wakes every `flush_interval_s`, or as soon
as `batch_size` records wait, and appends batches in one transaction each.

Failure policy (records are never silently lost):
- store raises: retry with exponential backoff, then write the batch to a JSONL file in the spool
  folder and log an error; `replay_spool()` re-appends spooled files (appends are idempotent by id).
  While the store keeps failing, later batches are spooled after a single attempt so the queue drains.
- queue full (`max_queue`): the caller writes its own record synchronously (backpressure instead of
  blocking forever or dropping): one store attempt (bounded by the store's own timeout) then the
  spool, or straight to the spool while the store is known to be failing; a warning is logged once.
- `flush()` waits for a marker placed behind everything submitted so far; `atexit` flushes.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from costlens._errors import ConfigError, internal_error
from costlens.store import Store
from costlens.store._codec import dumps, record_from_dict, record_to_dict
from costlens.usage import CallRecord

__all__ = ["Durability", "Recorder", "replay_spool"]

log = logging.getLogger("costlens.recorder")

Durability = Literal["async", "sync"]
_DEGRADED_FOR_S = 5.0
_EXIT_TIMEOUT_S = 10.0


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
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
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
        self.durability = durability
        self._sync = durability == "sync"
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._spool_dir = None if spool_dir is None else Path(spool_dir)
        self._attempts = retries + 1
        self._backoff = retry_backoff_s
        self._owns_store = owns_store
        self._queue: deque[CallRecord | _Marker] = deque()
        self._degraded_until = 0.0
        self._overflow_warned = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start()
        _RECORDERS.add(self)

    def _start(self) -> None:
        self._wake = threading.Event()
        self._drain_lock = threading.Lock()
        self._stopping = False
        if not self._sync:
            self._thread = threading.Thread(target=self._run, name="costlens-recorder", daemon=True)
            self._thread.start()
            atexit.register(self._at_exit)

    # -- hot path ----------------------------------------------------------------------------

    def submit(self, record: CallRecord) -> None:
        """Hand one record over. Async: O(1), blocks only when the queue is full. Sync: written on return."""
        if self._sync:
            self._write([record], self._attempts)
            return
        queue = self._queue
        n = len(queue)
        if n >= self._max_queue:
            self._overflow(record)
            return
        queue.append(record)
        if n + 1 == self._batch_size:
            self._wake.set()

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
        else:
            self._write([record], 1)

    # -- writer ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()
            if self._stopping and not self._queue:
                return

    def _drain(self) -> None:
        """Write everything queued, batch by batch; a marker ends its batch and is then released."""
        with self._drain_lock:
            queue = self._queue
            while queue:
                batch: list[CallRecord] = []
                marker = None
                while queue and len(batch) < self._batch_size:
                    item = queue.popleft()
                    if isinstance(item, _Marker):
                        marker = item
                        break
                    batch.append(item)
                try:
                    if batch:
                        self._write(batch, 1 if time.monotonic() < self._degraded_until else self._attempts)
                finally:
                    if marker is not None:
                        marker.done.set()

    def _write(self, batch: Sequence[CallRecord], attempts: int) -> None:
        error: Exception | None = None
        for attempt in range(attempts):
            try:
                self.store.append(batch)
            except Exception as exc:
                error = exc
                if attempt + 1 < attempts:
                    time.sleep(self._backoff * 2**attempt)
                continue
            if self._degraded_until:
                self._degraded_until = 0.0
                log.warning("costlens: the store accepts writes again; replay the spool with replay_spool()")
            return
        assert error is not None
        self._spool(batch, error)

    def _spool(self, batch: Sequence[CallRecord], error: Exception) -> None:
        first = not self._degraded_until
        self._degraded_until = time.monotonic() + _DEGRADED_FOR_S
        try:
            path = spool_records(batch, self.spool_dir)
        except Exception as exc:
            log.critical("costlens: LOST %d call records: the store and the spool both failed", len(batch))
            internal_error(f"spooling {len(batch)} call records after the store failed ({error!r})", exc)
            return
        (log.error if first else log.debug)(
            "costlens: store %r failed (%r); spooled %d records to %s (replay with replay_spool())",
            self.store,
            error,
            len(batch),
            path,
            exc_info=error if first else None,
        )

    @property
    def spool_dir(self) -> Path:
        if self._spool_dir is None:
            from costlens.config import data_dir

            self._spool_dir = data_dir() / "spool"
        return self._spool_dir

    # -- control -----------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every record submitted before this call is written (or spooled).

        Returns False if `timeout` (seconds) ran out first.
        """
        thread = self._thread
        if self._sync or thread is None or not thread.is_alive():
            self._drain()
            return True
        marker = _Marker()
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout)

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
        if not self._closed:
            self._start()


_RECORDERS: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for recorder in list(_RECORDERS):
        recorder._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def spool_records(records: Sequence[CallRecord], spool_dir: Path) -> Path:
    """Write records to a new JSONL file atomically (temp file, fsync, rename); returns its path."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = spool_dir / f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
    tmp = path.with_suffix(".part")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.writelines(dumps(record_to_dict(r)) + "\n" for r in records)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def replay_spool(store: Store, spool_dir: str | Path) -> int:
    """Append every spooled record to `store`, deleting each file once it is written.

    Safe to run twice or from two processes at once: appends skip ids already stored.
    A file that cannot be parsed is left in place and logged. Returns the number of records read.
    """
    total = 0
    for path in sorted(Path(spool_dir).glob("*.jsonl")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
            records = [record_from_dict(json.loads(line)) for line in lines if line.strip()]
        except FileNotFoundError:  # another process replayed it
            continue
        except (ValueError, TypeError) as exc:
            log.error("costlens: cannot read spool file %s (%r); left in place", path, exc)
            continue
        for i in range(0, len(records), 500):
            store.append(records[i : i + 500])
        path.unlink(missing_ok=True)
        total += len(records)
    return total
