"""The run journal (group-committed, durable appends) and the verdict cache (batched writes)."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

from costlens.evals._journal import Journal, ResultCache
from costlens.evals._results import Outcome
from costlens.usage import CallRecord


def outcome(i: int, strategy: str = "s") -> Outcome:
    return Outcome(strategy, f"q{i}", correct=i % 2 == 0, cost=Decimal(i) / 1000, calls=1)


def test_concurrent_appends_each_land_once_with_their_records(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    start = threading.Barrier(8)

    def worker(w: int) -> None:
        start.wait()
        for i in range(w * 50, w * 50 + 50):
            record = CallRecord("openai", "chat", "gpt-4.1-nano", input_tokens=i, tags={"eval_item": f"q{i}"})
            journal.append(outcome(i), [record])

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal.close()
    done, records = Journal(tmp_path).read()
    assert sorted(done) == sorted(("s", f"q{i}", 0) for i in range(400))
    assert all(done[("s", f"q{i}", 0)].cost == Decimal(i) / 1000 for i in range(400))
    assert sorted(r.input_tokens for r in records) == list(range(400))


def test_a_torn_last_line_is_cut_and_the_next_append_starts_clean(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append(outcome(1), [])
    journal.close()
    with journal.path.open("a", encoding="utf-8") as handle:
        handle.write('{"outcome": {"strategy": "s", "item_')  # killed mid-write
    again = Journal(tmp_path)
    done, _ = again.read()
    assert list(done) == [("s", "q1", 0)]
    again.append(outcome(2), [])
    again.close()
    assert list(Journal(tmp_path).read()[0]) == [("s", "q1", 0), ("s", "q2", 0)]


def test_cache_answers_unwritten_verdicts_and_keeps_them_after_close(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = ResultCache(path, batch=10)
    for i in range(25):  # two batches written, five pending
        cache.put(f"k{i}", outcome(i))
    pending = cache.hit("k24", "other", "x", 0)
    assert pending is not None and pending.cached and pending.calls == 0
    assert (pending.strategy, pending.item_id, pending.cost) == ("other", "x", Decimal("0.024"))
    cache.close()
    reopened = ResultCache(path)
    assert all(reopened.hit(f"k{i}", "s", f"q{i}", 0) is not None for i in range(25))
    assert reopened.hit("k25", "s", "q25", 0) is None
    reopened.close()
