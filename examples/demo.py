"""`make demo`: replay a real production trace through a tracked `openai` client, then report spend.

The Azure LLM inference traces (CC-BY-4.0, see data/traces/README.md) give the real input and output
token counts of 28,185 requests. Each one becomes a real `openai` SDK call, tracked by costlens,
against the local fake provider, which answers with exactly those token counts. Code requests are
plain calls; conversation requests stream, as chat UIs do (costlens asks the stream for usage and
hides the extra chunk). At the end: the spend report, from the SQLite store costlens wrote.
"""

from __future__ import annotations

import argparse
import csv
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import openai
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import costlens
import costlens.config
from costlens.budgets import Alert
from costlens.config import configure_budgets, flush_alerts
from costlens.roi import Scenario
from costlens.testing import fake_provider_process

ROOT = Path(__file__).resolve().parent.parent
TRACES = {
    "code": ROOT / "data/traces/azure_llm_2023_code.csv",
    "conversation": ROOT / "data/traces/azure_llm_2023_conv.csv",
}


@dataclass(frozen=True, slots=True)
class TraceRow:
    feature: str
    input_tokens: int
    output_tokens: int


def load_trace(limit: int | None) -> list[TraceRow]:
    rows: list[TraceRow] = []
    for feature, path in TRACES.items():
        with path.open(newline="") as f:
            for i, row in enumerate(csv.DictReader(f)):
                if limit is not None and i >= limit:
                    break
                rows.append(TraceRow(feature, int(row["ContextTokens"]), int(row["GeneratedTokens"])))
    return rows


def replay_one(client: openai.OpenAI, model: str, row: TraceRow) -> None:
    headers = {
        "x-fake-input-tokens": str(row.input_tokens),
        "x-fake-output-tokens": str(row.output_tokens),
        "x-fake-stream-deltas": "8",
    }
    # A prompt of exactly the trace's input tokens, so the budget's worst-case reservation counts
    # them (the header still makes the fake report the exact figure).
    messages = [{"role": "user", "content": " ".join(["tok"] * row.input_tokens)}]
    with costlens.tags(feature=row.feature, project="demo"):
        if row.feature == "conversation":
            stream = client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=row.output_tokens,
                stream=True,
                extra_headers=headers,
            )
            for _chunk in stream:
                pass
        else:
            client.chat.completions.create(
                model=model, messages=messages, max_tokens=row.output_tokens, extra_headers=headers
            )


