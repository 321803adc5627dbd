"""Benchmark: warm `costlens.cost` vs genai-prices `calc_price` on the same usage, plus cold first calls.

Run: `.venv/bin/python bench/bench_cost.py [--iterations 20000]`. Each call is timed on its own with
`time.perf_counter_ns`; the table shows median and p90 per call in microseconds. Cold times are
measured in fresh interpreters (import + data load + first resolution). Goal: warm <= 10 us.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from time import perf_counter_ns

from rich.console import Console
from rich.table import Table

GOAL_US = 10.0
AT = datetime(2026, 3, 1, tzinfo=UTC)

# (label, provider, model, at, service tier, usage fields)
CASES: list[tuple[str, str, str, datetime | None, str | None, dict[str, int]]] = [
    (
        "gpt-4o cached prompt",
        "openai",
        "gpt-4o-2024-08-06",
        None,
        None,
        {"input_tokens": 12_000, "cache_read_tokens": 8_192, "output_tokens": 700},
    ),
    (
        "claude-sonnet-4-5 cache r/w",
        "anthropic",
        "claude-sonnet-4-5-20250929",
        None,
        None,
        {
            "input_tokens": 50_000,
            "cache_read_tokens": 30_000,
            "cache_write_tokens": 10_000,
            "output_tokens": 1_200,
        },
    ),
    (
        "gemini-2.5-pro long context",
        "google",
        "gemini-2.5-pro",
        None,
        None,
        {"input_tokens": 250_000, "output_tokens": 2_000},
    ),
    ("o3 dated price (at=)", "openai", "o3", AT, None, {"input_tokens": 2_000, "output_tokens": 5_000}),
    ("gpt-4o batch tier", "openai", "gpt-4o", AT, "batch", {"input_tokens": 10_000, "output_tokens": 500}),
    (
        "deepseek-chat time of day",
        "deepseek",
        "deepseek-chat",
        AT,
        None,
        {"input_tokens": 10_000, "output_tokens": 1_000},
    ),
]

COLD_COSTLENS = """
import time
t = time.perf_counter_ns()
import costlens
from costlens import Usage
c = costlens.cost(Usage(input_tokens=1000, output_tokens=100), provider="openai", model="gpt-4o")
print(time.perf_counter_ns() - t)
"""
COLD_GENAI = """
import time
t = time.perf_counter_ns()
import genai_prices
usage = genai_prices.Usage(input_tokens=1000, output_tokens=100)
genai_prices.calc_price(usage, "gpt-4o", provider_id="openai")
print(time.perf_counter_ns() - t)
"""


def per_call_ns(fn: Callable[[], object], iterations: int) -> list[int]:
    for _ in range(min(1_000, iterations)):  # warm caches and the allocator
        fn()
    samples = []
    for _ in range(iterations):
        start = perf_counter_ns()
        fn()
        samples.append(perf_counter_ns() - start)
    return samples


def quantiles_us(samples: list[int]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) / 1000, ordered[int(len(ordered) * 0.9)] / 1000


def cold_ms(code: str, runs: int = 3) -> float:
    """Median cold first-call time in a fresh interpreter with no user overrides file."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "COSTLENS_HOME": home}
        env.pop("COSTLENS_PRICES", None)
        times = [int(subprocess.check_output([sys.executable, "-c", code], env=env)) for _ in range(runs)]
    return statistics.median(times) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()

    os.environ["COSTLENS_HOME"] = tempfile.mkdtemp(prefix="costlens-bench-")
    os.environ.pop("COSTLENS_PRICES", None)
    import genai_prices

    import costlens
    from costlens import Usage

    table = Table(title=f"cost per call, {args.iterations:,} warm calls each (us)")
    for column in (
        "case",
        "costlens median",
        "costlens p90",
        "genai-prices median",
        "genai-prices p90",
        "speed-up",
    ):
        table.add_column(column, justify="left" if column == "case" else "right")
    table.add_column(f"goal <= {GOAL_US:g} us", justify="center")
    for label, provider, model, at, tier, fields in CASES:
        usage = Usage(**fields)
        gusage = genai_prices.Usage(**fields)
        context = {"processing": tier} if tier == "batch" else None
        ours = per_call_ns(
            partial(costlens.cost, usage, provider=provider, model=model, at=at, service_tier=tier),
            args.iterations,
        )
        theirs = per_call_ns(
            partial(
                genai_prices.calc_price,
                gusage,
                model,
                provider_id=provider,
                genai_request_timestamp=at,
                price_context=context,
            ),
            args.iterations,
        )
        (om, op), (gm, gp) = quantiles_us(ours), quantiles_us(theirs)
        ok = "[green]yes[/]" if op <= GOAL_US else ("[yellow]median[/]" if om <= GOAL_US else "[red]no[/]")
        table.add_row(label, f"{om:.2f}", f"{op:.2f}", f"{gm:.1f}", f"{gp:.1f}", f"{gm / om:.0f}x", ok)

    cold = Table(
        title="cold first call in a fresh interpreter (import + data load + first price), median of 3"
    )
    cold.add_column("what")
    cold.add_column("ms", justify="right")
    cold.add_row("import costlens + costlens.cost(...)", f"{cold_ms(COLD_COSTLENS):.0f}")
    cold.add_row("import genai_prices + calc_price(...)", f"{cold_ms(COLD_GENAI):.0f}")

    console = Console(width=150)
    console.print(table)
    console.print(cold)
    console.print(f"python {sys.version.split()[0]}, genai-prices {genai_prices.__version__}")


if __name__ == "__main__":
    main()
