"""Benchmark: what tracking costs a busy process, raw vs tracked side by side in one run.

Run: `.venv/bin/python bench/bench_load.py [--rounds 24] [--calls 200] [--pairs 1000] [--passes 4]
[--collector-calls 1000] [--rss-calls 200000] [--only budgets]`.

The fake provider runs in its own process so its work does not share our GIL. For each load
(100 asyncio tasks on one `AsyncOpenAI`, 16 threads on one `OpenAI`, sequential plain calls,
sequential streamed calls, and the same streamed calls against a raw client that asks for the
stream's usage itself) and each set-up (SQLite store, `memory://` store, SQLite store plus two
nested budgets on the SQLite ledger, the same with budget leases ($1 slices admitted in memory), and
the same budgets on the in-process `memory://` ledger, which shows the budget engine's own share),
raw and tracked clients take turns in alternating (ABBA) rounds of
`--calls` calls, so drift on the machine hits both alike. Per round we measure:

- client CPU per call: `time.process_time()` of this process (every thread, the recorder's
  included) over the round, divided by its calls: what tracking costs the host, free of the wait
  for the provider;
- throughput (calls/s of wall time) and per-call latency p50/p99.

Where the machine has two cores or more, the fake provider runs on one core and this process on
another (`--no-pin` turns this off): on a small machine the two otherwise take turns on the same
cores, and how they interleave moved the added CPU by ±100 µs between identical runs.

"added CPU" is the median over rounds of (tracked − raw) CPU per call: a paired figure, robust to
drift, printed with its 95% confidence interval (order statistics of the paired differences: no
assumption about their distribution). A goal is met when the interval's upper end is within it.

Then the same loads and set-ups paired call by call (`--pairs`, in `--passes` round-robin passes;
`bench/paired.py` says how): intervals of a few µs where the rounds' are ±150 µs wide on a small
VM, for the direct cost (what the rounds add on top is tracking's indirect share). The goals are
judged on that table. Raw and tracked clients share one HTTP connection pool (see `_clients`).
Two more stream rows there split a tracked stream's cost: the least any exact tracker pays
(`usage_hidden`: a raw stream that asks for its usage event and hides it at the byte level) against
a raw stream that asks for none, and costlens against that least. The floor keeps the SDK's own
SSE decoder; a tracked OpenAI stream decodes its events with costlens' faster one (since stop 43,
`costlens.instrument._sse`), so costlens can come out below the floor, and below a raw stream.
The last paired row is an Anthropic stream, tracked against raw (its usage comes in every stream:
nothing is added); since stop 44 it too is read below the SDK's events and decoded by costlens.

Then the objects the garbage collector counts per call, raw and tracked, plain and budgeted
(`--collector-calls`; `collector_section` says why they matter). The last section tracks
`--rss-calls` calls with 16 threads and prints the resident set size every tenth of the way: it
must stay flat after warm-up.

Goals (issue 14): added CPU ≤ 40 µs per call under 100 tasks and under 16 threads (SQLite store,
async durability), ≤ 120 µs with two nested budgets; streamed call ≤ +60 µs over raw (paired).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import openai
from rich.console import Console
from rich.table import Table

import costlens
import paired  # (bench/paired.py, beside this script)
from costlens.config import get_engine
from costlens.testing import fake_provider_process

MESSAGES: Any = [{"role": "user", "content": "Say hello"}]
TASKS = 100
THREADS = 16


@dataclass
class Samples:
    cpu_us: list[float] = field(default_factory=list)  # per call, one value per round
    rate: list[float] = field(default_factory=list)  # calls/s, one per round
    latencies_us: list[float] = field(default_factory=list)  # every call
    collections: int = 0  # garbage collections (every generation) during the rounds
    calls: int = 0

    def per_1k_calls(self) -> float:
        return self.collections * 1000 / max(self.calls, 1)


class CollectorCount:
    """Counts the garbage collector's runs (`gc.callbacks`): a tracked call that leaves objects in
    a reference cycle, or holds many until the recorder writes them, makes it run more often, and
    under load each run walks memory the CPU's caches no longer hold (a cost the instruction counts
    do not show)."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            self.runs += 1

    def __enter__(self) -> CollectorCount:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def median_interval(diffs: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """The distribution-free confidence interval of the median of `diffs`: the k-th smallest and
    k-th largest, k the largest index with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2."""
    ordered, n = sorted(diffs), len(diffs)
    tail, k, below = (1 - confidence) / 2, 0, 0.0
    while k < n // 2 and below + math.comb(n, k) / 2**n <= tail:
        below += math.comb(n, k) / 2**n
        k += 1
    if k == 0:  # too few rounds for this confidence: the whole range
        return ordered[0], ordered[-1]
    return ordered[k - 1], ordered[n - k]


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def _p50_p99(samples: Samples) -> str:
    values = samples.latencies_us
    return f"{_percentile(values, 50) / 1000:.2f}/{_percentile(values, 99) / 1000:.2f}"


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- loads: each runs `n` calls and returns the per-call latencies in µs ----------------------------


async def run_async(client: openai.AsyncOpenAI, n: int) -> list[float]:
    """`n` calls from TASKS tasks on one client."""
    latencies: list[float] = []
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            t0 = time.perf_counter_ns()
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            latencies.append((time.perf_counter_ns() - t0) / 1000)

    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return latencies


def run_threads(client: openai.OpenAI, n: int, pool: ThreadPoolExecutor) -> list[float]:
    def one(_: int) -> float:
        t0 = time.perf_counter_ns()
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        return (time.perf_counter_ns() - t0) / 1000

    return list(pool.map(one, range(n)))


def run_sequential(client: openai.OpenAI, n: int, *, stream: bool, ask_usage: bool = False) -> list[float]:
    out = []
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if ask_usage else {}
    for _ in range(n):
        t0 = time.perf_counter_ns()
        if stream:
            for _chunk in client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, **options
            ):
                pass
        else:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def _round(load: Callable[[bool, int], list[float]], tracked: bool, n: int, samples: Samples) -> None:
    with CollectorCount() as collector:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        latencies = load(tracked, n)
        costlens.flush()  # the recorder's work for these calls belongs to this round
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    samples.collections += collector.runs
    samples.calls += n
    samples.cpu_us.append(cpu / n * 1e6)
    samples.rate.append(n / wall)
    samples.latencies_us.extend(latencies)


