"""SQLite-only behaviour: WAL, several processes and threads on one file, persistence, fork."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from costlens.store import SpendQuery, open_store
from costlens.store._sqlite_conn import ConnectionsClosed, ThreadConnections
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

PROCESSES = 3
PER_PROCESS = 2_000
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def cost_of(worker: int, i: int) -> int:
    return 1_000_000_007 * worker + 999_999_937 * i + 1  # large, distinct, exact in integers only


def append_many(path: str, worker: int, start: multiprocessing.synchronize.Barrier) -> None:
    store = open_store(f"sqlite://{path}")
    start.wait()  # every process migrates and appends at the same time
    batch: list[CallRecord] = []
    for i in range(PER_PROCESS):
        batch.append(
            CallRecord(
                "openai",
                "chat",
                f"model-{worker}",
                started_at=T0 + timedelta(microseconds=i),
                input_tokens=i,
                cost_nanousd=cost_of(worker, i),
                tags={"worker": str(worker)},
            )
        )
        if len(batch) == 50:  # many small transactions, to make the writers contend
            store.append(batch)
            batch = []
    store.append(batch)
    store.close()


def test_three_processes_append_concurrently_without_loss(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=append_many, args=(path, w, start)) for w in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    store = open_store(f"sqlite://{path}")
    [total] = store.query(SpendQuery())
    assert total.calls == PROCESSES * PER_PROCESS
    expected = sum(cost_of(w, i) for w in range(PROCESSES) for i in range(PER_PROCESS))
    assert total.cost_nanousd == expected
    per_worker = {row.keys["worker"]: row.calls for row in store.query(SpendQuery(("worker",)))}
    assert per_worker == {str(w): PER_PROCESS for w in range(PROCESSES)}
    store.close()


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "threads.db")

    def work(n: int) -> None:
        for i in range(20):
            store.append([CallRecord("openai", "chat", "m", cost_nanousd=n * 100 + i) for _ in range(10)])
            store.query(SpendQuery(("model",)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [total] = store.query(SpendQuery())
    assert total.calls == 8 * 20 * 10
    assert total.cost_nanousd == sum((n * 100 + i) * 10 for n in range(8) for i in range(20))
    store.close()


def test_file_uses_wal_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "calls.db"
    store = open_store(f"sqlite://{path}")
    assert not path.exists()  # opening does no I/O
    store.append([CallRecord("openai", "chat", "m", cost_nanousd=42)])
    store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert raw.execute("SELECT cost_nanousd, typeof(cost_nanousd) FROM calls").fetchall() == [
            (42, "integer")
        ]
    raw.close()
    again = open_store(f"sqlite://{path}")
    assert again.query(SpendQuery())[0].cost_nanousd == 42
    again.close()


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.append([CallRecord("openai", "chat", "m")])


def test_huge_money_sums_stay_exact(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "big.db")
    big = 2**62 // 4  # ~1.15e9 USD each; still far below BIGINT overflow when summed 3 times
    store.append([CallRecord("openai", "chat", "m", cost_nanousd=big + k) for k in range(3)])
    assert store.query(SpendQuery())[0].cost_nanousd == 3 * big + 3
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "fork.db")
    store.append([CallRecord("openai", "chat", "parent")])
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=store.append, args=([CallRecord("openai", "chat", "child")],))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert {r.request_model for r in store.iter_records()} == {"parent", "child"}
    store.close()


def test_enable_wal_retries_while_another_process_holds_a_new_file() -> None:
    """A new file opened by several processes at once answers "locked" at once; the switch retries."""
    import sqlite3

    from costlens.store.sqlite import enable_wal

    class Flaky:
        def __init__(self, failures: int, message: str = "database is locked") -> None:
            self.failures, self.message, self.calls = failures, message, 0

        def execute(self, sql: str) -> None:
            self.calls += 1
            if self.calls <= self.failures:
                raise sqlite3.OperationalError(self.message)

    flaky = Flaky(3)
    enable_wal(flaky, timeout_s=5)  # type: ignore[arg-type]
    assert flaky.calls == 4
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        enable_wal(Flaky(1, "disk I/O error"), timeout_s=5)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(Flaky(10**6), timeout_s=0.05)  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_inherit_the_locks_another_thread_held(tmp_path: Path) -> None:
    """Locks held by another parent thread at fork time are never released in the child: the child's
    connections start with locks of their own (else its first connection would hang)."""
    store = SQLiteStore(tmp_path / "fork.db")
    store.append([CallRecord("openai", "chat", "parent")])
    pool = store._conns
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with pool.lock, pool._guard:
            holding.set()
            done.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    ctx = multiprocessing.get_context("fork")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork of a threaded process
        child = ctx.Process(target=store.append, args=([CallRecord("openai", "chat", "child")],))
        child.start()
    child.join(30)
    done.set()
    holder.join()
    if child.exitcode is None:  # pragma: no cover - the failure this test is for
        child.kill()
        child.join()
    assert child.exitcode == 0
    assert {r.request_model for r in store.iter_records()} == {"parent", "child"}
    store.close()


def _fds_on(path: Path) -> int:
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += Path(os.readlink(fd)) == path
        except OSError:
            continue
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_connection_whose_setup_fails_is_closed_and_the_next_get_retries(tmp_path: Path) -> None:
    path = tmp_path / "setup.db"
    failures = [sqlite3.OperationalError("disk I/O error")]

    def setup(conn: sqlite3.Connection) -> None:
        if failures:
            raise failures.pop()

    pool = ThreadConnections(path, busy_timeout_s=5, pragmas=("PRAGMA synchronous = NORMAL",), setup=setup)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        pool.get()
    assert _fds_on(path) == 0  # not left open
    conn = pool.get()
    assert conn is pool.get()  # one per thread
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    pool.close()
    assert _fds_on(path) == 0
    with pytest.raises(ConnectionsClosed, match="closed"):
        pool.get()


def test_each_thread_gets_its_own_connection_and_dead_threads_lose_theirs(tmp_path: Path) -> None:
    pool = ThreadConnections(tmp_path / "t.db", busy_timeout_s=5)
    mine = pool.get()
    theirs: list[sqlite3.Connection] = []
    for _ in range(3):
        t = threading.Thread(target=lambda: theirs.append(pool.get()))
        t.start()
        t.join()
    assert len({id(c) for c in [mine, *theirs]}) == 4
    last = threading.Thread(target=pool.get)  # opening one closes those of threads that ended
    last.start()
    last.join()
    for conn in theirs:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
    assert mine.execute("SELECT 1").fetchone() == (1,)
    pool.close()
