"""The quality-gated cascade through a real `openai` client, and the verifiers it shares with scorers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import openai
import pytest

import costlens
from costlens.routing import Candidate, Cascade, Router
from costlens.scorers import Check, JsonSchema, Judge, LogprobConfidence, Regex, Verdict
from costlens.testing import FakeProvider
from tests.conftest import Recorded

MSG: Any = [{"role": "user", "content": "What is 6 x 7? Answer with the number only."}]


def _router(verifier: Any) -> Router:
    return Router(
        [Candidate(name="nano", model="gpt-4.1-nano"), Candidate(name="mini", model="gpt-4o-mini")],
        cascade=Cascade(verifier),
    )


def _client(fake: FakeProvider, router: Router) -> openai.OpenAI:
    return costlens.track(
        openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0), router=router
    )


def test_a_rejected_answer_escalates_and_the_final_record_carries_both_attempts(
    fake: FakeProvider, recorded: Recorded
) -> None:
    fake.enqueue(text="maybe forty")
    fake.enqueue(text="42")
    reply = _client(fake, _router(Regex(r"^\d+$"))).chat.completions.create(
        model="costlens/auto", messages=MSG
    )
    assert reply.choices[0].message.content == "42"  # the caller gets the answer that passed
    assert [r.json["model"] for r in fake.requests] == ["gpt-4.1-nano", "gpt-4o-mini"]
    first, second = recorded.all()
    assert first.status == "ok" and first.route is not None and first.route["verified"] is False
    assert second.route is not None and second.route["verified"] is True
    assert first.cost_nanousd and second.cost_nanousd
    assert second.route["total_cost_nanousd"] == first.cost_nanousd + second.cost_nanousd
    (rejected,) = second.route["after"]
    assert rejected["name"] == "nano" and "does not match" in rejected["rejected"]
    assert rejected["cost_nanousd"] == first.cost_nanousd


def test_an_answer_that_passes_at_once_costs_one_call(fake: FakeProvider, recorded: Recorded) -> None:
    fake.enqueue(text="42")
    _client(fake, _router(Regex(r"^\d+$"))).chat.completions.create(model="costlens/auto", messages=MSG)
    record = recorded.one()
    assert record.route is not None and record.route["chosen"] == "nano" and record.route["verified"] is True
    assert record.route["total_cost_nanousd"] == record.cost_nanousd


def test_when_every_answer_fails_the_strongest_is_returned_marked_unverified(
    fake: FakeProvider, recorded: Recorded
) -> None:
    fake.enqueue(text="no", times=2)
    reply = _client(fake, _router(Regex(r"^\d+$"))).chat.completions.create(
        model="costlens/auto", messages=MSG
    )
    assert reply.choices[0].message.content == "no" and len(fake.requests) == 2
    last = recorded.all()[-1]
    assert (
        last.route is not None
        and last.route["verified"] is False
        and "last candidate" in last.route["accepted"]
    )


def test_a_streamed_cascade_goes_to_its_strongest_candidate(fake: FakeProvider, recorded: Recorded) -> None:
    client = _client(fake, _router(Regex(r"^\d+$")))
    chunks = list(client.chat.completions.create(model="costlens/auto", messages=MSG, stream=True))
    assert chunks and fake.requests[-1].json["model"] == "gpt-4o-mini"
    assert recorded.one().route["chosen"] == "mini"  # type: ignore[index]


def test_a_judge_model_verifies_through_a_tracked_client(fake: FakeProvider, recorded: Recorded) -> None:
    judge_client = costlens.track(openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0))
    fake.enqueue(text="41")  # nano's answer
    fake.enqueue(text="FAIL")  # the judge on it
    fake.enqueue(text="42")  # mini's answer
    fake.enqueue(text="PASS")  # the judge on it
    router = _router(Judge(judge_client, model="gpt-4o-mini"))
    reply = _client(fake, router).chat.completions.create(model="costlens/auto", messages=MSG)
    assert reply.choices[0].message.content == "42"
    judged = fake.requests[1].json["messages"][0]["content"]
    assert "6 x 7" in judged and "41" in judged  # the judge saw the question and the answer
    records = recorded.all()
    assert len(records) == 4  # two answers and two judgements, each recorded and priced
    assert all(r.cost_nanousd for r in records)


# -- the verifiers -----------------------------------------------------------------------------------


def test_regex_and_check() -> None:
    assert Regex(r"^\d+$").verify("42").passed and not Regex(r"^\d+$").verify("4 2").passed
    assert Check(lambda text: len(text) < 5).verify("short").passed is False
    custom = Check(lambda text: Verdict(text == "ok", "exact", 1.0))
    assert custom.verify("ok") == Verdict(True, "exact", 1.0)


def test_json_schema() -> None:
    schema = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}
    check = JsonSchema(schema)
    assert check.verify('{"city": "Paris"}').passed
    assert check.verify('```json\n{"city": "Paris"}\n```').passed
    failed = check.verify('{"city": 3}')
    assert not failed.passed and "city" in failed.reason
    assert "not JSON" in check.verify("Paris").reason
    with pytest.raises(Exception, match="is not valid"):
        JsonSchema({"type": 12})


def test_logprob_confidence() -> None:
    sure = {"choices": [{"logprobs": {"content": [{"logprob": -0.01}, {"logprob": -0.05}]}}]}
    unsure = {"choices": [{"logprobs": {"content": [{"logprob": -2.0}]}}]}
    check = LogprobConfidence(min_mean_prob=0.9)
    verdict = check.verify("42", sure)
    assert verdict.passed and verdict.score is not None and verdict.score > Decimal("0.9")
    assert not check.verify("42", unsure).passed
    assert "no log-probabilities" in check.verify("42", {"choices": [{}]}).reason
