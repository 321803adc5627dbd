"""The hand-written baselines in `bench/` track the code they are compared with: a benchmark whose
baseline no longer runs breaks `make bench` (it did once, when the calls table gained columns)."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import costlens

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _bench_module(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:  # a script imports its helpers from beside it (`paired`)
        sys.path.append(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_plain_executemany_baseline_writes_every_column_of_the_calls_table(tmp_path: Path) -> None:
    bench = _bench_module("bench_analytics")
    records = bench.prebuilt(25)
    assert bench.plain_executemany(records, tmp_path, "plain") > 0
    with sqlite3.connect(tmp_path / "plain.db") as conn:
        rows = conn.execute("SELECT id, input_tokens, cost_nanousd FROM calls ORDER BY id").fetchall()
    assert rows == [(r.id, r.input_tokens, r.cost_nanousd) for r in records]


def test_the_instruction_counter_reads_every_event_of_a_callgrind_profile(tmp_path: Path) -> None:
    bench = _bench_module("count_instructions")
    plain = tmp_path / "plain.out-01"
    plain.write_text("version: 1\nevents: Ir\nfl=a.c\nfn=f\n1 10\ntotals: 6208820\n")
    simulated = tmp_path / "sim.out-01"
    simulated.write_text(
        "events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\nfl=a.c\nfn=f\n1 10 1 1 0 0 0 0 0 0\n"
        "summary: 6266440 2008380 967312 33828 41354 13187 0 0 0\n"
    )
    assert bench.totals(plain) == {"Ir": 6208820}
    sim = bench.totals(simulated)
    assert [sim[e] for e in ("Ir", "I1mr", "D1mr", "D1mw", "DLmr")] == [6266440, 33828, 41354, 13187, 0]
    per_call = {("raw", 1): {"I1mr": 100.0}, ("tracked", 1): {"I1mr": 130.0}, ("tracked", 2): {"I1mr": 5.0}}
    table = bench.per_thread_table(per_call, "I1mr", "misses")
    cells = [list(column.cells) for column in table.columns]
    assert cells[0] == ["caller (main thread)", "recorder's writer", "all"]
    assert cells[3] == ["+30", "+5", "+35"]


def test_the_instruction_counter_simulates_the_last_level_it_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--ll-kib` becomes valgrind's `--LL=size,assoc,line` (a size valgrind accepts: a power of two)."""
    bench = _bench_module("count_instructions")
    seen: list[list[str]] = []

    class Done:
        returncode = 0
        stderr = ""

    def run(command: list[str], **_: object) -> Done:
        seen.append(command)
        return Done()

    monkeypatch.setattr(bench.subprocess, "run", run)
    bench.callgrind(tmp_path / "t", ["--child"], "http://127.0.0.1:1", cache_sim=True, ll_kib=2048)
    bench.callgrind(tmp_path / "t", ["--child"], "http://127.0.0.1:1", cache_sim=False, ll_kib=2048)
    assert "--LL=2097152,16,64" in seen[0] and "--cache-sim=yes" in seen[0]
    assert not any(arg.startswith(("--LL", "--cache-sim")) for arg in seen[1])
    assert [bench._power_of_two_kib(k) for k in (2048, 64, 32, 100, 0)] == [True, True, False, False, False]


