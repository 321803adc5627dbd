"""The hand-written baselines in `bench/` track the code they are compared with: a benchmark whose
baseline no longer runs breaks `make bench` (it did once, when the calls table gained columns)."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _bench_module(name: str) -> ModuleType:
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
