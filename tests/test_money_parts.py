"""The finer parts of a call's cost: 1-hour cache writes, audio, citations, server-side tool fees,
provider usage conventions (xAI, Perplexity) and the price list of a local endpoint.

Provider bodies are real ones, cited where each is used; the SDK clients receive them over HTTP
from the fake provider (`fake.enqueue(raw=...)`).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import itertools
import pickle
import time
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costlens
from costlens.analytics import reprice
from costlens.instrument.openai import chat_usage, provider_from_base_url
from costlens.pricing import PriceCatalogue, cost, set_catalogue
from costlens.pricing._model import price_usage
from costlens.pricing._schema import parse_overrides
from costlens.store import SpendQuery
from costlens.store.memory import MemoryStore
from costlens.testing import FakeProvider, FakeUsage
from costlens.usage import USAGE_PARTS, CallRecord, Usage, usage_of_ints
from tests.conftest import Recorded

M = D(1_000_000)
MSG: Any = [{"role": "user", "content": "hello"}]


_clients: list[Any] = []


@pytest.fixture(autouse=True)
def _fresh_catalogue() -> Iterator[None]:
    set_catalogue(None)
    yield
    set_catalogue(None)
    while _clients:
        _clients.pop().close()  # no connection left for the garbage collector to warn about


def _anthropic(fake: FakeProvider) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0)
    _clients.append(client)
    return client


def _openai(fake: FakeProvider) -> openai.OpenAI:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    _clients.append(client)
    return client


# -- Usage: the parts are parts ----------------------------------------------------------------------


@st.composite
def usages(draw: st.DrawFn, top: int = 10**7) -> Usage:
    n_in = draw(st.integers(0, top))
    cache_read = draw(st.integers(0, n_in))
    cache_write = draw(st.integers(0, n_in - cache_read))
    audio_in = draw(st.integers(0, n_in - cache_read - cache_write))
    n_out = draw(st.integers(0, top))
    reasoning = draw(st.integers(0, n_out))
    audio_out = draw(st.integers(0, n_out - reasoning))
    citation = draw(st.integers(0, n_out - reasoning - audio_out))
    return Usage(
        n_in,
        n_out,
        cache_read,
        cache_write,
        reasoning,
        cache_write_1h_tokens=draw(st.integers(0, cache_write)),
        input_audio_tokens=audio_in,
        output_audio_tokens=audio_out,
        citation_tokens=citation,
        web_search_requests=draw(st.integers(0, 50)),
        file_search_requests=draw(st.integers(0, 50)),
    )


@settings(max_examples=200, deadline=None)
@given(a=usages(), b=usages())
def test_parts_stay_parts_and_add_up(a: Usage, b: Usage) -> None:
    total = a + b
    for name in Usage.__slots__:
        assert getattr(total, name) == getattr(a, name) + getattr(b, name)
    assert total.cache_write_1h_tokens <= total.cache_write_tokens
    assert total.cache_read_tokens + total.cache_write_tokens + total.input_audio_tokens <= total.input_tokens
    assert total.reasoning_tokens + total.output_audio_tokens + total.citation_tokens <= total.output_tokens
    record = CallRecord("p", "chat", "m")
    record.set_usage(total)
    assert record.usage == total


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cache_write_tokens": 5, "cache_write_1h_tokens": 6, "input_tokens": 10}, "cache_write_1h_tokens"),
        ({"input_tokens": 10, "cache_read_tokens": 6, "input_audio_tokens": 5}, "input_audio_tokens"),
        ({"output_tokens": 10, "reasoning_tokens": 6, "citation_tokens": 5}, "citation_tokens"),
        ({"output_tokens": 10, "output_audio_tokens": 11}, "output_audio_tokens"),
        ({"web_search_requests": -1}, "web_search_requests"),
    ],
)
def test_a_part_larger_than_its_total_is_rejected(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Usage(**kwargs)
    assert Usage.__dataclass_params__.frozen and not hasattr(Usage(), "__dict__")  # type: ignore[attr-defined]


class _Kind(enum.IntEnum):
    SOME = 3


@pytest.mark.parametrize("bad", [True, 1.0, "3", None, _Kind.SOME, -1])
def test_usage_refuses_every_count_that_is_not_a_plain_non_negative_int(bad: object) -> None:
    """`Usage.__new__` tests all counts at once (exact int type, their bitwise OR non-negative):
    a bool, an int subclass, a float or a negative count still gets the message naming it."""
    for name in ("input_tokens", "file_search_requests"):
        with pytest.raises(ValueError, match=f"Usage.{name} must be a non-negative int, got"):
            Usage(**{"input_tokens": 10, "output_tokens": 10, name: bad})  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(usage=usages())
def test_usage_built_fast_is_a_frozen_dataclass_like_any_other(usage: Usage) -> None:
    """Built as a plain object of the same slots, then made a `Usage`: it must not differ from one
    built field by field (equality, hash, pickling, copies, `replace`, frozen, no `__dict__`)."""
    same = Usage(**{f.name: getattr(usage, f.name) for f in dataclasses.fields(Usage)})
    assert type(same) is Usage and same == usage and hash(same) == hash(usage)
    assert pickle.loads(pickle.dumps(usage)) == usage == copy.copy(usage) == copy.deepcopy(usage)
    assert dataclasses.replace(usage, citation_tokens=0, output_tokens=usage.output_tokens + 1) != usage
    with pytest.raises(dataclasses.FrozenInstanceError):
        usage.input_tokens = 1  # type: ignore[misc]
    assert not hasattr(usage, "__dict__")


_count = st.integers(-3, 10**6) | st.sampled_from([0, 1, 2])


@settings(max_examples=400, deadline=None)
@given(counts=st.tuples(*[_count] * 9))
def test_usage_of_ints_is_usage_with_fewer_checks_for_counts_known_to_be_ints(
    counts: tuple[int, ...],
) -> None:
    """The adapters' shortcut (`usage_of_ints`, for counts already checked to be exact ints) builds
    the same `Usage` as the constructor, and refuses the same counts with the same message."""
    i, o, cr, cw, r, ia, oa, c1, ws = counts
    try:
        expected: Usage | str = Usage(i, o, cr, cw, r, c1, ia, oa, web_search_requests=ws)
    except ValueError as exc:
        expected = str(exc)
    try:
        got: Usage | str = usage_of_ints(i, o, cr, cw, r, ia, oa, c1, ws)
    except ValueError as exc:
        got = str(exc)
    assert got == expected
    if isinstance(got, Usage):
        assert type(got) is Usage and hash(got) == hash(expected) and not hasattr(got, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            got.output_tokens = 1  # type: ignore[misc]


def test_a_usage_subclass_with_slots_of_its_own_is_built_field_by_field() -> None:
    class Tagged(Usage):
        __slots__ = ("label",)

    tagged = Tagged(10, 4, cache_read_tokens=2)
    assert type(tagged) is Tagged and tagged.uncached_input_tokens == 8 and tagged.total_tokens == 14
    with pytest.raises(ValueError, match="exceed input_tokens"):
        Tagged(1, 0, cache_read_tokens=2)


# Every finer price set, so that any usage has a price: the parts must sum exactly to the total.
_FULL = {
    "provider": "prop",
    "model": "m",
    "input": "3",
    "output": "15",
    "cache_read": "0.3",
    "cache_write": "3.75",
    "cache_write_1h": "6",
    "input_audio": "40",
    "output_audio": "80",
    "citation": "2",
    "reasoning": "3",
    "web_search_per_1k": "10",
    "file_search_per_1k": "2.5",
    "per_request": "0.005",
}


@settings(max_examples=200, deadline=None)
@given(usage=usages())
def test_cost_parts_sum_exactly_to_the_total(usage: Usage) -> None:
    price = parse_overrides({"models": [_FULL]}, "mem.toml", "d").models[0].periods[0]
    from costlens.pricing._model import ModelPrice

    c = price_usage(usage, ModelPrice("prop", "m", "test", price.rates), "v")
    assert c.known and c.total is not None
    assert sum(c.parts.values(), D(0)) == c.total
    text_in = usage.uncached_input_tokens - usage.input_audio_tokens
    text_out = (
        usage.output_tokens - usage.reasoning_tokens - usage.output_audio_tokens - usage.citation_tokens
    )
    expected = (
        (
            text_in * D(3)
            + usage.cache_read_tokens * D("0.3")
            + (usage.cache_write_tokens - usage.cache_write_1h_tokens) * D("3.75")
            + usage.cache_write_1h_tokens * D(6)
            + usage.input_audio_tokens * D(40)
            + text_out * D(15)
            + usage.reasoning_tokens * D(3)
            + usage.output_audio_tokens * D(80)
            + usage.citation_tokens * D(2)
        )
        / M
        + usage.web_search_requests * D("0.01")
        + usage.file_search_requests * D("0.0025")
        + D("0.005")
    )
    assert c.total == expected


# -- 1. Anthropic 1-hour cache writes -------------------------------------------------------------------

# Claude Code's result message for one real run (a 1-hour cached prefix; public "run stats" found
# with the code search, repository unnamed there): every write is a 1-hour write, and Anthropic's
# own total_cost_usd is 11.793284. Priced as one Usage at claude-opus-4-7 list prices.
RUN_STATS_USAGE = {
    "input_tokens": 200,
    "cache_creation_input_tokens": 190796,
    "cache_read_input_tokens": 15356732,
    "output_tokens": 88204,
    "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
    "service_tier": "standard",
    "cache_creation": {"ephemeral_1h_input_tokens": 190796, "ephemeral_5m_input_tokens": 0},
}


def _message(usage: dict[str, Any], model: str = "claude-opus-4-7") -> dict[str, Any]:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "done"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def test_one_hour_cache_writes_are_priced_at_twice_the_input_price(
    fake: FakeProvider, recorded: Recorded
) -> None:
    fake.enqueue(raw=_message(RUN_STATS_USAGE))
    client = costlens.track(_anthropic(fake))
    client.messages.create(model="claude-opus-4-7", max_tokens=100, messages=MSG)
    record = recorded.one()
    assert record.cache_write_tokens == record.cache_write_1h_tokens == 190796
    # 200*5 + 190796*10 + 15356732*0.5 + 88204*25 per 1M (opus-4-7: 1-hour write = 2x $5 input)
    assert record.cost_usd == D("11.792426")
    # the 5-minute price (1.25x) the same writes had before: -6.1%
    as_5m = (200 * D(5) + 190796 * D("6.25") + 15356732 * D("0.5") + 88204 * D(25)) / M
    assert as_5m == D("11.076941")
    assert abs(record.cost_usd - D("11.793284")) < D("0.001")  # Anthropic's own total for the run


def test_streamed_one_hour_writes_and_web_searches(fake: FakeProvider, recorded: Recorded) -> None:
    # The event sequence of the Messages streaming docs; message_delta carries the cumulative usage
    # with `server_tool_use` (as in the web-search stream fixture found with the code search).
    start_usage = {
        "input_tokens": 2,
        "cache_creation_input_tokens": 709,
        "cache_read_input_tokens": 206058,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 709},
        "output_tokens": 1,
        "service_tier": "standard",
    }
    start = _message(start_usage, "claude-opus-4-7")
    start["content"], start["stop_reason"] = [], None
    events = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 1115, "server_tool_use": {"web_search_requests": 2}},
        },
        {"type": "message_stop"},
    ]
    fake.enqueue(raw=events)
    client = costlens.track(_anthropic(fake))
    with client.messages.stream(model="claude-opus-4-7", max_tokens=2000, messages=MSG) as stream:
        stream.get_final_message()
    record = recorded.one()
    assert (record.cache_write_1h_tokens, record.web_search_requests, record.output_tokens) == (709, 2, 1115)
    expected = (2 * D(5) + 709 * D(10) + 206058 * D("0.5") + 1115 * D(25)) / M + 2 * D("0.01")
    assert record.cost_usd == expected


def test_fake_usage_reports_one_hour_writes(fake: FakeProvider, recorded: Recorded) -> None:
    fake.enqueue(
        usage=FakeUsage(
            input_tokens=3000, output_tokens=10, cache_write_tokens=800, cache_write_1h_tokens=300
        )
    )
    costlens.track(_anthropic(fake)).messages.create(model="claude-haiku-4-5", max_tokens=20, messages=MSG)
    usage = recorded.one().usage
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (800, 300)


# -- 2. provider conventions: xAI and Perplexity ------------------------------------------------------

# A real grok-4 answer, as printed in evalstate/fast-agent#276: prompt 4643 + completion 1187 +
# reasoning 860 = total 6690 (xAI counts reasoning outside completion_tokens).
GROK_4 = {
    "id": "c3a5e1d2-0000-4000-8000-000000000001",
    "object": "chat.completion",
    "created": 1752400000,
    "model": "grok-4-0709",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {
        "prompt_tokens": 4643,
        "completion_tokens": 1187,
        "total_tokens": 6690,
        "prompt_tokens_details": {
            "text_tokens": 4643,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens": 6,
        },
        "completion_tokens_details": {
            "reasoning_tokens": 860,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
        "num_sources_used": 0,
    },
    "system_fingerprint": "fp_0d42a4eb3d",
}


def test_xai_reasoning_is_added_to_the_completion(fake: FakeProvider, recorded: Recorded) -> None:
    fake.enqueue(raw=GROK_4)
    client = costlens.track(_openai(fake), provider="x-ai")
    client.chat.completions.create(model="grok-4-0709", messages=MSG)
    record = recorded.one()
    assert record.usage == Usage(4643, 2047, cache_read_tokens=6, reasoning_tokens=860)
    # grok-4-0709: $3 in, $0.75 cached, $15 out (reasoning bills as output)
    assert record.cost_usd == (4637 * D(3) + 6 * D("0.75") + 2047 * D(15)) / M == D("0.0446205")
    assert not record.estimated


def test_xai_reasoning_above_the_completion_is_not_an_error(fake: FakeProvider, recorded: Recorded) -> None:
    # grok-3-mini as measured in vercel/ai#12425: completion_tokens=2, reasoning_tokens=317, total 331.
    body = copy.deepcopy(GROK_4)
    body["model"] = "grok-3-mini"
    body["usage"] = {
        "prompt_tokens": 12,
        "completion_tokens": 2,
        "total_tokens": 331,
        "completion_tokens_details": {"reasoning_tokens": 317},
    }
    fake.enqueue(raw=body)
    costlens.track(_openai(fake), provider="x-ai").chat.completions.create(model="grok-3-mini", messages=MSG)
    record = recorded.one()
    assert record.usage == Usage(12, 319, reasoning_tokens=317)
    assert not record.estimated


def test_xai_stream_usage_chunk_follows_the_convention(fake: FakeProvider, recorded: Recorded) -> None:
    chunk = {
        "id": "c3a5",
        "object": "chat.completion.chunk",
        "created": 1752400000,
        "model": "grok-4-0709",
        "system_fingerprint": "fp_0d42a4eb3d",
    }
    events = [
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}}]},
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**chunk, "choices": [], "usage": GROK_4["usage"]},
        "[DONE]",
    ]
    fake.enqueue(raw=events)
    client = costlens.track(_openai(fake), provider="x-ai")
    list(client.chat.completions.create(model="grok-4-0709", messages=MSG, stream=True))
    assert recorded.one().usage == Usage(4643, 2047, cache_read_tokens=6, reasoning_tokens=860)


def test_conventions_are_registered_by_provider_not_by_host() -> None:
    assert provider_from_base_url("https://api.x.ai/v1") == "x-ai"
    raw = {k: v for k, v in GROK_4["usage"].items() if k != "total_tokens"}  # (no total to go by)
    assert chat_usage(raw).output_tokens == 1187  # OpenAI's own rule: completion includes reasoning
    from costlens.instrument._conventions import UsageConvention, convention_for, register_convention

    assert convention_for("xai", "chat") is convention_for("x-ai", "chat") is not None
    assert convention_for("x-ai", "responses") is None  # xAI's Responses API follows OpenAI
    register_convention("my-grok-proxy", UsageConvention(completion_excludes_reasoning=True))
    try:
        assert chat_usage(raw, convention_for("my-grok-proxy", "chat")).output_tokens == 2047
    finally:
        register_convention("my-grok-proxy", None)
    assert convention_for("my-grok-proxy", "chat") is None


# -- reasoning outside the completion, told by the response's own total ----------------------------


def _answer(usage: dict[str, Any], model: str = "gemini-2.5-flash") -> dict[str, Any]:
    body = copy.deepcopy(GROK_4)
    body["model"], body["usage"] = model, usage
    return body


def test_a_total_that_counts_reasoning_apart_adds_it_to_the_output(
    fake: FakeProvider, recorded: Recorded
) -> None:
    """Gemini behind an OpenAI-compatible layer, as reported in router-for-me/CLIProxyAPI#5733
    (completion 0, reasoning 60, total 81) and with a visible answer (Clarifai/clarifai-python#978:
    prompt 20, completion 424, total 1016): the total is prompt + completion + reasoning."""
    only_thoughts = {
        "prompt_tokens": 21,
        "completion_tokens": 0,
        "total_tokens": 81,
        "completion_tokens_details": {"reasoning_tokens": 60},
    }
    with_answer = {
        "prompt_tokens": 20,
        "completion_tokens": 424,
        "total_tokens": 1016,
        "completion_tokens_details": {"reasoning_tokens": 572},
    }
    fake.enqueue(raw=_answer(only_thoughts))
    fake.enqueue(raw=_answer(with_answer))
    client = costlens.track(_openai(fake), provider="google")
    client.chat.completions.create(model="gemini-2.5-flash", messages=MSG)
    client.chat.completions.create(model="gemini-2.5-flash", messages=MSG)
    thoughts, answered = recorded.all()
    assert thoughts.usage == Usage(21, 60, reasoning_tokens=60) and not thoughts.estimated
    assert answered.usage == Usage(20, 996, reasoning_tokens=572) and not answered.estimated
    expected = cost(Usage(20, 996, reasoning_tokens=572), provider="google", model="gemini-2.5-flash")
    assert expected.known and answered.cost_nanousd == expected.nanousd


def test_a_total_that_counts_reasoning_inside_keeps_openais_rule(
    fake: FakeProvider, recorded: Recorded
) -> None:
    inside = {
        "prompt_tokens": 50,
        "completion_tokens": 500,
        "total_tokens": 550,
        "completion_tokens_details": {"reasoning_tokens": 300},
    }
    fake.enqueue(raw=_answer(inside, "o4-mini"))
    costlens.track(_openai(fake)).chat.completions.create(model="o4-mini", messages=MSG)
    assert recorded.one().usage == Usage(50, 500, reasoning_tokens=300)


def test_the_total_decides_in_streams_and_the_responses_api_too(
    fake: FakeProvider, recorded: Recorded
) -> None:
    chunk = {
        "id": "g1",
        "object": "chat.completion.chunk",
        "created": 1752400000,
        "model": "gemini-2.5-flash",
    }
    usage = {
        "prompt_tokens": 20,
        "completion_tokens": 424,
        "total_tokens": 1016,
        "completion_tokens_details": {"reasoning_tokens": 572},
    }
    fake.enqueue(
        raw=[
            {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}}]},
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**chunk, "choices": [], "usage": usage},
            "[DONE]",
        ]
    )
    client = costlens.track(_openai(fake), provider="google")
    list(client.chat.completions.create(model="gemini-2.5-flash", messages=MSG, stream=True))
    assert recorded.one().usage == Usage(20, 996, reasoning_tokens=572)
    from costlens.instrument.openai import responses_usage

    apart = {"input_tokens": 20, "output_tokens": 424, "total_tokens": 1016}
    inside = {"input_tokens": 20, "output_tokens": 996, "total_tokens": 1016}
    details = {"output_tokens_details": {"reasoning_tokens": 572}}
    assert responses_usage({**apart, **details}).output_tokens == 996
    assert responses_usage({**inside, **details}).output_tokens == 996


@given(
    prompt=st.integers(0, 10**6),
    completion=st.integers(0, 10**6),
    reasoning=st.integers(0, 10**6),
    total_offset=st.integers(-5, 5),
)
@settings(max_examples=300, deadline=None)
def test_the_total_changes_the_output_only_when_it_proves_reasoning_apart(
    prompt: int, completion: int, reasoning: int, total_offset: int
) -> None:
    """Reasoning is added to the output iff total == prompt + completion + reasoning (reasoning > 0);
    a dict and the SDK's own model read alike."""
    total = prompt + completion + reasoning + total_offset
    raw = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
    apart = reasoning > 0 and total_offset == 0
    if not apart and reasoning > completion:
        with pytest.raises(ValueError, match="exceed output_tokens"):
            chat_usage(raw)  # OpenAI's rule cannot hold: the call is counted instead (estimated)
        return
    got = chat_usage(raw)
    assert got.output_tokens == completion + (reasoning if apart else 0)
    assert got.reasoning_tokens == reasoning and got.input_tokens == prompt
    assert chat_usage(openai.types.CompletionUsage.model_validate(raw)) == got


