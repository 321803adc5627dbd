"""Machine instructions a tracked call adds, raw vs tracked in one run, per thread (a profiling aid).

Run: `.venv/bin/python bench/count_instructions.py [--setup sqlite|budgets] [--stream] [--calls 255]`.

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
(libpython, libsqlite3, libc, ...). What it cannot show: cache misses and the GIL hand-offs that
make the same instructions slower under load (`bench_load.py` measures those, noisily).
Needs `valgrind`; a run takes a few minutes.
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


def child(tracked: bool, setup: str, stream: bool, calls: int, batches: int) -> None:
    """The measured process: `batches` batches of `calls` calls, each batch flushed."""
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
        )
    # The writer wakes when a batch's worth waits or at flush(), never on its timer (which, under
    # callgrind's slowdown, would cut batches at points that differ from run to run).
    costlens.get_recorder()._interval = 1e6  # (a private field: this is a profiling aid)
    client = openai.OpenAI(base_url=os.environ["FAKE_URL"], api_key="bench", max_retries=0)
    if tracked:
        client = costlens.track(client)
    for _ in range(batches):
        for _ in range(calls):
            if stream:
                for _chunk in client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True
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


def callgrind(out: Path, args: list[str], fake_url: str) -> dict[int, Path]:
    """Run this script's child under callgrind; the profile file of each thread, by thread number."""
    env = {**os.environ, "FAKE_URL": fake_url, "PYTHONHASHSEED": "0"}
    command = [
        "valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}",
        sys.executable, __file__, *args,
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the measured process failed (exit status {done.returncode}):\n{done.stderr[-4000:]}")
    return {int(p.name.rsplit("-", 1)[1]): p for p in out.parent.glob(f"{out.name}-*")}


def total(profile: Path) -> int:
    with profile.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", choices=("sqlite", "budgets"), default="sqlite")
    parser.add_argument("--stream", action="store_true", help="streamed calls")
    parser.add_argument("--calls", type=int, default=255, help="calls per batch (one flush each)")
    parser.add_argument("--warm", type=int, default=2, help="batches run before counting")
    parser.add_argument("--batches", type=int, default=2, help="batches counted")
    parser.add_argument("--by-library", action="store_true", help="split the added instructions")
    parser.add_argument("--keep", type=Path, help="keep the callgrind profiles in this folder")
    parser.add_argument("--child", nargs=2, metavar=("raw|tracked", "BATCHES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0] == "tracked", args.setup, args.stream, args.calls, int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("count_instructions.py needs valgrind (Debian: apt-get install valgrind)")

    from rich.console import Console
    from rich.table import Table

    console = Console()
    n = args.calls * args.batches
    common = ["--setup", args.setup, "--calls", str(args.calls), *(["--stream"] if args.stream else [])]
    per_call: dict[tuple[str, int], float] = {}
    libraries: dict[str, float] = {}
    with fake_provider() as url, tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for side in ("raw", "tracked"):
            runs = {}
            for batches in (args.warm, args.warm + args.batches):
                console.print(f"  callgrind: {side}, {batches} batches of {args.calls} calls ...")
                runs[batches] = callgrind(
                    Path(tmp) / f"{side}.{batches}", [*common, "--child", side, str(batches)], url
                )
            before, after = runs[args.warm], runs[args.warm + args.batches]
            for thread in after:
                start = total(before[thread]) if thread in before else 0
                per_call[side, thread] = (total(after[thread]) - start) / n
            if args.by_library:
                for thread in after:
                    sign = 1 if side == "tracked" else -1
                    old = by_library(before[thread]) if thread in before else {}
                    for library, count in by_library(after[thread]).items():
                        added = sign * (count - old.get(library, 0)) / n
                        libraries[library] = libraries.get(library, 0.0) + added
    what = f"{args.setup} set-up, {'streamed' if args.stream else 'plain'} calls"
    table = Table(title=f"Instructions per call, {what} ({n} calls counted, callgrind)")
    for column in ("thread", "raw", "tracked", "added"):
        table.add_column(column, justify="left" if column == "thread" else "right")
    threads = sorted({thread for _, thread in per_call})
    names = {1: "caller (main thread)", 2: "recorder's writer"}
    for thread in threads:
        raw, tracked = per_call.get(("raw", thread), 0.0), per_call.get(("tracked", thread), 0.0)
        name = names.get(thread, f"thread {thread}")
        table.add_row(name, f"{raw:,.0f}", f"{tracked:,.0f}", f"{tracked - raw:+,.0f}")
    raw_all = sum(v for (side, _), v in per_call.items() if side == "raw")
    tracked_all = sum(v for (side, _), v in per_call.items() if side == "tracked")
    table.add_row("all", f"{raw_all:,.0f}", f"{tracked_all:,.0f}", f"{tracked_all - raw_all:+,.0f}")
    console.print(table)
    if libraries:
        split = Table(title="Added instructions per call, by library (all threads)")
        split.add_column("library")
        split.add_column("added", justify="right")
        for library, added in sorted(libraries.items(), key=lambda kv: -abs(kv[1])):
            if abs(added) >= 50:
                split.add_row(library, f"{added:+,.0f}")
        console.print(split)


if __name__ == "__main__":
    main()