def test_the_instruction_counter_splits_what_a_call_adds_by_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--by-function`: each function's exclusive count (recursion levels and the build's folder
    merged), tracked minus raw, each side's warm-up subtracted, every thread summed, per call."""
    bench = _bench_module("count_instructions")
    loop = "/b/Python/ceval.c:_PyEval_EvalFrameDefault"
    annotated = {  # (what `callgrind_annotate --show=EVENT` prints for each profile)
        "raw.1": f"1,000 (100.0%)  PROGRAM TOTALS\n  600 (60.0%)  {loop} [/l/libpython.so]\n",
        "raw.3": f"2,000 (100.0%)  PROGRAM TOTALS\n1,200 (60.0%)  {loop} [/l/libpython.so]\n",
        "tracked.1": f"  700 (70.0%)  {loop}'2 [/l/libpython.so]\n",
        "tracked.3": (
            f"1,500 (50.0%)  {loop} [/l/libpython.so]\n  300 (10.0%)  {loop}'2 [/l/libpython.so]\n"
            "  40 ( 1.0%)  ???:sqlite3VdbeExec [/l/libsqlite3.so]\n"
        ),
    }

    class Done:
        def __init__(self, command: list[str]) -> None:
            self.stdout = annotated[Path(command[-1]).name]

    monkeypatch.setattr(bench.subprocess, "run", lambda command, **_: Done(command))
    runs = {side: ({1: tmp_path / f"{side}.1"}, {1: tmp_path / f"{side}.3"}) for side in ("raw", "tracked")}
    added = bench.added_by_function(runs, "Ir", 10)
    # tracked: (1,500 + 300 - 700) / 10 = 110; raw: (1,200 - 600) / 10 = 60; sqlite: 40 / 10
    assert added == {"ceval.c:_PyEval_EvalFrameDefault": 50.0, "???:sqlite3VdbeExec": 4.0}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--by-function", "D1mr"], "with --cache-sim one of"),
        (["--raw-asks-usage"], "--raw-asks-usage needs --stream"),
        (["--ll-kib", "2048"], "--ll-kib needs --cache-sim"),
        (["--cache-sim", "--ll-kib", "1000"], "a power of two"),
    ],
)
def test_the_instruction_counter_refuses_options_that_cannot_go_together(args: list[str], says: str) -> None:
    """Checked before anything runs (valgrind or not): the message says what to pass instead."""
    import subprocess

    command = [sys.executable, str(BENCH / "count_instructions.py"), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and says in done.stderr


def test_bench_load_counts_the_collectors_runs_and_stops_counting() -> None:
    import gc

    bench = _bench_module("bench_load")
    with bench.CollectorCount() as counted:
        gc.collect()
        gc.collect(0)
    gc.collect()  # (after the block: not counted)
    assert counted.runs == 2
    assert counted not in gc.callbacks
    samples = bench.Samples(collections=3, calls=600)
    assert samples.per_1k_calls() == 5.0 and bench.Samples().per_1k_calls() == 0.0


@pytest.mark.parametrize("no_gc", [False, True])
def test_the_instruction_counters_child_turns_the_collector_off_only_when_asked(
    no_gc: bool, fake: Any, recorded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--no-gc`: the measured process makes its calls with the garbage collector off (the caller's
    count then repeats between runs); without it, on."""
    import gc

    bench = _bench_module("count_instructions")
    monkeypatch.setenv("FAKE_URL", fake.openai_base_url)
    try:
        bench.child(False, "sqlite", False, 2, 1, 3600.0, no_gc=no_gc)
        assert gc.isenabled() is not no_gc
    finally:
        gc.enable()
        costlens.configure(store="memory://", durability="sync")


def test_paired_calls_alternate_sides_and_which_runs_first() -> None:
    paired = _bench_module("paired")
    sides = [paired.is_tracked(number) for number in range(8)]
    assert sides == [False, True, True, False, False, True, True, False]


def test_paired_added_cpu_is_the_median_difference_plus_costlens_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tracked calls cost 7 µs more than the raw call of their pair, and a thread named like
    costlens' own burns CPU meanwhile: that thread's CPU is added per tracked call."""
    import threading

    paired = _bench_module("paired")
    bench = _bench_module("bench_load")
    monkeypatch.setattr(paired.costlens, "flush", lambda *a, **k: True)
    loading, burned_some, done = threading.Event(), threading.Event(), threading.Event()
    burned: list[int] = []

    def burn() -> None:  # CPU while the load runs, none before it
        loading.wait(10)
        t0 = time.thread_time_ns()
        for _ in range(200):
            sum(range(1000))
        burned_some.set()
        burned.append(time.thread_time_ns() - t0)
        done.wait(10)

    def load(calls: int, cpu_ns: list[int]) -> None:
        loading.set()
        burned_some.wait(10)
        for number in range(calls):
            cpu_ns[number] = 1_000_000 + (7_000 if paired.is_tracked(number) else 0) + number % 3

    helper = threading.Thread(target=burn, name="costlens-test-burner")
    helper.start()
    try:
        result = paired.measure_pairs(load, 50, bench.median_interval)
    finally:
        done.set()
        helper.join(10)
    assert result.pairs == 50 and result.raw_us == pytest.approx(1000.0, abs=0.01)
    assert burned[0] / 1000 / 50 <= result.background_us  # (and what it burned before `burned_some`)
    assert result.added_us - result.background_us == pytest.approx(7.0, abs=0.01)
    assert result.low_us <= result.added_us <= result.high_us