# sonar-deep-research, a real answer with Perplexity's own cost breakdown (total_cost 0.816), as
# quoted in a public Perplexity guide found with the code search.
DEEP_RESEARCH = {
    "id": "pplx-1",
    "object": "chat.completion",
    "created": 1756488074,
    "model": "sonar-deep-research",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "report"}, "finish_reason": "stop"}],
    "usage": {
        "prompt_tokens": 33,
        "completion_tokens": 11395,
        "total_tokens": 11428,
        "citation_tokens": 19028,
        "num_search_queries": 21,
        "reasoning_tokens": 193947,
        "cost": {
            "input_tokens_cost": 0.0,
            "output_tokens_cost": 0.091,
            "citation_tokens_cost": 0.038,
            "reasoning_tokens_cost": 0.582,
            "search_queries_cost": 0.105,
            "total_cost": 0.816,
        },
    },
}


def test_perplexity_citations_reasoning_and_searches(fake: FakeProvider, recorded: Recorded) -> None:
    fake.enqueue(raw=DEEP_RESEARCH)
    client = costlens.track(_openai(fake), provider="perplexity")
    client.chat.completions.create(model="sonar-deep-research", messages=MSG)
    record = recorded.one()
    assert record.usage == Usage(
        33,
        11395 + 193947 + 19028,
        reasoning_tokens=193947,
        citation_tokens=19028,
        web_search_requests=21,
    )
    # $2 in, $8 out, $3 reasoning, $2 citations, $5 per 1,000 searches
    expected = (33 * D(2) + 11395 * D(8) + 193947 * D(3) + 19028 * D(2)) / M + 21 * D("0.005")
    assert record.cost_usd == expected == D("0.816123")


