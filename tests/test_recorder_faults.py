"""The recorder under faults: a spool write that fails midway, a process that dies while spooling,
and SIGTERM (real child processes killed by a real signal)."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import costlens.recorder as recorder_module
from costlens.recorder import Recorder, replay_spool, spool_records
from costlens.store._codec import dumps, record_to_dict
from costlens.store.memory import MemoryStore
from costlens.usage import CallRecord

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and pids")


def records(n: int, model: str = "m") -> list[CallRecord]:
    return [CallRecord("openai", "chat", model, cost_nanousd=i + 1) for i in range(n)]


def jsonl(batch: list[CallRecord]) -> bytes:
    return b"".join(dumps(record_to_dict(r)).encode() + b"\n" for r in batch)


def part_name(pid: int) -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{pid}-0123abcd.part"


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    return child.pid


def stored_ids(store: MemoryStore) -> list[str]:
    return sorted(r.id for r in store.iter_records())


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "COSTLENS_SIGTERM")}
    return env | extra


# -- a spool write that fails midway -------------------------------------------------------------


@pytest.fixture
def disk_full_after_two_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """The third line written to any spool file fails with ENOSPC, after two went to the file."""
    calls = {"n": 0}

    def dumps_then_fail(value: object) -> str:
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return dumps(value)

    monkeypatch.setattr(recorder_module, "dumps", dumps_then_fail)


@pytest.mark.usefixtures("disk_full_after_two_lines")
def test_a_failed_spool_write_leaves_no_part_file(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with pytest.raises(OSError, match="No space left"):
        spool_records(records(5), spool)
    assert list(spool.iterdir()) == []


@pytest.mark.usefixtures("disk_full_after_two_lines")
def test_a_disk_full_spool_is_counted_as_lost_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("COSTLENS_STRICT", "0")

    class Down(MemoryStore):
        def append(self, records: object) -> None:
            raise OSError("database is locked")

    spool = tmp_path / "spool"
    recorder = Recorder(Down(), batch_size=5, retries=0, flush_interval_s=3600, spool_dir=spool)
    for record in records(5):
        recorder.submit(record)
    assert recorder.flush(timeout=10) is False
    assert (recorder.lost, recorder.spooled) == (5, 0)
    assert "LOST 5 call records" in caplog.text
    assert list(spool.iterdir()) == []
    recorder.close()


# -- .part files left by a process that died ----------------------------------------------------


def test_a_part_file_of_a_dead_process_is_replayed_without_its_torn_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    sent = records(4)
    whole = jsonl(sent)
    torn = whole[: whole.rindex(b"\n", 0, len(whole) - 1) + 1 + 40]  # 3 lines and 40 bytes of the 4th
    part = spool / part_name(dead_pid())
    part.write_bytes(torn)
    store = MemoryStore()
    with caplog.at_level(logging.WARNING, logger="costlens.recorder"):
        assert replay_spool(store, spool) == 3
    assert stored_ids(store) == sorted(r.id for r in sent[:3])
    assert not part.exists()
    assert "ends in a torn line (40 bytes); skipped" in caplog.text
    assert replay_spool(store, spool) == 0


def test_a_part_file_being_written_is_left_alone_until_it_is_stale(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    ours = spool / part_name(os.getpid())  # a thread of this process is writing it
    alive = spool / part_name(os.getppid())  # another live process is writing it
    ours.write_bytes(jsonl(records(2)))
    alive.write_bytes(jsonl(records(3)))
    store = MemoryStore()
    assert replay_spool(store, spool) == 0
    assert ours.exists()
    assert alive.exists()
    old = time.time() - 60
    os.utime(alive, (old, old))  # its writer has been silent for a minute: it died
    assert replay_spool(store, spool) == 3
    assert not alive.exists()
    assert ours.exists()


CRASH_WHILE_SPOOLING = """
import os, signal, sys
from pathlib import Path
from costlens import recorder
from costlens.usage import CallRecord

def fsync_then_die(fd):
    os.kill(os.getpid(), signal.SIGKILL)  # the machine dies between the write and the rename

recorder.os.fsync = fsync_then_die
batch = [CallRecord("openai", "chat", "m", id=f"{i:032x}") for i in range(20)]
recorder.spool_records(batch, Path(sys.argv[1]))
"""


def test_a_part_file_left_by_a_killed_process_is_replayed(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH_WHILE_SPOOLING), str(spool)],
        env=child_env(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    [part] = spool.iterdir()
    assert part.suffix == ".part"
    store = MemoryStore()
    assert replay_spool(store, spool) == 20
    assert stored_ids(store) == [f"{i:032x}" for i in range(20)]
    assert list(spool.iterdir()) == []


# -- SIGTERM -------------------------------------------------------------------------------------

SIGTERM_CHILD = """
import os, signal, sqlite3, sys, time
from pathlib import Path
from costlens.recorder import Recorder
from costlens.store import open_store
from costlens.usage import CallRecord

db, spool, mode = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "locked":
    import costlens.recorder
    costlens.recorder.SIGTERM_FLUSH_S = 0.5
