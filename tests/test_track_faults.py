"""Every fault the fake injects: recorded correctly, and the caller sees exactly the SDK's behaviour."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

import costlens
from costlens.testing import FakeProvider, FakeUsage, Fault
from tests.conftest import Recorded

MSG: Any = [{"role": "user", "content": "hello there, how are you"}]


def _openai(fake: FakeProvider, **kw: Any) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="k", **kw)


def _anthropic(fake: FakeProvider, **kw: Any) -> anthropic.Anthropic:
    kw.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=fake.base_url, api_key="k", **kw)


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """What the caller observes: the exception type and message, or the result's visible content."""
    try:
        result = fn()
    except Exception as exc:
        return ("raised", (type(exc), str(exc).split("request_id")[0]))
    return ("returned", type(result))


def _same_for_caller(
    fake: FakeProvider, fault: Fault, call: Callable[[Any], Any], make: Callable[..., Any]
) -> Any:
    """Run the faulty call untracked and tracked; both must look the same to the caller."""
    fake.enqueue(fault=fault)
    untracked = _outcome(lambda: call(make(fake)))
    fake.enqueue(fault=fault)
    tracked = _outcome(
        lambda: call(costlens.track(make(fake), provider="openai" if make is _openai else None))
    )
    assert tracked == untracked
    return tracked


def _chat(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MSG)


def _message(client: anthropic.Anthropic) -> Any:
    return client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MSG)


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        (Fault.http(429, retry_after=0), "RateLimitError", 429),
        (Fault.http(500), "InternalServerError", 500),
        (Fault.http(400), "BadRequestError", 400),
        (Fault.http(401), "AuthenticationError", 401),
    ],
)
@pytest.mark.parametrize("make", [_openai, _anthropic], ids=["openai", "anthropic"])
def test_http_errors_recorded_and_reraised(
    fake: FakeProvider, recorded: Recorded, fault: Fault, error: str, status: int, make: Callable[..., Any]
) -> None:
    call = _chat if make is _openai else _message
    kind, (exc_type, _) = _same_for_caller(fake, fault, call, make)
    assert kind == "raised" and exc_type.__name__ == error
    record = recorded.one()
    assert (record.status, record.error_type, record.http_status) == ("error", error, status)
    # nothing billed, nothing guessed: the call costs exactly $0 and is priced (not "price unknown")
    assert record.cost_nanousd == 0 and record.price_known and record.input_tokens == 0
    assert not record.estimated


def test_retry_after_then_success_is_one_ok_record(fake: FakeProvider, recorded: Recorded) -> None:
    fake.enqueue(fault=Fault.http(429, retry_after=0))
    fake.enqueue(usage=FakeUsage(input_tokens=10, output_tokens=2))
    client = costlens.track(_openai(fake, max_retries=2), provider="openai")
    _chat(client)
    record = recorded.one()
    assert record.status == "ok" and record.usage.input_tokens == 10
    assert len(fake.requests) == 2


@pytest.mark.parametrize("make", [_openai, _anthropic], ids=["openai", "anthropic"])
def test_timeout(fake: FakeProvider, recorded: Recorded, make: Callable[..., Any]) -> None:
    call = _chat if make is _openai else _message
    fake.enqueue(fault=Fault.timeout(5.0))
    client = costlens.track(make(fake, timeout=0.3))
    with pytest.raises((openai.APITimeoutError, anthropic.APITimeoutError)):
        call(client)
    record = recorded.one()
    assert (record.status, record.error_type, record.http_status) == ("error", "APITimeoutError", None)


def test_openai_stream_cut_midway(fake: FakeProvider, recorded: Recorded) -> None:
    def consume(client: openai.OpenAI) -> list[Any]:
        return list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))

    fake.default_usage = FakeUsage(input_tokens=20, output_tokens=12)
    kind, (exc_type, _) = _same_for_caller(fake, Fault.cut_stream(after_events=4), consume, _openai)
    assert kind == "raised"
    record = recorded.one()
    assert record.status == "error" and record.error_type == exc_type.__name__
    assert record.estimated and record.output_tokens > 0  # the part that streamed was counted


def test_anthropic_stream_cut_midway(fake: FakeProvider, recorded: Recorded) -> None:
    def consume(client: anthropic.Anthropic) -> list[Any]:
        return list(
            client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MSG, stream=True)
        )

    fake.default_usage = FakeUsage(input_tokens=20, output_tokens=12)
    kind, _ = _same_for_caller(fake, Fault.cut_stream(after_events=5), consume, _anthropic)
    assert kind == "raised"
    record = recorded.one()
    assert record.status == "error" and record.input_tokens == 20  # message_start had arrived


@pytest.mark.parametrize("make", [_openai, _anthropic], ids=["openai", "anthropic"])
def test_malformed_json(fake: FakeProvider, recorded: Recorded, make: Callable[..., Any]) -> None:
    call = _chat if make is _openai else _message
    kind, _ = _same_for_caller(fake, Fault.malformed_json(), call, make)
    records = recorded.all()
    assert len(records) == 1
    if kind == "raised":
        assert records[0].status == "error"
    else:
        assert records[0].estimated and records[0].cost_nanousd is not None


@pytest.mark.parametrize("make", [_openai, _anthropic], ids=["openai", "anthropic"])
def test_usage_missing_is_counted_and_flagged(
    fake: FakeProvider, recorded: Recorded, make: Callable[..., Any]
) -> None:
    call = _chat if make is _openai else _message
    fake.default_usage = FakeUsage(output_tokens=8)
    kind, _ = _same_for_caller(fake, Fault.usage_missing(), call, make)
    assert kind == "returned"
    record = recorded.one()
    assert record.status == "ok" and record.estimated
    assert record.input_tokens > 0 and record.output_tokens > 0
    assert record.price_known and record.cost_nanousd is not None and record.cost_nanousd > 0


@pytest.mark.parametrize("make", [_openai, _anthropic], ids=["openai", "anthropic"])
def test_usage_negative_is_rejected_loudly(
    fake: FakeProvider, recorded: Recorded, make: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    call = _chat if make is _openai else _message
    with caplog.at_level(logging.WARNING, logger="costlens"):
        kind, _ = _same_for_caller(fake, Fault.usage_negative(), call, make)
    assert kind == "returned"
    record = recorded.one()
    assert record.estimated and record.input_tokens >= 0 and record.output_tokens >= 0
    assert "invalid usage" in caplog.text or "could not read usage" in caplog.text


def test_internal_failure_never_breaks_the_call(
    fake: FakeProvider, recorded: Recorded, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside strict mode a bug in recording is logged and the caller still gets the answer."""
    import costlens.config
    from costlens.pipeline import Pipeline

    def broken(record: Any) -> None:
        raise RuntimeError("store exploded")

    old = costlens.config.set_pipeline(Pipeline(sinks=[broken]))
    monkeypatch.setenv("COSTLENS_STRICT", "0")
    client = costlens.track(_openai(fake), provider="openai")
    with caplog.at_level(logging.ERROR, logger="costlens"):
        reply = _chat(client)
    assert reply.choices[0].message.content
    assert "recording an LLM call failed" in caplog.text
    monkeypatch.setenv("COSTLENS_STRICT", "1")
    try:
        with pytest.raises(RuntimeError, match="store exploded"):
            _chat(client)
    finally:
        costlens.config.set_pipeline(old)