# -- 3. server-side tool fees -------------------------------------------------------------------------


def test_openai_responses_web_and_file_search_calls_are_billed(
    fake: FakeProvider, recorded: Recorded
) -> None:
    # Output items as in the Responses API reference (web_search_call, file_search_call).
    body = {
        "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "object": "response",
        "created_at": 1741476542,
        "status": "completed",
        "model": "gpt-4.1-2025-04-14",
        "output": [
            {
                "type": "web_search_call",
                "id": "ws_67c9fa0502748190b7dd390736892e100be649c1a5ff9609",
                "status": "completed",
            },
            {
                "type": "file_search_call",
                "id": "fs_67c09ccea8c48191ade9367e3ba71515",
                "status": "completed",
                "queries": ["What is deep research?"],
                "results": None,
            },
            {
                "type": "message",
                "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "answer", "annotations": []}],
            },
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 328,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 356,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 684,
        },
    }
    fake.enqueue(raw=body)
    costlens.track(_openai(fake)).responses.create(model="gpt-4.1", input="news?")
    record = recorded.one()
    assert (record.web_search_requests, record.file_search_requests) == (1, 1)
    # gpt-4.1: $2 in, $8 out; web search $10 and file search $2.50 per 1,000 calls
    assert record.cost_usd == (328 * D(2) + 356 * D(8)) / M + D("0.01") + D("0.0025")


