"""The call pipeline on its own: `Request`, `Call`, steps and sinks, with no SDK and no adapter."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Generator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costlens
from costlens.budgets import Budget, BudgetEngine, BudgetExceeded, BudgetKey, BudgetStep
from costlens.pipeline import SLOTS, Call, Pipeline, Request, count_input, estimate
from costlens.pipeline._estimate import input_tokens
from costlens.pricing import PriceCatalogue, estimate_max_cost, set_catalogue
from costlens.pricing._catalogue import estimate_max_nanousd
from costlens.pricing._compat import pricing_provider
from costlens.pricing._overrides import load_overrides

try:  # the acme-chat overrides, however pytest imports the tests folder
    from tests.test_pricing import OVERRIDES as DATED_OVERRIDES
except ModuleNotFoundError:
    from test_pricing import OVERRIDES as DATED_OVERRIDES  # type: ignore[no-redef]
from costlens.usage import CallRecord, Usage

MSG = [{"role": "user", "content": "hello there"}]


def _request(model: str = "gpt-4o-mini", max_tokens: int | None = 50, **tags: str) -> Request:
    body: dict[str, Any] = {"model": model, "messages": MSG}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return Request.of("openai", "chat", body, tags=tags)


class Trace:
    """A step that logs its halves, and optionally refuses or rewrites."""

    def __init__(
        self, name: str, log: list[str], *, refuse: bool = False, reroute: str | None = None
    ) -> None:
        self.name, self.log, self.refuse, self.reroute = name, log, refuse, reroute

    def flow(self, call: Call) -> Generator[None, None, None]:
        self.log.append(f"{self.name}:before")
        if self.refuse:
            raise PermissionError(f"{self.name} says no")
        if self.reroute:
            call.reroute(self.reroute, "test", "cheaper")
        try:
            yield
        except BaseException as exc:
            self.log.append(f"{self.name}:error:{type(exc).__name__}")
            raise
        self.log.append(f"{self.name}:after:{call.record.cost_nanousd is not None}")


def test_slots_run_in_order_before_and_in_reverse_after() -> None:
    log: list[str] = []
    records: list[CallRecord] = []
    pipeline = Pipeline(
        {"budget": Trace("budget", log), "route": Trace("route", log)}, sinks=[records.append]
    )
    call = pipeline.start(_request())
    assert log == ["route:before", "budget:before"]
    call.usage = Usage(input_tokens=10, output_tokens=5)
    pipeline.finish(call)
    pipeline.finish(call)  # idempotent: one record, after-halves run once
    assert log == ["route:before", "budget:before", "budget:after:True", "route:after:True"]
    assert len(records) == 1 and records[0].cost_nanousd is not None and records[0].cost_nanousd > 0
    assert SLOTS == ("route", "budget", "cap")


def test_a_refusing_step_blocks_the_call_unwinds_earlier_steps_and_propagates() -> None:
    log: list[str] = []
    records: list[CallRecord] = []
    pipeline = Pipeline(
        {"route": Trace("route", log), "budget": Trace("budget", log, refuse=True)}, sinks=[records.append]
    )
    with pytest.raises(PermissionError, match="budget says no"):
        pipeline.start(_request())
    assert log == ["route:before", "budget:before", "route:error:PermissionError"]
    (record,) = records
    assert (record.status, record.error_type, record.cost_nanousd, record.price_known) == (
        "blocked",
        "PermissionError",
        0,
        True,
    )


def test_the_error_path_reaches_every_step_and_an_unbilled_error_costs_exactly_zero() -> None:
    log: list[str] = []
    records: list[CallRecord] = []
    pipeline = Pipeline({"budget": Trace("budget", log)}, sinks=[records.append])
    call = pipeline.start(_request())
    error = TimeoutError("upstream")
    pipeline.finish(call, error)
    assert log == ["budget:before", "budget:error:TimeoutError"]
    (record,) = records
    assert (record.status, record.error_type, record.cost_nanousd, record.price_known) == (
        "error",
        "TimeoutError",
        0,
        True,
    )
    assert record.input_tokens == 0 and not record.estimated


def test_reroute_keeps_what_the_caller_asked_and_prices_the_model_called() -> None:
    records: list[CallRecord] = []
    pipeline = Pipeline({"route": Trace("route", [], reroute="gpt-4.1-nano")}, sinks=[records.append])
    request = _request("gpt-4o")
    original_body = request.body
    call = pipeline.start(request)
    assert call.request.model == "gpt-4.1-nano" and call.request.body["model"] == "gpt-4.1-nano"
    assert original_body["model"] == "gpt-4o"  # the caller's dict is never mutated
    call.usage = Usage(input_tokens=1000, output_tokens=1000)
    pipeline.finish(call)
    (record,) = records
    assert record.request_model == "gpt-4o"
    assert record.route == {"policy": "test", "from": "gpt-4o", "to": "gpt-4.1-nano", "reason": "cheaper"}
    nano = costlens.cost(Usage(1000, 1000), provider="openai", model="gpt-4.1-nano").nanousd
    assert record.cost_nanousd == nano


class _ReadsTheRecord:
    """A step that reads the record before the call (so it is built then) and after it."""

    def __init__(self) -> None:
        self.after: CallRecord | None = None

    def flow(self, call: Call) -> Generator[None, None, None]:
        assert call.record.response_model is None and call.record.tags == {"feature": "f"}
        try:
            yield
        finally:  # (the call's error is thrown in here)
            self.after = call.record


@pytest.mark.parametrize("error", [None, TimeoutError("slow")])
@pytest.mark.parametrize("usage", [Usage(1200, 340, 200, 0, 100), None])
def test_the_record_is_the_same_whether_a_step_read_it_early_or_not(
    usage: Usage | None, error: BaseException | None
) -> None:
    """A call's record is built when a step first reads it, or at once when the call ends (the common
    call): both ways give the same record, field for field."""
    records: list[CallRecord] = []
    reader = _ReadsTheRecord()
    plain, early = Pipeline(sinks=[records.append]), Pipeline({"budget": reader}, sinks=[records.append])
    for pipeline in (plain, early):
        call = pipeline.start(_request(feature="f"))
        call.apply_facts({"response_model": "gpt-4o-mini-2024-07-18", "service_tier": "default"})
        call.text.append("Hello there")
        call.usage = usage
        pipeline.finish(call, error)
    assert reader.after is records[1]
    got = [dataclasses.asdict(r) for r in records]
    for fields in got:
        assert fields.pop("id") and fields.pop("started_at") and fields.pop("ended_at")
        assert fields.pop("latency_ms") >= 0
    assert got[0] == got[1]
    assert got[0]["response_model"] == "gpt-4o-mini-2024-07-18" and got[0]["service_tier"] == "default"
    assert got[0]["cost_nanousd"] and got[0]["tags"] == {"feature": "f"}
    assert got[0]["estimated"] is (usage is None)


def test_a_missing_usage_is_counted_and_flagged() -> None:
    records: list[CallRecord] = []
    pipeline = Pipeline(sinks=[records.append])
    call = pipeline.start(_request())
    call.text.extend(["Hello", " world"])
    pipeline.finish(call)
    (record,) = records
    assert record.estimated and record.output_tokens == 2
    assert record.input_tokens == count_input(call.request) > 0


def test_a_failing_after_half_or_sink_never_breaks_the_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def flow(self, call: Call) -> Generator[None, None, None]:
            yield
            raise RuntimeError("after-half exploded")

    def bad_sink(record: CallRecord) -> None:
        raise RuntimeError("sink exploded")

    records: list[CallRecord] = []
    monkeypatch.setenv("COSTLENS_STRICT", "0")
    pipeline = Pipeline({"budget": Broken()}, sinks=[bad_sink, records.append])
    call = pipeline.start(_request())
    call.usage = Usage(input_tokens=3, output_tokens=2)
    with caplog.at_level(logging.ERROR, logger="costlens"):
        pipeline.finish(call)
    assert len(records) == 1  # the next sink still got the record
    assert "pipeline step after the call failed" in caplog.text and "recording an LLM call" in caplog.text


def test_unknown_slot_is_a_config_error() -> None:
    with pytest.raises(costlens.ConfigError, match="unknown pipeline slot"):
        Pipeline({"audit": Trace("x", [])})


def test_with_step_returns_a_new_pipeline() -> None:
    base = Pipeline()
    step = Trace("r", [])
    routed = base.with_step("route", step)
    assert base.step("route") is None and routed.step("route") is step
    assert routed.with_step("route", None).steps == {}


# -- the one estimate -------------------------------------------------------------------------------------


def test_estimate_is_the_counted_prompt_plus_the_output_bound_at_the_models_price() -> None:
    request = _request(max_tokens=200)
    est = estimate(request)
    assert est.input_exact and est.output_tokens == 200
    assert est.input_tokens == count_input(request)  # exact for OpenAI models: the same count
    assert est.cost_nanousd == estimate_max_cost("openai", "gpt-4o-mini", est.input_tokens, 200).nanousd
    other = estimate(request, model="gpt-4o")
    assert other.cost_nanousd is not None and est.cost_nanousd is not None
    assert other.cost_nanousd > est.cost_nanousd
    assert estimate(_request(max_tokens=None), default_max_output=1000).output_tokens == 1000
    assert estimate(_request(model="no-such-model-xyz")).cost_nanousd is None


_SHAPING_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 9), st.sampled_from(["flex", "us", "fast", ""])
)


@settings(max_examples=300, deadline=None)
@given(
    operation=st.sampled_from(["chat", "responses", "text_completion", "embeddings"]),
    fields=st.dictionaries(
        st.sampled_from(
            ["max_tokens", "max_completion_tokens", "max_output_tokens", "n", "best_of", "service_tier",
             "speed", "inference_geo", "temperature", "user"]
        ),
        _SHAPING_VALUES,
    ),
)  # fmt: skip
def test_estimate_reads_the_output_bound_choices_and_tier_as_their_readers_do(
    operation: str, fields: dict[str, Any]
) -> None:
    """`estimate` skips `output_bound`, `choices` and `requested_tier` for a body with none of the
    fields they read: with any mix of those fields and others, it bounds the output as they do."""
    from costlens.pipeline._estimate import choices, output_bound
    from costlens.pipeline._request import requested_tier

    body: dict[str, Any] = {"model": "gpt-4o-mini", "input": "hi", "prompt": "hi", **fields}
    body["messages"] = [{"role": "user", "content": "hi"}]
    est = estimate(Request.of("openai", operation, body), default_max_output=77)
    bound = output_bound(operation, body)
    assert est.output_bounded is (bound is not None)
    assert est.output_tokens == (77 if bound is None else bound) * choices(operation, body)
    tier = requested_tier(body)
    priced = estimate_max_nanousd(
        "openai", "gpt-4o-mini", est.input_tokens, est.output_tokens, service_tier=tier
    )
    assert est.cost_nanousd == priced


# -- the budget step, with no adapter and no SDK object ------------------------------------------------


def test_budget_step_reserves_before_settles_after_and_refuses_past_the_limit() -> None:
    worst = estimate(_request(max_tokens=50)).cost_nanousd
    assert worst is not None
    engine = BudgetEngine([Budget("b", limit_usd=f"{worst * 3 / 2 / 1e9:.9f}")], ledger="memory://")
    records: list[CallRecord] = []
    pipeline = Pipeline({"budget": BudgetStep(engine)}, sinks=[records.append])
    budget = engine.get("b")
    assert budget is not None

    def spent() -> tuple[int, int]:
        pos = budget.window.position(engine.clock())
        used = engine.ledger.usage(BudgetKey("b", budget.limit_nanousd, pos.since_us, pos.bucket_us))
        return used.spent_nanousd, used.reserved_nanousd

    call = pipeline.start(_request(max_tokens=50))
    assert spent() == (0, worst)  # the worst case is held while the call is in flight
    assert call.record.budgets[0]["outcome"] == "reserved"
    call.usage = Usage(input_tokens=5, output_tokens=40)
    pipeline.finish(call)
    actual = records[0].cost_nanousd
    assert actual is not None and 0 < actual < worst
    assert spent() == (actual, 0) and records[0].budgets[0]["outcome"] == "settled"
    with pytest.raises(BudgetExceeded):  # actual + worst > 1.5 x worst
        pipeline.start(_request(max_tokens=50))
    assert records[-1].status == "blocked" and spent() == (actual, 0)


def test_budget_step_caps_an_unbounded_request_through_the_call() -> None:
    engine = BudgetEngine([Budget("b", limit_usd="10")], ledger="memory://")
    pipeline = Pipeline({"budget": BudgetStep(engine)})
    request = _request(max_tokens=None)
    call = pipeline.start(request)
    assert call.request.body["max_tokens"] == engine.settings.default_max_output_tokens
    assert "max_tokens" not in request.body or request.body is call.request.body
    pipeline.finish(call, TimeoutError())
    assert call.record.budgets[0]["outcome"] == "released"


# a fixed price, one with a long-context tier, and (test_pricing's) one that changed on a date
_DATED = (
    """