def test_paired_timing_of_a_coroutine_counts_only_its_own_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The event loop runs another task between the timed coroutine's steps: a fake thread clock
    that each side advances shows that only the coroutine's own steps are counted, and that its
    result and its errors come through."""
    import asyncio

    paired = _bench_module("paired")
    clock = [0]
    monkeypatch.setattr(paired.time, "thread_time_ns", lambda: clock[0])

    async def call(steps: int, fail: bool) -> str:
        for _ in range(steps):
            clock[0] += 5
            await asyncio.sleep(0)
        clock[0] += 5
        if fail:
            raise ValueError("provider down")
        return "answer"

    async def other() -> None:
        for _ in range(10):
            clock[0] += 100
            await asyncio.sleep(0)

    async def main() -> tuple[int, str, int]:
        timed = paired._Timed(call(3, fail=False))
        answer, _ = await asyncio.gather(timed, other())
        failing = paired._Timed(call(1, fail=True))
        with pytest.raises(ValueError, match="provider down"):
            await asyncio.gather(failing, other())
        return timed.ns, answer, failing.ns

    assert asyncio.run(main()) == (20, "answer", 10)


def test_paired_loads_track_exactly_half_the_calls(fake: Any, recorded: Any) -> None:
    """Against the fake provider with real clients: every pair makes one raw and one tracked call."""
    import openai

    paired = _bench_module("paired")
    bench = _bench_module("bench_load")
    raw = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    tracked = costlens.track(openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0))
    clients = {False: raw, True: tracked}

    def call(is_tracked: bool) -> object:
        return clients[is_tracked].chat.completions.create(model="gpt-4o-mini", messages=bench.MESSAGES)

    result = paired.measure_pairs(paired.sequential(call), 3, bench.median_interval)
    assert result.pairs == 3 and result.raw_us > 0
    assert len(recorded.all()) == 3


def test_paired_collections_on_costlens_threads_are_shown_apart_not_added(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A garbage collection that falls on the recorder's thread walks every thread's objects: it is
    taken out of costlens' threads and counted in the collector's column; passes pool."""
    import gc
    import threading

    paired = _bench_module("paired")
    bench = _bench_module("bench_load")
    monkeypatch.setattr(paired.costlens, "flush", lambda *a, **k: True)
    heap = [[i] for i in range(300_000)]  # (a heap worth walking)
    loading, collected = threading.Event(), threading.Event()

    def collect() -> None:
        loading.wait(10)
        for _ in range(5):
            gc.collect()
        collected.set()

    def load(calls: int, cpu_ns: list[int]) -> None:
        loading.set()
        collected.wait(30)
        for number in range(calls):
            cpu_ns[number] = 500_000 + (3_000 if paired.is_tracked(number) else 0)

    helper = threading.Thread(target=collect, name="costlens-test-collector")
    helper.start()
    try:
        run = paired.run_pairs(load, 10)
    finally:
        loading.set()
        helper.join(30)
    assert run.collector_ns > 10 * max(run.background_ns, 0)
    idle = paired.PairedRun(
        diffs_us=[3.0] * 30, raw_us=[500.0] * 30, background_ns=0, collector_ns=0, pairs=30
    )
    pooled = paired.reduce_runs([run, idle], bench.median_interval)
    assert pooled.pairs == 40 and pooled.added_us == pytest.approx(3.0 + run.background_ns / 1000 / 40)
    assert pooled.collector_us == pytest.approx(run.collector_ns / 1000 / 80)
    assert pooled.share == pytest.approx(pooled.added_us / 500.0)
    del heap


def _dumped(chunks: Any) -> list[dict[str, Any]]:
    return [chunk.model_dump(exclude_unset=True) for chunk in chunks]


def test_the_stream_floor_sees_the_raw_chunks_and_drops_only_the_usage_event(fake: Any) -> None:
    """`usage_hidden` (the least an exact tracker pays) asks for the usage, parses it, and leaves
    the caller the chunks of a stream that did not ask: same fields set, no usage chunk."""
    import openai

    bench = _bench_module("bench_load")
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)

    def create(**options: Any) -> Any:
        return client.chat.completions.create(
            model="gpt-4o-mini", messages=bench.MESSAGES, stream=True, **options
        )

    asked = _dumped(create(extra_body=bench.ASK_USAGE))
    assert asked[-1]["choices"] == [] and asked[-1]["usage"]["completion_tokens"] > 0  # (what it hides)
    plain, hidden = _dumped(create()), _dumped(bench.usage_hidden(create(extra_body=bench.ASK_USAGE)))
    strip = ("id", "created", "system_fingerprint")
    assert [{k: v for k, v in c.items() if k not in strip} for c in hidden] == [
        {k: v for k, v in c.items() if k not in strip} for c in plain
    ]
    assert all("usage" not in chunk for chunk in hidden)


def test_the_stream_floor_filter_keeps_lines_whole_across_reads() -> None:
    """A read that ends mid-line is carried over: the cut and the drop see whole lines."""
    bench = _bench_module("bench_load")
    events = (
        b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
        b"data: [DONE]\n\n"
    )
    for size in (1, 7, 13, len(events)):
        reads = [events[i : i + size] for i in range(0, len(events), size)]
        assert b"".join(bench._without_usage(iter(reads))) == (
            b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
        )


def test_the_collector_counts_objects_a_tracked_call_keeps_and_turns_the_collector_back_on() -> None:
    """`bench_load.py`'s collector section: the objects counted per call, exactly, on each side."""
    import gc

    bench_load = _bench_module("bench_load")
    kept: list[object] = []

    def load(tracked: bool, n: int) -> list[float]:
        for _ in range(n):
            if tracked:
                kept.extend(([], {}))  # two container objects kept per tracked call
        return []

    assert gc.isenabled()
    counts = bench_load._collector_counts(load, 100, 2)
    assert gc.isenabled()
    # (`costlens.flush()` between the counts makes a handful of objects: a tenth per call at most here)
    assert all(value < 0.2 for value in counts["raw"])
    assert all(abs(value - 2) < 0.2 for value in counts["done"] + counts["written"])
