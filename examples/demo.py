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
from pathlib import Path

import openai
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import costlens
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
    messages = [{"role": "user", "content": f"{row.feature} request"}]
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
                replay_one(client, model, row)
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

    rows = load_trace(args.limit)
    console.print(
        f"[bold]costlens demo[/]: {len(rows):,} real requests (Azure LLM trace 2023) as {args.model}"
    )
    with fake_provider_process() as fake:
        replay(rows, fake.openai_base_url, args.model, args.workers, console)
    costlens.flush()

    from costlens.cli import app

    for by in (["feature"], ["model", "feature"]):
        flags = [f for key in by for f in ("--by", key)]
        app(["report", *flags, "--store", args.store, "--since", "1d"], standalone_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