def _clients(
    base_url: str, loop: asyncio.AbstractEventLoop, stack: contextlib.ExitStack
) -> tuple[dict[bool, openai.OpenAI], dict[bool, openai.AsyncOpenAI]]:
    """A raw and a tracked client (by `tracked`), sync and async, made once: the async ones live in
    `loop`, which runs every async round (an `AsyncOpenAI` per round, in a loop of its own, put its
    set-up, TLS context included, into the per-call CPU, and its variance into both figures).

    The raw and the tracked client share one HTTP connection pool: httpx's pool walks its
    connections on every request and response, so a client with more of them costs more per call.
    With a pool each, calls interleaved under 100 tasks made a second raw client look 95 µs per
    call cheaper than the first (an A/A test); with one pool, +1 µs (95% CI -4 to +6)."""
    pool = openai.DefaultHttpxClient()
    async_pool = openai.DefaultAsyncHttpxClient()

    def sync_client(tracked: bool) -> openai.OpenAI:
        client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0, http_client=pool)
        return costlens.track(client) if tracked else client

    def async_client(tracked: bool) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, http_client=async_pool)
        return costlens.track(client) if tracked else client

    clients = {tracked: sync_client(tracked) for tracked in (False, True)}
    async_clients = {tracked: async_client(tracked) for tracked in (False, True)}
    stack.callback(pool.close)
    stack.callback(lambda: loop.run_until_complete(async_pool.aclose()))  # in the loop it used
    return clients, async_clients


