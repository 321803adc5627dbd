"""Cost of routing: decision latency of each policy chain, and a routed call vs a plain tracked one.

Decisions are CPU only (no network): p50/p90 over many prompts of realistic length. The routed
call goes through a tracked `openai` client to the fake provider in its own process, interleaved
call by call with the same call naming a real model, so machine drift hits both alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from decimal import Decimal

import openai
from rich.console import Console
from rich.table import Table

import costlens
from costlens.routing import Candidate, LatencyTarget, Router, Rule
from costlens.testing import fake_provider_process

PROMPT = "Summarise the following meeting notes for the team. " + "The launch moved by a week. " * 60


def _candidates() -> list[Candidate]:
    return [
        Candidate(
            name="nano", model="gpt-5-nano", transform="Always respond concisely. {prompt}", max_context=8000
        ),
        Candidate(name="mini", model="gpt-4o-mini", capabilities=frozenset({"json", "tools"})),
        Candidate(name="big", model="gpt-4o", capabilities=frozenset({"json", "tools", "vision"})),
    ]


def routers() -> dict[str, Router]:
    return {
        "cheapest (task, capabilities, context, cost)": Router(_candidates()),
        "+ rules (task, tag, regex)": Router(
            _candidates(),
            rules=[Rule(task="legal", use=("big",)), Rule(match=r"(?i)\bproof\b", use=("big",))],
        ),
        "+ latency target": Router(_candidates(), policies=[LatencyTarget({"big": 2500.0, "mini": 900.0})]),
    }


def _timed(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(50):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def decisions(console: Console) -> None:
    table = Table(title=f"Router decision latency (prompt of {len(PROMPT):,} characters, µs)")
    for col in ("policies", "decisions", "p50 µs", "p90 µs"):
        table.add_column(col, justify="right" if col != "policies" else "left")
    for label, router in routers().items():
        samples = _timed(
            lambda r=router: r.get_optimal_model(  # type: ignore[misc]
                task="qa", prompt=PROMPT, cost_budget=Decimal("0.05"), max_latency_ms=2000
            ),
            2000,
        )
        table.add_row(label, "2000", f"{_p(samples, 50):.0f}", f"{_p(samples, 90):.0f}")
    console.print(table)


def routed_calls(console: Console) -> None:
    costlens.configure(store="memory://")
    router = Router(_candidates())
    messages = [{"role": "user", "content": "Say hello"}]
    with fake_provider_process() as fake:
        client = costlens.track(openai.OpenAI(base_url=fake.openai_base_url, api_key="k"), router=router)

        def plain() -> object:
            return client.chat.completions.create(model="gpt-5-nano", messages=messages)  # type: ignore[arg-type]

        def routed() -> object:
            return client.chat.completions.create(model="costlens/auto", messages=messages)  # type: ignore[arg-type]

        for _ in range(100):
            plain(), routed()
        pairs = []
        for _ in range(1500):
            t0 = time.perf_counter_ns()
            plain()
            t1 = time.perf_counter_ns()
            routed()
            pairs.append(((time.perf_counter_ns() - t1) - (t1 - t0)) / 1000)
    table = Table(
        title="Routed call vs the same call naming the model (tracked openai client, fake provider)"
    )
    table.add_column("variant")
    table.add_column("calls", justify="right")
    table.add_column("added µs (paired median)", justify="right")
    table.add_row("model='gpt-5-nano' (tracked, not routed)", "1500", "+0")
    table.add_row("model='costlens/auto' (3 candidates)", "1500", f"+{statistics.median(pairs):.0f}")
    console.print(table)


def main() -> None:
    console = Console()
    decisions(console)
    routed_calls(console)


if __name__ == "__main__":
    main()
