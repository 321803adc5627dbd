"""The recorder: async batching with flush, sync durability, backpressure, retry + spool + replay, atexit."""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import costlens.recorder as recorder_module
from costlens.recorder import Recorder, replay_spool
from costlens.store import SpendQuery
from costlens.store.memory import MemoryStore
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord


def records(n: int, model: str = "m") -> list[CallRecord]:
    return [CallRecord("openai", "chat", model, cost_nanousd=i + 1) for i in range(n)]


def count(store: MemoryStore | SQLiteStore) -> int:
    return sum(row.calls for row in store.query(SpendQuery()))


class SpyStore(MemoryStore):
    """Records which thread wrote each batch; can block the writer thread or fail a number of times."""

    def __init__(self, *, fail_times: int = 0, block_writer: bool = False) -> None:
        super().__init__()
        self.fail_times = fail_times
        self.attempts = 0
        self.batches: list[tuple[str, int]] = []
        self.release = threading.Event()
        self.block_writer = block_writer
        self.writer_busy = threading.Event()
        self.appended = threading.Event()

    def append(self, records: Sequence[CallRecord]) -> None:
        self.attempts += 1
        name = threading.current_thread().name
        if self.block_writer and name == "costlens-recorder":
            self.writer_busy.set()
            self.release.wait(30)
        if self.fail_times:
            self.fail_times -= 1
            raise OSError("disk I/O error")
        super().append(records)
        self.batches.append((name, len(records)))
        self.appended.set()


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def recorders() -> Iterator[list[Recorder]]:
    made: list[Recorder] = []
    yield made
    for recorder in made:
        recorder.close()