def test_a_tool_fee_without_a_price_makes_the_cost_unknown(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from costlens.pricing import _model

    monkeypatch.setattr(_model, "_warned", set())  # warned once per process: maybe by an earlier test
    usage = Usage(100, 10, web_search_requests=1)
    known = cost(Usage(100, 10), provider="x-ai", model="grok-4-0709")
    assert known.known
    unknown = cost(usage, provider="x-ai", model="grok-4-0709")
    assert unknown.total is None and not unknown.known and unknown.missing == ("web_search",)
    assert "web_search_per_1k" in caplog.text


# -- 4. audio ----------------------------------------------------------------------------------------

# Chat completions usage with audio, in the shape of the API reference (prompt_tokens_details /
# completion_tokens_details.audio_tokens; genai-prices' openai `chat` extractor reads the same keys).
AUDIO_CHAT = {
    "id": "chatcmpl-BWWk5HUEjFQoQqsiif297e1cYkc24",
    "object": "chat.completion",
    "created": 1747000000,
    "model": "gpt-audio",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 400},
    },
}


def test_audio_tokens_are_priced_at_audio_rates(fake: FakeProvider, recorded: Recorded) -> None:
    fake.enqueue(raw=AUDIO_CHAT)
    costlens.track(_openai(fake), provider="openai").chat.completions.create(model="gpt-audio", messages=MSG)
    record = recorded.one()
    assert (record.input_audio_tokens, record.output_audio_tokens) == (800, 400)
    # gpt-audio: text $2.5 / $10, audio $32 in / $64 out
    assert record.cost_usd == (200 * D("2.5") + 800 * D(32) + 100 * D(10) + 400 * D(64)) / M


