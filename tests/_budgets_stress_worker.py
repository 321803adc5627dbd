"""Load for the budget stress tests: real SDK clients, random output sizes, nested budgets.

Importable by `multiprocessing` spawn children (it is not a test module). Each call is counted by
outcome; the checks read the ledger and the call store afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import openai

import costlens
from costlens.budgets import Alert, Budget, BudgetKey, BudgetUnavailable, open_ledger
from costlens.budgets._config import render_budget
from costlens.budgets._window import LIFETIME_SINCE_US
from costlens.config import configure_budgets, reset_budgets

USERS = [f"u{i}" for i in range(6)]


def budgets() -> list[Budget]:
    """Nested budgets that the load exceeds: global, per user, per feature, per provider, per model."""
    return [
        Budget("all", limit_usd="0.05", window="day"),
        Budget("per-user", limit_usd="0.012", window="24h", scope={"user": "*"}),
        Budget("chat", limit_usd="0.02", window="month", scope={"feature": "chat"}),
        Budget(
            "search-4o",
            limit_usd="0.02",
            window="lifetime",
            scope={"feature": "search", "model": "gpt-4o"},
            mode="downgrade",
            downgrade_to="gpt-4o-mini",
        ),
        Budget("claude", limit_usd="0.015", window="week", scope={"provider": "anthropic"}),
        Budget("watch", limit_usd="0.01", window="day", mode="warn"),
    ]


@dataclass
class Clients:
    oa: Any
    an: Any


def _openai_kwargs(rng: random.Random, feature: str) -> tuple[str, dict[str, Any]]:
    model = "gpt-4o" if feature == "search" and rng.random() < 0.5 else "gpt-4o-mini"
    max_tokens = rng.randint(20, 800)
    out = rng.randint(1, max_tokens)
    kwargs = {
        "model": model,
        "messages": [{"role": "user", "content": f"question {rng.randint(0, 999)}"}],
        "max_tokens": max_tokens,
        "extra_headers": {"x-fake-output-tokens": str(out), "x-fake-stream-deltas": "4"},
    }
    return model, kwargs


def _anthropic_kwargs(rng: random.Random) -> dict[str, Any]:
    max_tokens = rng.randint(20, 800)
    return {
        "model": "claude-haiku-4-5",
        "messages": [{"role": "user", "content": f"question {rng.randint(0, 999)}"}],
        "max_tokens": max_tokens,
        "extra_headers": {
            "x-fake-output-tokens": str(rng.randint(1, max_tokens)),
            "x-fake-stream-deltas": "4",
        },
    }


def one_call(clients: Clients, rng: random.Random) -> str:
    """One call with random tags, provider, stream mode and output size; returns its outcome."""
    user, feature = rng.choice(USERS), rng.choice(["chat", "search", "other"])
    stream = rng.random() < 0.3
    with costlens.tags(user=user, feature=feature):
        try:
            if rng.random() < 0.25:
                kwargs = _anthropic_kwargs(rng)
                if stream:
                    with clients.an.messages.stream(**kwargs) as s:
                        s.until_done()
                else:
                    clients.an.messages.create(**kwargs)
            else:
                _, kwargs = _openai_kwargs(rng, feature)
                if stream:
                    chunks = clients.oa.chat.completions.create(stream=True, **kwargs)
                    for i, _chunk in enumerate(chunks):
                        if i == 2 and rng.random() < 0.2:
                            chunks.close()  # closed early: settles what was seen
                            break
                else:
                    clients.oa.chat.completions.create(**kwargs)
        except costlens.BudgetExceeded:
            return "blocked"
    return "ok"


async def one_async_call(clients: Clients, rng: random.Random) -> str:
    user, feature = rng.choice(USERS), rng.choice(["chat", "search", "other"])
    with costlens.tags(user=user, feature=feature):
        try:
            if rng.random() < 0.25:
                await clients.an.messages.create(**_anthropic_kwargs(rng))
            elif rng.random() < 0.3:
                _, kwargs = _openai_kwargs(rng, feature)
                stream = await clients.oa.chat.completions.create(stream=True, **kwargs)
                async for _chunk in stream:
                    pass
            else:
                _, kwargs = _openai_kwargs(rng, feature)
                await clients.oa.chat.completions.create(**kwargs)
        except costlens.BudgetExceeded:
            return "blocked"
    return "ok"


def sync_clients(base_url: str) -> Clients:
    oa = openai.OpenAI(base_url=base_url + "/v1", api_key="k", max_retries=0)
    an = anthropic.Anthropic(base_url=base_url, api_key="k", max_retries=0)
    return Clients(costlens.track(oa, provider="openai"), costlens.track(an))


def run_threads(base_url: str, threads: int, calls: int, seed: int) -> Counter[str]:
    """`threads` threads, each making `calls` calls through its own clients; joined, never slept on."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        clients = sync_clients(base_url)
        start.wait()
        for _ in range(calls):
            outcome = one_call(clients, rng)
            with lock:
                outcomes[outcome] += 1
        clients.oa.close()
        clients.an.close()

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return outcomes


