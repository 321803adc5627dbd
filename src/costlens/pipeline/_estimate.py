"""The one pre-call estimate: a request's prompt tokens, its output bound and its worst-case cost.

Budgets reserve `estimate(request).cost_nanousd`, the router compares candidates with it, and the
gateway uses it as the SDK wrappers do. `count_input` is the best count of the same prompt, used
when a call's usage never arrives.

Prompt tokens are counted with the model's own tokenizer where one ships offline (OpenAI models:
the cookbook formula, text + 3 per message + 3). For other models the count is a bound that cannot
be beaten: the UTF-8 bytes of the prompt's text (a byte-level BPE token is at least one byte), plus
per-message framing, plus 1,024 tokens when tools are declared (providers add a tool prompt).
Image, audio and file parts are not counted: such calls are reserved for their text and settled at
their real cost.

The output bound is `max_completion_tokens` / `max_tokens` / `max_output_tokens`, times `n`. When the
caller gives none, `default_max_output` is assumed (budgets also write it into the request, so the
reservation really bounds the call).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from costlens.pipeline._request import Request, requested_tier
from costlens.tokens import _content_text, count_text, encoding_name_for, tokens_in
from costlens.usage import _slots_twin

__all__ = ["DEFAULT_MAX_OUTPUT", "Estimate", "cap_key", "choices", "count_input", "estimate", "output_bound"]

#: The output bound assumed for a request that sets none.
DEFAULT_MAX_OUTPUT = 4096

_TOKENS_PER_MESSAGE = 3
_REPLY_PRIMING = 3
_BYTES_FRAMING_PER_MESSAGE = 8
_TOOL_PROMPT_ALLOWANCE = 1024
_SKIP_KEYS = frozenset({"role", "type", "content", "cache_control", "id"})
_EXTRA_FIELDS = {
    "chat": ("tools", "functions", "tool_choice", "response_format"),
    "responses": ("tools", "tool_choice", "text"),
    "text_completion": ("suffix",),
    "embeddings": (),
}
_TOOL_KEYS = frozenset({"tools", "functions"})
_EXTRA_OR_TOOLS = {operation: _TOOL_KEYS.union(fields) for operation, fields in _EXTRA_FIELDS.items()}
_OUTPUT_KEYS = {
    "chat": ("max_completion_tokens", "max_tokens"),
    "responses": ("max_output_tokens",),
    "text_completion": ("max_tokens",),
}
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
#: The fields that shape a worst case besides the prompt: an output bound, choices, a tier (fast
#: mode and US-only inference included). A request with none of them (one C call to tell) is
#: bounded by the default output, once, in the standard tier.
_SHAPING_KEYS = frozenset(
    {key for keys in _OUTPUT_KEYS.values() for key in keys}
    | {"max_tokens", "n", "best_of", "service_tier", "speed", "inference_geo"}
)


@dataclass(frozen=True, slots=True)
class Estimate:
    """Worst case of one call. `cost_nanousd` is None when the model's price is unknown."""

    model: str
    input_tokens: int
    input_exact: bool
    output_tokens: int
    cost_nanousd: int | None
    #: False when the request sets no output bound (`output_tokens` assumed the default one)
    output_bounded: bool = True


_EstimateSlots = _slots_twin(Estimate)  # (`estimate` fills one)


def output_bound(operation: str, body: Mapping[str, Any]) -> int | None:
    """The most output tokens per choice the request allows, or None when it sets no bound."""
    if operation == "embeddings":
        return 0
    keys = _OUTPUT_KEYS.get(operation, ("max_tokens",))
    if body.keys().isdisjoint(keys):  # (one C call for the usual request, which sets none)
        return None
    for key in keys:
        value = body.get(key)
        if value is not None and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def choices(operation: str, body: Mapping[str, Any]) -> int:
    """How many answers the request asks for (`n`; `best_of` for text completions)."""
    raw = body.get("best_of") or body.get("n") if operation == "text_completion" else body.get("n")
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 1 else 1


@lru_cache(maxsize=1024)
def cap_key(operation: str, provider: str, model: str) -> str:
    """The field that caps output for this request (used when the caller set none). Remembered:
    every budgeted call that sets no bound asks it."""
    if operation == "responses":
        return "max_output_tokens"
    reasoning = model.rsplit("/", 1)[-1].lower().startswith(_REASONING_PREFIXES)
    if operation == "chat" and provider in ("openai", "azure") and reasoning:
        return "max_completion_tokens"
    return "max_tokens"


def _item_texts(item: object) -> Iterable[str]:
    if isinstance(item, str):
        yield item
        return
    if not isinstance(item, Mapping):
        yield json.dumps(item, default=str, ensure_ascii=False)
        return
    yield from _content_text(item.get("content"))
    for key, value in item.items():
        if key in _SKIP_KEYS or value is None:
            continue
        yield value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _prompt(operation: str, body: Mapping[str, Any]) -> tuple[list[str], int, bool]:
    """(texts, number of messages, tools declared) of the request's prompt."""
    texts: list[str] = []
    if operation == "chat":
        system = body.get("system")
        if system is not None:
            texts.extend(_content_text(system))
        items = body.get("messages") or ()
    elif operation == "responses":
        texts.extend(_content_text(body.get("instructions")) if body.get("instructions") else ())
        raw = body.get("input")
        items = [raw] if isinstance(raw, str) else raw or ()
    else:
        raw = body.get("prompt") if operation == "text_completion" else body.get("input")
        items = [raw] if isinstance(raw, str) or _is_token_ids(raw) else raw or ()
    n = 0
    for item in items:
        n += 1
        if type(item) is dict and item.keys() <= _SKIP_KEYS and type(item.get("content")) is str:
            texts.append(item["content"])  # the usual message, without generators or an ABC check
            continue
        texts.extend(_item_texts(item) if not _is_token_ids(item) else ["\x00" * len(item)])
    if body.keys().isdisjoint(_EXTRA_OR_TOOLS.get(operation, _TOOL_KEYS)):  # (the usual request: one C call)
        return texts, n, False
    for key in _EXTRA_FIELDS.get(operation, ()):
        if body.get(key) is not None:
            texts.append(json.dumps(body[key], default=str, ensure_ascii=False))
    return texts, n, bool(body.get("tools") or body.get("functions"))