def _anthropic_clients(base_url: str, stack: contextlib.ExitStack) -> dict[bool, anthropic.Anthropic]:
    """A raw and a tracked `anthropic.Anthropic` (by `tracked`) on one connection pool, as `_clients`."""
    pool = anthropic.DefaultHttpxClient()
    stack.callback(pool.close)
    root = base_url.removesuffix("/v1")  # (the Anthropic SDK adds `/v1` to its paths itself)

    def client(tracked: bool) -> anthropic.Anthropic:
        made = anthropic.Anthropic(base_url=root, api_key="bench", max_retries=0, http_client=pool)
        return costlens.track(made) if tracked else made

    return {tracked: client(tracked) for tracked in (False, True)}


def _loads(
    clients: dict[bool, openai.OpenAI],
    async_clients: dict[bool, openai.AsyncOpenAI],
    pool: ThreadPoolExecutor,
    loop: asyncio.AbstractEventLoop,
) -> dict[str, Callable[[bool, int], list[float]]]:
    """The loads, by name: each runs `n` calls on the raw or the tracked client."""

    def in_async(tracked: bool, n: int) -> list[float]:
        return loop.run_until_complete(run_async(async_clients[tracked], n))

    return {
        f"{TASKS} asyncio tasks": in_async,
        f"{THREADS} threads": lambda tracked, n: run_threads(clients[tracked], n, pool),
        "sequential": lambda tracked, n: run_sequential(clients[tracked], n, stream=False),
        "sequential stream": lambda tracked, n: run_sequential(clients[tracked], n, stream=True),
        # The baseline a caller who wants a stream's usage pays without costlens: the raw side asks
        # for it (the provider sends one more event, the SDK reads and builds it); the tracked side
        # does not ask (costlens asks, and drops the event before the SDK builds it).
        "sequential stream, raw asks for usage": lambda tracked, n: run_sequential(
            clients[tracked], n, stream=True, ask_usage=not tracked
        ),
    }


def _paired_loads(
    clients: dict[bool, openai.OpenAI],
    async_clients: dict[bool, openai.AsyncOpenAI],
    pool: ThreadPoolExecutor,
    loop: asyncio.AbstractEventLoop,
    anthropic_clients: dict[bool, anthropic.Anthropic],
) -> dict[str, paired.PairedLoad]:
    """The same loads with raw and tracked calls interleaved one by one (`paired`)."""

    def plain(tracked: bool) -> object:
        return clients[tracked].chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    def streamed(tracked: bool, ask_usage: bool) -> None:
        options: dict[str, Any] = {"stream_options": {"include_usage": True}} if ask_usage else {}
        for _chunk in clients[tracked].chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, **options
        ):
            pass

    def floor(tracked: bool) -> None:
        """`tracked`: costlens' stream; else the least an exact tracker pays (`usage_hidden`)."""
        if tracked:
            return streamed(True, ask_usage=False)
        for _chunk in usage_hidden(
            clients[False].chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body=ASK_USAGE
            )
        ):
            pass

    def wire(hide: bool) -> None:
        """`hide`: a raw stream asking for its usage and hiding it (`usage_hidden`); else a raw one."""
        options: dict[str, Any] = {"extra_body": ASK_USAGE} if hide else {}
        stream = clients[False].chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, **options
        )
        for _chunk in usage_hidden(stream) if hide else stream:
            pass

    def in_async(tracked: bool) -> Any:
        return async_clients[tracked].chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    def anthropic_streamed(tracked: bool) -> None:
        # (an Anthropic stream carries its usage: no event is added, the raw side is the baseline)
        stream = anthropic_clients[tracked].messages.create(
            model="claude-3-5-haiku-20241022", max_tokens=64, messages=MESSAGES, stream=True
        )
        for _event in stream:
            pass

    return {
        f"{TASKS} asyncio tasks": paired.in_tasks(in_async, loop, TASKS),
        f"{THREADS} threads": paired.threads(plain, pool, THREADS),
        "sequential": paired.sequential(plain),
        "sequential stream": paired.sequential(lambda tracked: streamed(tracked, ask_usage=False)),
        "sequential stream, raw asks for usage": paired.sequential(
            lambda tracked: streamed(tracked, ask_usage=not tracked)
        ),
        # What costlens itself adds to a stream, over the least any exact tracker pays...
        "sequential stream, raw asks for usage and hides it": paired.sequential(floor),
        # ... and that least, with no costlens at all: asking for the usage event costs the SDK's
        # HTTP stack one more event (the "tracked" side here is that raw stream, not costlens).
        "sequential stream: the usage event alone, no costlens": paired.sequential(wire),
        "sequential stream, Anthropic": paired.sequential(anthropic_streamed),
    }


