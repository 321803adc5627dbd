"""Moving call records between stores (`costlens store copy`): batched, idempotent and resumable.

Records are read in the source's (started_at, id) order and written one batch per transaction, so
a copy stopped at any moment (Ctrl-C, kill, a lost server) has committed whole batches only. After
each batch the position of its last record is saved in a small JSON checkpoint in the costlens data
folder (`copies/<key>.json`, the key a hash of both URLs, passwords left out, and the window), so
running the same copy again starts there instead of re-reading everything. Appends skip ids already
stored, which makes every overlap harmless: a batch committed just before its checkpoint was saved
is offered again and skipped, and a second copy of the same data writes nothing new.

The checkpoint is removed once a copy finishes: a later run re-reads the whole window (cheap to
skip, and it picks up late records written before the old position).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from costlens._paths import data_dir
from costlens.store._base import SpendQuery, Store, from_micros, to_micros, write_all
from costlens.usage import CallRecord

__all__ = [
    "Checkpoint",
    "CopyPosition",
    "CopyResult",
    "copy_records",
    "mask_url",
    "migrate_store",
    "store_url_of",
]

#: Query parameters that may carry a secret in a store URL (libpq accepts `?password=`).
_SECRET_PARAMS = ("password", "passwd", "secret", "token", "key")


@dataclass(frozen=True, slots=True)
class CopyPosition:
    """The last record fully written: the copy continues after it."""

    started_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What one run of `copy_records` did (also handed to `on_progress` after every batch).

    `written` counts records new to the destination, `skipped` those it already held (for a
    destination without a bulk writer, only repeats within a batch can be told apart). `total` is how
    many records the window held from the starting position, counted up front (None: not counted).
    """

    read: int = 0
    written: int = 0
    skipped: int = 0
    seconds: float = 0.0
    resumed_from: CopyPosition | None = None
    total: int | None = None

    @property
    def per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


def mask_url(url: str) -> str:
    """The URL with any password replaced by `***` (`postgresql://me:***@db/costlens`), for output.

    A comma-separated list (a fan-out store) is masked part by part."""
    if "," in url:
        return ",".join(mask_url(part) for part in url.split(","))
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL we can read (a bad port...): show nothing after the scheme
        return url.partition("://")[0] + "://***"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret = any(k.lower() in _SECRET_PARAMS for k, _ in pairs)
    if password is None and not secret:
        return url  # rebuilt, `sqlite:///x` would lose its empty host
    netloc = parts.netloc
    if password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def store_url_of(store: Store) -> str | None:
    """A URL naming the store, for checkpoints: its `url`, a SQLite store's file, else None (an
    in-process store: nothing outlives the process, so there is nothing to resume)."""
    url = getattr(store, "url", None)
    if isinstance(url, str) and url:
        return url
    path = getattr(store, "path", None)
    return f"sqlite://{path}" if isinstance(path, Path | str) and path else None


class Checkpoint:
    """The position of one copy (source, destination, window), kept in one small JSON file."""

    def __init__(self, source_url: str, dest_url: str, since: datetime | None, until: datetime | None,
                 folder: Path | None = None) -> None:  # fmt: skip
        self.source = mask_url(source_url)  # secrets neither stored nor hashed
        self.dest = mask_url(dest_url)
        self.window = [None if t is None else to_micros(t) for t in (since, until)]
        key = json.dumps([self.source, self.dest, *self.window])
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        self.path = (folder or data_dir() / "copies") / f"{digest}.json"

    def load(self) -> CopyPosition | None:
        """The saved position, or None (no checkpoint, or one this copy cannot trust)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data["source"] != self.source or data["dest"] != self.dest or data["window"] != self.window:
                return None  # a hash collision, however unlikely, must not skip records
            return CopyPosition(from_micros(int(data["started_at_us"])), str(data["id"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, position: CopyPosition) -> None:
        """Write the position atomically (a kill mid-write leaves the previous one)."""
        data: dict[str, Any] = {
            "source": self.source, "dest": self.dest, "window": self.window,
            "started_at_us": to_micros(position.started_at), "id": position.id,
            "saved_at": datetime.now(UTC).isoformat(),
        }  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(data), encoding="utf-8")
        os.replace(partial, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def copy_records(
    source: Store,
    dest: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch: int = 10_000,
    on_progress: Callable[[CopyResult], None] | None = None,
    resume: bool = True,
    source_url: str | None = None,
    dest_url: str | None = None,
    checkpoint_dir: Path | None = None,
) -> CopyResult:
    """Copy the source's records in [since, until) to `dest`, one `batch` per write transaction.

    `resume=True` continues from the checkpoint a stopped run of the same copy left; False starts
    over (and drops it). The checkpoint is keyed by the stores' URLs (`source_url`/`dest_url`, else
    found on the stores: `store_url_of`); with an in-process store there is none. `on_progress`
    receives the running totals after each batch; an exception it raises stops the copy with the
    batches so far committed and checkpointed.
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    checkpoint = _checkpoint(source, dest, source_url, dest_url, since, until, checkpoint_dir)
    start = _start(checkpoint, resume)
    lo = since if start is None else start.started_at
    clock = time.perf_counter()
    done = CopyResult(resumed_from=start, total=_count(source, lo, until))
    scan = source.iter_records(since=lo, until=until)
    try:
        records = scan if start is None else _after(scan, start)
        done = _copy_batches(records, dest, batch, checkpoint, on_progress, done, clock)
    finally:
        _close(scan)  # now, while the source is open (a stopped copy's reader is not left to the GC)
    if checkpoint is not None:
        checkpoint.clear()
    return replace(done, seconds=time.perf_counter() - clock)


