"""Machine instructions a tracked call adds, raw vs tracked in one run, per thread (a profiling aid).

Run: `.venv/bin/python bench/count_instructions.py [--setup sqlite|budgets] [--stream
[--raw-asks-usage]] [--cache-sim [--ll-kib K]] [--lease-max-age S]`.

With `--setup budgets`, budget leases live `--lease-max-age` seconds (default 3600): valgrind runs
the process ~50x slower, so the library's default of 1 s would retire a lease every few calls and
count the SQLite ledger's slice turnover in every call, where a busy process serves hundreds of
calls from one slice (measured on the caller's thread: 243k added instructions per budgeted call
with 1 s, 231k at steady state).

Wall-clock figures on a small machine move by ±15-50 µs between identical runs; a change worth
2 µs cannot be seen there. Instruction counts barely move: this script runs the same calls under
valgrind's callgrind (`--separate-threads=yes`), once with a raw `openai.OpenAI` and once tracked,
against the fake provider in a process of its own (not counted), and subtracts a run of
`--warm` batches from a run of `--warm + --batches` batches, so start-up, imports and the first
statements SQLite prepares cancel out. A batch is `--calls` sequential calls then `costlens.flush()`,
with the recorder's timer turned off, so every batch writes the same rows in the same statements.
Python's string hashing is fixed (`PYTHONHASHSEED=0`) for dictionary probes that repeat.

It prints, per call: the caller's thread (the SDK's work and what the tracking wrapper adds to
it), the recorder's writer thread (building, pricing and storing the deferred records) and, with
`--by-library` (needs `callgrind_annotate`), the added instructions split by shared library
(libpython, libsqlite3, libc, ...); with `--cache-sim`, the cache misses callgrind simulates
(first level, instructions and data, and last level), to check whether the same instructions run
slower in place because they miss the caches. `--ll-kib K` (with `--cache-sim`) simulates a last
level of K KiB instead of the machine's last level: on a VM whose CPU reports a huge shared L3
(this one: 480 MiB), a miss of the per-core L2 (2 MiB: `--ll-kib 2048`) is what costs. Measured
here, a function whose code and data left L2 between two calls (the SDK's own work does that in
place; timed with 2 MiB of memory written between calls) runs 8-13x slower than one that stays in
L2: `estimate` 3.3 -> 27 µs, the budget watch 1.3 -> 17 µs. Those misses, not the instructions,
are why a tracked call costs two to three times more in place than in a tight loop. What it
cannot show: the real machine's caches under load, kernel time (a write to SQLite's log is a system
call) and the GIL hand-offs between threads (`bench_load.py` measures all of that together, noisily).
Needs `valgrind`; a run takes a few minutes (`--cache-sim` about twice as long).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MESSAGES: Any = [{"role": "user", "content": "Say hello"}]


def child(
    tracked: bool,
    setup: str,
    stream: bool,
    calls: int,
    batches: int,
    lease_age: float,
    ask_usage: bool = False,
    no_gc: bool = False,
) -> None:
    """The measured process: `batches` batches of `calls` calls, each batch flushed (`ask_usage`: a
    stream asks for its usage event, as costlens does on its own for a tracked one; `no_gc`: the
    garbage collector off once set up)."""
    import gc

    import openai

    import costlens

    folder = Path(tempfile.mkdtemp())
    costlens.configure(store=f"sqlite:///{folder / 'calls.db'}", durability="async")
    if setup == "budgets":
        costlens.configure_budgets(
            [
                costlens.Budget("all", limit_usd="1000000", window="month"),
                costlens.Budget("per-model", limit_usd="1000000", window="day", scope={"model": "*"}),
            ],
            ledger=f"sqlite:///{folder / 'budgets.db'}",
            lease_usd="1",
            lease_max_age_s=lease_age,
        )
    # The writer wakes when a batch's worth waits or at flush(), never on its timer (which, under
    # callgrind's slowdown, would cut batches at points that differ from run to run).
    costlens.get_recorder()._interval = 1e6  # (a private field: this is a profiling aid)
    client = openai.OpenAI(base_url=os.environ["FAKE_URL"], api_key="bench", max_retries=0)
    if tracked:
        client = costlens.track(client)
    options: Any = {"stream_options": {"include_usage": True}} if ask_usage else {}
    if no_gc:
        gc.collect()
        gc.disable()
    for _ in range(batches):
        for _ in range(calls):
            if stream:
                for _chunk in client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True, **options
                ):
                    pass
            else:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        costlens.flush()
    client.close()
    costlens.flush()


@contextmanager
def fake_provider() -> Iterator[str]:
    """The fake provider in a process of its own; yields its OpenAI base URL."""
    code = (
        "import sys, time\n"
        "from costlens.testing import FakeProvider\n"
        "with FakeProvider() as fake:\n"
        "    print(fake.openai_base_url, flush=True)\n"
        "    sys.stdin.read()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


def callgrind(
    out: Path, args: list[str], fake_url: str, cache_sim: bool = False, ll_kib: int | None = None
) -> dict[int, Path]:
    """Run this script's child under callgrind; the profile file of each thread, by thread number."""
    env = {**os.environ, "FAKE_URL": fake_url, "PYTHONHASHSEED": "0"}
    # (a last level of `ll_kib` KiB, 16-way, 64-byte lines: valgrind needs a power-of-two set count)
    last_level = [f"--LL={ll_kib * 1024},16,64"] if cache_sim and ll_kib else []
    command = [
        "valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}",
        *(["--cache-sim=yes"] if cache_sim else []), *last_level, sys.executable, __file__, *args,
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the measured process failed (exit status {done.returncode}):\n{done.stderr[-4000:]}")
    return {int(p.name.rsplit("-", 1)[1]): p for p in out.parent.glob(f"{out.name}-*")}


def totals(profile: Path) -> dict[str, int]:
    """The profile's totals by event (`Ir`; with `--cache-sim=yes` also the simulated cache misses:
    `I1mr`, `D1mr`, `D1mw` at the first level, `ILmr`, `DLmr`, `DLmw` at the last)."""
    events: list[str] = []
    with profile.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("summary:", "totals:")):
                return dict(zip(events or ["Ir"], map(int, line.split()[1:]), strict=False))
    raise ValueError(f"no totals in {profile}")


