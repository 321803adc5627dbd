"""The rule-based router: the founding example, every policy, and routing real SDK calls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import costlens
from costlens.budgets import Budget
from costlens.config import configure_budgets, reset_budgets
from costlens.pipeline import Request
from costlens.routing import (
    Candidate,
    LatencyTarget,
    NoRoute,
    Router,
    Rule,
    load_router,
)
from costlens.testing import FakeProvider, FakeUsage
from costlens.tokens import encoding_name_for
from tests.conftest import Recorded

FT = "ft:gpt-4o-mini-2024-07-18:acme:summaries:abc123"
CONCISE = "Always respond concisely. {prompt}"


def founding_router() -> Router:
    """The product brief's example: a fine-tuned model, gpt-5-nano with a transform, and a default."""
    return Router(
        [
            Candidate(
                name="my-fine-tuned-model",
                model=FT,
                tasks=frozenset({"summarization"}),
                fine_tuned=True,
                max_context=16_000,
                input_usd_per_1m=Decimal("0.30"),
                output_usd_per_1m=Decimal("1.20"),
            ),
            Candidate(name="gpt-5-nano", model="gpt-5-nano", transform=CONCISE, max_context=8_000),
            Candidate(name="default", model="gpt-4o", capabilities=frozenset({"json", "tools", "vision"})),
        ],
        default="default",
        rules=[Rule(task="summarization", use=("my-fine-tuned-model",))],
    )


# -- the founding example -----------------------------------------------------------------------------


def test_founding_example_the_fine_tuned_model_for_its_task() -> None:
    decision = founding_router().get_optimal_model(
        task="summarization", prompt="Summarise: the launch slipped a week.", cost_budget=Decimal("0.01")
    )
    assert decision.name == "my-fine-tuned-model" and decision.model == FT
    assert decision.policy == "rules" and "rule" in decision.reason
    assert decision.estimate_usd is not None and decision.estimate_usd <= Decimal("0.01")
    why = {r.name: (r.policy, r.reason) for r in decision.rejected}
    assert why["default"][0] == "cost" and "exceeds the ceiling $0.01" in why["default"][1]
    assert why["gpt-5-nano"][0] == "rules"


def test_founding_example_the_cheap_model_with_its_prompt_transform() -> None:
    decision = founding_router().get_optimal_model(
        task="qa", prompt="What is the capital of France?", cost_budget=Decimal("0.01")
    )
    assert decision.name == "gpt-5-nano" and decision.policy == "cheapest"
    assert decision.details["transform"] == CONCISE
    why = {r.name: r.policy for r in decision.rejected}
    assert why == {"my-fine-tuned-model": "task", "default": "cost"}


def test_founding_example_falls_back_to_the_default_when_nothing_fits() -> None:
    decision = founding_router().get_optimal_model(
        task="summarization", prompt="word " * 20_000, cost_budget=Decimal("0.01")
    )
    assert decision.name == "default" and decision.policy == "fallback"
    why = {r.name: r.policy for r in decision.rejected}
    assert why == {"my-fine-tuned-model": "context", "gpt-5-nano": "context", "default": "cost"}


def test_async_twin_gives_the_same_decision() -> None:
    router = founding_router()
    sync = router.get_optimal_model(task="qa", prompt="hi", cost_budget="0.01")
    assert asyncio.run(router.aget_optimal_model(task="qa", prompt="hi", cost_budget="0.01")) == sync


# -- policies -------------------------------------------------------------------------------------------


def _pair(**strong: Any) -> Router:
    return Router(
        [Candidate(name="mini", model="gpt-4o-mini"), Candidate(name="big", model="gpt-4o", **strong)],
        rules=[Rule(match=r"(?i)\bproof\b", use=("big",)), Rule(tag={"tier": "free"}, avoid=("big",))],
    )


def test_rules_by_regex_and_tag() -> None:
    router = _pair()
    assert router.get_optimal_model(prompt="write a proof that 2 is prime").name == "big"
    assert router.get_optimal_model(prompt="say hello").name == "mini"
    free = router.get_optimal_model(prompt="write a proof", tags={"tier": "free"})
    assert free.name == "mini" and ("big", "rules") in {(r.name, r.policy) for r in free.rejected}


def test_required_capabilities_and_those_the_request_implies() -> None:
    router = _pair(capabilities=frozenset({"tools", "vision"}))
    assert router.get_optimal_model(prompt="hi", require=["tools"]).name == "big"
    body = {"model": "costlens/auto", "messages": [{"role": "user", "content": "hi"}], "tools": [{"x": 1}]}
    assert router.decide(Request.of("openai", "chat", body)).name == "big"
    with pytest.raises(NoRoute, match="lacks"):
        router.get_optimal_model(prompt="hi", require=["json"])