def _copy_batches(
    records: Iterator[CallRecord],
    dest: Store,
    batch: int,
    checkpoint: Checkpoint | None,
    on_progress: Callable[[CopyResult], None] | None,
    done: CopyResult,
    clock: float,
) -> CopyResult:
    """Write batch after batch; each is committed, then checkpointed, then reported."""
    for chunk in _batches(records, batch):
        written = _write(dest, chunk)
        done = replace(
            done, read=done.read + len(chunk), written=done.written + written,
            skipped=done.skipped + len(chunk) - written, seconds=time.perf_counter() - clock,
        )  # fmt: skip
        if checkpoint is not None:
            checkpoint.save(CopyPosition(chunk[-1].started_at, chunk[-1].id))
        if on_progress is not None:
            on_progress(done)
    return done


def _close(records: Iterator[CallRecord]) -> None:
    close: Callable[[], None] | None = getattr(records, "close", None)
    if close is not None:
        close()


def _checkpoint(
    source: Store,
    dest: Store,
    source_url: str | None,
    dest_url: str | None,
    since: datetime | None,
    until: datetime | None,
    folder: Path | None,
) -> Checkpoint | None:
    """The copy's checkpoint, or None when either store is in-process (nothing to resume)."""
    src = source_url or store_url_of(source)
    dst = dest_url or store_url_of(dest)
    if src is not None and src == dst and not src.startswith("memory:"):
        raise ValueError(f"the source and the destination are the same store ({mask_url(src)})")
    if src is None or dst is None or src.startswith("memory:") or dst.startswith("memory:"):
        return None
    return Checkpoint(src, dst, since, until, folder)


def _start(checkpoint: Checkpoint | None, resume: bool) -> CopyPosition | None:
    if checkpoint is None:
        return None
    if not resume:
        checkpoint.clear()
        return None
    return checkpoint.load()


def _count(source: Store, since: datetime | None, until: datetime | None) -> int:
    """Records in the window, from one ungrouped aggregate (backends answer it from rollups)."""
    return sum(row.calls for row in source.query(SpendQuery(since=since, until=until)))


def _after(records: Iterator[CallRecord], position: CopyPosition) -> Iterator[CallRecord]:
    """The records after `position`, given the records from its time on.

    Those at the position's own microsecond are passed over up to its id *in the source's order*, not
    by comparing ids here: a backend may collate ids differently from Python. If the id is no longer
    there, they are all offered again; the destination skips the ones it holds."""
    at = to_micros(position.started_at)
    held: list[CallRecord] = []
    for record in records:
        if to_micros(record.started_at) != at:
            yield from held
            yield record
            break
        if record.id == position.id:
            break
        held.append(record)
    else:  # the source ended at the position's time without it
        yield from held
    yield from records


def _batches(records: Iterable[CallRecord], size: int) -> Iterator[list[CallRecord]]:
    chunk: list[CallRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write(dest: Store, chunk: list[CallRecord]) -> int:
    """One batch in one transaction (committed before its checkpoint is saved); new records."""
    with write_all(dest) as write:
        return write(chunk)


def migrate_store(store: Store) -> list[str] | None:
    """Bring the store's schema up to date; the migrations applied, when the store can tell.

    A backend tells by returning their names from `migrate()`, or through an optional
    `pending_migrations()` asked first; otherwise None (done, details unknown)."""
    pending: Callable[[], Iterable[str]] | None = getattr(store, "pending_migrations", None)
    before = list(pending()) if callable(pending) else None
    migrate: Callable[[], object] = store.migrate
    applied = migrate()
    if isinstance(applied, list | tuple):
        return [str(name) for name in applied]
    return before
