"""Shared fixtures: one fake provider per session, a fresh in-memory store per test."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import costlens
from costlens.budgets import Ledger, MemoryLedger, open_ledger
from costlens.budgets._sqlite_ledger import SQLiteLedger
from costlens.store.memory import MemoryStore
from costlens.testing import FakeProvider
from costlens.usage import CallRecord


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the developer's real costlens config, prices or data."""
    home = tmp_path_factory.mktemp("costlens-home")
    monkeypatch.setenv("COSTLENS_HOME", str(home))
    monkeypatch.delenv("COSTLENS_STORE", raising=False)
    monkeypatch.delenv("COSTLENS_PRICES", raising=False)


# The SDK clients a test makes, closed when it ends. An openai or anthropic client that has made a
# call sits in a reference cycle (the SDK's resources point back at it), so it is freed by the cycle
# collector at some later moment, and its pooled socket's ResourceWarning then fails whichever test
# happens to be running (warnings are errors here).
_OPENED: list[weakref.ref[Any]] = []


def _register_on_init(cls: type) -> None:
    original = cls.__init__  # type: ignore[misc]

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _OPENED.append(weakref.ref(self))

    cls.__init__ = init  # type: ignore[misc]


for _cls in (openai.OpenAI, anthropic.Anthropic):
    _register_on_init(_cls)


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    start = len(_OPENED)
    yield
    opened, _OPENED[start:] = _OPENED[start:], []
    for ref in opened:
        client = ref()
        if client is not None:
            client.close()


@pytest.fixture(params=["memory", "sqlite", "postgres", "redis"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """Every ledger implementation; the server-backed ones on a fresh database (skipped without a server)."""
    made: Ledger
    if request.param == "memory":
        made = MemoryLedger()
    elif request.param == "sqlite":
        made = SQLiteLedger(tmp_path / "budgets.db")
    else:
        made = open_ledger(request.getfixturevalue(f"{request.param}_url"))
    yield made
    made.close()


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeProvider) -> FakeProvider:
    fake_server.reset()
    return fake_server


class Recorded:
    """The calls recorded during one test, read back from the store costlens wrote to."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def all(self) -> list[CallRecord]:
        costlens.flush()
        return list(self.store.iter_records())

    def one(self) -> CallRecord:
        records = self.all()
        assert len(records) == 1, records
        return records[0]


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    store = MemoryStore()
    costlens.configure(store=store, durability="sync")
    yield Recorded(store)
    costlens.configure(store="memory://", durability="sync")


# Real-server fixtures (postgres_url, redis_url, clickhouse_url): see tests/servers.py.
from tests.servers import clickhouse_url, postgres_url, redis_url  # noqa: E402, F401


def write_demo_eval_run(runs: Path) -> Path:
    """A finished two-strategy experiment run (`runs/demo-run`), written as the runner writes one:
    what the CLI and the REST API must report alike."""
    import json as _json
    from decimal import Decimal

    from costlens.evals import Outcome, RunMeta, StrategyInfo

    folder = runs / "demo-run"
    folder.mkdir(parents=True)
    ids = ("i1", "i2", "i3")
    meta = RunMeta(
        run_id="demo-run", name="demo", created="2026-12-01T00:00:00+00:00", split="test", scorer="exact",
        dataset="data.jsonl", dataset_fingerprint="f", item_ids=ids,
        strategies=(StrategyInfo("a", "gpt-4.1-nano"), StrategyInfo("b", "gpt-4.1-mini")),
    )  # fmt: skip
    (folder / "run.json").write_text(_json.dumps(meta.to_json()), encoding="utf-8")
    lines = [
        {"outcome": Outcome(s, i, correct=(s == "b" or i == "i1"), cost=Decimal("0.0001"), calls=1).to_json()}
        for s in ("a", "b")
        for i in ids
    ]
    (folder / "results.jsonl").write_text("".join(_json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return folder
