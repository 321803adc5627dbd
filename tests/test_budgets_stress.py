"""Budgets hold exactly under load: threads, asyncio tasks and processes sharing one SQLite ledger.

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


def test_three_processes_of_sixteen_threads_share_one_ledger_file(files: tuple[str, str, Path]) -> None:
    ledger, store_url, store_path = files
    context = multiprocessing.get_context("spawn")
    alerts = store_path.parent / "alerts.txt"
    with FakeProvider() as fake, context.Pool(PROCESSES) as pool:
        jobs = [
            (fake.base_url, ledger, store_url, str(alerts), THREADS, 12, seed)
            for seed in range(10, 10 + PROCESSES)
        ]
        results = pool.map(worker.process_main, jobs)
    assert all("unavailable" not in r for r in results), results
    calls = sum(sum(r.values()) for r in results)
    blocked = sum(r.get("blocked", 0) for r in results)
    store = SQLiteStore(store_path)
    report = worker.check(ledger, store, calls, blocked)
    store.close()
    _report(f"{PROCESSES} processes x {THREADS} threads", report)
    _assert_exact(report)
    fired = alerts.read_text().splitlines()
    print(f"    alerts fired: {len(fired)}, each once across the {PROCESSES} processes")
    assert len(fired) == len(set(fired)) > 0
    assert {"all|threshold|50|", "all|threshold|80|"} <= {line.rsplit("|", 1)[0] + "|" for line in fired}