[[models]]
provider = "acme"
model = "acme-fixed"
input = 1
output = 2

[[models]]
provider = "acme"
model = "acme-long"
input = 1
output = 2
[[models.long_context]]
threshold = 200000
input = 2
output = 4
"""
    + DATED_OVERRIDES
)


@pytest.mark.parametrize(
    ("provider", "model", "tier", "kept"),
    [  # kept: whether the rates are kept (None: that depends on the installed genai-prices data)
        ("acme", "acme-fixed", None, True),
        ("acme", "acme-long", None, True),  # kept for prompts up to its 200k-token tier
        ("acme", "acme-chat", None, False),  # dated: the full lookup
        ("127.0.0.1:9", "acme-chat", None, False),  # a host, no price of its own nor OpenAI's
        ("openai", "no-such-model-xyz", None, False),
        ("openai", "gpt-4o-mini", None, None),
        ("openai", "gpt-4o-mini", "batch", None),
        ("openai", "gpt-4.1-mini", "priority", None),
        ("127.0.0.1:9", "gpt-4o-mini", None, None),  # a compatible host
        ("127.0.0.1:9", "text-embedding-3-small", None, None),  # a host OpenAI's list prices
        ("anthropic", "claude-sonnet-4-5", None, None),  # a long-context tier above 200k tokens
    ],
)
@pytest.mark.parametrize("words", [1, 150_000, 250_000])
def test_estimate_prices_each_call_as_the_full_lookup_does_cached_or_not(
    provider: str, model: str, tier: str | None, kept: bool | None, words: int, tmp_path: Path
) -> None:
    """The rates the catalogue keeps for `estimate` give the cost `estimate_max_nanousd` gives for
    the same provider, model, tier, time and token counts: on a cold and a warm cache, on each side
    of a dated change and of a long-context threshold."""
    (tmp_path / "prices.toml").write_text(_DATED)
    catalogue = PriceCatalogue(load_overrides(tmp_path / "prices.toml"))
    set_catalogue(catalogue)
    try:
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "word " * words}]}
        if tier is not None:
            body["service_tier"] = tier
        request = Request.of(provider, "chat", body)
        for at in (datetime(2025, 6, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)):
            first, again = estimate(request, at=at), estimate(request, at=at)
            priced_as = pricing_provider(catalogue, provider, model)
            expected = estimate_max_nanousd(
                priced_as, model, first.input_tokens, first.output_tokens, at=at, service_tier=tier
            )
            assert first.cost_nanousd == again.cost_nanousd == expected
        assert kept is None or bool(catalogue.worst_rates[(provider, model, tier)]) is kept
    finally:
        set_catalogue(None)


_EXTRAS = {
    "chat": ("tools", "functions", "tool_choice", "response_format"),
    "responses": ("tools", "tool_choice", "text"),
    "text_completion": ("suffix",),
    "embeddings": (),
}
_PROMPT_KEY = {"chat": "messages", "responses": "input", "text_completion": "prompt", "embeddings": "input"}


@settings(max_examples=200, deadline=None)
@given(
    operation=st.sampled_from(sorted(_EXTRAS)),
    present=st.dictionaries(
        st.sampled_from(["tools", "functions", "tool_choice", "response_format", "text", "suffix"]),
        st.none() | st.just([]) | st.just([{"type": "function", "name": "f"}]) | st.just("auto"),
        max_size=6,
    ),
)
def test_a_byte_bound_prompt_counts_its_extra_fields_and_the_tool_allowance(
    operation: str, present: dict[str, Any]
) -> None:
    """For a model without an offline tokenizer the prompt's bound is its text's UTF-8 bytes, plus
    the operation's extra fields as JSON (when not None), plus framing, plus 1,024 tokens when tools
    or functions are declared (non-empty), whatever the operation: the usual request, which has
    none of those fields, takes a shortcut that must give the same."""
    text = "héllo wörld"
    prompt: Any = [{"role": "user", "content": text}] if operation == "chat" else text
    body = {"model": "claude-x", _PROMPT_KEY[operation]: prompt, **present}
    counted, exact = input_tokens(operation, body, "claude-x")
    extra = sum(
        len(json.dumps(body[key], default=str, ensure_ascii=False).encode())
        for key in _EXTRAS[operation]
        if body.get(key) is not None
    )
    framing = 8 + 3 if operation in ("chat", "responses") else 1
    tools = 1024 if body.get("tools") or body.get("functions") else 0
    assert not exact and counted == len(text.encode()) + extra + framing + tools
