"""Offline token counts for requests and responses whose usage the provider did not report.

Exact for OpenAI models (the `bpe-openai` package ships the o200k/cl100k BPE tables, so nothing is
downloaded); for other models the o200k count is an estimate and is flagged as such. The tokenizer
loads on first use (about 0.6 s), never at import.
"""

from __future__ import annotations

import json
import math
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Protocol

__all__ = ["TokenCount", "count_messages", "count_text", "encoding_name_for"]

# Per the OpenAI cookbook: every chat message costs its content plus ~3 framing tokens, and
# every reply is primed with 3 more. Close enough for an estimate flagged as estimated.
_TOKENS_PER_MESSAGE = 3
_REPLY_PRIMING = 3
_CHARS_PER_TOKEN = 4  # fallback when no tokenizer is installed


class _Encoder(Protocol):
    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class TokenCount:
    tokens: int
    exact: bool


@lru_cache(maxsize=4096)
def encoding_name_for(model: str) -> str | None:
    """The BPE table an OpenAI model uses, or None when the model is not OpenAI's. A fine-tuned model
    (`ft:gpt-4o-mini-2024-07-18:org::id`) uses its base model's table. Remembered per model: every
    budgeted call asks it for its model."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith("ft:"):
        name = name[3:]
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt", "gpt-oss")):
        return "o200k_base"
    if name.startswith(("gpt-4", "gpt-3.5", "gpt-35", "text-embedding")):
        return "cl100k_base"
    return None


_ENCODER_LOCK = threading.Lock()


def _encoder(name: str) -> _Encoder | None:
    """The BPE table, built once per process. Building takes ~0.6 s of CPU, and without the lock
    every thread of a concurrent first burst (an experiment's workers, a busy server) built its own."""
    with _ENCODER_LOCK:
        return _build_encoder(name)


@cache
def _build_encoder(name: str) -> _Encoder | None:
    with warnings.catch_warnings():
        # bpe-openai reads its tables (at import, too) with importlib.resources' deprecated open_binary.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import bpe_openai
        except ImportError:
            return None
        encoder: _Encoder = bpe_openai.get_encoding(name)
    return encoder


def count_text(text: str, model: str = "") -> TokenCount:
    """Tokens in `text` for `model`: exact for OpenAI models, an o200k estimate otherwise."""
    if not text:
        return TokenCount(0, True)
    exact_name = encoding_name_for(model)
    tokens = (_count if len(text) < _LONG_TEXT else _count_long)(text, exact_name or "o200k_base")
    if tokens is None:
        return TokenCount(math.ceil(len(text) / _CHARS_PER_TOKEN), False)
    return TokenCount(tokens, exact_name is not None)


def tokens_in(text: str, encoding: str) -> int:
    """`count_text(text, model).tokens` for a model whose BPE table `encoding_name_for` named already
    (callers counting many texts for one model look the table up once)."""
    if not text:
        return 0
    tokens = (_count if len(text) < _LONG_TEXT else _count_long)(text, encoding)
    return math.ceil(len(text) / _CHARS_PER_TOKEN) if tokens is None else tokens


def _count_now(text: str, encoding: str) -> int | None:
    encoder = _encoder(encoding)
    return None if encoder is None else _encoded_length(encoder, text)


# Counts are remembered: a router prices one prompt for every candidate, and budgets count it again.
# The cache keeps its texts alive, so long ones (a RAG prompt, a document) get a cache of their own
# that keeps a few: 512 of them could hold hundreds of MiB of a server's memory.
_LONG_TEXT = 16_384
_count = lru_cache(maxsize=512)(_count_now)
_count_long = lru_cache(maxsize=8)(_count_now)


def _encoded_length(encoder: _Encoder, text: str, size: int | None = None) -> int:
    size = size or _ENCODE_CHARS
    if len(text) <= size:
        return len(encoder.encode(text))
    return sum(len(encoder.encode(piece)) for piece in _pieces(text, size))


# bpe-openai refuses to encode a text of 1,000,000 characters or more; a longer prompt (a 1M-token
# model's) is counted in pieces of fewer.
_ENCODE_CHARS = 500_000
_BOUNDARY_SEARCH = 10_000


def _pieces(text: str, size: int) -> Iterable[str]:
    """`text` in pieces of at most `size` characters, each cut before a space between two letters:
    there the BPE tables' pre-tokenizers cut too (a word ends, " word" begins), so the pieces' counts
    add up to the whole text's. A stretch of `_BOUNDARY_SEARCH` characters with no such space is cut
    where it must be, which may split one token in two."""
    start = 0
    while len(text) - start > size:
        cut = _cut(text, start, start + size)
        yield text[start:cut]
        start = cut
    yield text[start:]


def _cut(text: str, start: int, end: int) -> int:
    """The last space between two letters in `text[start + 1:end]` (within `_BOUNDARY_SEARCH` of
    `end`), else `end`."""
    low = max(start + 1, end - _BOUNDARY_SEARCH)
    cut = text.rfind(" ", low, end)
    while cut > 0:
        if text[cut - 1].isalpha() and text[cut + 1 : cut + 2].isalpha():
            return cut
        cut = text.rfind(" ", low, cut)
    return end


def _content_text(content: Any) -> Iterable[str]:
    """Text parts of a message `content`, which may be a string or a list of typed parts."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                for key in ("text", "input_text", "thinking"):
                    value = part.get(key)
                    if isinstance(value, str):
                        yield value
            elif isinstance(part, str):
                yield part
    elif content is not None:
        yield json.dumps(content, default=str)


def count_messages(messages: Iterable[Any], model: str = "", *, system: Any = None) -> TokenCount:
    """Prompt tokens of a chat request (OpenAI `messages`, Anthropic `messages` + `system`)."""
    texts: list[str] = list(_content_text(system)) if system is not None else []
    n_messages = 0
    for message in messages:
        n_messages += 1
        if isinstance(message, Mapping):
            texts.extend(_content_text(message.get("content")))
            for key in ("name", "tool_calls"):
                if message.get(key):
                    texts.append(json.dumps(message[key], default=str))
        else:
            texts.extend(_content_text(message))
    counted = count_text("\n".join(texts), model)
    framing = n_messages * _TOKENS_PER_MESSAGE + _REPLY_PRIMING
    return TokenCount(counted.tokens + framing, counted.exact)
