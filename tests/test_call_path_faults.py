"""The call path keeps its promises under faults: every record kept, every reservation settled or
charged, every refusal a documented exception (issue: the call pipeline)."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
from collections.abc import Generator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import costlens
import costlens.config
from costlens.budgets import (
    Budget,
    BudgetEngine,
    BudgetKey,
    BudgetStep,
    LedgerUnavailable,
    MemoryLedger,
    Reservation,
)
from costlens.config import configure_budgets, reset_budgets
from costlens.pipeline import Pipeline, Request
from costlens.store import open_store
from costlens.testing import FakeProvider, FakeUsage, Fault
from costlens.usage import CallRecord, Usage
from tests.conftest import Recorded

MSG: Any = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def budget_s(recorded: Recorded) -> Iterator[BudgetEngine]:
    yield configure_budgets([Budget("s", limit_usd="1")], ledger="memory://")
    reset_budgets()


def _spent(engine: BudgetEngine, name: str = "s", at: Any = None) -> tuple[int, int]:
    budget = engine.get(name)
    assert budget is not None
    pos = budget.window.position(engine.clock())
    used = engine.ledger.usage(BudgetKey(name, budget.limit_nanousd, pos.since_us, pos.bucket_us), at=at)
    return used.spent_nanousd, used.reserved_nanousd


def _oa(fake: FakeProvider) -> openai.OpenAI:
    return costlens.track(openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0))


# -- a stream nobody iterates or closes ---------------------------------------------------------------


def test_a_stream_never_iterated_is_recorded_and_settled_when_collected(
    fake: FakeProvider, recorded: Recorded, budget_s: BudgetEngine
) -> None:
    stream = _oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=30, stream=True)
    assert _spent(budget_s)[1] > 0 and recorded.all() == []
    stream.response.close()  # what a caller who drops it leaves behind: the socket, not the record
    del stream
    gc.collect()
    record = recorded.one()
    assert record.stream and record.estimated and record.input_tokens > 0 and record.output_tokens == 0
    assert record.cost_nanousd is not None and record.cost_nanousd > 0
    assert _spent(budget_s) == (record.cost_nanousd, 0)
    assert record.budgets[0]["outcome"] == "settled"


def test_an_async_stream_never_iterated_is_recorded_when_collected(
    fake: FakeProvider, recorded: Recorded
) -> None:
    async def main() -> None:
        client = costlens.track(openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0))
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
        await stream.response.aclose()
        del stream
        gc.collect()
        await client.close()

    asyncio.run(main())
    record = recorded.one()
    assert record.stream and record.estimated and record.input_tokens > 0


def test_a_stream_still_open_at_exit_is_recorded_and_settled(fake: FakeProvider, tmp_path: Path) -> None:
    store = tmp_path / "calls.db"
    budgets = tmp_path / "budgets.toml"
    ledger = tmp_path / "ledger.db"
    budgets.write_text(
        f'[settings]\nledger = "sqlite://{ledger}"\n\n[[budgets]]\nname = "s"\nlimit_usd = "1"\n'
    )
    script = textwrap.dedent(
        f"""
        import openai, costlens
        client = costlens.track(openai.OpenAI(base_url={fake.openai_base_url!r}, api_key="k"))
        kept = client.chat.completions.create(model="gpt-4o-mini", messages={MSG!r}, stream=True)
        print("made the call")
        """
    )
    env = {
        "COSTLENS_HOME": str(tmp_path),
        "COSTLENS_STORE": f"sqlite://{store}",
        "COSTLENS_BUDGETS": str(budgets),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    (record,) = list(open_store(f"sqlite://{store}").iter_records())  # type: ignore[attr-defined]
    assert record.stream and record.estimated and record.input_tokens > 0
    assert record.budgets[0]["outcome"] == "settled"


# -- usage without an output count ------------------------------------------------------------------------


def _no_output(fake: FakeProvider) -> None:
    fake.enqueue(usage=FakeUsage(input_tokens=77, output_tokens=5), fault=Fault.usage_no_output())


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_usage_without_completion_tokens_is_counted_and_flagged(
    fake: FakeProvider, recorded: Recorded, stream: bool
) -> None:
    _no_output(fake)
    reply = _oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices)  # type: ignore[union-attr]
    else:
        text = reply.choices[0].message.content or ""  # type: ignore[union-attr]
    assert text == "tok tok tok tok tok"
    record = recorded.one()
    assert record.estimated and record.input_tokens == 77 and record.output_tokens == 5


def test_responses_usage_without_output_tokens_is_counted_and_flagged(
    fake: FakeProvider, recorded: Recorded
) -> None:
    _no_output(fake)
    _oa(fake).responses.create(model="gpt-4o-mini", input="hello there")
    record = recorded.one()
    assert record.estimated and record.input_tokens == 77 and record.output_tokens == 5


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_usage_without_output_tokens_is_counted_and_flagged(
    fake: FakeProvider, recorded: Recorded, stream: bool
) -> None:
    _no_output(fake)
    client = costlens.track(anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0))
    reply = client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MSG, stream=stream)
    if stream:
        list(reply)  # type: ignore[call-overload]
    record = recorded.one()
    assert record.estimated and record.input_tokens == 77 and record.output_tokens > 0


# -- a settle that fails ------------------------------------------------------------------------------------


class FlakyLedger(MemoryLedger):
    """A ledger whose `settle` fails `failures` times (a full disk, a lost connection)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    def settle(self, reservation: Reservation, actual_nanousd: int) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise LedgerUnavailable("database or disk is full")
        super().settle(reservation, actual_nanousd)