def test_audio_without_an_audio_price_is_unknown_not_text(
    fake: FakeProvider, recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    # genai-prices lists gpt-4o-audio-preview with text prices only; OpenAI bills its audio input
    # at $40 per 1M, 16x the text price: pricing the audio as text would under-bill silently.
    body = copy.deepcopy(AUDIO_CHAT)
    body["model"] = "gpt-4o-audio-preview"
    fake.enqueue(raw=body)
    costlens.track(_openai(fake), provider="openai").chat.completions.create(
        model="gpt-4o-audio-preview", messages=MSG
    )
    record = recorded.one()
    assert record.cost_nanousd is None and not record.price_known
    assert "'input_audio'" in caplog.text and "'output_audio'" in caplog.text


def test_an_override_prices_audio(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[models]]\nprovider = "openai"\nmodel = "gpt-4o-audio-preview"\n'
        "input = 2.5\noutput = 10\ninput_audio = 40\noutput_audio = 80\n"
    )
    set_catalogue(PriceCatalogue.load(path))
    usage = Usage(1000, 500, input_audio_tokens=800, output_audio_tokens=400)
    c = cost(usage, provider="openai", model="gpt-4o-audio-preview")
    assert c.total == (200 * D("2.5") + 800 * D(40) + 100 * D(10) + 400 * D(80)) / M
    assert c.parts["input_audio"] == 800 * D(40) / M


