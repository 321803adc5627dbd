"""The lean path through a budget step (`Pipeline.gate`): with budgets in force, a plain call is
admitted, settled and handed over without a `Call` (`LeanStep`). Its records, budget entries and
ledger must be what the full path leaves, for every answer; anything unusual (an error, an answer
without usage, a budget full, a price unknown, a ledger down, costlens' own failure) must take the
full path, reserved once and settled once: real `openai` clients against the fake provider, each
case run both ways."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import openai
import pytest

import costlens
from costlens.budgets import Budget, BudgetEngine, BudgetExceeded, BudgetKey, BudgetUnavailable, _enforce
from costlens.config import configure_budgets, reset_budgets
from costlens.pipeline import Pipeline
from costlens.testing import FakeProvider, Fault
from costlens.usage import CallRecord
from tests.conftest import Recorded
from tests.test_lean_path import ANTHROPIC_CASES, CASES, STREAM_CASES, _read_stream, twenty_async_users

MSG: Any = [{"role": "user", "content": "hello there"}]
_VARIES = ("id", "started_at", "ended_at", "latency_ms")


@pytest.fixture(params=["memory://", "leases"])
def engine(request: pytest.FixtureRequest, recorded: Recorded) -> Iterator[BudgetEngine]:
    """Two nested budgets (one per model), on the in-process ledger, or under leases."""
    lease = {"lease_usd": "1"} if request.param == "leases" else {}
    yield configure_budgets(
        [
            Budget("all", limit_usd="100", window="month"),
            Budget("per-model", limit_usd="50", scope={"model": "*"}),
        ],
        ledger="memory://",
        **lease,
    )
    reset_budgets()


def _client(fake: FakeProvider) -> openai.OpenAI:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
    return costlens.track(client, provider="openai", feature="gate")


def _gated(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model of every call that ends on the gate from now on (`Pipeline.record_gated`)."""
    taken: list[str] = []
    real = Pipeline.record_gated

    def spy(self: Pipeline, gate: Any, admitted: Any, request: Any, *rest: Any, **stream: Any) -> None:
        taken.append(request.model)
        real(self, gate, admitted, request, *rest, **stream)

    monkeypatch.setattr(Pipeline, "record_gated", spy)
    return taken


def _full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Pipeline, "gate", lambda self: None)


def _comparable(record: CallRecord) -> dict[str, Any]:
    values = asdict(record)
    for name in _VARIES:
        values.pop(name)
    values["budgets"] = [{k: v for k, v in e.items() if k != "reservation"} for e in values["budgets"]]
    return values


def _spent(engine: BudgetEngine, model: str = "gpt-4o-mini") -> dict[str, tuple[int, int]]:
    """(spent, reserved) of every key a call to `model` falls in, leases settled first."""
    engine.flush()
    out = {}
    for name, key_id in (("all", "all"), ("per-model", f"per-model[{model}]")):
        budget = engine.get(name)
        assert budget is not None
        pos = budget.window.position(engine.clock())
        usage = engine.ledger.usage(BudgetKey(key_id, budget.limit_nanousd, pos.since_us, pos.bucket_us))
        out[key_id] = (usage.spent_nanousd, usage.reserved_nanousd)
    return out


def _new(recorded: Recorded, seen: list[CallRecord]) -> CallRecord:
    known = {r.id for r in seen}
    (new,) = [r for r in recorded.all() if r.id not in known]
    return new