def test_latency_target_uses_recorded_p95() -> None:
    router = Router(
        [Candidate(name="slow", model="gpt-4o-mini"), Candidate(name="fast", model="gpt-4o")],
        policies=[LatencyTarget({"slow": 4000.0, "fast": 900.0})],
    )
    assert router.get_optimal_model(prompt="hi").name == "slow"  # the cheaper, with no latency target
    decision = router.get_optimal_model(prompt="hi", max_latency_ms=1500)
    assert decision.name == "fast" and decision.rejected[0].policy == "latency"


def test_unknown_price_is_never_cheapest_and_fails_a_cost_ceiling() -> None:
    router = Router(
        [Candidate(name="mystery", model="no-such-model-xyz"), Candidate(name="mini", model="gpt-4o-mini")]
    )
    assert router.get_optimal_model(prompt="hi").name == "mini"
    with pytest.raises(NoRoute, match="price is unknown"):
        Router([Candidate(name="mystery", model="no-such-model-xyz")]).get_optimal_model(
            prompt="hi", cost_budget="1"
        )


def test_bad_definitions_are_config_errors() -> None:
    with pytest.raises(costlens.ConfigError, match="unknown candidates"):
        Router([Candidate(name="a", model="gpt-4o")], rules=[Rule(use=("b",))])
    with pytest.raises(costlens.ConfigError, match="default 'b' is not a candidate"):
        Router([Candidate(name="a", model="gpt-4o")], default="b")
    with pytest.raises(ValueError, match="unknown capabilities"):
        Candidate(name="a", model="gpt-4o", capabilities=frozenset({"telepathy"}))


def test_router_file(tmp_path: Path) -> None:
    path = tmp_path / "router.toml"
    path.write_text(
        'default = "default"\ncost_budget = "0.01"\n\n'
        f'[[candidates]]\nname = "ft"\nmodel = "{FT}"\ntasks = ["summarization"]\nfine_tuned = true\n'
        'input_usd_per_1m = "0.30"\noutput_usd_per_1m = "1.20"\n\n'
        f'[[candidates]]\nname = "nano"\nmodel = "gpt-5-nano"\ntransform = "{CONCISE}"\n\n'
        '[[candidates]]\nname = "default"\nmodel = "gpt-4o"\n\n'
        '[[rules]]\ntask = "summarization"\nuse = ["ft"]\n\n'
        '[[policies]]\nname = "latency"\np95_ms = { "nano" = 9000 }\n'
    )
    router = load_router(path)
    assert router.get_optimal_model(task="summarization", prompt="Summarise this.").name == "ft"
    assert router.get_optimal_model(task="qa", prompt="hi").name == "nano"
    assert router.get_optimal_model(task="qa", prompt="hi", max_latency_ms=5000).name == "default"
    path.write_text('[[candidates]]\nname = "x"\nmodel = "gpt-4o"\nmax_context = -5\n')
    with pytest.raises(costlens.ConfigError, match=r"router\.toml: candidates\.0\.max_context"):
        load_router(path)


def test_fine_tuned_openai_models_count_with_their_base_models_tokenizer() -> None:
    assert encoding_name_for(FT) == encoding_name_for("gpt-4o-mini") == "o200k_base"


# -- routing real calls ------------------------------------------------------------------------------------


def _oa(fake: FakeProvider, **kw: Any) -> openai.OpenAI:
    return costlens.track(openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0), **kw)


def test_a_tracked_client_routes_calls_naming_the_router(fake: FakeProvider, recorded: Recorded) -> None:
    router = founding_router()
    client = _oa(fake, router=router)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    reply = client.chat.completions.create(model="costlens/auto", messages=messages)  # type: ignore[arg-type]
    assert reply.model.startswith("gpt-5-nano")
    sent = fake.requests[-1].json
    assert sent["model"] == "gpt-5-nano"
    assert sent["messages"][-1]["content"] == "Always respond concisely. What is the capital of France?"
    assert messages[0]["content"] == "What is the capital of France?"  # the caller's objects untouched
    record = recorded.one()
    assert record.request_model == "costlens/auto" and record.response_model is not None
    assert record.route is not None and record.route["policy"] == "router:cheapest"
    assert record.route["chosen"] == "gpt-5-nano" and record.route["to"] == "gpt-5-nano"
    assert Decimal(record.route["estimate_usd"]) > 0
    assert {c["name"] for c in record.route["candidates"]} == {"my-fine-tuned-model", "default"}
    # a request naming a real model is not touched
    client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    assert fake.requests[-1].json["model"] == "gpt-4o" and recorded.all()[-1].route is None