# -- 15. a local base_url ----------------------------------------------------------------------------


def test_local_endpoint_embeddings_are_priced_as_openai(fake: FakeProvider, recorded: Recorded) -> None:
    fake.enqueue(usage=FakeUsage(input_tokens=1000))
    client = costlens.track(_openai(fake))  # base_url http://127.0.0.1:<port>/v1
    client.embeddings.create(model="text-embedding-3-small", input="hello")
    record = recorded.one()
    assert record.provider == "127.0.0.1"  # where the call went is kept
    assert record.price_known and record.cost_usd == 1000 * D("0.02") / M
    unknown = costlens.track(_openai(fake))
    fake.enqueue(usage=FakeUsage(input_tokens=10, output_tokens=1))
    unknown.chat.completions.create(model="my-local-llama", messages=MSG)
    assert recorded.all()[-1].cost_nanousd is None  # a model nobody prices stays unknown


# -- stores, analytics, reprice ----------------------------------------------------------------------


def _records() -> list[CallRecord]:
    one = CallRecord("anthropic", "chat", "claude-opus-4-7")
    one.set_usage(Usage(1000, 10, cache_write_tokens=800, cache_write_1h_tokens=800, web_search_requests=3))
    two = CallRecord("openai", "chat", "gpt-audio")
    two.set_usage(Usage(1000, 500, input_audio_tokens=800, output_audio_tokens=400, citation_tokens=7))
    return [one, two]


