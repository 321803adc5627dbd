"""Budgets hold exactly under load: threads, asyncio tasks and processes sharing one ledger (SQLite,
and PostgreSQL and Redis when their test servers run; see tests/servers.py).

Real `openai` / `anthropic` clients call the fake provider with random output sizes; nested budgets
(global, per user, per feature, per provider, a downgrade on one model, a warn-only one) are
exceeded on purpose. Afterwards: settled spend never passes an enforced limit (the largest
overshoot is printed, and must be 0), no reservation is left, every call has exactly one record,
and the ledger's spend per key equals the charges recorded on the calls.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

import costlens
from costlens.budgets import load_budgets
from costlens.config import configure_budgets, reset_budgets
from costlens.store.sqlite import SQLiteStore
from costlens.testing import FakeProvider
from tests import _budgets_stress_worker as worker

THREADS = 16
PROCESSES = 3


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    ledger = f"sqlite://{tmp_path / 'budgets.db'}"
    store = tmp_path / "calls.db"
    yield ledger, f"sqlite://{store}", store
    reset_budgets()
    costlens.configure(store="memory://", durability="sync")


def _report(name: str, report: worker.Report) -> None:
    print(
        f"\n[{name}] calls={report.calls} blocked={report.blocked} downgraded={report.downgraded} "
        f"records={report.records} max_overshoot_nanousd={report.max_overshoot_nanousd} "
        f"reserved_left={report.reserved_left_nanousd}"
    )
    for key, (spent, limit) in sorted(report.keys.items()):
        print(f"    {key:<24} spent {spent:>12} of {limit:>12} nano-USD")


def _assert_exact(report: worker.Report) -> None:
    assert report.max_overshoot_nanousd <= 0
    assert report.reserved_left_nanousd == 0
    assert report.records == report.calls
    assert 0 < report.blocked < report.calls  # the limits were really reached, and calls got through


def test_sixteen_threads_share_exact_budgets(files: tuple[str, str, Path]) -> None:
    ledger, store_url, store_path = files
    costlens.configure(store=store_url, durability="async")
    configure_budgets(worker.budgets(), ledger=ledger)
    with FakeProvider() as fake:
        outcomes = worker.run_threads(fake.base_url, THREADS, 20, seed=1)
    costlens.flush()
    store = SQLiteStore(store_path)
    report = worker.check(ledger, store, sum(outcomes.values()), outcomes["blocked"])
    store.close()
    _report("16 threads", report)
    _assert_exact(report)
    assert report.downgraded > 0


def test_sixteen_threads_with_budget_leases_share_exact_budgets(files: tuple[str, str, Path]) -> None:
    ledger, store_url, store_path = files
    costlens.configure(store=store_url, durability="async")
    engine = configure_budgets(worker.budgets(), ledger=ledger, lease_usd="0.001")
    with FakeProvider() as fake:
        outcomes = worker.run_threads(fake.base_url, THREADS, 20, seed=3)
    costlens.flush()
    reset_budgets()  # closes the engine: the slices settle into the ledger
    assert engine.ledger.url == ledger
    store = SQLiteStore(store_path)
    report = worker.check(ledger, store, sum(outcomes.values()), outcomes["blocked"])
    store.close()
    _report("16 threads, leases", report)
    _assert_exact(report)


def test_two_hundred_asyncio_tasks_share_exact_budgets(files: tuple[str, str, Path]) -> None:
    ledger, store_url, store_path = files
    costlens.configure(store=store_url, durability="async")
    configure_budgets(worker.budgets(), ledger=ledger)
    with FakeProvider() as fake:
        outcomes = asyncio.run(worker.run_tasks(fake.base_url, 200, 3, seed=2))
    costlens.flush()
    store = SQLiteStore(store_path)
    report = worker.check(ledger, store, sum(outcomes.values()), outcomes["blocked"])
    store.close()
    _report("200 asyncio tasks", report)
    _assert_exact(report)


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def shared_ledger(request: pytest.FixtureRequest, files: tuple[str, str, Path]) -> str:
    """The URL of a ledger that several processes share: a SQLite file, or a server (skipped without)."""
    if request.param == "sqlite":
        return files[0]
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


def _processes(
    store_path: Path, store_url: str, ledgers: list[str], threads: int, calls: int, name: str
) -> None:
    """One spawned process per entry of `ledgers` (a ledger URL or `file:<budgets file>`), each with
    `threads` threads making `calls` calls; then the exactness checks and the once-only alerts."""
    context = multiprocessing.get_context("spawn")
    alerts = store_path.parent / "alerts.txt"
    with FakeProvider() as fake, context.Pool(len(ledgers)) as pool:
        jobs = [
            (fake.base_url, ledger, store_url, str(alerts), threads, calls, seed)
            for seed, ledger in enumerate(ledgers, start=10)
        ]
        results = pool.map_async(worker.process_main, jobs).get(timeout=90)
        # Let the workers end on their own (atexit: the recorder flushes, pools close) rather than
        # by the SIGTERM that leaving the `with` block sends to workers still alive.
        pool.close()
        pool.join()
    assert all("unavailable" not in r for r in results), results
    calls_made = sum(sum(r.values()) for r in results)
    blocked = sum(r.get("blocked", 0) for r in results)
    store = SQLiteStore(store_path)
    ledger_url = ledgers[0]
    if ledger_url.startswith("file:"):
        ledger_url = load_budgets(ledger_url[len("file:") :]).ledger or ""
    report = worker.check(ledger_url, store, calls_made, blocked)
    store.close()
    _report(name, report)
    _assert_exact(report)
    fired = alerts.read_text().splitlines()
    print(f"    alerts fired: {len(fired)}, each once across the {len(ledgers)} processes")
    assert len(fired) == len(set(fired)) > 0
    assert {"all|threshold|50|", "all|threshold|80|"} <= {line.rsplit("|", 1)[0] + "|" for line in fired}


def test_three_processes_of_sixteen_threads_share_one_ledger(
    files: tuple[str, str, Path], shared_ledger: str
) -> None:
    _, store_url, store_path = files
    name = f"{PROCESSES} processes x {THREADS} threads, {shared_ledger.partition(':')[0]}"
    _processes(store_path, store_url, [shared_ledger] * PROCESSES, THREADS, 12, name)


def test_three_processes_with_budget_leases_share_one_sqlite_ledger(files: tuple[str, str, Path]) -> None:
    ledger, store_url, store_path = files
    paths = [store_path.parent / f"process-{n}.toml" for n in range(PROCESSES)]
    for path in paths:
        worker.write_budgets_file(str(path), ledger, lease_usd="0.001")
    name = f"{PROCESSES} processes x {THREADS} threads, sqlite, leases"
    _processes(store_path, store_url, [f"file:{p}" for p in paths], THREADS, 12, name)


@pytest.mark.parametrize("server", ["postgres", "redis"])
def test_two_app_instances_with_their_own_budgets_files_share_the_server_ledger(
    files: tuple[str, str, Path], server: str, request: pytest.FixtureRequest
) -> None:
    """Two instances of an app, each reading its own copy of the budgets file, whose `[settings]`
    name the same server ledger: together they never pass a limit."""
    _, store_url, store_path = files
    url = request.getfixturevalue(f"{server}_url")
    paths = [store_path.parent / f"instance-{n}" / "budgets.toml" for n in range(2)]
    for path in paths:
        path.parent.mkdir()
        worker.write_budgets_file(str(path), url)
        assert load_budgets(path).ledger == url
    _processes(store_path, store_url, [f"file:{p}" for p in paths], THREADS, 12, f"2 instances, {server}")
