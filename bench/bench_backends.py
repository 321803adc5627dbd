"""Benchmark: the stores and ledgers beyond one machine, side by side in one run.

Run: `.venv/bin/python bench/bench_backends.py [--records 10000000] [--insert-records 1000000]`.
Needs the servers of `scripts/servers.sh start` (`make bench` starts and stops them); a backend
whose server is not configured (`COSTLENS_TEST_POSTGRES`, `COSTLENS_TEST_CLICKHOUSE`,
`COSTLENS_TEST_REDIS`) is reported as skipped.

1. Insert throughput per store (records/s): `--insert-records` prebuilt call records written through
   the store's bulk path (`write_all`: SQLite's staged transaction, PostgreSQL's COPY, ClickHouse's
   batched native inserts) in batches of 10,000, each store in a fresh database.
2. Spend by model × day over `--records` calls per store (goals: PostgreSQL ≤ 500 ms, ClickHouse
   ≤ 200 ms; SQLite shown beside them): `Store.query(SpendQuery(("model", "day")))`, median of 5.
   The rest of the records are appended the same way first (not timed).
3. The same report: `costlens report --by model,day --format json` run against each store must
   print the same bytes (checked, and said).
4. Reserve + settle p50 per ledger on one thread (goals: Redis ≤ 200 µs, PostgreSQL ≤ 1 ms over
   loopback), memory and SQLite beside them, and pairs/s with 16 threads on one budget key.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from costlens.budgets import Budget, BudgetKey, Ledger, open_ledger
from costlens.store import SpendQuery, Store, open_store
from costlens.store._base import write_all
from costlens.usage import CallRecord

BATCH = 10_000
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-flash", "gpt-4.1-nano")
FEATURES = ({"feature": "search"}, {"feature": "chat"}, {"feature": "summarise"})
START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_US = 90 * 86_400_000_000  # the records cover 90 days
PAIRS = 2000
THREADS = 16
PER_THREAD = 200


def records(first: int, count: int, total: int) -> list[CallRecord]:
    step = SPAN_US // max(total, 1)
    return [
        CallRecord(
            provider="openai",
            operation="chat",
            request_model=MODELS[i % 5],
            started_at=START + timedelta(microseconds=i * step),
            input_tokens=800 + i % 1000,
            output_tokens=50 + i % 300,
            cache_read_tokens=i % 512,
            cost_nanousd=None if i % 997 == 0 else 100_000 + i % 9_000,
            price_known=i % 997 != 0,
            price_version="bench",
            tags=FEATURES[i % 3],
            id=f"{i:032x}",
        )
        for i in range(first, first + count)
    ]


def _fresh_database(kind: str, url: str) -> tuple[str, Callable[[], None]]:
    """A new database on the server, and how to drop it."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    parts = urlsplit(url)
    fresh = urlunsplit(parts._replace(path="/" + name))
    if kind == "postgres":
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        return fresh, drop
    from clickhouse_driver import Client

    client = Client(host=parts.hostname, port=parts.port or 9000)
    client.execute(f"CREATE DATABASE {name}")
    return fresh, lambda: client.execute(f"DROP DATABASE IF EXISTS {name}")


def stores(folder: Path) -> Iterator[tuple[str, str | None, str, Callable[[], None]]]:
    """(name, URL or None when skipped, why skipped, cleanup) per store backend."""
    yield "SQLite", f"sqlite:///{folder / 'bench.db'}", "", lambda: None
    for kind, name, variable in (
        ("postgres", "PostgreSQL", "COSTLENS_TEST_POSTGRES"),
        ("clickhouse", "ClickHouse", "COSTLENS_TEST_CLICKHOUSE"),
    ):
        base = os.environ.get(variable)
        if not base:
            yield name, None, f"{variable} not set (scripts/servers.sh start)", lambda: None
            continue
        try:
            url, drop = _fresh_database(kind, base)
        except Exception as exc:  # a bench reports a missing server, it does not stop
            yield name, None, f"server not reachable: {exc}", lambda: None
            continue
        yield name, url, "", drop


def fill(store: Store, first: int, count: int, total: int, progress: Progress, label: str) -> float:
    """Append `count` records from `first` in batches; returns the seconds spent writing."""
    task = progress.add_task(label, total=count)
    spent = 0.0
    with write_all(store) as write:
        for start in range(first, first + count, BATCH):
            batch = records(start, min(BATCH, first + count - start), total)
            t0 = time.perf_counter()
            write(batch)
            spent += time.perf_counter() - t0
            progress.advance(task, len(batch))
    progress.remove_task(task)
    return spent


def median_query_ms(store: Store, repeat: int = 5) -> float:
    query = SpendQuery(group_by=("model", "day"))
    store.query(query)  # warm caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        store.query(query)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def report_json(url: str) -> bytes:
    costlens = Path(sys.executable).with_name("costlens")
    command = [str(costlens), "report", "--store", url, "--by", "model,day", "--since", "2024-01-01"]
    return subprocess.run([*command, "--format", "json"], check=True, capture_output=True).stdout