def _check_store(store: Any) -> None:
    records = _records()
    store.append(records)
    back = {r.id: r for r in store.iter_records()}
    for record in records:
        assert back[record.id].usage == record.usage
    (row,) = store.query(SpendQuery(()))
    for name in USAGE_PARTS:
        assert getattr(row, name) == sum(getattr(r, name) for r in records), name
    (raw,) = store.query(SpendQuery((), use_rollups=False))
    assert raw == row


def test_memory_store_keeps_the_parts() -> None:
    _check_store(MemoryStore())


def test_sqlite_store_keeps_the_parts(tmp_path: Path) -> None:
    from costlens.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "parts.db")
    try:
        _check_store(store)
    finally:
        store.close()


def test_reprice_uses_the_parts() -> None:
    store = MemoryStore()
    record = CallRecord("anthropic", "chat", "claude-opus-4-7")
    usage = Usage(1000, 10, cache_write_tokens=800, cache_write_1h_tokens=800, web_search_requests=3)
    record.set_usage(usage)
    record.set_cost(cost(usage, provider="anthropic", model="claude-opus-4-7"))
    store.append([record])
    report = reprice(store, catalogue=PriceCatalogue())
    assert report.totals["change_usd"] == 0
    # 200*5 + 800*10 + 10*25 per 1M + 3 searches at $0.01
    assert report.totals["repriced_cost_usd"] == (200 * D(5) + 800 * D(10) + 10 * D(25)) / M + D("0.03")


def test_record_ids_are_microseconds_tag_and_counter_in_hex_and_sort_by_time() -> None:
    from costlens.usage import _new_id

    before = time.time_ns() // 1000
    ids = [CallRecord("openai", "chat", "m").id for _ in range(50)]
    after = time.time_ns() // 1000
    assert len(set(ids)) == 50 and ids == sorted(ids)
    for text in ids:
        assert len(text) == 32 and int(text, 16) >= 0
        assert before <= int(text[:14], 16) <= after
        assert text[14:24] == ids[0][14:24]  # the process's tag
    counters = [int(text[24:], 16) for text in ids]
    assert all((b - a) % 2**32 == 1 for a, b in itertools.pairwise(counters))  # one apart
    assert _new_id()[14:24] == ids[0][14:24]


