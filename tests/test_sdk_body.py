"""`sent_body`: the JSON an SDK will send, read on every call from its request options."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import anthropic
import openai

from costlens.instrument._sdk import _PLAIN, sent_body


class Omit:  # a sentinel of an SDK version costlens has not seen: known by its name
    pass


class Ratio(float):  # a value type of the caller's own: sent as it is, and remembered as plain
    pass


def _options(json_data: Any, extra_json: Any = None) -> Any:
    return SimpleNamespace(json_data=json_data, extra_json=extra_json)


def test_a_plain_body_is_the_sdks_own_dict() -> None:
    body = {"model": "gpt-4o-mini", "messages": [], "temperature": 0.2, "stream": False, "user": None}
    assert sent_body(_options(body)) is body
    assert sent_body(_options(["not", "a", "dict"])) is None


def test_the_sdks_not_given_sentinels_are_dropped_as_the_sdk_drops_them() -> None:
    for sentinel in (openai.NOT_GIVEN, anthropic.NOT_GIVEN, Omit()):
        body = {"model": "m", "max_tokens": 5, "metadata": sentinel}
        assert sent_body(_options(body)) == {"model": "m", "max_tokens": 5}
        assert body["metadata"] is sentinel  # the caller's dict is never changed
    assert type(openai.NOT_GIVEN) not in _PLAIN and Omit not in _PLAIN


def test_extra_body_is_merged_over_the_body_and_other_types_are_kept() -> None:
    body = {"model": "m", "top_p": Ratio(0.5)}
    merged = sent_body(_options(body, {"top_p": 0.9, "seed": 7}))
    assert merged == {"model": "m", "top_p": 0.9, "seed": 7}
    assert sent_body(_options(body)) is body and Ratio in _PLAIN  # seen once: plain from now on


class _Unhashable(type):
    __hash__ = None  # type: ignore[assignment]


class Odd(metaclass=_Unhashable):  # a value whose class cannot go in a set
    pass


def test_a_value_whose_class_is_unhashable_is_still_sent() -> None:
    odd = Odd()
    assert sent_body(_options({"model": "m", "odd": odd, "metadata": openai.NOT_GIVEN})) == {
        "model": "m",
        "odd": odd,
    }