#: What costlens adds to a stream's body, sent untransformed (as costlens sends it).
ASK_USAGE: dict[str, Any] = {"stream_options": {"include_usage": True}}


class _UsageHidden:
    """An SSE decoder reading bytes that `_without_usage` filtered."""

    def __init__(self, decoder: Any) -> None:
        self._decoder = decoder

    def iter_bytes(self, chunks: Any) -> Any:
        return self._decoder.iter_bytes(_without_usage(chunks))


def usage_hidden(stream: Any) -> Any:
    """`stream` (not yet read) read as the least an exact tracker that asked for the usage must:
    its usage event parsed and dropped, the `"usage":null` of every other chunk cut, at the
    byte level, before the SDK parses anything. A baseline for the fake provider's layout only."""
    stream._decoder = _UsageHidden(stream._decoder)
    return stream


def _without_usage(chunks: Any) -> Any:
    carry, blank_follows = b"", False
    for chunk in chunks:
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n") + 1  # whole lines only: a pattern never spans two reads
        data, carry = data[:cut].replace(b',"usage":null}', b"}"), data[cut:]
        if blank_follows and data:  # the blank line that ended the dropped event
            data, blank_follows = data.removeprefix(b"\n"), False
        at = data.find(b'"usage":{')
        if at >= 0:
            start, end = data.rfind(b"\n", 0, at) + 1, data.find(b"\n", at) + 1
            json.loads(data[start + len(b"data: ") : end])  # the usage the tracker asked for
            data, blank_follows = data[:start] + data[end:].removeprefix(b"\n"), end == len(data)
        yield data
    if carry:
        yield carry


def close_budgets() -> None:
    """Take the budgets off and close their engine: its leases settle into its ledger now, while the
    ledger's file is still there (a replaced engine is left open for the calls in flight, and would
    settle them at exit, after the bench's folder is gone)."""
    engine = get_engine()
    costlens.configure_budgets([])
    if engine is not None:
        engine.close()


def _setups(folder: Path) -> dict[str, Callable[[], None]]:
    def sqlite() -> None:
        costlens.configure(store=f"sqlite:///{folder / 'calls.db'}", durability="async")
        costlens.configure_budgets([])

    def memory() -> None:
        costlens.configure(store="memory://", durability="async")
        costlens.configure_budgets([])

    def two_budgets() -> list[costlens.Budget]:
        return [
            costlens.Budget("all", limit_usd="1000000", window="month"),
            costlens.Budget("per-model", limit_usd="1000000", window="day", scope={"model": "*"}),
        ]

    def budgets() -> None:
        costlens.configure(store=f"sqlite:///{folder / 'calls.db'}", durability="async")
        costlens.configure_budgets(two_budgets(), ledger=f"sqlite:///{folder / 'budgets.db'}")

    def budgets_leased() -> None:  # the same budgets, calls admitted against $1 slices in memory
        costlens.configure(store=f"sqlite:///{folder / 'calls.db'}", durability="async")
        costlens.configure_budgets(two_budgets(), ledger=f"sqlite:///{folder / 'budgets.db'}", lease_usd="1")

    def budgets_in_memory() -> None:  # the same budgets on the in-process ledger: the engine's own share
        costlens.configure(store=f"sqlite:///{folder / 'calls.db'}", durability="async")
        costlens.configure_budgets(two_budgets(), ledger="memory://")

    return {
        "SQLite store": sqlite,
        "memory:// store": memory,
        "SQLite + 2 nested budgets": budgets,
        "SQLite + 2 budgets, leases": budgets_leased,
        "SQLite + 2 budgets, memory:// ledger": budgets_in_memory,
    }