def by_library(profile: Path) -> dict[str, int]:
    """Exclusive instructions per shared library (`callgrind_annotate`'s per-function lines summed)."""
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(profile)], capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, int] = {}
    for match in re.finditer(r"^\s*([\d,]+) \([^)]*\)\s+\S.*? \[(.*)\]$", text, re.MULTILINE):
        library = match.group(2).rsplit("/", 1)[-1]
        found[library] = found.get(library, 0) + int(match.group(1).replace(",", ""))
    return found


def by_function(profile: Path, event: str = "Ir") -> dict[str, int]:
    """Exclusive count of `event` per function (`callgrind_annotate --show`), keyed `file:function`:
    the build's own directory and callgrind's recursion marks (`'2`) left out, so that the same
    function adds up across its recursion levels and across profiles."""
    text = subprocess.run(
        ["callgrind_annotate", f"--show={event}", "--threshold=100", "--inclusive=no", str(profile)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, int] = {}
    for match in re.finditer(r"^\s*([\d,]+) \([^)]*\)\s+(\S.*?)(?: \[.*\])?$", text, re.MULTILINE):
        name = match.group(2)
        if name == "PROGRAM TOTALS":
            continue
        name = re.sub(r"'\d+$", "", name.rsplit("/", 1)[-1] if name.startswith("/") else name)
        found[name] = found.get(name, 0) + int(match.group(1).replace(",", ""))
    return found


def added_by_function(
    runs: dict[str, tuple[dict[int, Path], dict[int, Path]]], event: str, calls: int
) -> dict[str, float]:
    """Per function, per call: what the tracked side's counted batches add over the raw side's
    (each side's warm-up profile subtracted from its full one), every thread summed."""
    added: dict[str, float] = {}
    for side, (before, after) in runs.items():
        sign = 1 if side == "tracked" else -1
        for thread, profile in after.items():
            old = by_function(before[thread], event) if thread in before else {}
            for name, count in by_function(profile, event).items():
                added[name] = added.get(name, 0.0) + sign * (count - old.get(name, 0)) / calls
    return added


#: The cache misses `--cache-sim` prints (callgrind models the caches this machine's CPU reports).
_MISSES = {
    "I1mr": "First-level instruction cache misses",
    "D1mr": "First-level data cache read misses",
    "D1mw": "First-level data cache write misses",
    "ILmr": "Last-level instruction cache misses",
    "DLmr": "Last-level data cache read misses",
    "DLmw": "Last-level data cache write misses",
}


def _power_of_two_kib(kib: int) -> bool:
    return kib >= 64 and kib & (kib - 1) == 0


def _counts(raw: float, tracked: float) -> tuple[str, str, str]:
    return f"{raw:,.0f}", f"{tracked:,.0f}", f"{tracked - raw:+,.0f}"


def per_thread_table(per_call: dict[tuple[str, int], dict[str, float]], event: str, title: str) -> Any:
    """Raw, tracked and added counts of `event` per call, a row per thread and one for all."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("thread", "raw", "tracked", "added"):
        table.add_column(column, justify="left" if column == "thread" else "right")
    names = {1: "caller (main thread)", 2: "recorder's writer"}
    sums = {"raw": 0.0, "tracked": 0.0}
    for thread in sorted({thread for _, thread in per_call}):
        raw = per_call.get(("raw", thread), {}).get(event, 0.0)
        tracked = per_call.get(("tracked", thread), {}).get(event, 0.0)
        sums["raw"], sums["tracked"] = sums["raw"] + raw, sums["tracked"] + tracked
        table.add_row(names.get(thread, f"thread {thread}"), *_counts(raw, tracked))
    table.add_row("all", *_counts(sums["raw"], sums["tracked"]))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", choices=("sqlite", "budgets"), default="sqlite")
    parser.add_argument("--stream", action="store_true", help="streamed calls")
    parser.add_argument(
        "--raw-asks-usage",
        action="store_true",
        help="with --stream: the raw client asks for the usage event too (what costlens asks for), "
        "so the count leaves that event's reading out",
    )
    parser.add_argument("--calls", type=int, default=255, help="calls per batch (one flush each)")
    parser.add_argument("--warm", type=int, default=2, help="batches run before counting")
    parser.add_argument("--batches", type=int, default=2, help="batches counted")
    parser.add_argument("--by-library", action="store_true", help="split the added instructions")
    parser.add_argument(
        "--by-function",
        metavar="EVENT",
        help="the functions that add most of EVENT per call (Ir, or with --cache-sim a miss count such "
        "as I1mr or D1mr), every thread summed: where a cut that is spread over many functions goes",
    )
    parser.add_argument("--keep", type=Path, help="keep the callgrind profiles in this folder")
    parser.add_argument("--cache-sim", action="store_true", help="also count simulated cache misses")
    parser.add_argument(
        "--ll-kib",
        type=int,
        help="with --cache-sim: simulate a last level of this many KiB (a power of two, at least 64: "
        "2048 for this machine's per-core L2) instead of the machine's own",
    )
    parser.add_argument(
        "--lease-max-age",
        type=float,
        default=3600.0,
        help="budget leases' lease_max_age_s (default 3600: under valgrind's ~50x slowdown the "
        "library's 1 s ends a lease every few calls, where a busy process serves hundreds of calls "
        "from one; pass 1 to count that turnover too)",
    )
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="the garbage collector off in the measured process: whether a full collection falls in "
        "the counted batches moves the caller's count by tens of thousands (and its cache misses) "
        "between runs; without it the call path's own count repeats (the collector's share is what "
        "the default count adds to it)",
    )
    parser.add_argument("--child", nargs=2, metavar=("raw|tracked", "BATCHES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(
            args.child[0] == "tracked",
            args.setup,
            args.stream,
            args.calls,
            int(args.child[1]),
            args.lease_max_age,
            args.raw_asks_usage and args.child[0] == "raw",
            args.no_gc,
        )
        return
    if args.raw_asks_usage and not args.stream:
        sys.exit("--raw-asks-usage needs --stream (only a stream has a usage event to ask for)")
    if args.ll_kib is not None and not (args.cache_sim and _power_of_two_kib(args.ll_kib)):
        sys.exit("--ll-kib needs --cache-sim and a power of two of at least 64 (KiB), such as 2048")
    if args.by_function and args.by_function not in ("Ir", *(_MISSES if args.cache_sim else ())):
        sys.exit(f"--by-function takes Ir, or with --cache-sim one of {', '.join(_MISSES)}")
    if shutil.which("valgrind") is None:
        sys.exit("count_instructions.py needs valgrind (Debian: apt-get install valgrind)")

    from rich.console import Console
    from rich.table import Table

    console = Console()
    n = args.calls * args.batches
    common = [
        "--setup",
        args.setup,
        "--calls",
        str(args.calls),
        "--lease-max-age",
        str(args.lease_max_age),
        *(["--stream"] if args.stream else []),
        *(["--raw-asks-usage"] if args.raw_asks_usage else []),
        *(["--no-gc"] if args.no_gc else []),
    ]
    per_call: dict[tuple[str, int], dict[str, float]] = {}
    libraries: dict[str, float] = {}
    profiles: dict[str, tuple[dict[int, Path], dict[int, Path]]] = {}
    with fake_provider() as url, tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for side in ("raw", "tracked"):
            runs = {}
            for batches in (args.warm, args.warm + args.batches):
                console.print(f"  callgrind: {side}, {batches} batches of {args.calls} calls ...")
                child_args = [*common, "--child", side, str(batches)]
                runs[batches] = callgrind(
                    Path(tmp) / f"{side}.{batches}", child_args, url, args.cache_sim, args.ll_kib
                )
            before, after = runs[args.warm], runs[args.warm + args.batches]
            profiles[side] = (before, after)
            for thread in after:
                start = totals(before[thread]) if thread in before else {}
                per_call[side, thread] = {
                    event: (count - start.get(event, 0)) / n for event, count in totals(after[thread]).items()
                }
            if args.by_library:
                for thread in after:
                    sign = 1 if side == "tracked" else -1
                    old = by_library(before[thread]) if thread in before else {}
                    for library, count in by_library(after[thread]).items():
                        added = sign * (count - old.get(library, 0)) / n
                        libraries[library] = libraries.get(library, 0.0) + added
        functions = added_by_function(profiles, args.by_function, n) if args.by_function else {}
    what = f"{args.setup} set-up, {'streamed' if args.stream else 'plain'} calls"
    if args.ll_kib:
        what += f", last level simulated as {args.ll_kib:,} KiB"
    if args.raw_asks_usage:
        what += ", the raw stream asking for its usage too"
    if args.no_gc:
        what += ", garbage collector off"
    console.print(
        per_thread_table(per_call, "Ir", f"Instructions per call, {what} ({n} calls counted, callgrind)")
    )
    if args.cache_sim:
        for event, name in _MISSES.items():
            console.print(per_thread_table(per_call, event, f"{name} per call (simulated), {what}"))
    if libraries:
        split = Table(title="Added instructions per call, by library (all threads)")
        split.add_column("library")
        split.add_column("added", justify="right")
        for library, added in sorted(libraries.items(), key=lambda kv: -abs(kv[1])):
            if abs(added) >= 50:
                split.add_row(library, f"{added:+,.0f}")
        console.print(split)
    if functions:
        top = Table(title=f"Functions that add most {args.by_function} per call, {what} (all threads)")
        top.add_column("function")
        top.add_column("added", justify="right")
        for name, added in sorted(functions.items(), key=lambda kv: -abs(kv[1]))[:25]:
            top.add_row(name, f"{added:+,.1f}")
        console.print(top)


if __name__ == "__main__":
    main()
