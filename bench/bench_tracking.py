"""Overhead of tracking: tracked vs raw `openai` client, side by side in one run.

The fake provider runs in its own process so its work does not share our GIL. Variants are
interleaved in blocks so drift on the machine hits all of them alike. Figures are per call.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import openai
from rich.console import Console
from rich.table import Table

import costlens
from costlens.testing import fake_provider_process

CALLS = 2000
STREAM_CALLS = 600
MESSAGES = [{"role": "user", "content": "Say hello"}]


def _time_calls(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def _interleaved(variants: dict[str, Callable[[], object]], total: int) -> dict[str, list[float]]:
    """Round-robin, one call of each variant in turn, so machine noise hits every variant alike."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm connections and caches
        _time_calls(fn, 50)
    for _ in range(total):
        for name, fn in variants.items():
            t0 = time.perf_counter_ns()
            fn()
            samples[name].append((time.perf_counter_ns() - t0) / 1000)
    return samples


def _paired_added(values: list[float], baseline: list[float]) -> float:
    """Median of per-round differences: robust to drift that a difference of medians is not."""
    return statistics.median(v - b for v, b in zip(values, baseline, strict=True))


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def call_variants(base_url: str) -> dict[str, Callable[[], object]]:
    from decimal import Decimal

    import genai_prices

    raw = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)
    tracked = costlens.track(
        openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0), provider="openai"
    )
    priced = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)

    def call_raw() -> object:
        return raw.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]

    def call_tracked() -> object:
        return tracked.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]

    def call_genai_prices() -> Decimal:
        r = priced.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        assert r.usage is not None
        usage = genai_prices.Usage(
            input_tokens=r.usage.prompt_tokens, output_tokens=r.usage.completion_tokens
        )
        price: Decimal = genai_prices.calc_price(usage, r.model, provider_id="openai").total_price
        return price

    return {"raw openai": call_raw, "costlens.track": call_tracked, "raw + genai-prices": call_genai_prices}


def stream_variants(base_url: str) -> dict[str, Callable[[], object]]:
    raw = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)
    tracked = costlens.track(
        openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0), provider="openai"
    )

    def consume(client: openai.OpenAI) -> Callable[[], object]:
        def run() -> object:
            stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            return sum(1 for _ in stream)

        return run

    return {"raw openai stream": consume(raw), "costlens.track stream": consume(tracked)}


def import_times(repeats: int = 7) -> dict[str, float]:
    snippets = {
        "import costlens": "import costlens",
        "import costlens + costlens.track": "import costlens; costlens.track",
        "import genai_prices": "import genai_prices",
        "import openai": "import openai",
    }
    out = {}
    for label, code in snippets.items():
        timer = f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)"
        runs = [float(subprocess.check_output([sys.executable, "-c", timer])) for _ in range(repeats)]
        out[label] = statistics.median(runs) * 1000
    return out


def main() -> None:
    console = Console()
    with fake_provider_process() as fake, tempfile.TemporaryDirectory() as tmp:
        costlens.configure(store=f"sqlite:///{Path(tmp) / 'bench.db'}", durability="async")
        calls = _interleaved(call_variants(fake.openai_base_url), CALLS)
        streams = _interleaved(stream_variants(fake.openai_base_url), STREAM_CALLS)
        costlens.flush()
        costlens.configure(store="memory://")

    table = Table(
        title="Per-call latency, sequential calls to the local fake (SQLite store, async durability)"
    )
    for col in ("variant", "calls", "p50 µs", "p90 µs", "p50 vs raw", "added µs (paired median)"):
        table.add_column(col, justify="right" if col != "variant" else "left")
    for group, baseline in ((calls, "raw openai"), (streams, "raw openai stream")):
        base = statistics.median(group[baseline])
        for name, values in group.items():
            med = statistics.median(values)
            added = _paired_added(values, group[baseline])
            row = (f"{med:.0f}", f"{_p(values, 90):.0f}", f"{med / base:.3f}", f"{added:+.0f}")
            table.add_row(name, str(len(values)), *row)
    console.print(table)

    imports = Table(title="Import time in a fresh interpreter (median of 7)")
    imports.add_column("statement")
    imports.add_column("ms", justify="right")
    for label, ms in import_times().items():
        imports.add_row(label, f"{ms:.1f}")
    console.print(imports)
    console.print("Goals: tracked/raw p50 ≤ 1.03 (≈ ≤ 50 µs added); import costlens ≤ 30 ms.")


if __name__ == "__main__":
    main()