def test_async_flush_writes_everything_in_batches(
    recorders: list[Recorder], spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer thread not scheduled for a second (a loaded machine) lets the caller write a batch
    # (`_help`, tested below); here only the writer thread may write, so that help is turned off.
    monkeypatch.setattr(recorder_module, "_STALE_S", 3600.0)
    store = SpyStore()
    recorder = Recorder(store, batch_size=500, flush_interval_s=60, spool_dir=spool)
    recorders.append(recorder)
    for record in records(10_000):
        recorder.submit(record)
    assert recorder.flush(timeout=30)
    assert count(store) == 10_000
    assert store.query(SpendQuery())[0].cost_nanousd == sum(range(1, 10_001))
    assert all(name == "costlens-recorder" and n <= 500 for name, n in store.batches)


def test_flush_returns_promptly_without_waiting_for_the_interval(
    recorders: list[Recorder], spool: Path
) -> None:
    store = MemoryStore()
    recorder = Recorder(store, flush_interval_s=3600, spool_dir=spool)
    recorders.append(recorder)
    recorder.submit(records(1)[0])
    assert recorder.flush(timeout=10)  # a marker wakes the writer: no 1-hour wait
    assert count(store) == 1
    assert recorder.flush(timeout=10)  # nothing pending: still fine


def test_a_full_batch_wakes_the_writer_without_flush(recorders: list[Recorder], spool: Path) -> None:
    store = SpyStore()
    recorder = Recorder(store, batch_size=10, flush_interval_s=3600, spool_dir=spool)
    recorders.append(recorder)
    for record in records(10):
        recorder.submit(record)
    assert store.appended.wait(10)
    assert store.batches[0] == ("costlens-recorder", 10)


def test_records_that_arrive_during_a_write_wait_for_the_next_wake(
    recorders: list[Recorder], spool: Path
) -> None:
    """The writer takes what was queued when it woke: records submitted while it writes wait for
    the next batch, flush or interval, instead of a transaction each right after (a busy process
    made dozens of one-record transactions per batch that way). Nothing is lost or written twice."""
    store = SpyStore(block_writer=True)
    recorder = Recorder(store, batch_size=3, flush_interval_s=3600, spool_dir=spool)
    recorders.append(recorder)
    sent = records(5)
    for record in sent[:3]:
        recorder.submit(record)  # a full batch wakes the writer, which blocks inside the store
    assert store.writer_busy.wait(10)
    recorder.submit(sent[3])
    recorder.submit(sent[4])  # two more arrive during that write
    store.release.set()
    with recorder._drain_lock:  # the writer's pass is over
        assert store.batches == [("costlens-recorder", 3)]
        assert len(recorder._queue) == 2  # waiting, not written one transaction each
    assert recorder.flush(timeout=10)
    assert store.batches == [("costlens-recorder", 3), ("costlens-recorder", 2)]
    assert sorted(r.id for r in store.iter_records()) == sorted(r.id for r in sent)


class GatedStore(MemoryStore):
    """Each append the writer makes waits for its own gate, which the test opens."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = [threading.Event() for _ in range(10)]
        self.gates = [threading.Event() for _ in range(10)]
        self.sizes: list[int] = []

    def append(self, records: Sequence[CallRecord]) -> None:
        at = len(self.sizes)
        self.sizes.append(len(records))
        self.entered[at].set()
        self.gates[at].wait(30)
        super().append(records)


def test_a_batchs_worth_that_came_in_during_a_write_is_written_without_waiting(
    recorders: list[Recorder], spool: Path
) -> None:
    """Taking only what was queued at its wake, the writer must still not sit on a full batch that
    arrived while the queue stayed above a batch (no `submit` crossed the mark to wake it): at a
    high call rate that backlog would otherwise grow for a whole interval."""
    store = GatedStore()
    recorder = Recorder(store, batch_size=2, flush_interval_s=3600, spool_dir=spool)
    recorders.append(recorder)
    sent = records(11)
    recorder.submit(sent[0])
    recorder.submit(sent[1])
    assert store.entered[0].wait(10)
    for record in sent[2:8]:
        recorder.submit(record)  # six wait (the mark crossed: the writer comes back for them)
    store.gates[0].set()
    assert store.entered[1].wait(10)  # writing two of those six
    for record in sent[8:]:
        recorder.submit(record)  # three more, the queue above a batch all the while
    for gate in store.gates[1:]:
        gate.set()
    assert store.entered[4].wait(10)  # the three, taken at once: no wait for the interval
    with recorder._drain_lock:  # that pass is over
        assert store.sizes == [2, 2, 2, 2, 2, 1] and not recorder._queue
    assert recorder.flush(timeout=10)
    assert sorted(r.id for r in store.iter_records()) == sorted(r.id for r in sent)


def test_sync_durability_writes_before_submit_returns(spool: Path) -> None:
    store = SpyStore()
    recorder = Recorder(store, durability="sync", spool_dir=spool)
    recorder.submit(records(1)[0])
    assert count(store) == 1
    assert store.batches == [(threading.current_thread().name, 1)]
    assert recorder._thread is None
    recorder.close()


def test_full_queue_writes_in_the_caller_and_warns_once(
    recorders: list[Recorder], spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SpyStore(block_writer=True)
    recorder = Recorder(store, max_queue=5, batch_size=2, flush_interval_s=60, spool_dir=spool)
    recorders.append(recorder)
    recorder.submit(records(1)[0])
    recorder.submit(records(1)[0])  # a full batch: the writer takes it and blocks in the store
    assert store.writer_busy.wait(10)
    for record in records(5 + 3):
        recorder.submit(record)  # 5 fill the queue, 3 overflow
    caller = threading.current_thread().name
    assert [b for b in store.batches if b[0] == caller] == [(caller, 1)] * 3
    assert [r.message for r in caplog.records].count(
        "costlens: recorder queue is full (5 records): the store is slower than the call rate; "
        "writing in the calling thread until it catches up"
    ) == 1
    store.release.set()
    assert recorder.flush(timeout=10)
    assert count(store) == 10


def test_full_queue_with_an_idle_writer_writes_the_oldest_batch_in_the_caller(
    recorders: list[Recorder], spool: Path
) -> None:
    """A writer thread that is not draining (CPython starves it in a process that keeps the GIL busy):
    the caller that finds the queue full writes the oldest batch with its record, in one append,
    instead of one append per call from then on; a flush waiting in the queue is released."""
    store = SpyStore()
    # never woken by size (the batch is bigger than the queue), nor by the clock within the test
    recorder = Recorder(store, max_queue=5, batch_size=50, flush_interval_s=3600, spool_dir=spool)
    recorders.append(recorder)
    sent = records(11)
    for record in sent[:5]:
        recorder.submit(record)
    recorder.submit(sent[5])  # the queue is full: this caller writes all six
    caller = threading.current_thread().name
    assert store.batches == [(caller, 6)]
    for record in sent[6:]:
        recorder.submit(record)
    assert recorder.flush(timeout=10)
    assert sorted(r.id for r in store.iter_records()) == sorted(r.id for r in sent)


def test_a_starved_writer_backlog_is_written_by_the_callers(recorders: list[Recorder], spool: Path) -> None:
    """A writer thread that has not run for a while (CPython starves it in a process that keeps the
    GIL busy): once 4 batches wait, each caller that finds the backlog writes its oldest batch, so it
    stays bounded, long before the queue is full. A burst while the writer is running is left to it."""
    store = SpyStore()
    recorder = Recorder(store, max_queue=10_000, batch_size=50, flush_interval_s=3600, spool_dir=spool)
    recorders.append(recorder)
    waiting_on = recorder._wake
    recorder._wake = threading.Event()  # a writer that is never woken: it waits on the old event
    sent = records(400)
    for record in sent[:300]:
        recorder.submit(record)  # the writer ran just now (it started): a burst, nothing written here
    assert store.batches == []
    recorder._progress -= 2  # no batch for two seconds
    for record in sent[300:]:
        recorder.submit(record)
    caller = threading.current_thread().name
    assert store.batches and all(batch == (caller, 50) for batch in store.batches)
    assert len(recorder._queue) <= 200  # 4 batches
    recorder._wake = waiting_on  # the writer runs again and writes the rest
    assert recorder.flush(timeout=10)
    assert sorted(r.id for r in store.iter_records()) == sorted(r.id for r in sent)


def test_a_writer_stuck_inside_a_write_is_waited_on_not_overtaken(
    recorders: list[Recorder], spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer holds its lock inside a write and finishes no batch (starved mid-write, or a store
    that is down): a caller that finds the long backlog waits on that lock briefly (handing the
    writer the GIL), at most once per stale period, then queues its record; nothing is written
    twice or lost."""
    monkeypatch.setattr(recorder_module, "_STALE_S", 3600.0)
    monkeypatch.setattr(recorder_module, "_HAND_OFF_S", 0.01)
    store = SpyStore(block_writer=True)
    recorder = Recorder(store, max_queue=10_000, batch_size=2, flush_interval_s=3600, spool_dir=spool)
    recorders.append(recorder)
    sent = records(12)
    recorder.submit(sent[0])
    recorder.submit(sent[1])  # a full batch: the writer takes it and blocks in the store
    assert store.writer_busy.wait(10)
    recorder._progress -= 7200  # and has finished no batch since
    waits = []
    real_lock = recorder._drain_lock

    class CountingLock:
        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            if blocking:
                waits.append(timeout)
            return real_lock.acquire(blocking, timeout)

        def release(self) -> None:
            real_lock.release()

    recorder._drain_lock = CountingLock()  # type: ignore[assignment]
    for record in sent[2:]:
        recorder.submit(record)  # from 8 queued: the first waits on the writer's lock, then queues
    recorder._drain_lock = real_lock
    assert waits == [0.01]  # once per stale period, briefly
    assert store.batches == [] and len(recorder._queue) == 10
    store.release.set()
    assert recorder.flush(timeout=10)
    assert sorted(r.id for r in store.iter_records()) == sorted(r.id for r in sent)
    assert all(name == "costlens-recorder" for name, _ in store.batches)


def test_a_flaky_store_is_retried_without_spooling(recorders: list[Recorder], spool: Path) -> None:
    store = SpyStore(fail_times=2)
    recorder = Recorder(store, retries=3, retry_backoff_s=0.001, spool_dir=spool)
    recorders.append(recorder)
    for record in records(7):
        recorder.submit(record)
    assert recorder.flush(timeout=10)
    assert count(store) == 7
    assert store.attempts == 3
    assert not spool.exists()


def test_failing_store_spools_then_replay_restores_every_record(
    recorders: list[Recorder], spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = SpyStore(fail_times=10**9)
    recorder = Recorder(down, batch_size=100, retries=2, retry_backoff_s=0.001, spool_dir=spool)
    recorders.append(recorder)
    sent = records(250)
    for record in sent[:100]:
        recorder.submit(record)
    assert recorder.flush(timeout=10)
    assert down.attempts == 3  # first batch: 1 try + 2 retries
    for record in sent[100:]:
        recorder.submit(record)
    assert recorder.flush(timeout=10)
    assert down.attempts == 3 + 2  # still failing: one try per batch, so the queue drains
    assert len(list(spool.glob("*.jsonl"))) == 3
    assert not list(spool.glob("*.part"))
    assert any("spooled 100 records" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)

    healthy = SQLiteStore(spool.parent / "recovered.db")
    assert replay_spool(healthy, spool) == 250
    assert not list(spool.glob("*.jsonl"))
    assert sorted(r.id for r in healthy.iter_records()) == sorted(r.id for r in sent)
    assert list(healthy.iter_records()) == sorted(sent, key=lambda r: (r.started_at, r.id))
    healthy.close()


def test_full_queue_while_the_store_fails_spools_in_the_caller_without_waiting(
    recorders: list[Recorder], spool: Path
) -> None:
    store = SpyStore(fail_times=10**9)
    recorder = Recorder(store, max_queue=2, batch_size=1, retries=0, flush_interval_s=60, spool_dir=spool)
    recorders.append(recorder)
    recorder.submit(records(1)[0])
    assert recorder.flush(timeout=10)  # failed once: the recorder now knows the store is down
    store.block_writer = True
    recorder.submit(records(1)[0])  # the writer takes it and hangs in the store
    assert store.writer_busy.wait(10)
    attempts = store.attempts
    for record in records(3):  # 2 fill the queue, 1 overflows
        recorder.submit(record)
    assert store.attempts == attempts  # the caller went straight to the spool
    store.release.set()
    assert recorder.flush(timeout=10)
    assert replay_spool(MemoryStore(), spool) == 5


def test_replay_is_idempotent_and_uses_the_recorders_store(spool: Path) -> None:
    store = SpyStore(fail_times=1)
    recorder = Recorder(store, durability="sync", retries=0, spool_dir=spool)
    sent = records(3)
    recorder.submit(sent[0])  # fails once: spooled
    [spooled] = spool.glob("*.jsonl")
    copy = spool / "copy.jsonl"
    copy.write_bytes(spooled.read_bytes())  # as if two processes spooled the same record
    recorder.submit(sent[1])  # the store is back: this write replays the spool (both files)
    assert not list(spool.glob("*.jsonl"))
    assert recorder.replay_spool() == 0
    assert sorted(r.id for r in store.iter_records()) == sorted(r.id for r in sent[:2])
    recorder.close()


def test_unreadable_spool_file_is_left_in_place(spool: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool.mkdir()
    (spool / "bad.jsonl").write_text("{not json\n")
    assert replay_spool(MemoryStore(), spool) == 0
    assert (spool / "bad.jsonl").exists()
    assert "cannot read spool file" in caplog.text


def test_when_store_and_spool_both_fail_strict_mode_raises(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    recorder = Recorder(SpyStore(fail_times=1), durability="sync", retries=0, spool_dir=not_a_dir / "spool")
    with pytest.raises(NotADirectoryError):  # under pytest internal errors raise
        recorder.submit(records(1)[0])
    recorder.close()


def test_when_store_and_spool_both_fail_production_logs_the_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("COSTLENS_STRICT", "0")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    recorder = Recorder(SpyStore(fail_times=1), durability="sync", retries=0, spool_dir=not_a_dir / "spool")
    recorder.submit(records(1)[0])  # does not raise into the user's call
    assert "LOST 1 call records" in caplog.text
    assert "the call itself was not affected" in caplog.text
    recorder.close()


def test_close_writes_the_queue_and_later_submits_are_synchronous(spool: Path) -> None:
    store = MemoryStore()
    recorder = Recorder(store, flush_interval_s=3600, spool_dir=spool)
    for record in records(5):
        recorder.submit(record)
    recorder.close()
    assert count(store) == 5
    recorder.submit(records(1)[0])
    assert count(store) == 6
    recorder.close()


def test_bad_settings_are_refused() -> None:
    from costlens._errors import ConfigError

    with pytest.raises(ConfigError, match="durability"):
        Recorder(MemoryStore(), durability="later")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_queue"):
        Recorder(MemoryStore(), max_queue=0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_writer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "fork.db")
    recorder = Recorder(store, flush_interval_s=3600, spool_dir=tmp_path / "spool")
    for record in records(3, "parent"):
        recorder.submit(record)  # still queued at fork time: the parent writes them, not the child

    def child() -> None:
        for record in records(5, "child"):
            recorder.submit(record)
        assert recorder.flush(timeout=10)

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    recorder.close()
    assert {row.keys["model"]: row.calls for row in store.query(SpendQuery(("model",)))} == {
        "parent": 3,
        "child": 5,
    }
    store.close()


ATEXIT_SCRIPT = """
import sys
from costlens.recorder import Recorder
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

recorder = Recorder(SQLiteStore(sys.argv[1]), flush_interval_s=3600, spool_dir=sys.argv[2])
for i in range(1000):
    recorder.submit(CallRecord("openai", "chat", "m", cost_nanousd=i))
# no flush, no close: the atexit hook must write the 1000 queued records
"""

EMIT_SCRIPT = """
from costlens.config import emit
from costlens.usage import CallRecord

for i in range(300):
    emit(CallRecord("openai", "chat", "m", cost_nanousd=i))
"""


def run_python(code: str, *args: str, env: dict[str, str] | None = None) -> None:
    full_env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"} | (env or {})
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=full_env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b"", done.stderr.decode()


def test_records_queued_at_exit_are_written(tmp_path: Path) -> None:
    db = tmp_path / "exit.db"
    run_python(ATEXIT_SCRIPT, str(db), str(tmp_path / "spool"))
    store = SQLiteStore(db)
    [row] = store.query(SpendQuery())
    assert (row.calls, row.cost_nanousd) == (1000, sum(range(1000)))
    store.close()


def test_emitted_records_are_written_at_exit_with_default_config(tmp_path: Path) -> None:
    run_python(EMIT_SCRIPT, env={"COSTLENS_HOME": str(tmp_path / "home")})
    store = SQLiteStore(tmp_path / "home" / "costlens.db")
    assert count(store) == 300
    store.close()


def test_the_default_spool_folder_does_not_import_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COSTLENS_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(sys.modules, "costlens.config", None)  # importing it now raises ImportError
    recorder = Recorder(SpyStore(fail_times=1), durability="sync", retries=0)
    recorder.submit(records(1)[0])  # the store fails: spooled to the default folder
    assert recorder.spool_dir == tmp_path / "home" / "spool"
    assert len(list(recorder.spool_dir.glob("*.jsonl"))) == 1
    assert recorder.spooled == 1
    recorder.close()


def test_flush_returns_false_once_when_records_were_lost(
    recorders: list[Recorder],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("COSTLENS_STRICT", "0")  # production: the writer thread logs the loss
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    store = SpyStore(fail_times=10**9)
    recorder = Recorder(store, retries=0, flush_interval_s=3600, spool_dir=not_a_dir / "spool")
    recorders.append(recorder)
    for record in records(3):
        recorder.submit(record)
    assert recorder.flush(timeout=10) is False
    assert (recorder.lost, recorder.spooled) == (3, 0)
    assert "LOST 3 call records" in caplog.text
    assert recorder.flush(timeout=10) is True  # reported once: nothing lost since
    store.fail_times = 0
    for record in records(2):
        recorder.submit(record)
    assert recorder.flush(timeout=10) is True
    assert (recorder.lost, count(store)) == (3, 2)


def test_sync_flush_reports_a_loss_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTLENS_STRICT", "0")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    recorder = Recorder(SpyStore(fail_times=1), durability="sync", retries=0, spool_dir=not_a_dir / "s")
    recorder.submit(records(1)[0])
    recorder.submit(records(1)[0])
    assert recorder.lost == 1
    assert recorder.flush() is False
    assert recorder.flush() is True
    recorder.close()


def test_spooled_records_are_counted_and_are_not_a_loss(recorders: list[Recorder], spool: Path) -> None:
    recorder = Recorder(SpyStore(fail_times=10**9), batch_size=4, retries=0, spool_dir=spool)
    recorders.append(recorder)
    for record in records(10):
        recorder.submit(record)
    assert recorder.flush(timeout=10) is True
    assert (recorder.spooled, recorder.lost) == (10, 0)
    assert replay_spool(MemoryStore(), spool) == 10


def test_the_store_coming_back_replays_the_spool_once(
    recorders: list[Recorder], spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An outage spools; the first batch the store accepts again brings the spool back with it."""
    store = SpyStore(fail_times=3)  # the first batch: 1 try + 2 retries, all refused
    recorder = Recorder(store, batch_size=50, retries=2, retry_backoff_s=0.001, spool_dir=spool)
    recorders.append(recorder)
    sent = records(120)
    for record in sent[:50]:
        recorder.submit(record)
    assert recorder.flush(timeout=10)
    assert recorder.spooled == 50 and len(list(spool.glob("*.jsonl"))) == 1
    for record in sent[50:]:
        recorder.submit(record)
    assert recorder.flush(timeout=10)
    assert not list(spool.glob("*.jsonl"))
    assert sorted(r.id for r in store.iter_records()) == sorted(r.id for r in sent)
    assert any("replayed 50 spooled records" in r.getMessage() for r in caplog.records)
    assert replay_spool(store, spool) == 0  # nothing left to hand on twice
