"""Budget enforcement through real SDK clients against the fake provider: each mode, nesting, `*`
scopes, streams holding their reservation, release on error, unknown prices, fail-closed, caps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import costlens
from costlens.budgets import (
    Budget,
    BudgetEngine,
    BudgetKey,
    BudgetStep,
    BudgetUnavailable,
    UnknownPriceBlocked,
)
from costlens.config import configure_budgets, get_engine, reset_budgets
from costlens.pipeline import Pipeline, Request
from costlens.pricing import estimate_max_cost
from costlens.testing import FakeProvider, FakeUsage, Fault
from tests.conftest import Recorded

MSG: Any = [{"role": "user", "content": "hello"}]
Make = Callable[..., BudgetEngine]


@pytest.fixture
def budgets(recorded: Recorded) -> Iterator[Make]:
    def make(*items: Budget, **kw: Any) -> BudgetEngine:
        kw.setdefault("ledger", "memory://")
        return configure_budgets(list(items), **kw)

    yield make
    reset_budgets()


def _oa(fake: FakeProvider, **tags: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    return costlens.track(client, provider="openai", **tags)


def _chat(client: openai.OpenAI, model: str = "gpt-4o-mini", out: int = 100, **kw: Any) -> Any:
    headers = {"x-fake-output-tokens": str(out)}
    return client.chat.completions.create(
        model=model, messages=MSG, max_tokens=out, extra_headers=headers, **kw
    )


def _worst(model: str, max_tokens: int, provider: str = "openai", input_tokens: int = 7) -> int:
    nano = estimate_max_cost(provider, model, input_tokens, max_tokens).nanousd
    assert nano is not None
    return nano


def _spent(engine: BudgetEngine, name: str) -> tuple[int, int]:
    budget = engine.get(name.split("[")[0])
    assert budget is not None
    pos = budget.window.position(engine.clock())
    usage = engine.ledger.usage(BudgetKey(name, budget.limit_nanousd, pos.since_us, pos.bucket_us))
    return usage.spent_nanousd, usage.reserved_nanousd


# -- block ---------------------------------------------------------------------------------------------


def test_block_refuses_before_the_call_and_records_it(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    worst = _worst("gpt-4o-mini", 100)  # "hello": 1 token + 3 per message + 3
    engine = budgets(Budget("tiny", limit_usd=f"{worst * 2 / 1e9:.9f}", window="day"))
    client = _oa(fake)
    _chat(client)
    _chat(client)
    assert _spent(engine, "tiny")[0] == 2 * _worst("gpt-4o-mini", 100, input_tokens=fake_input(fake))
    with pytest.raises(costlens.BudgetExceeded) as info:
        _chat(client)
    message = str(info.value)
    assert "'tiny'" in message and "gpt-4o-mini" in message and "costlens budgets set tiny --limit" in message
    assert info.value.estimate_nanousd == worst and info.value.resets_at is not None
    assert len(fake.requests) == 2  # the refused call never reached the provider
    ok1, ok2, blocked = recorded.all()
    assert ok1.status == ok2.status == "ok"
    assert (blocked.status, blocked.error_type, blocked.cost_nanousd) == ("blocked", "BudgetExceeded", 0)
    assert blocked.budgets[0]["outcome"] == "blocked" and blocked.budgets[0]["estimate_nanousd"] == worst
    entry = ok1.budgets[0]
    assert (entry["budget"], entry["outcome"], entry["reserved_nanousd"]) == ("tiny", "settled", worst)
    assert entry["charged_nanousd"] == ok1.cost_nanousd


def fake_input(fake: FakeProvider) -> int:
    """Input tokens the fake reports for MSG (ceil(5 / 4) + 1), to price settled calls."""
    return 3


def test_budget_exceeded_is_raised_from_async_clients_too(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    budgets(Budget("none-left", limit_usd="0.000000001"))
    client = costlens.track(
        openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0), provider="openai"
    )

    async def run() -> None:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=10)

    with pytest.raises(costlens.BudgetExceeded, match="none-left"):
        asyncio.run(run())
    assert recorded.one().status == "blocked" and fake.requests == []


def test_nested_budgets_each_must_admit_the_call(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    worst = _worst("gpt-4o-mini", 100)
    engine = budgets(
        Budget("global", limit_usd="1"),
        Budget("chat", limit_usd=f"{worst * 1.5 / 1e9:.9f}", scope={"feature": "chat"}),
    )
    chat, search = _oa(fake, feature="chat"), _oa(fake, feature="search")
    _chat(chat)
    with pytest.raises(costlens.BudgetExceeded, match="'chat'"):
        _chat(chat)
    _chat(search)  # outside the chat budget, inside the global one
    assert _spent(engine, "global")[0] == sum(r.cost_nanousd or 0 for r in recorded.all())
    assert [len(r.budgets) for r in recorded.all()] == [2, 1, 1]


def test_star_scope_keeps_one_budget_per_value(fake: FakeProvider, recorded: Recorded, budgets: Make) -> None:
    worst = _worst("gpt-4o-mini", 100)
    engine = budgets(Budget("per-user", limit_usd=f"{worst * 1.5 / 1e9:.9f}", scope={"user": "*"}))
    client = _oa(fake)
    for user in ("ann", "bob"):
        with costlens.tags(user=user):
            _chat(client)
    with costlens.tags(user="ann"), pytest.raises(costlens.BudgetExceeded, match=r"per-user\[user=ann\]"):
        _chat(client)
    _chat(client)  # no user tag: not in the scope at all
    assert engine.ledger.key_ids("per-user") == ["per-user[user=ann]", "per-user[user=bob]"]
    assert recorded.all()[-1].budgets == []


def test_scope_by_model_and_provider(fake: FakeProvider, recorded: Recorded, budgets: Make) -> None:
    budgets(
        Budget("no-4o", limit_usd="0.000000001", scope={"model": ["gpt-4o", "gpt-4.1"]}),
        Budget("no-anthropic", limit_usd="0.000000001", scope={"provider": "anthropic"}),
    )
    client = _oa(fake)
    _chat(client)
    with pytest.raises(costlens.BudgetExceeded, match="no-4o"):
        _chat(client, model="gpt-4o")
    claude = costlens.track(anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0))
    with pytest.raises(costlens.BudgetExceeded, match="no-anthropic"):
        claude.messages.create(model="claude-haiku-4-5", messages=MSG, max_tokens=10)


# -- downgrade and warn --------------------------------------------------------------------------------


def test_downgrade_calls_the_cheaper_model_and_records_the_route(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    budgets(
        Budget(
            "4o-daily",
            limit_usd=f"{_worst('gpt-4o', 100) * 1.5 / 1e9:.9f}",
            window="day",
            scope={"model": "gpt-4o"},
            mode="downgrade",
            downgrade_to="gpt-4o-mini",
        )
    )
    client = _oa(fake)
    _chat(client, model="gpt-4o")
    reply = _chat(client, model="gpt-4o")
    assert [r.json["model"] for r in fake.requests] == ["gpt-4o", "gpt-4o-mini"]
    assert reply.model.startswith("gpt-4o-mini")
    first, second = recorded.all()
    assert first.route is None and first.request_model == "gpt-4o"
    # request_model keeps what the caller asked; the answering model and the change are recorded
    assert second.request_model == "gpt-4o"
    assert second.response_model is not None and second.response_model.startswith("gpt-4o-mini")
    assert second.route == {
        "policy": "budget-downgrade",
        "from": "gpt-4o",
        "to": "gpt-4o-mini",
        "reason": "limit reached",
        "budget": "4o-daily",
    }
    assert second.budgets[0]["outcome"] == "downgraded"


def test_downgrade_that_still_does_not_fit_is_refused(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    budgets(
        Budget("all", limit_usd="0.000001"),
        Budget(
            "4o",
            limit_usd="0.000001",
            scope={"model": "gpt-4o"},
            mode="downgrade",
            downgrade_to="gpt-4o-mini",
        ),
    )
    with pytest.raises(costlens.BudgetExceeded) as info:
        _chat(_oa(fake), model="gpt-4o")
    assert info.value.budget == "all" and info.value.model == "gpt-4o-mini"
    assert fake.requests == []


def test_downgrade_works_for_anthropic(fake: FakeProvider, recorded: Recorded, budgets: Make) -> None:
    budgets(
        Budget(
            "sonnet",
            limit_usd="0.000001",
            scope={"model": "claude-sonnet-4-6"},
            mode="downgrade",
            downgrade_to="claude-haiku-4-5",
        )
    )
    claude = costlens.track(anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0))
    claude.messages.create(model="claude-sonnet-4-6", messages=MSG, max_tokens=10)
    assert fake.requests[0].json["model"] == "claude-haiku-4-5"
    assert recorded.one().route["to"] == "claude-haiku-4-5"  # type: ignore[index]


def test_warn_lets_calls_through_and_charges_them(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    alerts: list[costlens.budgets.Alert] = []
    engine = budgets(Budget("watch", limit_usd="0.00001", mode="warn"), sinks=[alerts.append])
    client = _oa(fake)
    for _ in range(3):
        _chat(client)
    assert all(r.status == "ok" for r in recorded.all())
    spent = _spent(engine, "watch")[0]
    assert spent == sum(r.cost_nanousd or 0 for r in recorded.all()) > engine.budgets[0].limit_nanousd
    costlens.config.flush_alerts()
    assert sorted(a.threshold_pct for a in alerts if a.kind == "threshold") == [50, 80, 100]


# -- the life of a reservation --------------------------------------------------------------------------


def test_a_stream_holds_its_reservation_until_it_ends(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    engine = budgets(Budget("s", limit_usd="1"))
    stream = _oa(fake).chat.completions.create(
        model="gpt-4o-mini",
        messages=MSG,
        max_tokens=50,
        stream=True,
        extra_headers={"x-fake-output-tokens": "20"},
    )
    assert _spent(engine, "s") == (0, _worst("gpt-4o-mini", 50))
    for _ in stream:
        pass
    record = recorded.one()
    assert _spent(engine, "s") == (record.cost_nanousd, 0)


def test_a_stream_closed_early_settles_what_was_used(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    engine = budgets(Budget("s", limit_usd="1"))
    stream = _oa(fake).chat.completions.create(
        model="gpt-4o-mini",
        messages=MSG,
        max_tokens=50,
        stream=True,
        extra_headers={"x-fake-output-tokens": "20"},
    )
    next(iter(stream))
    assert _spent(engine, "s")[1] > 0
    stream.close()
    record = recorded.one()
    assert record.estimated and _spent(engine, "s") == (record.cost_nanousd, 0)


def test_anthropic_stream_helper_settles_on_exit(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    engine = budgets(Budget("s", limit_usd="1"))
    claude = costlens.track(anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0))
    with claude.messages.stream(model="claude-haiku-4-5", messages=MSG, max_tokens=30) as s:
        assert _spent(engine, "s")[1] > 0
        s.until_done()
    assert _spent(engine, "s") == (recorded.one().cost_nanousd, 0)


def test_a_failed_call_releases_its_reservation(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    engine = budgets(Budget("s", limit_usd="1"))
    fake.enqueue(fault=Fault.http(500))
    with pytest.raises(openai.InternalServerError):
        _chat(_oa(fake))
    record = recorded.one()
    assert record.status == "error" and record.budgets[0]["outcome"] == "released"
    assert _spent(engine, "s") == (0, 0)


def test_a_stream_cut_midway_is_charged_for_what_was_streamed(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    engine = budgets(Budget("s", limit_usd="1"))
    fake.enqueue(fault=Fault.cut_stream(3), usage=FakeUsage(output_tokens=10))
    stream = _oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=50, stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    record = recorded.one()
    assert record.status == "error" and record.cost_nanousd
    assert _spent(engine, "s") == (record.cost_nanousd, 0)


# -- prices, caps, failures -----------------------------------------------------------------------------


def test_unknown_price_is_blocked_with_a_message_that_says_how_to_add_it(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    budgets(Budget("b", limit_usd="1"))
    with pytest.raises(UnknownPriceBlocked) as info:
        _chat(_oa(fake), model="mystery-model-9")
    assert isinstance(info.value, costlens.BudgetExceeded)
    message = str(info.value)
    assert "[[models]]" in message and "COSTLENS_PRICES" in message and "unknown_price = 'allow'" in message
    assert recorded.one().status == "blocked" and fake.requests == []


def test_unknown_price_allowed_goes_through_uncharged(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    engine = budgets(
        Budget("b", limit_usd="1", unknown_price="allow"), Budget("w", limit_usd="1", mode="warn")
    )
    _chat(_oa(fake), model="mystery-model-9")
    record = recorded.one()
    assert record.status == "ok" and [e["outcome"] for e in record.budgets] == ["unpriced", "unpriced"]
    assert _spent(engine, "b") == (0, 0)


def test_unknown_price_downgrades_to_a_priced_model(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    budgets(Budget("d", limit_usd="1", mode="downgrade", downgrade_to="gpt-4o-mini"))
    _chat(_oa(fake), model="mystery-model-9")
    assert fake.requests[0].json["model"] == "gpt-4o-mini"
    assert recorded.one().budgets[0]["reason"] == "price unknown"


def test_an_unreachable_ledger_fails_closed(
    fake: FakeProvider, recorded: Recorded, budgets: Make, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("not a folder")
    budgets(Budget("b", limit_usd="1"), ledger=f"sqlite://{tmp_path / 'file' / 'budgets.db'}")
    with pytest.raises(BudgetUnavailable, match="fail_open=True"):
        _chat(_oa(fake))
    record = recorded.one()
    assert (record.status, record.error_type) == ("blocked", "BudgetUnavailable")
    assert fake.requests == []


def test_fail_open_lets_calls_through_when_the_ledger_is_unreachable(
    fake: FakeProvider, recorded: Recorded, budgets: Make, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("not a folder")
    budgets(Budget("b", limit_usd="1"), ledger=f"sqlite://{tmp_path / 'file' / 'budgets.db'}", fail_open=True)
    _chat(_oa(fake))
    record = recorded.one()
    assert record.status == "ok" and record.budgets[0]["outcome"] == "unenforced"
    assert "fail_open=True" in caplog.text


def test_a_default_output_cap_is_put_into_requests_without_one(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    budgets(Budget("b", limit_usd="1"), default_max_output_tokens=64)
    client = _oa(fake)
    caller_kwargs: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MSG}
    client.chat.completions.create(**caller_kwargs)
    client.chat.completions.create(model="o3-mini", messages=MSG)
    client.responses.create(model="gpt-4o-mini", input="hi")
    client.embeddings.create(model="text-embedding-3-small", input="hi")
    bodies = [r.json for r in fake.requests]
    assert bodies[0]["max_tokens"] == 64 and bodies[1]["max_completion_tokens"] == 64
    assert bodies[2]["max_output_tokens"] == 64 and "max_tokens" not in bodies[3]
    assert caller_kwargs == {"model": "gpt-4o-mini", "messages": MSG}
    assert recorded.all()[0].budgets[0]["reserved_nanousd"] == _worst("gpt-4o-mini", 64)


def test_cap_output_false_reserves_the_default_without_changing_the_request(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    budgets(Budget("b", limit_usd="1"), default_max_output_tokens=64, cap_output=False)
    _oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert "max_tokens" not in fake.requests[0].json
    assert recorded.one().budgets[0]["reserved_nanousd"] == _worst("gpt-4o-mini", 64)


def test_calls_outside_every_budget_are_untouched(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    budgets(Budget("b", limit_usd="1", scope={"feature": "x"}))
    _oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert "max_tokens" not in fake.requests[0].json and recorded.one().budgets == []


def test_n_choices_multiply_the_reservation(fake: FakeProvider, recorded: Recorded, budgets: Make) -> None:
    budgets(Budget("b", limit_usd="1"))
    _oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=10, n=3)
    assert recorded.one().budgets[0]["reserved_nanousd"] == _worst("gpt-4o-mini", 30)


# -- configuration ---------------------------------------------------------------------------------------


def test_costlens_budget_defines_and_enforces_with_the_default_ledger(
    fake: FakeProvider, recorded: Recorded, budgets: Make
) -> None:
    reset_budgets()
    made = costlens.budget("quick", limit_usd="0.000000001", window="week")
    assert isinstance(made, costlens.Budget)
    engine = get_engine()
    assert engine is not None and engine.ledger.url.endswith("budgets.db")
    with pytest.raises(costlens.BudgetExceeded, match="quick"):
        _chat(_oa(fake))
    costlens.config.remove_budget("quick")
    _chat(_oa(fake))


def test_costlens_budgets_env_names_the_file_read_on_the_first_call(
    fake: FakeProvider, recorded: Recorded, budgets: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(
        f'[settings]\nledger = "sqlite://{tmp_path / "l.db"}"\n\n'
        '[[budgets]]\nname = "from-file"\nlimit_usd = "0.000000001"\n'
    )
    monkeypatch.setenv("COSTLENS_BUDGETS", str(path))
    reset_budgets()
    with pytest.raises(costlens.BudgetExceeded, match="from-file"):
        _chat(_oa(fake))
    monkeypatch.setenv("COSTLENS_BUDGETS", str(tmp_path / "missing.toml"))
    reset_budgets()
    # budgets promise only BudgetExceeded / BudgetUnavailable out of a call: fail closed, naming the file
    with pytest.raises(costlens.BudgetUnavailable, match=r"missing\.toml.*does not exist") as info:
        _chat(_oa(fake))
    assert info.value.file is not None and info.value.file.endswith("missing.toml")
    assert fake.requests == [] and [r.status for r in recorded.all()] == ["blocked", "blocked"]


def test_a_budgets_file_in_the_data_folder_is_read(
    fake: FakeProvider, recorded: Recorded, budgets: Make, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COSTLENS_HOME", str(tmp_path))
    (tmp_path / "budgets.toml").write_text('[[budgets]]\nname = "home"\nlimit_usd = "0.000000001"\n')
    reset_budgets()
    with pytest.raises(costlens.BudgetExceeded, match="home"):
        _chat(_oa(fake))
    assert (tmp_path / "budgets.db").is_file()


def test_without_budgets_nothing_changes(fake: FakeProvider, recorded: Recorded) -> None:
    reset_budgets()
    _oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert get_engine() is None and recorded.one().budgets == []


# -- nesting, as a property -------------------------------------------------------------------------------

TAG_VALUES = {"feature": ["a", "b"], "user": ["u1", "u2"]}
scopes = st.fixed_dictionaries(
    {},
    optional={k: st.sampled_from([*v, "*"]) for k, v in TAG_VALUES.items()},
)
call_tags = st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in TAG_VALUES.items()})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    defs=st.lists(st.tuples(scopes, st.integers(0, 300)), min_size=1, max_size=4),
    calls=st.lists(st.tuples(call_tags, st.integers(1, 60), st.integers(0, 100)), max_size=25),
)
def test_a_call_is_admitted_iff_every_enclosing_budget_has_room(
    recorded: Recorded, defs: list[tuple[dict[str, str], int]], calls: list[tuple[dict[str, str], int, int]]
) -> None:
    """Scopes over two tags (with `*`), checked against a reference: the keys a call falls in are
    computed independently, and it must be admitted iff each has room for its worst case."""
    budgets = [Budget(f"b{i}", limit_usd=f"{limit / 1e9:.9f}" if limit else "0.000000001", scope=scope)
               for i, (scope, limit) in enumerate(defs)]  # fmt: skip
    engine = BudgetEngine(budgets, ledger="memory://")
    pipeline = Pipeline({"budget": BudgetStep(engine)})
    spent: dict[str, int] = {}
    for tags, max_tokens, pct in calls:
        keys = []
        for b, (scope, _) in zip(budgets, defs, strict=True):
            if all(k in tags and (v == "*" or tags[k] == v) for k, v in scope.items()):
                stars = ",".join(f"{k}={tags[k]}" for k, v in sorted(scope.items()) if v == "*")
                keys.append((b, b.name + (f"[{stars}]" if stars else "")))
        worst = _worst("gpt-4o-mini", max_tokens)
        fits = all(spent.get(k, 0) + worst <= b.limit_nanousd for b, k in keys)
        try:
            call = pipeline.start(_request(tags, max_tokens))
        except costlens.BudgetExceeded:
            assert not fits
            continue
        assert fits
        assert [e["key"] for e in call.record.budgets] == [k for _, k in keys]
        call.usage = costlens.Usage(input_tokens=pct // 10)  # at most 10 tokens: under the worst case
        pipeline.finish(call)  # prices the call; the budget step's after-half settles that price
        charged = call.record.cost_nanousd
        assert charged is not None and charged <= worst
        for _, k in keys:
            spent[k] = spent.get(k, 0) + charged
        assert all(e["outcome"] == "settled" for e in call.record.budgets)


def _request(tags: dict[str, str], max_tokens: int) -> Request:
    body = {"model": "gpt-4o-mini", "messages": MSG, "max_tokens": max_tokens}
    return Request.of("openai", "chat", body, tags=tags)


def test_downgrade_chains_end_and_never_cycle(fake: FakeProvider, recorded: Recorded, budgets: Make) -> None:
    tiny = "0.000000001"
    budgets(
        Budget("a", limit_usd=tiny, scope={"model": "gpt-4o"}, mode="downgrade", downgrade_to="gpt-4.1"),
        Budget("b", limit_usd=tiny, scope={"model": "gpt-4.1"}, mode="downgrade", downgrade_to="gpt-4o"),
    )
    with pytest.raises(costlens.BudgetExceeded) as info:
        _chat(_oa(fake), model="gpt-4o")
    assert info.value.budget == "b" and fake.requests == []


@pytest.mark.parametrize(("outcome", "charged"), [("settled", 1_234), ("released", None), ("expired", 7)])
def test_entries_made_after_the_outcome_equal_entries_marked_with_it(
    outcome: str, charged: int | None
) -> None:
    """A call's budget entries are made before its settle (a step read the record) or after it (the
    recorder's thread, most calls): both must give the same entries, keys in the same order (the
    store keeps their JSON text)."""
    from types import SimpleNamespace

    from costlens.budgets._enforce import Ticket
    from costlens.budgets._ledger import reservation_of

    engine = BudgetEngine(
        [
            Budget("all", limit_usd="100", window="month"),
            Budget("per-user", limit_usd="5", window="day", scope={"user": "*"}, mode="warn"),
        ]
    )
    applied = engine.applicable({"user": "u-1"}, "gpt-4o-mini", "openai", engine.clock())
    reservation = reservation_of("r-1", tuple(a.key for a in applied), 9_000, 1, 2, ())
    made_first = Ticket(applied, reservation)
    entries = made_first.entries()
    made_first.mark(SimpleNamespace(budget_entries=entries), outcome, charged)  # type: ignore[arg-type]
    made_after = Ticket(applied, reservation)
    made_after.mark(SimpleNamespace(budget_entries=None), outcome, charged)  # type: ignore[arg-type]
    after = made_after.entries()
    assert [list(e.items()) for e in after] == [list(e.items()) for e in entries]
    assert [e["budget"] for e in after] == ["all", "per-user"]
    assert {e["outcome"] for e in after} == {outcome} and {e["charged_nanousd"] for e in after} == {charged}