def _budgeted_call(engine: BudgetEngine) -> CallRecord:
    records: list[CallRecord] = []
    pipeline = Pipeline({"budget": BudgetStep(engine)}, sinks=[records.append])
    body = {"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 100}
    call = pipeline.start(Request.of("openai", "chat", body))
    call.usage = Usage(input_tokens=10, output_tokens=20)
    pipeline.finish(call)
    return records[0]


def test_a_settle_that_fails_is_retried() -> None:
    ledger = FlakyLedger(failures=2)
    engine = BudgetEngine([Budget("s", limit_usd="1")], ledger=ledger)
    record = _budgeted_call(engine)
    assert ledger.attempts == 3 and record.budgets[0]["outcome"] == "settled"
    assert _spent(engine) == (record.cost_nanousd, 0)


def test_a_reservation_never_settled_is_charged_at_its_reserved_amount_when_it_expires() -> None:
    ledger = FlakyLedger(failures=100)
    engine = BudgetEngine([Budget("s", limit_usd="1")], ledger=ledger)
    record = _budgeted_call(engine)
    assert record.budgets[0]["outcome"] == "unsettled"
    reserved = record.budgets[0]["reserved_nanousd"]
    assert _spent(engine) == (0, reserved)  # still held while the reservation lives
    later = engine.clock() + timedelta(seconds=engine.settings.reservation_ttl_s + 1)
    # expired unsettled: charged, never dropped (the provider may have billed the call)
    assert _spent(engine, at=later) == (reserved, 0)


# -- bad configuration: clear errors, nothing lost ----------------------------------------------------------


@pytest.fixture
def unconfigured() -> Generator[None, None, None]:
    costlens.config.shutdown()
    yield
    costlens.configure(store="memory://", durability="sync")


@pytest.mark.usefixtures("unconfigured")
def test_a_bad_store_url_in_the_environment_spools_records_and_flush_says_so(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COSTLENS_HOME", str(tmp_path))
    monkeypatch.setenv("COSTLENS_STORE", "postgress://db/costlens")
    with pytest.raises(costlens.ConfigError, match=r"COSTLENS_STORE: unknown store URL 'postgress://"):
        costlens.configure()
    reply = _oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert reply.choices[0].message.content  # tracking never breaks the call
    assert costlens.flush() is False  # something is wrong, and flush says so
    (spooled,) = (tmp_path / "spool").glob("*.jsonl")
    assert json.loads(spooled.read_text())["request_model"] == "gpt-4o-mini"
    monkeypatch.setenv("COSTLENS_STORE", f"sqlite://{tmp_path / 'calls.db'}")
    costlens.configure(durability="sync")
    assert costlens.config.replay_spool() == 1 and costlens.flush() is True
    (record,) = list(open_store(f"sqlite://{tmp_path / 'calls.db'}").iter_records())  # type: ignore[attr-defined]
    assert record.request_model == "gpt-4o-mini" and record.cost_nanousd


@pytest.mark.usefixtures("unconfigured")
def test_a_bad_durability_in_the_environment_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTLENS_DURABILITY", "asnyc")
    with pytest.raises(costlens.ConfigError, match=r"durability 'asnyc' is not known.*COSTLENS_DURABILITY"):
        costlens.configure()


def test_a_malformed_budgets_file_refuses_calls_with_budget_unavailable_naming_file_line_and_key(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text('[[budgets]]\nname = "daily"\nlimit_usd = "5"\nwindow = "dayly"\n')
    monkeypatch.setenv("COSTLENS_BUDGETS", str(path))
    reset_budgets()
    try:
        with pytest.raises(costlens.BudgetUnavailable, match=r"budgets\.toml.*line 4.*window") as info:
            _oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert info.value.file == str(path) and isinstance(info.value.cause, costlens.ConfigError)
        assert fake.requests == [] and recorded.one().status == "blocked"
        with pytest.raises(costlens.ConfigError, match="dayly"):  # explicit setup still raises
            costlens.budget("x", limit_usd="1")
    finally:
        monkeypatch.delenv("COSTLENS_BUDGETS")
        reset_budgets()