if mode == "chain":
    def own_handler(signum, frame):
        # runs after costlens flushed: the records are already in the store
        rows = sqlite3.connect(db).execute("SELECT count(*) FROM calls").fetchone()[0]
        Path(spool + ".handler").write_text(f"{signum} {rows}")
        os._exit(7)
    signal.signal(signal.SIGTERM, own_handler)
recorder = Recorder(open_store("sqlite://" + db), flush_interval_s=3600, batch_size=100_000, spool_dir=spool)
for i in range(1000):
    recorder.submit(CallRecord("openai", "chat", "m", cost_nanousd=i))
if mode == "locked":
    # SIGTERM lands while the main thread is inside the wake-up's Event.set() (it holds the lock the
    # flush needs): flushing in the handler itself would wait for that lock forever
    recorder._wake._cond.acquire()
print("ready", flush=True)
time.sleep(60)
"""


def run_until_sigterm(tmp_path: Path, mode: str = "plain", **env: str) -> tuple[int, int]:
    """Start a child that queues 1000 records, SIGTERM it; (its exit status, records in its store)."""
    db = tmp_path / "calls.db"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SIGTERM_CHILD), str(db), str(tmp_path / "spool"), mode],
        env=child_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        child.send_signal(signal.SIGTERM)
        status = child.wait(30)
    finally:
        child.kill()
        child.wait(30)
        assert child.stderr is not None
        stderr = child.stderr.read().decode()
        child.stdout.close()  # type: ignore[union-attr]
        child.stderr.close()
    assert "Traceback" not in stderr, stderr
    return status, rows_in(db)


def rows_in(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM calls").fetchone()[0])
    except sqlite3.OperationalError:  # nothing was ever written: no table
        return 0
    finally:
        conn.close()


def test_sigterm_writes_the_queued_records_and_still_ends_by_sigterm(tmp_path: Path) -> None:
    assert run_until_sigterm(tmp_path) == (-signal.SIGTERM, 1000)


def test_without_the_handler_sigterm_loses_the_queue(tmp_path: Path) -> None:
    assert run_until_sigterm(tmp_path, COSTLENS_SIGTERM="0") == (-signal.SIGTERM, 0)


def test_sigterm_while_the_main_thread_holds_a_recorder_lock_still_ends_the_process(tmp_path: Path) -> None:
    status, _ = run_until_sigterm(tmp_path, "locked")
    assert status == -signal.SIGTERM  # bounded: the flush gave up, the process did not hang


def test_an_existing_sigterm_handler_still_runs_after_the_flush(tmp_path: Path) -> None:
    assert run_until_sigterm(tmp_path, "chain") == (7, 1000)
    assert (tmp_path / "spool.handler").read_text() == f"{int(signal.SIGTERM)} 1000"


INSTALL_CHILD = """
import signal, threading
from costlens import recorder
from costlens.store.memory import MemoryStore

recorder.Recorder(MemoryStore(), durability="sync")  # no thread, nothing queued: nothing to install
print(signal.getsignal(signal.SIGTERM).name)
worker = threading.Thread(target=lambda: recorder.Recorder(MemoryStore()))
worker.start(); worker.join()
print(signal.getsignal(signal.SIGTERM).name)  # not the main thread: nothing installed
recorder.Recorder(MemoryStore())
print(signal.getsignal(signal.SIGTERM) is recorder._on_sigterm)
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # someone replaces it: we do not install twice
recorder.Recorder(MemoryStore())
print(signal.getsignal(signal.SIGTERM).name)
"""


def test_the_handler_is_installed_once_and_only_from_the_main_thread(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(INSTALL_CHILD)],
        env=child_env(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["SIG_DFL", "SIG_DFL", "True", "SIG_IGN"]


FORK_CHILD = """
import os, signal, sys, threading, time
from costlens import recorder
from costlens.store import open_store
from costlens.usage import CallRecord

db, where = sys.argv[1], sys.argv[2]
made = []
start = lambda: made.append(recorder.Recorder(open_store("sqlite://" + db), flush_interval_s=3600))
if where == "main":
    start()  # installs the handler here: the forked child inherits it
else:
    worker = threading.Thread(target=start)  # installs nothing: the forked child must
    worker.start(); worker.join()
print(signal.getsignal(signal.SIGTERM) is recorder._on_sigterm, flush=True)
pid = os.fork()
if pid == 0:
    print(signal.getsignal(signal.SIGTERM) is recorder._on_sigterm, flush=True)
    for i in range(300):
        made[0].submit(CallRecord("openai", "chat", "m", cost_nanousd=i))
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
"""


@pytest.mark.parametrize(("where", "parent_has_it"), [("main", "True"), ("thread", "False")])
def test_a_forked_child_flushes_on_sigterm(tmp_path: Path, where: str, parent_has_it: str) -> None:
    db = tmp_path / "fork.db"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FORK_CHILD), str(db), where],
        env=child_env(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == [parent_has_it, "True", "True"]
    assert rows_in(db) == 300