def _rounds_table(rounds: int, calls: int) -> Table:
    title = f"Tracking under load: {rounds} alternating rounds of {calls} calls (fake in its own process)"
    table = Table(title=title)
    for column in (
        "load", "set-up", "raw CPU µs/call", "added CPU µs/call", "95% CI", "added / raw CPU",
        "tracked/raw calls/s", "raw p50/p99 ms", "tracked p50/p99 ms", "collections /1k calls raw, tracked",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column in ("load", "set-up") else "right")
    return table


def _paired_table(pairs: int, passes: int) -> Table:
    title = f"Added CPU per call, paired call by call: {pairs:,} pairs in {passes} passes (bench/paired.py)"
    table = Table(title=title)
    for column in (
        "load", "set-up", "raw CPU µs/call", "added CPU µs/call", "95% CI", "added / raw CPU",
        "of which costlens' threads", "collector µs/call (both sides, not added)",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column in ("load", "set-up") else "right")
    return table


def _measure_rounds(load: Callable[[bool, int], list[float]], rounds: int, n: int) -> tuple[Samples, Samples]:
    raw, tracked = Samples(), Samples()
    for i in range(rounds):  # ABBA: neither side always runs first (caches, the recorder)
        for tracked_turn in (False, True) if i % 2 == 0 else (True, False):
            _round(load, tracked_turn, n, tracked if tracked_turn else raw)
    return raw, tracked


def _add_rounds_row(table: Table, load_name: str, setup_name: str, raw: Samples, tracked: Samples) -> str:
    diffs = [t - r for t, r in zip(tracked.cpu_us, raw.cpu_us, strict=True)]
    added, (low, high) = statistics.median(diffs), median_interval(diffs)
    ratio = statistics.median(tracked.rate) / statistics.median(raw.rate)
    table.add_row(
        load_name,
        setup_name,
        f"{statistics.median(raw.cpu_us):,.0f}",
        f"{added:+,.0f}",
        f"{low:+,.0f} to {high:+,.0f}",
        # (this share moves less than the µs between hours: a slow hour slows both sides)
        f"{added / statistics.median(raw.cpu_us):+.1%}",
        f"{ratio:.3f}",
        _p50_p99(raw),
        _p50_p99(tracked),
        f"{raw.per_1k_calls():.1f}, {tracked.per_1k_calls():.1f}",
    )
    return f"added {added:+.0f} µs/call (95% CI {low:+.0f} to {high:+.0f})"


def measure(
    base_url: str, folder: Path, rounds: int, calls: int, console: Console, only: list[str] | None = None
) -> Table:
    """The round-based table, set-up by set-up."""
    table = _rounds_table(rounds, calls)
    loop = asyncio.new_event_loop()
    with ThreadPoolExecutor(THREADS) as pool, contextlib.closing(loop), contextlib.ExitStack() as stack:
        clients, async_clients = _clients(base_url, loop, stack)
        loads = _loads(clients, async_clients, pool, loop)
        for setup_name, setup in _chosen(_setups(folder), only):
            close_budgets()
            setup()
            for load_name, load in loads.items():
                if setup_name != "SQLite store" and load_name.startswith("sequential"):
                    continue  # sequential calls are measured once, on the default set-up
                load(False, 30)  # warm connections, caches, the tokenizer
                load(True, 30)
                n = calls // 3 if load_name.startswith("sequential") else calls
                raw, tracked = _measure_rounds(load, rounds, n)
                said = _add_rounds_row(table, load_name, setup_name, raw, tracked)
                console.print(f"  measured {load_name}, {setup_name}, by rounds: {said}")
    costlens.configure_budgets([])
    return table


