"""Added CPU per call, paired call by call (`bench_load.py --pairs N`).

On a small shared VM the CPU a call takes moves by ±25% within tens of milliseconds (measured: two
raw calls in a row correlate at 0.92, two rounds of 66 calls 0.1 s apart not at all). Rounds of
hundreds of calls, raw then tracked, therefore differ by ±300 µs per call from that drift alone,
and the median of 24 such differences cannot tell +20 µs from +60. Here raw and tracked calls are
interleaved one by one instead, so the two calls of a pair run under the same conditions:

- the calls are numbered as they start; calls 2k and 2k+1 are a pair, one raw and one tracked,
  the raw one first in every other pair (neither side always runs first);
- each call's CPU is that of its own thread while it runs: `time.thread_time_ns()` around the call
  for sequential calls and threads; for asyncio tasks, the CPU of the steps that run the call's
  coroutine (`_Timed`: the event loop runs other tasks between them);
- costlens' own threads (the recorder's writer, the lease timer, the alerts thread: every thread
  named `costlens-*`) only work for tracked calls: their CPU over the section, read from their
  thread clocks after a flush, is added per tracked call, less the garbage collector's runs that
  fell on them (`_CollectorClock`: the collector's CPU is shown apart, for every call);
- the machine's speed also moves between minutes (a load measured at another minute than the next
  one differs by ±30% from that alone), so `bench_load.py` measures every load and set-up in
  several passes, round robin, and pools them: each figure then spans the whole run.

added = median over pairs of (tracked - raw) + background CPU / tracked calls, with the 95%
interval of the median. What this leaves out, and the round-based table keeps: work outside the
calls' steps that tracking causes (a garbage collection that starts in another task's step) and
what a tracked call's memory traffic costs the raw call next to it (the pair shares caches, so
that cost lands on both sides). So this is the direct cost, measured precisely; the rounds give
the whole effect, imprecisely; a direct cost far below the rounds' median means the indirect share
is large.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import statistics
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import costlens

#: One load run paired: (calls to run, the CPU of each call in ns, by call number) -> None.
PairedLoad = Callable[[int, list[int]], None]


@dataclass(frozen=True)
class PairedRun:
    """One pass of a load: the paired differences and what costlens' threads spent meanwhile."""

    diffs_us: list[float]  # tracked - raw, per pair
    raw_us: list[float]  # each raw call's CPU
    background_ns: int  # costlens' threads, the collector's runs on them excepted
    collector_ns: int  # the garbage collector, on every thread
    pairs: int


@dataclass(frozen=True)
class PairedResult:
    raw_us: float  # median CPU of a raw call
    added_us: float  # median paired difference plus costlens' threads per tracked call
    low_us: float
    high_us: float
    background_us: float  # costlens' own threads, per tracked call (in `added_us`)
    collector_us: float  # the garbage collector per call, raw and tracked alike (not in `added_us`)
    pairs: int

    @property
    def share(self) -> float:
        """`added_us` as a share of the raw call's own CPU (what moves least between hours)."""
        return self.added_us / self.raw_us