def _chunks(rows: list[TraceRow], n: int) -> Iterator[list[TraceRow]]:
    size = max(1, len(rows) // n + 1)
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


blocked: dict[str, int] = {}

BUDGETS_TOML = """\
# The demo's budgets (the format of $COSTLENS_BUDGETS / `costlens budgets set`).
[[budgets]]
name = "conversation-mini"            # conversation on gpt-4o-mini: $3.00 a day, then gpt-4.1-nano
limit_usd = "3.00"
window = "day"
scope = { feature = "conversation", model = "gpt-4o-mini" }
mode = "downgrade"
downgrade_to = "gpt-4.1-nano"

[[budgets]]
name = "conversation-daily"           # all conversation: $4.00 a day, then calls are refused
limit_usd = "4.00"
window = "day"
scope = { feature = "conversation" }
mode = "block"
"""


def add_budgets(console: Console) -> Path:
    """Budgets on the conversation feature that the trace exceeds; alerts printed as they fire."""
    path = ROOT / ".costlens" / "demo-budgets.toml"
    ledger = ROOT / ".costlens" / "demo-budgets.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BUDGETS_TOML)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)

    def show(alert: Alert) -> None:
        console.print(f"[bold yellow]budget alert[/] {alert.message}")

    configure_budgets(file=path, ledger=f"sqlite://{ledger}", sinks=[show])
    return path


def replay(rows: list[TraceRow], base_url: str, model: str, workers: int, console: Console) -> None:
    client = costlens.track(
        openai.OpenAI(base_url=base_url, api_key="demo-key", max_retries=0), provider="openai"
    )
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    lock = threading.Lock()
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("replay", total=len(rows))

        def work(part: list[TraceRow]) -> None:
            for i, row in enumerate(part, 1):
                try:
                    replay_one(client, model, row)
                except costlens.BudgetExceeded:
                    with lock:
                        blocked[row.feature] = blocked.get(row.feature, 0) + 1
                if i % 100 == 0 or i == len(part):
                    with lock:
                        progress.update(task, advance=100 if i % 100 == 0 else i % 100)

        with ThreadPoolExecutor(workers) as pool:
            for future in [pool.submit(work, part) for part in _chunks(rows, workers)]:
                future.result()
    client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt-4o-mini", help="model every replayed call asks for")
    parser.add_argument("--workers", type=int, default=4, help="client threads")
    parser.add_argument("--limit", type=int, default=None, help="rows per trace (default: all)")
    parser.add_argument("--store", default=f"sqlite:///{ROOT / '.costlens' / 'demo.db'}", help="store URL")
    args = parser.parse_args(argv)
    console = Console()

    if args.store.startswith("sqlite:///"):
        db = Path(args.store.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)  # a fresh replay each run
    costlens.configure(store=args.store, durability="async")

    budgets_file = add_budgets(console)
    rows = load_trace(args.limit)
    console.print(
        f"[bold]costlens demo[/]: {len(rows):,} real requests (Azure LLM trace 2023) as {args.model}"
    )
    with fake_provider_process() as fake:
        replay(rows, fake.openai_base_url, args.model, args.workers, console)
    costlens.flush()
    flush_alerts()

    from costlens.cli import app

    console.print(f"Calls refused by budgets: {blocked or 'none'}")
    ledger_url = f"sqlite://{ROOT / '.costlens' / 'demo-budgets.db'}"
    app(["budgets", "status", "--file", str(budgets_file), "--ledger", ledger_url], standalone_mode=False)

    for by in (["feature"], ["model", "feature"], ["status", "feature"]):
        flags = [f for key in by for f in ("--by", key)]
        app(["report", *flags, "--store", args.store, "--since", "1d"], standalone_mode=False)
    scenario = roi_verdict(args.store, console)
    experiment(scenario, console)
    with fake_provider_process() as fake:
        routing_saving(rows, fake.openai_base_url, args.workers, console)
    return 0


ROUTED_ROWS = 2000


def routing_saving(rows: list[TraceRow], base_url: str, workers: int, console: Console) -> None:
    """Route conversation requests through a cascade (gpt-4.1-nano, then gpt-4o when the answer fails
    the check) and compare with always asking the strong model, gpt-4o."""
    from decimal import Decimal

    from costlens.routing import Candidate, Cascade, Router
    from costlens.scorers import Check

    # A stand-in for a real quality check (a JSON schema, a regex, a judge model): long-form answers
    # (300 words or more) are taken as too hard for the small model and escalated.
    router = Router(
        [Candidate(name="nano", model="gpt-4.1-nano"), Candidate(name="strong", model="gpt-4o")],
        cascade=Cascade(Check(lambda text: len(text.split()) < 300, name="short-answer")),
    )
    client = costlens.track(
        openai.OpenAI(base_url=base_url, api_key="demo-key", max_retries=0), provider="openai", router=router
    )
    sample = [r for r in rows if r.feature == "conversation"][:ROUTED_ROWS]
    records: list[costlens.CallRecord] = []

    def work(part: list[TraceRow]) -> None:
        for row in part:
            headers = {
                "x-fake-input-tokens": str(row.input_tokens),
                "x-fake-output-tokens": str(row.output_tokens),
            }
            with costlens.tags(feature="conversation-routed", project="demo"):
                client.chat.completions.create(
                    model="costlens/auto",
                    messages=[{"role": "user", "content": " ".join(["tok"] * row.input_tokens)}],
                    max_tokens=row.output_tokens,
                    extra_headers=headers,
                )

    from costlens.pipeline import Pipeline

    base = costlens.config.get_pipeline()
    collect = Pipeline(base.steps, sinks=[*base.sinks, records.append])  # list.append is thread-safe
    old = costlens.config.set_pipeline(collect)
    try:
        with ThreadPoolExecutor(workers) as pool:
            for future in [pool.submit(work, part) for part in _chunks(sample, workers)]:
                future.result()
    finally:
        costlens.config.set_pipeline(old)
        client.close()
    routed = sum(Decimal(r.cost_nanousd or 0) for r in records) / 1_000_000_000
    always = sum(
        (
            costlens.cost(
                costlens.Usage(r.input_tokens, r.output_tokens), provider="openai", model="gpt-4o"
            ).total
            or Decimal(0)
        )
        for r in sample
    )
    finals = [r.route for r in records if r.route and (r.route.get("verified") or r.route.get("accepted"))]
    answered_by = {
        model: sum(1 for route in finals if route["to"] == model) for model in ("gpt-4.1-nano", "gpt-4o")
    }
    console.rule(f"Routing: {len(sample):,} conversation requests through a cascade")
    console.print(
        f"answered by gpt-4.1-nano: {answered_by['gpt-4.1-nano']:,}, escalated to gpt-4o: "
        f"{answered_by['gpt-4o']:,} ({len(records):,} calls in all)"
    )
    saving = always - routed
    console.print(
        f"cascade ${routed:.6f} vs always gpt-4o ${always:.6f}: "
        f"[bold]saving ${saving:.6f} ({saving / always:.1%})[/] (every attempt paid for)"
    )


def trace_span(feature: str) -> timedelta:
    with TRACES[feature].open(newline="") as f:
        stamps = [row["TIMESTAMP"][:26] for row in csv.DictReader(f)]
    return datetime.fromisoformat(stamps[-1]) - datetime.fromisoformat(stamps[0])


def roi_verdict(store_url: str, console: Console) -> Scenario:
    """Should the code feature be fine-tuned? Volume, tokens and prices come from the calls just recorded."""
    import tomllib

    from costlens.roi import plan, scenario_from_usage, usage_profile
    from costlens.store import open_store

    assumptions = tomllib.loads((ROOT / "examples/roi/from_usage/assumptions.toml").read_text())
    store = open_store(store_url)
    try:
        # The replay squeezes the trace's hour into a minute or two; measure volume over the hour the
        # trace really spans, so requests/month reflect production traffic, not replay speed.
        first = next(store.iter_records(where={"feature": "code"}, limit=1)).started_at
        profile = usage_profile(store, "code", since=first, until=first + trace_span("code"))
        until = first + trace_span("code")
    finally:
        store.close()
    scenario = scenario_from_usage(profile, assumptions)
    result = plan(scenario)
    console.rule("ROI: keep prompting or fine-tune the code feature?")
    console.print(f"[bold]{result.recommendation.headline}[/]")
    for rule in result.recommendation.fired():
        console.print(f"  - {rule.id}: {rule.text}")
    console.print(
        f"Full plan: costlens roi from-usage --feature code --since {first:%Y-%m-%dT%H:%M:%S} "
        f"--until {until:%Y-%m-%dT%H:%M:%S} --store {store_url} "
        "--assumptions examples/roi/from_usage/assumptions.toml --report roi.md --plot roi.png"
    )
    return scenario


#: What an answer is worth to the code feature (the demo's assumption; yours goes in the scenario).
QUALITY = {"value_per_correct": "0.004", "cost_per_error": "0.002"}


def experiment(scenario: Scenario, console: Console) -> None:
    """Measure the paths on labelled examples (examples/evals/spec.toml), then plan with what was measured.

    The fake provider answers from a scripted key, by the item's difficulty: zero-shot gets the easy
    items right, few-shot also the medium ones, the tuned model all but one hard one. Against a real
    provider the same spec measures real answers."""
    import shutil

    from costlens.evals import load_spec, roi_quality, run_experiment
    from costlens.roi import plan
    from costlens.testing import FakeProvider

    spec = load_spec(ROOT / "examples/evals/spec.toml")
    items = {item.text: item for item in spec.load_dataset()}
    wrong_hard = sorted(i.id for i in items.values() if i.metadata.get("difficulty") == "hard")[:1]

    def scripted(body: dict[str, object]) -> str:
        messages = body["messages"]
        assert isinstance(messages, list)
        item = items[str(messages[-1]["content"])]
        level = item.metadata.get("difficulty")
        if str(body["model"]).startswith("ft:"):
            right = item.id not in wrong_hard
        elif len(messages) > 2:  # few-shot: examples before the item
            right = level in ("easy", "medium")
        else:
            right = level == "easy"
        return str(item.expected) if right else "None"

    runs = ROOT / ".costlens" / "runs"
    shutil.rmtree(runs, ignore_errors=True)  # a fresh run each demo (a kept run would be resumed)
    with FakeProvider(responder=scripted) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="demo")
        result = run_experiment(spec, clients={"openai": client}, runs_dir=runs)
    costlens.flush()
    from costlens.cli import app

    console.rule("Experiment: accuracy and cost per correct answer, measured on labelled examples")
    app(["eval", "report", str(result.folder)], standalone_mode=False)
    with_quality = Scenario.model_validate({**scenario.model_dump(), "quality": QUALITY})
    measured, notes = roi_quality(result, with_quality)
    for line in notes:
        console.print(f"  {line}")
    verdict = plan(measured).recommendation
    console.print(f"[bold]With measured accuracy:[/] {verdict.headline}")
    console.print(
        f"Full report: costlens eval report {result.run_id} --runs-dir {runs} --plot frontier.png; "
        f"plan with it: costlens roi from-usage ... --quality-from {result.folder}"
    )


if __name__ == "__main__":
    sys.exit(main())