def test_task_tags_reach_the_router(fake: FakeProvider, recorded: Recorded) -> None:
    router = founding_router()
    client = _oa(fake, router=router, provider="openai")
    with costlens.tags(task="summarization"):
        client.chat.completions.create(
            model="costlens/auto", messages=[{"role": "user", "content": "Sum up."}]
        )
    assert fake.requests[-1].json["model"] == FT
    assert recorded.one().route["chosen"] == "my-fine-tuned-model"  # type: ignore[index]


def test_router_create_routes_explicitly_and_needs_a_tracked_client(
    fake: FakeProvider, recorded: Recorded
) -> None:
    router = founding_router()
    plain = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    with pytest.raises(costlens.ConfigError, match=r"costlens\.track"):
        router.create(plain, messages=[{"role": "user", "content": "hi"}])
    client = _oa(fake)  # tracked without a router
    router.create(client, messages=[{"role": "user", "content": "hi"}])
    assert fake.requests[-1].json["model"] == "gpt-5-nano" and recorded.one().route is not None
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert recorded.all()[-1].route is None  # outside create(), the client is not routed


def test_async_router_create(fake: FakeProvider, recorded: Recorded) -> None:
    router = founding_router()

    async def main() -> str:
        client = costlens.track(openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0))
        reply = await router.acreate(client, messages=[{"role": "user", "content": "hi"}])
        await client.close()
        return str(reply.model)

    assert asyncio.run(main()).startswith("gpt-5-nano")
    assert recorded.one().route is not None


def test_an_anthropic_client_is_routed_among_anthropic_candidates_only(
    fake: FakeProvider, recorded: Recorded
) -> None:
    router = Router(
        [
            Candidate(name="mini", model="gpt-4o-mini"),
            Candidate(name="haiku", model="claude-haiku-4-5", provider="anthropic", transform="Be brief."),
            Candidate(name="sonnet", model="claude-sonnet-4-5", provider="anthropic"),
        ]
    )
    client = costlens.track(
        anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0), router=router
    )
    client.messages.create(model="costlens/auto", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    sent = fake.requests[-1].json
    assert sent["model"] == "claude-haiku-4-5" and sent["system"] == "Be brief."
    route = recorded.one().route
    assert route is not None
    assert any(c["name"] == "mini" and c["policy"] == "provider" for c in route["candidates"])


@pytest.fixture
def budget_near_limit(recorded: Recorded) -> Iterator[None]:
    configure_budgets([Budget("daily", limit_usd="0.001", window="day")], ledger="memory://")
    yield
    reset_budgets()


def test_a_budget_near_its_limit_routes_to_the_cheaper_candidate(
    fake: FakeProvider, recorded: Recorded, budget_near_limit: None
) -> None:
    router = Router(
        [Candidate(name="mini", model="gpt-4o-mini"), Candidate(name="big", model="gpt-4o")],
        rules=[Rule(match="proof", use=("big",))],
        max_output_tokens=20,
    )
    client = _oa(fake, router=router)
    ask = [{"role": "user", "content": "a proof please"}]
    client.chat.completions.create(model="costlens/auto", messages=ask, max_tokens=20)  # type: ignore[arg-type]
    assert fake.requests[-1].json["model"] == "gpt-4o"  # the rule's choice while the budget has room
    fake.enqueue(usage=FakeUsage(input_tokens=200, output_tokens=16))  # spend is now ~83% of the limit
    client.chat.completions.create(model="gpt-4o", messages=ask, max_tokens=20)  # type: ignore[arg-type]
    client.chat.completions.create(model="costlens/auto", messages=ask, max_tokens=20)  # type: ignore[arg-type]
    assert fake.requests[-1].json["model"] == "gpt-4o-mini"  # near the limit: the cheaper one
    last = recorded.all()[-1]
    assert last.status == "ok" and last.route is not None
    assert "budget 'daily' is 8" in last.route["reason"] and "preferences set aside" in last.route["reason"]


def test_latency_target_from_the_store(fake: FakeProvider, recorded: Recorded) -> None:
    from costlens.analytics import latency_p95

    client = _oa(fake, provider="openai")
    for _ in range(3):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-latency-ms": "300"},
        )
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    p95 = latency_p95(recorded.store)
    assert p95["gpt-4o-mini"] >= 300 > p95["gpt-4o"]
    router = Router(
        [Candidate(name="mini", model="gpt-4o-mini"), Candidate(name="big", model="gpt-4o")],
        policies=[LatencyTarget(p95)],
    )
    assert router.get_optimal_model(prompt="hi", max_latency_ms=250).name == "big"