def _both_ways(
    call: Callable[[], object],
    model: str,
    recorded: Recorded,
    engine: BudgetEngine,
    monkeypatch: pytest.MonkeyPatch,
    *,
    entries: bool = True,
) -> tuple[list[CallRecord], list[str]]:
    """`call()` on the gate, then on the full path: each one's record (checked equal, as what each
    charged on every key), and the models of the calls that ended on the gate. `entries`: whether
    the call reserved on the budgets (False: an unknown price, nothing reserved)."""
    taken = _gated(monkeypatch)
    records: list[CallRecord] = []
    charged: list[dict[str, tuple[int, int]]] = []
    for gated in (True, False):
        if not gated:
            _full_path(monkeypatch)
        before = _spent(engine, model)
        with costlens.tags(user="u1"):
            call()
        records.append(_new(recorded, records))
        after = _spent(engine, model)
        charged.append({key: (after[key][0] - before[key][0], after[key][1]) for key in after})
    gated_record, full_record = records
    # (a stream's time to first event is its own: the rest must match)
    assert {**_comparable(gated_record), "ttft_ms": None} == {**_comparable(full_record), "ttft_ms": None}
    assert charged[0] == charged[1]  # the same spend on each key, nothing left reserved
    if not entries:
        return records, taken
    entries_made = gated_record.budgets
    assert [e["budget"] for e in entries_made] == ["all", "per-model"]
    assert len({e["reservation"] for e in entries_made}) == 1
    if gated_record.cost_nanousd is not None and gated_record.status != "error":
        assert {e["outcome"] for e in entries_made} == {"settled"}
        assert all(e["charged_nanousd"] == gated_record.cost_nanousd for e in entries_made)
        assert charged[0]["all"] == (gated_record.cost_nanousd, 0)
    return records, taken


@pytest.mark.parametrize("case", list(CASES))
def test_a_budgeted_call_on_the_gate_records_and_charges_what_the_full_path_does(
    case: str,
    fake: FakeProvider,
    recorded: Recorded,
    engine: BudgetEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer, extra = CASES[case]
    client = _client(fake)

    def call() -> None:
        fake.enqueue(raw=answer)
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG, **extra)

    records, taken = _both_ways(call, "gpt-4o-mini", recorded, engine, monkeypatch)
    assert records[0].tags == {"feature": "gate", "user": "u1"}
    # the gate reads the answers the lean path reads; the others become a `Call` after admission
    assert taken == ([] if "counted" in case else ["gpt-4o-mini"])


@pytest.mark.parametrize("case", list(ANTHROPIC_CASES))
def test_a_budgeted_anthropic_message_on_the_gate_records_and_charges_what_the_full_path_does(
    case: str,
    fake: FakeProvider,
    recorded: Recorded,
    engine: BudgetEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import anthropic

    answer, extra = ANTHROPIC_CASES[case]
    client = costlens.track(
        anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0), feature="gate"
    )

    def call() -> None:
        fake.enqueue(raw=answer)
        client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=MSG, **extra)

    records, taken = _both_ways(call, "claude-sonnet-4-5", recorded, engine, monkeypatch)
    assert records[0].provider == "anthropic" and records[0].budgets[0]["reserved_nanousd"] > 0
    # (`extra_body` too: the gate reads the request as the full path does, then the answer lean)
    assert taken == ([] if "counted" in case else ["claude-sonnet-4-5"])


def test_the_gate_caps_the_body_sent_as_the_full_path_does(
    fake: FakeProvider, recorded: Recorded, engine: BudgetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = _gated(monkeypatch)
    client = _client(fake)
    kwargs: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MSG}
    client.chat.completions.create(**kwargs)
    client.chat.completions.create(**kwargs, max_tokens=7)
    client.chat.completions.create(**kwargs, extra_body={"metadata": {"k": "v"}})
    assert taken == ["gpt-4o-mini"] * 3
    bodies = [r.json for r in fake.requests]
    assert (
        bodies[0]["max_tokens"] == 4096 and bodies[1]["max_tokens"] == 7 and bodies[2]["max_tokens"] == 4096
    )
    assert bodies[2]["metadata"] == {"k": "v"}
    assert kwargs == {"model": "gpt-4o-mini", "messages": MSG}  # the caller's objects are not changed
    assert [r.budgets[0]["outcome"] for r in recorded.all()] == ["settled"] * 3