def is_tracked(number: int) -> bool:
    """Call `number`'s side: pairs (2k, 2k+1), the raw call first when k is even."""
    return (number % 2 == 1) == (number // 2 % 2 == 0)


def _background_clocks() -> dict[int, int]:
    """CPU ns so far of every live thread named `costlens-*`, by thread id."""
    clocks = {}
    for thread in threading.enumerate():
        if thread.name.startswith("costlens") and thread.ident is not None:
            try:
                clocks[thread.ident] = time.clock_gettime_ns(time.pthread_getcpuclockid(thread.ident))
            except (OSError, ProcessLookupError):  # it ended meanwhile
                continue
    return clocks


class _CollectorClock:
    """CPU the garbage collector takes, by the thread it ran on (`gc.callbacks` run on that thread).

    A collection runs on whichever thread allocates when a generation's threshold is crossed: on
    the recorder's writer now and then, where it would be charged in full to tracked calls, though
    it walks every thread's objects (tracked and raw calls make it run about as often: the rounds'
    last column). So it is taken out of costlens' threads and shown apart, for every call."""

    def __init__(self) -> None:
        self.by_thread: dict[int, int] = {}
        self._started: dict[int, int] = {}

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        ident = threading.get_ident()
        if phase == "start":
            self._started[ident] = time.thread_time_ns()
        elif (started := self._started.pop(ident, None)) is not None:
            self.by_thread[ident] = self.by_thread.get(ident, 0) + time.thread_time_ns() - started

    def __enter__(self) -> _CollectorClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def run_pairs(load: PairedLoad, pairs: int) -> PairedRun:
    """Run `load` for `pairs` pairs (see the module docstring)."""
    calls = 2 * pairs
    cpu_ns = [0] * calls
    costlens.flush()  # what earlier calls left queued is not these calls' work
    with _CollectorClock() as collector:
        before = _background_clocks()
        load(calls, cpu_ns)
        costlens.flush()  # the writer's work for these calls belongs to them
        after = _background_clocks()
    background_ns = sum(
        ns - before.get(ident, 0) - collector.by_thread.get(ident, 0) for ident, ns in after.items()
    )
    # pair k: calls 2k and 2k+1, whichever side ran first
    sign = [1 if is_tracked(2 * k + 1) else -1 for k in range(pairs)]
    return PairedRun(
        diffs_us=[(cpu_ns[2 * k + 1] - cpu_ns[2 * k]) / 1000 * sign[k] for k in range(pairs)],
        raw_us=[cpu_ns[i] / 1000 for i in range(calls) if not is_tracked(i)],
        background_ns=background_ns,
        collector_ns=sum(collector.by_thread.values()),
        pairs=pairs,
    )


def reduce_runs(
    runs: list[PairedRun], interval: Callable[[list[float]], tuple[float, float]]
) -> PairedResult:
    """The passes of one load and set-up, pooled."""
    diffs = [d for run in runs for d in run.diffs_us]
    pairs = sum(run.pairs for run in runs)
    background_us = sum(run.background_ns for run in runs) / 1000 / pairs
    low, high = interval(diffs)
    return PairedResult(
        raw_us=statistics.median(r for run in runs for r in run.raw_us),
        added_us=statistics.median(diffs) + background_us,
        low_us=low + background_us,
        high_us=high + background_us,
        background_us=background_us,
        collector_us=sum(run.collector_ns for run in runs) / 1000 / (2 * pairs),
        pairs=pairs,
    )


def measure_pairs(
    load: PairedLoad, pairs: int, interval: Callable[[list[float]], tuple[float, float]]
) -> PairedResult:
    """One pass of `load`, reduced."""
    return reduce_runs([run_pairs(load, pairs)], interval)


# -- the loads ----------------------------------------------------------------------------------


def sequential(call: Callable[[bool], object]) -> PairedLoad:
    def load(calls: int, cpu_ns: list[int]) -> None:
        for number in range(calls):
            tracked = is_tracked(number)
            t0 = time.thread_time_ns()
            call(tracked)
            cpu_ns[number] = time.thread_time_ns() - t0

    return load


def threads(call: Callable[[bool], object], pool: ThreadPoolExecutor, workers: int) -> PairedLoad:
    def load(calls: int, cpu_ns: list[int]) -> None:
        numbers = itertools.count()  # (`next` on it is atomic under the GIL)

        def worker() -> None:
            while (number := next(numbers)) < calls:
                tracked = is_tracked(number)
                t0 = time.thread_time_ns()
                call(tracked)
                cpu_ns[number] = time.thread_time_ns() - t0

        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()

    return load


class _Timed:
    """Awaits `coro`, adding the CPU of each step that runs it to `self.ns` (the event loop runs
    other tasks between the steps, so the thread's clock around the whole await would count them)."""

    __slots__ = ("coro", "ns")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.ns = 0

    def __await__(self) -> Generator[Any, Any, Any]:
        inner = self.coro.__await__()
        send: Any = None
        error: BaseException | None = None
        while True:
            t0 = time.thread_time_ns()
            try:
                yielded = inner.send(send) if error is None else inner.throw(error)
            except StopIteration as stop:
                self.ns += time.thread_time_ns() - t0
                return stop.value
            except BaseException:
                self.ns += time.thread_time_ns() - t0
                raise
            self.ns += time.thread_time_ns() - t0
            try:
                send, error = (yield yielded), None
            except BaseException as exc:  # (cancellation, thrown into the call's coroutine)
                send, error = None, exc


def in_tasks(
    call: Callable[[bool], Coroutine[Any, Any, Any]], loop: asyncio.AbstractEventLoop, tasks: int
) -> PairedLoad:
    def load(calls: int, cpu_ns: list[int]) -> None:
        numbers = itertools.count()

        async def worker() -> None:
            while (number := next(numbers)) < calls:
                timed = _Timed(call(is_tracked(number)))
                await timed
                cpu_ns[number] = timed.ns

        async def main() -> None:
            await asyncio.gather(*(worker() for _ in range(tasks)))

        loop.run_until_complete(main())

    return load