def test_chat_usage_reads_a_dict_a_dict_subclass_and_the_sdk_model_alike() -> None:
    from openai.types.completion_usage import CompletionUsage

    raw = {
        "prompt_tokens": 120,
        "completion_tokens": 40,
        "total_tokens": 160,
        "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 5},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }

    class Json(dict):  # type: ignore[type-arg]  # (not the fast path's exact dict: the general reader)
        pass

    expected = Usage(120, 40, cache_read_tokens=100, reasoning_tokens=30, input_audio_tokens=5)
    assert chat_usage(raw) == expected
    assert chat_usage(Json(raw)) == expected
    assert chat_usage(CompletionUsage.model_validate(raw)) == expected


def test_budget_values_built_fast_are_frozen_dataclasses_like_any_other() -> None:
    """`spent_of`, `reservation_of` and `estimate`'s `Estimate` skip the frozen `__init__`: the
    objects must not differ from ones built field by field."""
    from costlens.budgets._ledger import BudgetKey, Reservation, Spent, reservation_of, spent_of
    from costlens.pipeline import Estimate, estimate
    from costlens.pipeline._request import Request

    keys = (BudgetKey("a", 10, 0, 0),)
    pairs: list[tuple[object, object]] = [
        (spent_of(3, 4), Spent(3, 4)),
        (reservation_of("r", keys, 5, 6, 7, (Spent(1, 2),)), Reservation("r", keys, 5, 6, 7, (Spent(1, 2),))),
    ]
    request = Request.of(
        "openai", "chat", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    )
    made = estimate(request)
    pairs.append((made, Estimate(*(getattr(made, f.name) for f in dataclasses.fields(Estimate)))))
    for fast, slow in pairs:
        assert type(fast) is type(slow) and fast == slow and hash(fast) == hash(slow)
        assert pickle.loads(pickle.dumps(fast)) == slow == copy.copy(fast) == copy.deepcopy(fast)
        assert not hasattr(fast, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(fast, dataclasses.fields(fast)[0].name, 0)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    usage=st.builds(
        usage_of_ints,
        st.integers(50, 10_000),
        st.integers(20, 5_000),
        st.integers(0, 20),
        st.integers(0, 20),
        st.integers(0, 10),
    ),
    priced=st.none()
    | st.tuples(st.integers(0, 10**12) | st.none(), st.booleans(), st.sampled_from(["", "v9"])),
    held=st.none() | st.just((123, True, "v1")),
    ttft_ns=st.none() | st.integers(0, 10**9),
    budgets=st.sampled_from(["none", "list", "later", "later fails"]),
)
def test_records_of_deferred_calls_are_records_like_any_other(
    usage: Usage,
    priced: tuple[int | None, bool, str] | None,
    held: tuple[int, bool, str] | None,
    ttft_ns: int | None,
    budgets: str,
) -> None:
    """`record_of_ended` fills a plain object of the record's slots, then makes it a `CallRecord`:
    every field must be set, and the record must equal the one the constructor builds from the same
    facts (the price passed in first, else the one the facts hold, else unknown)."""
    from datetime import UTC, datetime, timedelta

    from costlens._errors import raise_late_error
    from costlens.pipeline._call import UNPRICED, record_of_ended

    entries = [{"budget": "all", "outcome": "settled"}]

    def later() -> list[dict[str, Any]]:
        if budgets == "later fails":
            raise RuntimeError("entries could not be made")
        return [dict(e) for e in entries]

    made_by = {"none": None, "list": entries, "later": later, "later fails": later}[budgets]
    started = datetime(2026, 12, 6, 3, 0, 0, 123_456, tzinfo=UTC)
    tags = {"feature": "chat"}
    ended = (
        None, "openai", "chat", "gpt-4o-mini", started, 1_234_567_891, ttft_ns, "gpt-4o-mini-2024-07-18",
        usage, True, "priority", tags, made_by, "gpt-4o-mini", held,
    )  # fmt: skip
    record = record_of_ended(ended, priced)
    if budgets == "later fails":  # kept without entries; the failure is raised later (strict mode)
        with pytest.raises(RuntimeError, match="entries could not be made"):
            raise_late_error()
    cost_nanousd, price_known, price_version = priced or held or UNPRICED
    expected = CallRecord(
        "openai",
        "chat",
        "gpt-4o-mini",
        started,
        started + timedelta(microseconds=1_234_567),
        1_234.567891,
        None if ttft_ns is None else ttft_ns / 1e6,
        "gpt-4o-mini-2024-07-18",
        cost_nanousd=cost_nanousd,
        price_known=price_known,
        price_version=price_version,
        stream=True,
        service_tier="priority",
        tags=tags,
        budgets=[] if budgets in ("none", "later fails") else entries,
        id=record.id,
    )
    expected.set_usage(usage)
    assert type(record) is CallRecord and not hasattr(record, "__dict__")
    assert record == expected
    assert record.tags == tags and record.tags is not tags  # (its own: the facts' may be a client's, shared)
    assert pickle.loads(pickle.dumps(record)) == expected == copy.deepcopy(record)
    assert dataclasses.asdict(record) == dataclasses.asdict(expected)
    assert record_of_ended((*ended[:12], None, *ended[13:])).id != record.id  # a fresh id per record


@pytest.mark.parametrize("bad", ["120", [100], 7, None, True])
def test_chat_usage_of_a_streams_json_reads_details_that_are_not_objects_as_absent(bad: object) -> None:
    raw = {
        "prompt_tokens": 120,
        "completion_tokens": 40,
        "prompt_tokens_details": bad,
        "completion_tokens_details": bad,
    }
    assert chat_usage(raw) == Usage(120, 40)
    raw["prompt_tokens_details"] = {"cached_tokens": 100}
    assert chat_usage(raw) == Usage(120, 40, cache_read_tokens=100)