def test_async_calls_take_the_gate_and_keep_their_tasks_tags(
    fake: FakeProvider, recorded: Recorded, engine: BudgetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = _gated(monkeypatch)
    twenty_async_users(fake)
    records = recorded.all()
    assert len(taken) == 20 and sorted(r.tags["user"] for r in records) == sorted(f"u{i}" for i in range(20))
    assert all(r.budgets and r.budgets[0]["outcome"] == "settled" for r in records)
    assert _spent(engine)["all"] == (sum(r.cost_nanousd or 0 for r in records), 0)


def test_a_failed_call_admitted_on_the_gate_is_released_once_and_recorded_as_the_full_path_does(
    fake: FakeProvider, recorded: Recorded, engine: BudgetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(fake)
    records: list[CallRecord] = []
    for gated in (True, False):
        if not gated:
            _full_path(monkeypatch)
        fake.enqueue(fault=Fault.http(500))
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        records.append(_new(recorded, records))
    assert records[0].status == "error" and records[0].budgets[0]["outcome"] == "released"
    assert _comparable(records[0]) == _comparable(records[1])
    assert _spent(engine) == {"all": (0, 0), "per-model[gpt-4o-mini]": (0, 0)}


def test_calls_the_gate_cannot_admit_take_the_full_path_which_decides(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A budget full (refused), a downgrade, an unknown price (blocked), a ledger down (fail closed):
    the gate reserves nothing and the full path's `admit` refuses, reroutes or says what failed."""
    taken = _gated(monkeypatch)
    client = _client(fake)
    try:
        configure_budgets([Budget("tiny", limit_usd="0.000001")], ledger="memory://")
        with pytest.raises(BudgetExceeded):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        configure_budgets(
            [Budget("cheap", limit_usd="0.0001", mode="downgrade", downgrade_to="gpt-4o-mini")],
            ledger="memory://",
        )
        client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=50)
        configure_budgets([Budget("known", limit_usd="1", unknown_price="block")], ledger="memory://")
        with pytest.raises(costlens.budgets.UnknownPriceBlocked):
            client.chat.completions.create(model="no-such-model-xyz", messages=MSG)
        (tmp_path / "file").write_text("not a folder")
        configure_budgets([Budget("down", limit_usd="1")], ledger=f"sqlite://{tmp_path / 'file' / 'b.db'}")
        with pytest.raises(BudgetUnavailable):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    finally:
        reset_budgets()
    assert taken == []  # (the downgraded call too: admitted by the full path, it ends there)
    blocked, downgraded, unpriced, down = sorted(recorded.all(), key=lambda r: r.started_at)
    assert blocked.status == "blocked" and blocked.budgets[0]["outcome"] == "blocked"
    assert downgraded.route is not None and downgraded.route["to"] == "gpt-4o-mini"
    assert downgraded.budgets[-1]["outcome"] == "settled"
    assert unpriced.status == "blocked" and down.status == "blocked"
    assert len(fake.requests) == 1  # only the downgraded call was sent


def test_costlens_failing_on_the_gate_loses_no_call_and_reserves_once(
    fake: FakeProvider, recorded: Recorded, engine: BudgetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure of costlens' own in admission: reported, nothing reserved there, and the full path
    admits the call; one after the call (settling): reported, and the record kept."""
    monkeypatch.setenv("COSTLENS_STRICT", "0")  # (tests raise costlens' own failures by default)
    said: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("costlens").addHandler(handler)
    client = _client(fake)
    real_estimate = _enforce.estimate

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("bug")

    try:
        monkeypatch.setattr(_enforce, "estimate", broken)
        with pytest.raises(BudgetUnavailable):  # (the full path's `admit` meets it too: fails closed)
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        monkeypatch.setattr(_enforce, "estimate", real_estimate)
        monkeypatch.setattr(engine.watch, "settled", broken)
        assert client.chat.completions.create(model="gpt-4o-mini", messages=MSG).choices
    finally:
        logging.getLogger("costlens").removeHandler(handler)
    assert said[0] == "costlens: checking budgets failed; the call itself was not affected"
    assert said[-1] == "costlens: a pipeline step after the call failed; the call itself was not affected"
    blocked, answered = sorted(recorded.all(), key=lambda r: r.started_at)
    assert blocked.status == "blocked" and answered.status == "ok" and answered.price_known
    assert answered.budgets[0]["outcome"] == "settled"
    assert _spent(engine)["all"] == (answered.cost_nanousd, 0)


@pytest.mark.parametrize("fail_open", [False, True])
def test_a_ledger_that_fails_the_gate_is_asked_once_per_call(
    fake: FakeProvider,
    recorded: Recorded,
    engine: BudgetEngine,
    monkeypatch: pytest.MonkeyPatch,
    fail_open: bool,
) -> None:
    """The gate's ledger answer (down, or a budget full) goes with the request to the full path,
    which decides from it without asking again: a ledger that times out makes a call wait once."""
    from costlens.budgets import LedgerUnavailable

    asked: list[str] = []
    real = engine.ledger.reserve

    def down(*args: Any, **kwargs: Any) -> Any:
        asked.append("down")
        raise LedgerUnavailable("ledger down (test)")

    def full(*args: Any, **kwargs: Any) -> Any:
        asked.append("full")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "settings", dataclasses.replace(engine.settings, fail_open=fail_open))
    monkeypatch.setattr(engine.ledger, "reserve", down)
    client = _client(fake)
    if fail_open:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    else:
        with pytest.raises(BudgetUnavailable):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert asked == ["down"]
    (record,) = recorded.all()
    if fail_open:
        assert record.status == "ok" and record.budgets[0]["outcome"] == "unenforced"
    else:
        assert (record.status, record.error_type) == ("blocked", "BudgetUnavailable")
    monkeypatch.setattr(engine.ledger, "reserve", full)
    monkeypatch.setattr(engine, "settings", dataclasses.replace(engine.settings, fail_open=False))
    with pytest.raises(BudgetExceeded):  # more than every limit: the ledger refuses it, once
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=10**9)
    assert asked == ["down", "full"]
    assert _spent(engine) == {"all": (0, 0), "per-model[gpt-4o-mini]": (0, 0)}


# -- streams ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(STREAM_CASES))
def test_a_budgeted_stream_on_the_gate_records_and_charges_what_the_full_path_does(
    case: str,
    fake: FakeProvider,
    recorded: Recorded,
    engine: BudgetEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chat stream admitted by the gate is settled when it ends well with its usage (priced,
    handed over as a stream, with its time to first event); any other end makes it the `Call` it
    would have been, with the step's after-half waiting: the same record and charges either way."""
    behaviour, extra, upto = STREAM_CASES[case]
    client = _client(fake)
    model = extra.get("model", "gpt-4o-mini")
    outcomes: list[str] = []

    def call() -> None:
        fake.enqueue(**behaviour)
        outcomes.append(_read_stream(client, extra, upto))

    if model != "gpt-4o-mini":  # (an unknown model: nothing reserved, on either path)
        records, taken = _both_ways(call, "gpt-4o-mini", recorded, engine, monkeypatch, entries=False)
    else:
        records, taken = _both_ways(call, model, recorded, engine, monkeypatch)
    assert outcomes[0] == outcomes[1] and records[0].stream
    goes_well = case in ("usage asked by costlens", "usage asked by the caller", "tier asked")
    assert taken == (["gpt-4o-mini"] if goes_well else [])
    if goes_well:
        record = records[0]
        assert record.ttft_ms is not None and 0 < record.ttft_ms <= (record.latency_ms or 0)


def test_a_budgeted_stream_dropped_unread_is_settled_when_collected(
    fake: FakeProvider, recorded: Recorded, engine: BudgetEngine
) -> None:
    import gc

    client = _client(fake)  # (kept, and closed after: its pool closes the dropped stream's socket)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    assert _spent(engine)["all"][1] > 0  # its worst case is held while it is open
    del stream
    gc.collect()
    client.close()
    record = recorded.one()
    assert record.estimated and record.stream and record.budgets[0]["outcome"] == "settled"
    assert _spent(engine)["all"] == (record.cost_nanousd, 0)


def test_an_answer_the_gate_cannot_read_goes_to_the_full_path_and_is_settled_once(
    fake: FakeProvider, recorded: Recorded, engine: BudgetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """costlens' own failure reading an admitted call's answer: reported; the full path reads it
    (the call becomes the `Call` it would have been) and the step settles it, once."""
    from costlens.instrument.openai import OpenAIAdapter

    monkeypatch.setenv("COSTLENS_STRICT", "0")

    def broken(self: OpenAIAdapter, *args: Any) -> Any:
        raise KeyError("bug")

    settled: list[int | None] = []
    real_settle = engine.settle
    monkeypatch.setattr(OpenAIAdapter, "lean_response", broken)
    monkeypatch.setattr(
        engine, "settle", lambda ticket, call: settled.append(call.cost_nanousd) or real_settle(ticket, call)
    )
    assert _client(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG).choices
    record = recorded.one()
    assert record.status == "ok" and record.price_known and record.budgets[0]["outcome"] == "settled"
    assert settled == [record.cost_nanousd]
    assert _spent(engine)["all"] == (record.cost_nanousd, 0)
