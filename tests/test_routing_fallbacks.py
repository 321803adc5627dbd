"""Fallbacks of routed calls, through a real `openai` client against the fake provider's faults:
retries, fallbacks, Retry-After, timeouts, cooldowns shared by threads; every attempt recorded."""

from __future__ import annotations

import threading
from typing import Any

import openai
import pytest

import costlens
from costlens.budgets import Budget, BudgetKey
from costlens.config import configure_budgets, reset_budgets
from costlens.routing import Candidate, Fallbacks, Router
from costlens.testing import FakeProvider, Fault
from tests.conftest import Recorded

MSG: Any = [{"role": "user", "content": "hello"}]


def _router(**fallbacks: Any) -> Router:
    fallbacks.setdefault("backoff_s", 0.01)
    return Router(
        [Candidate(name="mini", model="gpt-4o-mini"), Candidate(name="big", model="gpt-4o")],
        fallbacks=Fallbacks(**fallbacks),
    )


def _client(fake: FakeProvider, router: Router, **kw: Any) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)  # costlens retries; the SDK's own retries would hide the failures
    return costlens.track(openai.OpenAI(base_url=fake.openai_base_url, api_key="k", **kw), router=router)


def _ask(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="costlens/auto", messages=MSG)


def test_a_429_with_retry_after_falls_back_at_once_and_cools_the_candidate_down(
    fake: FakeProvider, recorded: Recorded
) -> None:
    router = _router()
    client = _client(fake, router)
    fake.enqueue(fault=Fault.http(429, retry_after=5))
    reply = _ask(client)
    assert reply.model.startswith("gpt-4o") and not reply.model.startswith("gpt-4o-mini")
    assert [r.json["model"] for r in fake.requests] == ["gpt-4o-mini", "gpt-4o"]
    first, second = recorded.all()
    assert (first.status, first.http_status, first.cost_nanousd) == ("error", 429, 0)
    assert first.route is not None and (first.route["chosen"], first.route["attempt"]) == ("mini", 1)
    assert second.status == "ok" and second.route is not None
    assert (second.route["chosen"], second.route["attempt"]) == ("big", 2)
    assert second.route["after"] == [
        {"name": "mini", "model": "gpt-4o-mini", "error": "RateLimitError", "status": 429}
    ]
    assert 4.0 < router.cooldowns.remaining("mini") <= 30.0

    # the cooldown is shared: a call from another thread skips the cooling candidate
    seen: list[str] = []
    worker = threading.Thread(target=lambda: seen.append(_ask(client).model))
    worker.start()
    worker.join()
    assert fake.requests[-1].json["model"] == "gpt-4o"
    third = recorded.all()[-1]
    assert third.route is not None and any("cooling down" in c["reason"] for c in third.route["candidates"])


def test_a_500_is_retried_then_falls_back(fake: FakeProvider, recorded: Recorded) -> None:
    client = _client(fake, _router(retries=1))
    fake.enqueue(fault=Fault.http(500), times=2)
    _ask(client)
    assert [r.json["model"] for r in fake.requests] == ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o"]
    records = recorded.all()
    assert [(r.status, r.route["attempt"]) for r in records if r.route] == [
        ("error", 1),
        ("error", 2),
        ("ok", 3),
    ]
    assert records[1].route is not None and records[1].route["reason"].startswith("the cheapest")


def test_a_timeout_falls_back(fake: FakeProvider, recorded: Recorded) -> None:
    client = _client(fake, _router(retries=0), timeout=0.5)
    fake.enqueue(fault=Fault.timeout(3))
    _ask(client)
    first, second = recorded.all()
    assert first.status == "error" and first.error_type == "APITimeoutError"
    assert second.status == "ok" and second.route is not None and second.route["chosen"] == "big"


def test_errors_no_retry_can_fix_are_raised_at_once(fake: FakeProvider, recorded: Recorded) -> None:
    client = _client(fake, _router())
    fake.enqueue(fault=Fault.http(400))
    with pytest.raises(openai.BadRequestError):
        _ask(client)
    assert len(fake.requests) == 1 and recorded.one().status == "error"


def test_when_every_candidate_fails_the_last_error_reaches_the_caller(
    fake: FakeProvider, recorded: Recorded
) -> None:
    client = _client(fake, _router(retries=0))
    fake.enqueue(fault=Fault.http(503), times=2)
    with pytest.raises(openai.InternalServerError):
        _ask(client)
    assert [r.json["model"] for r in fake.requests] == ["gpt-4o-mini", "gpt-4o"]
    assert [r.status for r in recorded.all()] == ["error", "error"]


def test_fallbacks_can_be_turned_off(fake: FakeProvider, recorded: Recorded) -> None:
    client = _client(fake, _router(enabled=False))
    fake.enqueue(fault=Fault.http(500))
    with pytest.raises(openai.InternalServerError):
        _ask(client)
    assert len(fake.requests) == 1


