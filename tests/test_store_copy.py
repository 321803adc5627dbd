"""`copy_records` and `costlens store copy|info|migrate` against real stores.

Copies are compared record by record (every field) and by exact Decimal totals; a copy stopped
part way (an exception from `on_progress`, a destination failing mid-batch, Ctrl-C, SIGINT to a
real process) is run again and must continue from its checkpoint, reading nothing twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from costlens._paths import data_dir
from costlens.cli import app
from costlens.store import CopyResult, SpendQuery, Store, copy_records, nanousd_to_usd, open_store
from costlens.store._base import write_all
from costlens.store._copy import Checkpoint, CopyPosition, mask_url, migrate_store, store_url_of
from costlens.store.memory import MemoryStore
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

T0 = datetime(2025, 3, 1, 10, 0, 0, 123_456, tzinfo=UTC)
N = 3000
COSTLENS = Path(sys.executable).parent / "costlens"


def _record(i: int, rng: random.Random) -> CallRecord:
    """Every field set (or left None where that is a value too); groups of 7 calls share one
    microsecond, so batch edges fall inside a group of equal times."""
    at = T0 + timedelta(seconds=i // 7)
    priced = i % 11 != 0
    return CallRecord(
        provider=rng.choice(["openai", "anthropic", "mistral"]),
        operation=rng.choice(["chat", "responses", "embeddings"]),
        request_model=rng.choice(["gpt-4o-mini", "gpt-5", "claude-sonnet-4"]),
        started_at=at,
        ended_at=at + timedelta(milliseconds=rng.randrange(50, 5000)) if i % 5 else None,
        latency_ms=rng.randrange(50, 5000) / 4 if i % 5 else None,
        ttft_ms=rng.randrange(10, 900) / 8 if i % 3 else None,
        response_model=f"model-{i % 4}-2025" if i % 6 else None,
        input_tokens=rng.randrange(0, 200_000),
        output_tokens=rng.randrange(0, 20_000),
        cache_read_tokens=rng.randrange(0, 5000),
        cache_write_tokens=rng.randrange(0, 5000),
        reasoning_tokens=rng.randrange(0, 3000),
        cost_nanousd=rng.randrange(1, 90_000_000_000) if priced else None,
        price_known=priced,
        price_version="genai-prices-0.2.3" if priced else "",
        estimated=i % 13 == 0,
        status=("ok", "error", "blocked")[i % 17 % 3] if i % 17 < 3 else "ok",
        error_type="RateLimitError" if i % 17 == 1 else None,
        http_status=429 if i % 17 == 1 else (200 if i % 2 else None),
        stream=i % 2 == 0,
        service_tier=rng.choice([None, "flex", "priority", "default"]),
        tags={"feature": rng.choice(["search", "chat", "ü-triage"]), "user": f"u{i % 23}"} if i % 9 else {},
        route={"policy": "cheapest", "candidates": ["a", "b"], "score": 0.25} if i % 8 == 0 else None,
        budgets=[{"name": "team", "reserved_nanousd": i}] if i % 10 == 0 else [],
        trace_id=f"{i:032x}" if i % 4 else None,
        span_id=f"{i:016x}" if i % 4 else None,
        content={"prompt": [{"role": "user", "content": f"hi {i}"}]} if i % 50 == 0 else None,
        cache_write_1h_tokens=rng.randrange(0, 100),
        input_audio_tokens=rng.randrange(0, 100),
        output_audio_tokens=rng.randrange(0, 100),
        citation_tokens=rng.randrange(0, 100),
        web_search_requests=rng.randrange(0, 3),
        file_search_requests=rng.randrange(0, 3),
    )


def records(n: int = N, seed: int = 7) -> list[CallRecord]:
    rng = random.Random(seed)
    return [_record(i, rng) for i in range(n)]


def sqlite_url(path: Path) -> str:
    return f"sqlite://{path}"


def filled(url: str, data: Sequence[CallRecord]) -> Store:
    store = open_store(url)
    with write_all(store) as write:
        write(data)
    return store


def totals(store: Store) -> tuple[int, Decimal]:
    rows = store.query(SpendQuery(use_rollups=False))
    return sum(r.calls for r in rows), sum((nanousd_to_usd(r.cost_nanousd) for r in rows), Decimal(0))


def assert_same(source: Store, dest: Store, **window: Any) -> None:
    """Record by record, every field, in the same order; and the same exact totals."""
    expected = list(source.iter_records(**window))
    assert list(dest.iter_records()) == expected
    if not window:
        assert totals(dest) == totals(source)
        assert totals(dest)[1] == sum((r.cost_usd or Decimal(0) for r in expected), Decimal(0))


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Store]:
    store = filled(sqlite_url(tmp_path / "source.db"), records())
    yield store
    store.close()


@pytest.fixture
def dest(tmp_path: Path) -> Iterator[Store]:
    store = open_store(sqlite_url(tmp_path / "dest.db"))
    yield store
    store.close()


# -- the library -------------------------------------------------------------------------------------


def test_sqlite_to_sqlite_copies_every_field(source: Store, dest: Store) -> None:
    result = copy_records(source, dest, batch=500)
    assert (result.read, result.written, result.skipped, result.resumed_from) == (N, N, 0, None)
    assert result.total == N and result.seconds > 0 and result.per_second > 0
    assert_same(source, dest)


def test_memory_to_sqlite_copies_every_field(dest: Store) -> None:
    memory = filled("memory://", records(seed=11))
    result = copy_records(memory, dest, batch=1000)
    assert (result.read, result.written) == (N, N)
    assert_same(memory, dest)
    assert not (data_dir() / "copies").exists()  # an in-process store leaves no checkpoint


def test_copying_twice_writes_nothing_new(source: Store, dest: Store) -> None:
    copy_records(source, dest, batch=700)
    again = copy_records(source, dest, batch=700)
    assert (again.read, again.written, again.skipped) == (N, 0, N)
    assert_same(source, dest)


def test_progress_reports_running_totals_after_every_batch(source: Store, dest: Store) -> None:
    seen: list[CopyResult] = []
    copy_records(source, dest, batch=1000, on_progress=seen.append)
    assert [p.read for p in seen] == [1000, 2000, 3000]
    assert all(p.total == N for p in seen)


def _stop_after(batches: int) -> Callable[[CopyResult], None]:
    def progress(done: CopyResult) -> None:
        if done.read >= batches * 128:
            raise KeyboardInterrupt

    return progress


def test_a_stopped_copy_resumes_from_its_checkpoint(source: Store, dest: Store) -> None:
    with pytest.raises(KeyboardInterrupt):
        copy_records(source, dest, batch=128, on_progress=_stop_after(5))
    assert len(list(dest.iter_records())) == 5 * 128  # whole batches committed, no more
    checkpoints = list((data_dir() / "copies").glob("*.json"))
    assert len(checkpoints) == 1 and "password" not in checkpoints[0].read_text()
    fifth = list(source.iter_records())[5 * 128 - 1]
    resumed = copy_records(source, dest, batch=128)
    # 640 is not a multiple of 7: the stop fell inside a group of equal times, which resumes exactly
    assert resumed.resumed_from == CopyPosition(fifth.started_at, fifth.id)
    assert (resumed.read, resumed.written, resumed.skipped) == (N - 5 * 128, N - 5 * 128, 0)
    assert_same(source, dest)
    assert not checkpoints[0].exists()  # finished: the next copy reads the whole window again


class FailingStore:
    """A destination whose `fail_on`-th batch write fails half way (a lost connection)."""

    def __init__(self, inner: SQLiteStore, fail_on: int) -> None:
        self.inner, self.fail_on, self.writes, self.offered = inner, fail_on, 0, 0
        self.path = inner.path  # the same store for the checkpoint

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def bulk(self) -> Iterator[Callable[[Sequence[CallRecord]], int]]:
        with self.inner.bulk() as write:

            def failing(batch: Sequence[CallRecord]) -> int:
                self.writes += 1
                self.offered += len(batch)
                written = write(batch)
                if self.writes == self.fail_on:
                    raise ConnectionError("server closed the connection")
                return written

            yield failing


def test_a_batch_that_fails_is_rolled_back_and_written_on_resume(source: Store, tmp_path: Path) -> None:
    inner = SQLiteStore(tmp_path / "dest.db")
    failing = FailingStore(inner, fail_on=4)
    with pytest.raises(ConnectionError):
        copy_records(source, failing, batch=250)  # type: ignore[arg-type]
    assert len(list(inner.iter_records())) == 3 * 250
    resumed = copy_records(source, FailingStore(inner, fail_on=0), batch=250)  # type: ignore[arg-type]
    assert resumed.read == N - 3 * 250 and resumed.written == N - 3 * 250 and resumed.skipped == 0
    assert_same(source, inner)
    inner.close()


def test_resume_false_starts_over(source: Store, dest: Store) -> None:
    with pytest.raises(KeyboardInterrupt):
        copy_records(source, dest, batch=128, on_progress=_stop_after(2))
    fresh = copy_records(source, dest, batch=128, resume=False)
    assert fresh.resumed_from is None and fresh.read == N
    assert (fresh.written, fresh.skipped) == (N - 256, 256)


def test_a_checkpoint_belongs_to_one_window(source: Store, dest: Store) -> None:
    since = T0 + timedelta(minutes=1)
    with pytest.raises(KeyboardInterrupt):
        copy_records(source, dest, since=since, batch=128, on_progress=_stop_after(1))
    other = copy_records(source, dest, batch=128)  # the whole store: another copy
    assert other.resumed_from is None and other.read == N
    mine = copy_records(source, dest, since=since, batch=128)
    assert mine.resumed_from is not None and mine.written == 0


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (T0 + timedelta(seconds=100), None),
        (None, T0 + timedelta(seconds=100)),
        (T0 + timedelta(seconds=13), T0 + timedelta(seconds=77, microseconds=123_456)),
    ],
)
def test_since_until_windows(
    source: Store, dest: Store, since: datetime | None, until: datetime | None
) -> None:
    result = copy_records(source, dest, since=since, until=until, batch=64)
    expected = list(source.iter_records(since=since, until=until))
    assert result.read == result.written == result.total == len(expected) > 0
    assert_same(source, dest, since=since, until=until)


def test_a_position_whose_record_is_gone_offers_its_time_again(source: Store, dest: Store) -> None:
    """A checkpoint naming an id no longer in the source: its time's calls are all offered again
    (the destination skips the ones it holds), none is lost."""
    group = [r for r in source.iter_records() if r.started_at == T0 + timedelta(seconds=10)]
    assert len(group) == 7
    with write_all(dest) as write:
        write([r for r in source.iter_records() if r.started_at <= group[0].started_at][:-3])
    checkpoint = Checkpoint(store_url_of(source) or "", store_url_of(dest) or "", None, None)
    checkpoint.save(CopyPosition(group[0].started_at, "not-an-id"))
    result = copy_records(source, dest, batch=100)
    assert result.resumed_from is not None
    assert result.skipped == 4 and result.written == N - (10 * 7 + 4)
    assert_same(source, dest)


def test_same_store_and_bad_batch_are_refused(source: Store) -> None:
    with pytest.raises(ValueError, match="same store"):
        copy_records(source, source)
    with pytest.raises(ValueError, match="batch"):
        copy_records(source, MemoryStore(), batch=0)


def test_mask_url_hides_passwords() -> None:
    assert mask_url("postgresql://me:s3cret@db:5432/costlens") == "postgresql://me:***@db:5432/costlens"
    assert mask_url("clickhouse://default:pw@h:9000/db?password=x&secure=1") == (
        "clickhouse://default:***@h:9000/db?password=***&secure=1"
    )
    assert mask_url("sqlite:///abs/path.db") == "sqlite:///abs/path.db"
    assert mask_url("postgresql://me@db/costlens") == "postgresql://me@db/costlens"
    assert mask_url("sqlite:///a.db,postgresql://me:pw@db/x") == "sqlite:///a.db,postgresql://me:***@db/x"


def test_migrate_store_reports_what_the_store_can_tell(dest: Store) -> None:
    assert migrate_store(dest) is None  # SQLite migrates and does not say what

    class Telling(MemoryStore):
        def migrate(self) -> list[str]:  # type: ignore[override]
            return ["0001_calls"]

    assert migrate_store(Telling()) == ["0001_calls"]


# -- the command -------------------------------------------------------------------------------------


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_cli_copy_json_summary_and_a_second_copy(source: Store, tmp_path: Path) -> None:
    to = sqlite_url(tmp_path / "new" / "copy.db")
    first = cli("store", "copy", "--from", sqlite_url(tmp_path / "source.db"), "--to", to, "--format", "json")
    assert first.exit_code == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["read"] == summary["written"] == N and summary["skipped"] == 0
    assert summary["resumed_from"] is None and summary["records_per_second"] > 0
    assert summary["from"] == sqlite_url(tmp_path / "source.db") and summary["to"] == to
    copied = open_store(to, create=False)
    assert_same(source, copied)
    copied.close()
    again = json.loads(cli("store", "copy", "--from", summary["from"], "--to", to, "--format", "json").stdout)
    assert (again["written"], again["skipped"]) == (0, N)


def test_cli_copy_window_and_table(source: Store, tmp_path: Path) -> None:
    to = sqlite_url(tmp_path / "window.db")
    since, until = (T0 + timedelta(seconds=100)).isoformat(), (T0 + timedelta(seconds=200)).isoformat()
    result = cli("store", "copy", "--from", sqlite_url(tmp_path / "source.db"), "--to", to,
                 "--since", since, "--until", until)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "written" in result.stdout and "700" in result.stdout


def test_cli_copy_from_a_missing_store_is_one_line(tmp_path: Path) -> None:
    missing, to = tmp_path / "typo.db", tmp_path / "dest.db"
    err = one_line_error(cli("store", "copy", "--from", sqlite_url(missing), "--to", sqlite_url(to)), 1)
    assert err.startswith("costlens: --from: no store at") and str(missing) in err
    assert not missing.exists() and not to.exists()


def test_cli_copy_usage_errors(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "a.db")
    assert "same store" in one_line_error(cli("store", "copy", "--from", url, "--to", url), 2)
    err = one_line_error(cli("store", "copy", "--from", "bogus://me:s3cret@h/x", "--to", url), 2)
    assert "unknown store URL" in err and "s3cret" not in err and "me:***@h" in err


def test_cli_ctrl_c_says_how_to_resume_and_the_rerun_resumes(
    source: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import costlens.store

    real = costlens.store.copy_records

    def interrupted(*args: Any, **kwargs: Any) -> CopyResult:
        report = kwargs["on_progress"]

        def progress(done: CopyResult) -> None:
            report(done)
            if done.read >= 1000:
                raise KeyboardInterrupt

        return real(*args, **{**kwargs, "on_progress": progress})

    monkeypatch.setattr(costlens.store, "copy_records", interrupted)
    frm, to = sqlite_url(tmp_path / "source.db"), sqlite_url(tmp_path / "dest.db")
    stopped = cli("store", "copy", "--from", frm, "--to", to, "--batch", "500")
    assert stopped.exit_code == 130 and stopped.stdout == ""
    assert "1,000 calls read" in stopped.stderr
    assert (
        f"run: costlens store copy --from {frm} --to {to}" in stopped.stderr and "--fresh" in stopped.stderr
    )
    monkeypatch.setattr(costlens.store, "copy_records", real)
    resumed = json.loads(cli("store", "copy", "--from", frm, "--to", to, "--format", "json").stdout)
    assert resumed["resumed_from"] is not None and resumed["read"] == resumed["written"] == N - 1000
    fresh = json.loads(cli("store", "copy", "--from", frm, "--to", to, "--fresh", "--format", "json").stdout)
    assert fresh["resumed_from"] is None and (fresh["read"], fresh["written"]) == (N, 0)


def test_sigint_to_a_real_copy_then_resume(tmp_path: Path) -> None:
    """The real thing: `costlens store copy` in its own process, stopped by SIGINT part way."""
    big = 40_000
    store = filled(sqlite_url(tmp_path / "big.db"), records(big, seed=3))
    frm, to = sqlite_url(tmp_path / "big.db"), sqlite_url(tmp_path / "big-copy.db")
    args = [str(COSTLENS), "store", "copy", "--from", frm, "--to", to, "--batch", "500", "--format", "json"]
    env = {**os.environ, "COSTLENS_HOME": str(data_dir())}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    copies = data_dir() / "copies"
    deadline = time.monotonic() + 30
    while not any(copies.glob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.skip("the copy finished before it could be interrupted")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    if proc.returncode == 0:
        pytest.skip("the copy finished before the signal arrived")
    assert proc.returncode == 130 and out == "" and "to continue where it stopped" in err, err
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=True)
    summary = json.loads(done.stdout)
    assert summary["resumed_from"] is not None and 0 < summary["read"] < big
    assert summary["skipped"] <= 500  # at most the one batch committed before its checkpoint
    copied = open_store(to, create=False)
    assert_same(store, copied)
    copied.close()
    store.close()


def test_cli_info(source: Store, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "source.db")
    result = cli("store", "info", "--store", url, "--format", "json")
    assert result.exit_code == 0, result.stderr
    first, last = list(source.iter_records(limit=1)), list(source.iter_records(limit=1, newest_first=True))
    assert json.loads(result.stdout) == {
        "backend": "sqlite",
        "url": url,
        "records": N,
        "first_call": first[0].started_at.isoformat(),
        "last_call": last[0].started_at.isoformat(),
    }
    table = cli("store", "info", "--store", url)
    assert table.exit_code == 0 and "3000" in table.stdout


def test_cli_info_of_an_empty_and_a_missing_store(tmp_path: Path) -> None:
    empty = sqlite_url(tmp_path / "empty.db")
    assert cli("store", "migrate", "--store", empty).exit_code == 0
    data = json.loads(cli("store", "info", "--store", empty, "--format", "json").stdout)
    assert (data["records"], data["first_call"], data["last_call"]) == (0, None, None)
    missing = tmp_path / "missing.db"
    err = one_line_error(cli("store", "info", "--store", sqlite_url(missing)), 1)
    assert str(missing) in err and not missing.exists()


def test_cli_migrate_creates_and_is_idempotent(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "fresh" / "calls.db")
    for _ in range(2):
        result = cli("store", "migrate", "--store", url)
        assert result.exit_code == 0, result.stderr
        assert result.stdout.splitlines() == [f"store: {url}", "schema: up to date"]
    assert (tmp_path / "fresh" / "calls.db").is_file()


# -- other backends ----------------------------------------------------------------------------------


def _backend_ready(module: str, url: str) -> Store:
    """The store at `url`, or skip: the backend is another change, and may not have landed yet."""
    pytest.importorskip(module)
    store = open_store(url)
    store.migrate()
    return store


BACKENDS = {"postgres": ("postgres_url", "costlens.store.postgres"),
            "clickhouse": ("clickhouse_url", "costlens.store.clickhouse")}  # fmt: skip


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_sqlite_to_a_server_and_back(
    backend: str, source: Store, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fixture, module = BACKENDS[backend]
    url: str = request.getfixturevalue(fixture)
    server = _backend_ready(module, url)
    back_url = sqlite_url(tmp_path / "back.db")
    back = open_store(back_url)
    try:
        there = copy_records(source, server, batch=700, dest_url=url)
        assert (there.read, there.written) == (N, N) and totals(server) == totals(source)
        with pytest.raises(KeyboardInterrupt):
            copy_records(server, back, batch=128, on_progress=_stop_after(2), source_url=url)
        home = copy_records(server, back, batch=1000, source_url=url)
        assert home.resumed_from is not None and home.read == home.written == N - 256
        assert_same(source, back)
    finally:
        server.close()
        back.close()


def test_sqlite_to_postgres_to_clickhouse(
    source: Store, postgres_url: str, clickhouse_url: str, tmp_path: Path
) -> None:
    """A chain through both server backends ends where it started, every field intact; the second
    copy of each hop writes nothing, and a hop stopped part way resumes."""
    postgres = _backend_ready("costlens.store.postgres", postgres_url)
    clickhouse = _backend_ready("costlens.store.clickhouse", clickhouse_url)
    back = open_store(sqlite_url(tmp_path / "back.db"))
    hops: list[tuple[Store, Store, str, str]] = [
        (source, postgres, store_url_of(source) or "", postgres_url),
        (postgres, clickhouse, postgres_url, clickhouse_url),
        (clickhouse, back, clickhouse_url, sqlite_url(tmp_path / "back.db")),
    ]
    try:
        for frm, to, frm_url, to_url in hops:
            urls = {"source_url": frm_url, "dest_url": to_url}
            with pytest.raises(KeyboardInterrupt):
                copy_records(frm, to, batch=128, on_progress=_stop_after(3), **urls)
            resumed = copy_records(frm, to, batch=500, **urls)
            assert resumed.resumed_from is not None and resumed.read == resumed.written == N - 3 * 128
            assert copy_records(frm, to, batch=1000, **urls).written == 0
            assert totals(to) == totals(source)
        assert_same(source, back)
    finally:
        for store in (postgres, clickhouse, back):
            store.close()