def _is_token_ids(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, int) for v in value)


def input_tokens(operation: str, body: Mapping[str, Any], model: str) -> tuple[int, bool]:
    """(prompt tokens, exact): the model's tokenizer where one ships offline, else a byte bound."""
    texts, n, tools = _prompt(operation, body)
    chat_like = operation in ("chat", "responses")
    name = encoding_name_for(model)
    if name is not None:
        counted = 0
        for text in texts:  # (a loop: a generator's frame costs more than one short prompt's lookup)
            counted += tokens_in(text, name) if "\x00" not in text else len(text)
        framing = n * _TOKENS_PER_MESSAGE + _REPLY_PRIMING if chat_like else 0
        return counted + framing, True
    counted = sum(len(t.encode()) for t in texts)
    framing = n * _BYTES_FRAMING_PER_MESSAGE + _REPLY_PRIMING if chat_like else n
    return counted + framing + (_TOOL_PROMPT_ALLOWANCE if tools else 0), False


def count_input(request: Request) -> int:
    """The best offline count of the prompt's tokens: exact for OpenAI models, an o200k estimate
    for others (unlike `estimate`, which needs a bound that cannot be beaten)."""
    texts, n, _ = _prompt(request.operation, request.body)
    counted = sum(count_text(t, request.model).tokens if "\x00" not in t else len(t) for t in texts)
    chat_like = request.operation in ("chat", "responses")
    return counted + (n * _TOKENS_PER_MESSAGE + _REPLY_PRIMING if chat_like else 0)


# The pricing functions `estimate` uses, imported on its first call: the pricing package takes ~10 ms
# to import (not paid by `import costlens`), and an import statement run on every call costs ~1 us.
_pricing: tuple[Any, Any, Any, Any] | None = None


def _import_pricing() -> tuple[Any, Any, Any, Any]:
    global _pricing
    from costlens.pricing._catalogue import estimate_max_nanousd, get_catalogue
    from costlens.pricing._compat import pricing_provider
    from costlens.pricing._model import atto_to_nano

    _pricing = (estimate_max_nanousd, get_catalogue, pricing_provider, atto_to_nano)
    return _pricing


def estimate(
    request: Request,
    *,
    model: str | None = None,
    default_max_output: int = DEFAULT_MAX_OUTPUT,
    at: datetime | None = None,
) -> Estimate:
    """The worst-case cost of sending `request` (to `model` instead, when given): the prompt's tokens
    (exact, or a bound), plus its output bound (`default_max_output` when it sets none), at the
    model's price on `at` in the tier the request asks for (`requested_tier`: fast mode and US-only
    inference included)."""
    estimate_max_nanousd, get_catalogue, pricing_provider, atto_to_nano = _pricing or _import_pricing()
    model = request.model if model is None else model
    body = request.body
    operation = request.operation
    n_in, exact = input_tokens(operation, body, model)
    if operation != "embeddings" and body.keys().isdisjoint(
        _SHAPING_KEYS
    ):  # (`output_bound` & co.: None, 1, None)
        bound, n_out, tier = None, default_max_output, None
    else:
        bound = output_bound(operation, body)
        n_out = (default_max_output if bound is None else bound) * choices(operation, body)
        tier = requested_tier(body)
    catalogue = get_catalogue()
    # the usual model, priced the same at every time (and every prompt up to a long-context tier):
    # its worst rates, kept by the catalogue (a third of this function's work otherwise: provider,
    # entry, price, rates, each a call)
    worst = catalogue.worst_rates.get((request.provider, model, tier))
    if worst is None:
        worst = catalogue.estimate_rates(request.provider, model, tier)
    if worst and n_in <= worst[3]:
        nanousd = atto_to_nano(worst[0] * n_in + worst[1] * n_out + worst[2])
    else:  # priced as the call will be: a compatible host falls back to OpenAI's list, as in `Pricer`
        provider = pricing_provider(catalogue, request.provider, model)
        nanousd = estimate_max_nanousd(provider, model, n_in, n_out, at=at, service_tier=tier)
    # `Estimate(...)` in a third of the time (every budgeted call makes one): filled as a plain
    # object of the same slots, then made an `Estimate` (as `costlens.usage.usage_of_ints`)
    made: Any = object.__new__(_EstimateSlots)
    made.model, made.input_tokens, made.input_exact, made.output_tokens = model, n_in, exact, n_out
    made.cost_nanousd, made.output_bounded = nanousd, bound is not None
    made.__class__ = Estimate
    return made  # type: ignore[no-any-return]