def store_section(folder: Path, total: int, inserted: int, console: Console) -> tuple[Table, str]:
    table = Table(title=f"Stores: insert {inserted:,} records; spend by model × day over {total:,}")
    for column in ("store", "insert records/s", "model × day query ms", "goal"):
        table.add_column(column, justify="left" if column in ("store", "goal") else "right")
    goals = {"PostgreSQL": "≤ 500 ms", "ClickHouse": "≤ 200 ms", "SQLite": "(≤ 300 ms, issue 6)"}
    reports: dict[str, bytes] = {}
    with Progress(console=console, transient=True) as progress:
        for name, url, why, cleanup in stores(folder):
            if url is None:
                table.add_row(name, "skipped", why, goals[name])
                continue
            try:
                store = open_store(url)
                store.migrate()
                seconds = fill(store, 0, inserted, total, progress, f"{name}: timed insert")
                fill(store, inserted, total - inserted, total, progress, f"{name}: the rest")
                query_ms = median_query_ms(store)
                store.close()
                reports[name] = report_json(url)
                table.add_row(name, f"{inserted / seconds:,.0f}", f"{query_ms:,.1f}", goals[name])
            finally:
                cleanup()
    same = len(set(reports.values())) == 1
    verdict = (
        f"`costlens report --by model,day --format json`: {'identical' if same else 'DIFFERENT'} bytes "
        f"from {', '.join(reports)} ({len(next(iter(reports.values()), b'')):,} bytes)"
    )
    return table, verdict


def _keys(n: int) -> list[BudgetKey]:
    at = datetime.now(UTC)
    out = []
    for i, window in enumerate(("day", "month", "24h")[:n]):
        budget = Budget(f"b{i}-{uuid.uuid4().hex[:6]}", limit_usd=10**6, window=window)
        position = budget.window.position(at)
        out.append(BudgetKey(budget.name, budget.limit_nanousd, position.since_us, position.bucket_us))
    return out


def pairs_p50_us(ledger: Ledger, keys: list[BudgetKey]) -> float:
    for _ in range(200):  # warm: connections, migrations, scripts loaded
        ledger.settle(ledger.reserve(keys, 1000, 60), 900)
    times = []
    for _ in range(PAIRS):
        t0 = time.perf_counter_ns()
        ledger.settle(ledger.reserve(keys, 1000, 60), 900)
        times.append((time.perf_counter_ns() - t0) / 1000)
    return statistics.median(times)


def contended_rate(ledger: Ledger) -> float:
    keys = _keys(1)
    ready = threading.Barrier(THREADS + 1)

    def work() -> None:
        ready.wait()
        for _ in range(PER_THREAD):
            ledger.settle(ledger.reserve(keys, 1000, 60), 900)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    ready.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    return THREADS * PER_THREAD / (time.perf_counter() - t0)


def ledgers(folder: Path) -> Iterator[tuple[str, str | None, str, Callable[[], None]]]:
    yield "memory", "memory://", "", lambda: None
    yield "SQLite", f"sqlite:///{folder / 'budgets.db'}", "", lambda: None
    base = os.environ.get("COSTLENS_TEST_POSTGRES")
    if base:
        url, drop = _fresh_database("postgres", base)
        yield "PostgreSQL", url, "", drop
    else:
        yield "PostgreSQL", None, "COSTLENS_TEST_POSTGRES not set", lambda: None
    redis_url = os.environ.get("COSTLENS_TEST_REDIS")
    if redis_url:
        prefix = f"bench-{uuid.uuid4().hex[:6]}:"
        yield "Redis", f"{redis_url}?prefix={prefix}", "", lambda: None
    else:
        yield "Redis", None, "COSTLENS_TEST_REDIS not set", lambda: None


def ledger_section(folder: Path) -> Table:
    table = Table(
        title=f"Ledgers: reserve + settle, {PAIRS:,} pairs on one thread; {THREADS} threads on one key"
    )
    for column in ("ledger", "p50 µs (1 key)", "p50 µs (3 keys)", f"pairs/s, {THREADS} threads", "goal"):
        table.add_column(column, justify="left" if column in ("ledger", "goal") else "right")
    goals = {"Redis": "≤ 200 µs", "PostgreSQL": "≤ 1,000 µs", "SQLite": "(≤ 150 µs, issue 5)", "memory": ""}
    for name, url, why, cleanup in ledgers(folder):
        if url is None:
            table.add_row(name, "skipped", why, "", goals[name])
            continue
        ledger = open_ledger(url)
        try:
            one, three = pairs_p50_us(ledger, _keys(1)), pairs_p50_us(ledger, _keys(3))
            rate = contended_rate(ledger)
            table.add_row(name, f"{one:,.0f}", f"{three:,.0f}", f"{rate:,.0f}", goals[name])
        finally:
            ledger.close()
            cleanup()
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--insert-records", type=int, default=1_000_000)
    args = parser.parse_args()
    console = Console(width=max(Console().width, 130))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        table, verdict = store_section(folder, args.records, min(args.insert_records, args.records), console)
        console.print(table)
        console.print(verdict)
        console.print(ledger_section(folder))


if __name__ == "__main__":
    main()