def test_each_attempt_is_budgeted_on_its_own(fake: FakeProvider, recorded: Recorded) -> None:
    engine = configure_budgets([Budget("b", limit_usd="1", window="day")], ledger="memory://")
    try:
        client = _client(fake, _router())
        fake.enqueue(fault=Fault.http(429, retry_after=1))
        _ask(client)
        first, second = recorded.all()
        assert first.budgets[0]["outcome"] == "released" and second.budgets[0]["outcome"] == "settled"
        budget = engine.get("b")
        assert budget is not None
        pos = budget.window.position(engine.clock())
        used = engine.ledger.usage(BudgetKey("b", budget.limit_nanousd, pos.since_us, pos.bucket_us))
        assert (used.spent_nanousd, used.reserved_nanousd) == (second.cost_nanousd, 0)
    finally:
        reset_budgets()


def test_async_calls_fall_back_too(fake: FakeProvider, recorded: Recorded) -> None:
    import asyncio

    router = _router()

    async def main() -> str:
        client = costlens.track(
            openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0), router=router
        )
        fake.enqueue(fault=Fault.http(500), times=2)
        reply = await client.chat.completions.create(model="costlens/auto", messages=MSG)
        await client.close()
        return str(reply.model)

    assert asyncio.run(main()).startswith("gpt-4o")
    assert [r.status for r in recorded.all()] == ["error", "error", "ok"]


# -- deployments ------------------------------------------------------------------------------------


def _deployed(**kw: Any) -> Router:
    from costlens.routing import Deployment

    deployments = (Deployment(name="mini-east", weight=3), Deployment(name="mini-west", weight=1))
    return Router(
        [Candidate(name="mini", model="gpt-4o-mini", deployments=deployments)],
        fallbacks=Fallbacks(backoff_s=0.01),
        **kw,
    )


def test_weighted_balancing_gives_each_deployment_its_exact_share(
    fake: FakeProvider, recorded: Recorded
) -> None:
    client = _client(fake, _deployed())
    for _ in range(8):
        _ask(client)
    sent = [r.json["model"] for r in fake.requests]
    assert sent.count("mini-east") == 6 and sent.count("mini-west") == 2
    assert sent[:4].count("mini-west") == 1  # smooth: no burst of one deployment
    records = recorded.all()
    # the deployment name is sent, the model it serves is priced
    expected = costlens.cost(records[0].usage, provider="openai", model="gpt-4o-mini").nanousd
    assert records[0].price_known and records[0].cost_nanousd == expected
    assert {r.route["deployment"] for r in records if r.route} == {"mini-east", "mini-west"}


def test_a_failing_deployment_cools_down_and_the_call_moves_to_another(
    fake: FakeProvider, recorded: Recorded
) -> None:
    router = _deployed()
    client = _client(fake, router)
    fake.enqueue(fault=Fault.http(429, retry_after=5))
    _ask(client)
    assert [r.json["model"] for r in fake.requests] == ["mini-east", "mini-west"]
    assert router.cooldowns.remaining("mini/mini-east") > 4 and router.cooldowns.remaining("mini") == 0
    _ask(client)  # the cooling deployment is skipped
    assert fake.requests[-1].json["model"] == "mini-west"


def test_least_busy_balancing_counts_calls_in_flight() -> None:
    from costlens.routing import Deployment
    from costlens.routing._balance import Balancer

    mini = Candidate(
        name="mini", model="gpt-4o-mini", deployments=(Deployment(name="a"), Deployment(name="b"))
    )
    balancer = Balancer("least-busy")
    first = balancer.pick(mini, lambda key: True)
    second = balancer.pick(mini, lambda key: True)
    assert first is not None and second is not None and {first.name, second.name} == {"a", "b"}
    balancer.done(mini, first)
    third = balancer.pick(mini, lambda key: True)
    assert third == first and balancer.in_flight(mini, second) == 1
    assert balancer.pick(mini, lambda key: key != "mini/a") == second
    with pytest.raises(costlens.ConfigError, match="least-busy"):
        Balancer("random")  # type: ignore[arg-type]


def test_a_stream_that_falls_back_still_hides_the_usage_chunk_costlens_asked_for(
    fake: FakeProvider, recorded: Recorded
) -> None:
    client = _client(fake, _router(retries=0))
    fake.enqueue(fault=Fault.http(500))
    chunks = list(client.chat.completions.create(model="costlens/auto", messages=MSG, stream=True))
    assert [r.json["model"] for r in fake.requests] == ["gpt-4o-mini", "gpt-4o"]
    assert all(r.json["stream_options"] == {"include_usage": True} for r in fake.requests)
    assert chunks and all(c.usage is None for c in chunks)  # the caller never asked for usage
    assert all(c.choices for c in chunks)
    second = recorded.all()[-1]
    assert second.status == "ok" and second.output_tokens > 0 and not second.estimated