async def run_tasks(base_url: str, tasks: int, calls: int, seed: int) -> Counter[str]:
    oa = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="k", max_retries=0)
    an = anthropic.AsyncAnthropic(base_url=base_url, api_key="k", max_retries=0)
    clients = Clients(costlens.track(oa, provider="openai"), costlens.track(an))
    outcomes: Counter[str] = Counter()

    async def work(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        for _ in range(calls):
            outcomes[await one_async_call(clients, rng)] += 1

    await asyncio.gather(*(work(n) for n in range(tasks)))
    await oa.close()
    await an.close()
    return outcomes


class FileSink:
    """Appends one line per alert (O_APPEND: lines from several processes never mix)."""

    name = None

    def __init__(self, path: str) -> None:
        self.path = path

    def send(self, alert: Alert) -> None:
        line = f"{alert.key}|{alert.kind}|{alert.threshold_pct}|{alert.window_start.isoformat()}\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)


def write_budgets_file(path: str, ledger_url: str, lease_usd: str | None = None) -> None:
    """A budgets file naming the shared ledger in `[settings]` (and budget leases of `lease_usd`),
    with the budgets of `budgets()`."""
    lease = f"lease_usd = {json.dumps(lease_usd)}\n" if lease_usd else ""
    text = f"[settings]\nledger = {json.dumps(ledger_url)}\n{lease}\n" + "\n".join(
        render_budget(b) for b in budgets()
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def process_main(args: tuple[str, str, str, str, int, int, int]) -> dict[str, int]:
    """A spawned process: its own clients, the shared ledger, store and alerts files.

    `ledger_url` may instead name a budgets file (`file:<path>`): the process then reads its budgets
    and its ledger from it, as an app instance with its own copy of the file would."""
    base_url, ledger_url, store_url, alerts, threads, calls, seed = args
    costlens.configure(store=store_url, durability="async")
    if ledger_url.startswith("file:"):
        configure_budgets(file=ledger_url[len("file:") :], sinks=[FileSink(alerts)])
    else:
        configure_budgets(budgets(), ledger=ledger_url, sinks=[FileSink(alerts)])
    try:
        outcomes = run_threads(base_url, threads, calls, seed)
    except BudgetUnavailable as exc:  # pragma: no cover - reported by the parent
        return {"unavailable": 1, "error": hash(str(exc))}
    costlens.flush()
    reset_budgets()  # delivers the alerts still queued
    costlens.configure(store="memory://")
    return dict(outcomes)


@dataclass
class Report:
    calls: int
    blocked: int
    downgraded: int
    max_overshoot_nanousd: int
    reserved_left_nanousd: int
    records: int
    keys: dict[str, tuple[int, int]]  # key -> (spent, limit)


def check(ledger_url: str, store: Any, calls: int, blocked: int) -> Report:
    """Read back the ledger and the store: per-key spend vs limit, reservations left, records."""
    ledger = open_ledger(ledger_url)
    records = list(store.iter_records())
    charged: Counter[str] = Counter()
    downgraded = 0
    for record in records:
        downgraded += bool(record.route)
        for entry in record.budgets:
            if entry.get("outcome") == "settled":
                charged[entry["key"]] += entry["charged_nanousd"]
    keys: dict[str, tuple[int, int]] = {}
    overshoot, reserved = 0, 0
    for budget in budgets():
        for key_id in ledger.key_ids(budget.name):
            everything = BudgetKey(key_id, budget.limit_nanousd, LIFETIME_SINCE_US, 0)
            usage = ledger.usage(everything)
            reserved += usage.reserved_nanousd
            assert usage.spent_nanousd == charged[key_id], (key_id, usage, charged[key_id])
            if budget.enforced:
                pos = budget.window.position(_now())
                in_window = ledger.usage(BudgetKey(key_id, budget.limit_nanousd, pos.since_us, pos.bucket_us))
                overshoot = max(overshoot, in_window.spent_nanousd - budget.limit_nanousd)
                keys[key_id] = (in_window.spent_nanousd, budget.limit_nanousd)
    ledger.close()
    return Report(calls, blocked, downgraded, overshoot, reserved, len(records), keys)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


Runner = Callable[..., Counter[str]]