def measure_paired(
    base_url: str, folder: Path, pairs: int, passes: int, console: Console, only: list[str] | None = None
) -> Table:
    """The paired table: every load and set-up in `passes` passes, round robin (`paired`)."""
    table = _paired_table(pairs, passes)
    runs: dict[tuple[str, str], list[paired.PairedRun]] = {}
    loop = asyncio.new_event_loop()
    with ThreadPoolExecutor(THREADS) as pool, contextlib.closing(loop), contextlib.ExitStack() as stack:
        clients, async_clients = _clients(base_url, loop, stack)
        paired_loads = _paired_loads(clients, async_clients, pool, loop, _anthropic_clients(base_url, stack))
        for i in range(passes):
            for setup_name, setup in _chosen(_setups(folder), only):
                close_budgets()
                setup()
                for load_name, load in paired_loads.items():
                    if setup_name != "SQLite store" and load_name.startswith("sequential"):
                        continue
                    paired.run_pairs(load, 15)  # warm connections, caches, the tokenizer
                    done = paired.run_pairs(load, pairs // passes)
                    runs.setdefault((load_name, setup_name), []).append(done)
            console.print(f"  paired: pass {i + 1} of {passes} done")
    for (load_name, setup_name), passed in runs.items():
        result = paired.reduce_runs(passed, median_interval)
        table.add_row(
            load_name,
            setup_name,
            f"{result.raw_us:,.0f}",
            f"{result.added_us:+,.1f}",
            f"{result.low_us:+,.1f} to {result.high_us:+,.1f}",
            f"{result.share:+.1%}",
            f"{result.background_us:,.1f}",
            f"{result.collector_us:,.1f}",
        )
    costlens.configure_budgets([])
    return table


def _chosen(
    setups: dict[str, Callable[[], None]], only: list[str] | None
) -> list[tuple[str, Callable[[], None]]]:
    return [
        (name, setup)
        for name, setup in setups.items()
        if not only or any(word.lower() in name.lower() for word in only)
    ]


def collector_section(base_url: str, folder: Path, calls: int, repeats: int = 4) -> Table:
    """Objects the garbage collector counts per call, raw and tracked (SQLite store).

    CPython runs its youngest collection when the objects made (less those freed) since the last
    run pass 700. An object a tracked call keeps until the recorder writes it counts towards that
    run, and a run under 100 asyncio tasks took 0.8-2.5 ms here (it walks every young object, and what
    each refers to: cold memory), so each object kept per call costs every call a few µs, which the
    paired table (medians, the collector shown apart) does not show. Counted with the collector
    off (`gc.get_count()`), exact, unlike times: after the calls, the recorder held back (it writes
    when a batch's worth waits, or every half second), then after it wrote them."""
    table = Table(title=f"Objects the garbage collector counts per call ({calls:,} calls x {repeats})")
    for column in (
        "load",
        "set-up",
        "raw",
        "tracked",
        "kept per call until written",
        "left per call once written",
    ):
        table.add_column(column, justify="left" if column in ("load", "set-up") else "right")
    setups = _setups(folder)
    loop = asyncio.new_event_loop()
    with ThreadPoolExecutor(THREADS) as pool, contextlib.closing(loop), contextlib.ExitStack() as stack:
        clients, async_clients = _clients(base_url, loop, stack)
        loads = _loads(clients, async_clients, pool, loop)
        for setup_name, load_names in (
            ("SQLite store", (f"{TASKS} asyncio tasks", f"{THREADS} threads", "sequential")),
            ("SQLite + 2 budgets, leases", (f"{TASKS} asyncio tasks", "sequential")),
        ):
            close_budgets()
            setups[setup_name]()
            recorder: Any = costlens.get_recorder()
            recorder._interval, recorder._batch_size = 1e6, 1_000_000  # (private: held back while counting)
            for name in load_names:
                counts = _collector_counts(loads[name], calls, repeats)
                raw, done, written = (statistics.median(counts[key]) for key in ("raw", "done", "written"))
                table.add_row(
                    name,
                    setup_name,
                    f"{raw:.1f}",
                    f"{written:.1f}",
                    f"{done - raw:+.1f}",
                    f"{written - raw:+.1f}",
                )
    close_budgets()
    costlens.configure(store="memory://")
    return table


def _collector_counts(
    load: Callable[[bool, int], list[float]], calls: int, repeats: int
) -> dict[str, list[float]]:
    load(False, 30)
    load(True, 30)
    counts: dict[str, list[float]] = {"raw": [], "done": [], "written": []}
    gc.disable()
    try:
        for _ in range(repeats):
            for tracked in (False, True):
                costlens.flush()
                gc.collect()
                before = gc.get_count()[0]
                load(tracked, calls)
                done = gc.get_count()[0]
                costlens.flush()
                written = gc.get_count()[0]
                if tracked:
                    counts["done"].append((done - before) / calls)
                    counts["written"].append((written - before) / calls)
                else:
                    counts["raw"].append((written - before) / calls)
    finally:
        gc.enable()
    return counts


def rss_section(base_url: str, folder: Path, total: int) -> Table:
    costlens.configure(store=f"sqlite:///{folder / 'rss.db'}", durability="async")
    client = costlens.track(openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0))
    table = Table(title=f"Resident set size while tracking {total:,} calls ({THREADS} threads, SQLite store)")
    table.add_column("calls", justify="right")
    table.add_column("RSS MiB", justify="right")
    step = max(total // 10, 1)
    lock = threading.Lock()
    with ThreadPoolExecutor(THREADS) as pool:
        done = 0
        while done < total:
            run_threads(client, step, pool)
            costlens.flush()
            with lock:
                done += step
            table.add_row(f"{done:,}", f"{_rss_mib():.1f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=24, help="alternating rounds per load (0: skip)")
    parser.add_argument("--calls", type=int, default=200, help="calls per round (sequential loads: a third)")
    parser.add_argument(
        "--pairs", type=int, default=1000, help="raw/tracked pairs per load, call by call (0: skip)"
    )
    parser.add_argument("--passes", type=int, default=4, help="passes over the loads for --pairs")
    parser.add_argument(
        "--collector-calls",
        type=int,
        default=1000,
        help="calls per side for the collector's counts (0: skip)",
    )
    parser.add_argument("--rss-calls", type=int, default=200_000, help="0 to skip the memory section")
    parser.add_argument("--only", nargs="*", help="set-ups named with one of these words (budgets...)")
    parser.add_argument("--no-pin", action="store_true", help="leave both processes on every core")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 150))
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = not args.no_pin and len(cores) >= 2
    if pin:  # the child inherits this process's cores when it starts: give it the last one
        os.sched_setaffinity(0, {cores[-1]})
    with fake_provider_process() as fake, tempfile.TemporaryDirectory() as tmp:
        if pin:  # then this process (and every thread it starts from now on) takes the first
            os.sched_setaffinity(0, {cores[0]})
            console.print(f"fake provider on core {cores[-1]}, this process on core {cores[0]}")
        folder = Path(tmp)
        if args.rounds:
            console.print(measure(fake.openai_base_url, folder, args.rounds, args.calls, console, args.only))
        if args.pairs:
            console.print(
                measure_paired(fake.openai_base_url, folder, args.pairs, args.passes, console, args.only)
            )
        if args.collector_calls:
            console.print(collector_section(fake.openai_base_url, folder, args.collector_calls))
        if args.rss_calls:
            console.print(rss_section(fake.openai_base_url, folder, args.rss_calls))
        costlens.flush()
        close_budgets()
        costlens.configure(store="memory://")
    console.print(
        "Goals: added CPU ≤ 40 µs/call under 100 tasks and 16 threads (SQLite, async), ≤ 120 µs with two "
        "nested budgets; streamed ≤ +60 µs; RSS flat after warm-up."
    )


if __name__ == "__main__":
    main()
