"""Where a tracked call's Python work goes: bytecodes per call, by function (a profiling aid).

Run: `.venv/bin/python bench/trace_callpath.py [--budgets] [--calls 200] [--top 30]`.

Wall-clock benchmarks on a small machine move by ±15 µs between identical runs, more than most
single changes to the call path are worth. Bytecode counts do not move: this script replays one
real chat completion (the SDK's own response object, captured once from the fake provider)
through the tracking wrapper, with the pipeline's sink a list that defers, as the recorder does,
and counts with `sys.settrace(..., f_trace_opcodes)` every bytecode each function executes per
call: on the caller's thread, then apart, what the recorder's writer thread runs to build and
price the deferred records (`Pipeline`'s docstring says which calls are deferred). `--budgets`
adds two nested budgets on the in-process ledger under leases (what `bench_load.py` calls
"SQLite + 2 budgets, leases", minus the SQLite ledger). Pair it with callgrind for instructions
(`valgrind --tool=callgrind`, the same script with `--calls 0` and `--calls N`, then subtract).

C work (SQLite, `datetime.now`, the dataclass machinery's C parts) is not in the counts; the
functions a dataclass generates are (they are shown with their class).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from types import FrameType
from typing import Any

import openai

import costlens
from costlens.instrument import _registered
from costlens.instrument._core import using_pipeline, wrap_sync_request
from costlens.pipeline import Pipeline
from costlens.testing import FakeProvider
from costlens.usage import CallRecord, record_of_row

MESSAGES: Any = [{"role": "user", "content": "Say hello"}]


def captured_call() -> tuple[Any, Any, Any, Any]:
    """(adapter, cast_to, options, result) of one real SDK call to the fake provider."""
    seen: dict[str, Any] = {}
    with FakeProvider() as fake:
        client = openai.OpenAI(api_key="bench", base_url=fake.openai_base_url, max_retries=0)
        original = client.request

        def capture(cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None) -> Any:
            seen["result"] = original(cast_to, options, stream=stream, stream_cls=stream_cls)
            seen["cast_to"], seen["options"] = cast_to, options
            return seen["result"]

        client.request = capture  # type: ignore[method-assign]
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.close()
    adapter = next(a for a in _registered() if a.matches(client))
    return adapter, seen["cast_to"], seen["options"], seen["result"]


class _Sink:
    """The pipeline's sink: keeps records, and deferred calls' facts to build later (as the recorder)."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        self.rows: list[tuple[Any, ...]] = []
        self.later: list[tuple[Any, ...]] = []

    def __call__(self, record: CallRecord) -> None:
        self.records.append(record)

    def defer(self, ended: tuple[Any, ...]) -> None:
        self.later.append(ended)

    def build_later(self, rows: bool) -> None:
        """Build what was deferred, as the recorder does: rows for a store that takes them (SQLite,
        `rows`: `ended[0].rows(facts)`, a batch in one call), else records (`ended[0](ended)`)."""
        if rows and self.later:
            made, failed = self.later[0][0].rows(self.later)
            assert not failed
            self.rows.extend(made)
        else:
            self.records.extend(ended[0](ended) for ended in self.later)
        self.later.clear()

    def clear(self) -> None:
        self.records.clear()
        self.rows.clear()
        self.later.clear()


class _Counts:
    """Bytecodes executed, and entries, by function (a `sys.settrace` tracer)."""

    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.entered: Counter[str] = Counter()

    def tracer(self, frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        name = f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno} {code.co_name}"
        if code.co_filename == "<string>":  # a dataclass-generated method: name its class
            name += f" ({type(frame.f_locals.get('self')).__name__})"
        self.entered[name] += 1
        frame.f_trace_opcodes = True
        ops = self.ops

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                ops[name] += 1
            return local

        return local


def count(calls: int, budgets: bool, rows: bool = True) -> tuple[_Counts, _Counts, list[CallRecord]]:
    adapter, cast_to, options, result = captured_call()
    request = wrap_sync_request(lambda *a, **k: result, adapter, "openai", {"feature": "bench"})
    if budgets:
        costlens.configure_budgets(
            [
                costlens.Budget("all", limit_usd="1000000", window="month"),
                costlens.Budget("per-model", limit_usd="1000000", window="day", scope={"model": "*"}),
            ],
            ledger="memory://",
            lease_usd="1",
        )
    sink = _Sink()
    pipeline = costlens.config.get_pipeline().with_sinks([sink]) if budgets else None
    pipeline = pipeline or Pipeline(sinks=[sink])
    caller, writer = _Counts(), _Counts()
    # Each call sends the captured body as the SDK built it: budgets write their output cap into the
    # SDK's options (its own object per call, one object here), so it is put back after every call
    # (in C: the loop's own frame is not traced, and pydantic's `__setattr__` would be).
    fields, body = options.__dict__, options.json_data
    with using_pipeline(pipeline):
        for _ in range(300):  # warm-up: caches filled, prices loaded
            request(cast_to, options)
            fields["json_data"] = body
        sink.build_later(rows)
        sink.clear()
        sys.settrace(caller.tracer)
        try:
            for _ in range(calls):
                request(cast_to, options)
                fields["json_data"] = body
        finally:
            sys.settrace(None)
        sys.settrace(writer.tracer)
        try:
            sink.build_later(rows)
        finally:
            sys.settrace(None)
    return caller, writer, [*sink.records, *map(record_of_row, sink.rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--budgets", action="store_true", help="two nested budgets, memory ledger, leases")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--records",
        action="store_true",
        help="the writer builds records (a store without `append_rows`, such as memory://), not rows",
    )
    args = parser.parse_args()
    caller, writer, records = count(args.calls, args.budgets, rows=not args.records)
    if args.calls and (len(records) != args.calls or not records[-1].cost_nanousd):
        raise SystemExit(f"expected {args.calls} priced records, got {len(records)}")
    n = max(args.calls, 1)
    setup = "two nested budgets" if args.budgets else "no budgets"
    built = "records" if args.records else "rows (the SQLite store's)"
    for where, counts in (("the caller's thread", caller), (f"the writer thread, deferred {built}", writer)):
        print(f"bytecodes per tracked call on {where}: {sum(counts.ops.values()) / n:,.0f} ({setup})")
        print(f"{'per call':>9} {'calls':>6}  function")
        for name, total in counts.ops.most_common(args.top):
            print(f"{total / n:9.1f} {counts.entered[name] / n:6.2f}  {name}")


if __name__ == "__main__":
    main()
