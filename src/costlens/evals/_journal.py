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
from typing import Any

from costlens.evals._results import RESULTS_FILE, Outcome, read_outcomes
from costlens.usage import CallRecord, record_from_dict, record_to_dict

__all__ = ["Journal", "ResultCache"]


class Journal:
    """Appends outcomes, each with the records it paid for, durably; reads back what was done."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / RESULTS_FILE
        self._lock = threading.Lock()

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
        line = json.dumps(
            {"outcome": outcome.to_json(), "records": [record_to_dict(r) for r in records]},
            ensure_ascii=False,
            default=str,
            separators=(",", ":"),
        )
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())


_SCHEMA = "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, outcome TEXT NOT NULL)"
_KEPT = frozenset(
    {"correct", "score", "answer", "model", "input_tokens", "output_tokens", "cost", "latency_ms", "reason"}
)


class ResultCache:
    """Verdicts of earlier identical requests, shared by runs (a SQLite file; thread-safe)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT outcome FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return data if isinstance(data, dict) else None

    def put(self, key: str, outcome: Outcome) -> None:
        data = {k: v for k, v in outcome.to_json().items() if k in _KEPT}
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO results (key, outcome) VALUES (?, ?)", (key, json.dumps(data))
            )

    def hit(self, key: str, strategy: str, item_id: str, repeat: int) -> Outcome | None:
        """The cached verdict as this (strategy, item, repeat)'s outcome: paid nothing now."""
        data = self.get(key)
        if data is None:
            return None
        cached = Outcome.from_json({**data, "strategy": strategy, "item_id": item_id, "repeat": repeat})
        return replace(cached, cached=True, calls=0, record_ids=())

    def close(self) -> None:
        with self._lock:
            self._db.close()
