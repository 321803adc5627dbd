"""The run's journal and the result cache: what makes a run resumable and identical requests free.

The journal (`results.jsonl` in the run folder) gets one line per finished (strategy, item, repeat),
written and fsynced *before* the line's call records go on to the store. So after a kill:
- a line in the journal is never called again, and its records are handed to the store again on
  resume (stores skip ids they already hold): nothing recorded is lost, nothing is recorded twice;
- a call whose line was not written is made again. Only calls in flight at the kill (at most the
  run's concurrency) can be paid twice at the provider; costlens records each paid call once.

The cache (`cache.sqlite3` beside the runs) keeps verdicts, not text: the key is the request, the
repeat, the scorer and the item's expected answer, so a hit is exactly the verdict a new call would
be scored to, had the model answered the same. Response text is kept only with `keep_answers`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from costlens.evals._results import RESULTS_FILE, Outcome, read_outcomes
from costlens.usage import CallRecord, record_from_dict, record_to_dict

__all__ = ["Journal", "ResultCache"]


class Journal:
    """Appends outcomes, each with the records it paid for, durably; reads back what was done.

    Appends are group-committed: each writer returns only once an fsync that began after its line
    was written has finished, and one fsync covers every line written before it, so concurrent
    workers share the disk's sync latency instead of queueing for one each.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / RESULTS_FILE
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._handle: IO[str] | None = None
        self._written = 0  # lines written (under _write_lock)
        self._synced = 0  # lines known to be on disk (under _sync_lock)

    def read(self) -> tuple[dict[tuple[str, str, int], Outcome], list[CallRecord]]:
        """The latest outcome per key, and every record the journal carries (to hand on again)."""
        latest: dict[tuple[str, str, int], Outcome] = {}
        records: list[CallRecord] = []
        for outcome, raw in read_outcomes(self.path):
            latest[outcome.key] = outcome
            records.extend(record_from_dict(r) for r in raw if isinstance(r, dict))
        self._trim_torn_tail()
        return latest, records

    def _trim_torn_tail(self) -> None:
        """A kill mid-write leaves a last line without its newline; cut it so the next append starts
        a fresh line (the item it held was never acknowledged and is called again)."""
        try:
            with self.path.open("rb+") as handle:
                data = handle.read()
                if data and not data.endswith(b"\n"):
                    handle.truncate(data.rfind(b"\n") + 1)
        except FileNotFoundError:
            return

    def append(self, outcome: Outcome, records: Sequence[CallRecord]) -> None:
        """Write the line and return once it is on disk."""
        line = json.dumps(
            {"outcome": outcome.to_json(), "records": [record_to_dict(r) for r in records]},
            ensure_ascii=False,
            default=str,
            separators=(",", ":"),
        )
        with self._write_lock:
            if self._handle is None:
                self._handle = self.path.open("a", encoding="utf-8")
            self._handle.write(line + "\n")
            self._handle.flush()
            self._written += 1
            mine = self._written
            handle = self._handle
        with self._sync_lock:
            if self._synced >= mine:
                return  # an fsync that started after our write already covered it
            with self._write_lock:
                covered = self._written
            os.fsync(handle.fileno())
            self._synced = covered

    def close(self) -> None:
        with self._write_lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


_SCHEMA = "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, outcome TEXT NOT NULL)"
_KEPT = frozenset(
    {"correct", "score", "answer", "model", "input_tokens", "output_tokens", "cost", "latency_ms", "reason"}
)


class ResultCache:
    """Verdicts of earlier identical requests, shared by runs (a SQLite file; thread-safe).

    New verdicts are written in batches of `batch` (and at `close`): one transaction each instead of
    one per item, so workers do not queue on the file. Unwritten ones are still answered from memory;
    a kill loses at most a batch of cache entries, which the run's journal holds anyway.
    """

    def __init__(self, path: Path, *, batch: int = 64) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A cache: losing the last few verdicts to a power cut only costs calls made again, so it
        # need not fsync every commit (the journal is what makes a run durable).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}
        self._batch = batch

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            text = self._pending.get(key)
            if text is None:
                row = self._db.execute("SELECT outcome FROM results WHERE key = ?", (key,)).fetchone()
                text = None if row is None else row[0]
        if text is None:
            return None
        data = json.loads(text)
        return data if isinstance(data, dict) else None

    def put(self, key: str, outcome: Outcome) -> None:
        data = {k: v for k, v in outcome.to_json().items() if k in _KEPT}
        with self._lock:
            self._pending[key] = json.dumps(data)
            if len(self._pending) >= self._batch:
                self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        with self._db:  # one transaction for the batch
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO results (key, outcome) VALUES (?, ?)", self._pending.items()
            )
        self._pending.clear()

    def hit(self, key: str, strategy: str, item_id: str, repeat: int) -> Outcome | None:
        """The cached verdict as this (strategy, item, repeat)'s outcome: paid nothing now."""
        data = self.get(key)
        if data is None:
            return None
        cached = Outcome.from_json({**data, "strategy": strategy, "item_id": item_id, "repeat": repeat})
        return replace(cached, cached=True, calls=0, record_ids=())

    def close(self) -> None:
        with self._lock:
            self._write_pending()
            self._db.close()
