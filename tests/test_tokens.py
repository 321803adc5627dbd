"""Offline token counts: exact for OpenAI models, and the BPE table built once per process."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costlens import tokens


def test_a_concurrent_first_burst_builds_the_table_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight threads counting at once used to build eight tables (~0.6 s of CPU each)."""
    bpe_openai = pytest.importorskip("bpe_openai")
    real = bpe_openai.get_encoding
    built: list[str] = []
    started = threading.Barrier(8)

    def counting(name: str) -> Any:
        built.append(name)
        return real(name)

    monkeypatch.setattr(bpe_openai, "get_encoding", counting)
    tokens._build_encoder.cache_clear()
    tokens._count.cache_clear()
    counts: list[int] = []

    def worker(i: int) -> None:
        started.wait()
        counts.append(tokens.count_text(f"hello world number {i}", "gpt-4o").tokens)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tokens._build_encoder.cache_clear()  # later tests get the real, unpatched table
    tokens._count.cache_clear()
    assert built == ["o200k_base"]
    assert sorted(counts) == [5] * 8  # "hello", " world", " number", " ", digit


def test_counts_are_exact_for_openai_models_and_flagged_otherwise() -> None:
    pytest.importorskip("bpe_openai")
    assert tokens.count_text("hello world", "gpt-4o-mini") == tokens.TokenCount(2, True)
    assert tokens.count_text("hello world", "ft:gpt-4o-mini-2024-07-18:org::x").exact
    assert not tokens.count_text("hello world", "claude-sonnet-4").exact
    assert tokens.count_text("", "gpt-4o") == tokens.TokenCount(0, True)


def test_tokens_in_is_count_text_with_the_table_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for text in ("", "hello world", "x" * 37):
        assert tokens.tokens_in(text, "o200k_base") == tokens.count_text(text, "gpt-4o").tokens
    tokens._count.cache_clear()
    monkeypatch.setattr(tokens, "_encoder", lambda name: None)  # no tokenizer installed: the char bound
    assert tokens.tokens_in("x" * 37, "o200k_base") == tokens.count_text("x" * 37, "gpt-4o").tokens == 10
    tokens._count.cache_clear()


_words = st.text(alphabet="ab c\n", max_size=12)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant"])},
    optional={
        "content": st.one_of(
            _words,
            st.none(),
            st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": _words}), max_size=2),
        ),
        "name": _words,
        "cache_control": st.just({"type": "ephemeral"}),
    },
)


@settings(max_examples=150, deadline=None)
@given(messages=st.lists(_message, max_size=5), model=st.sampled_from(["gpt-4o-mini", "claude-sonnet-4"]))
def test_the_prompt_count_fast_paths_agree_with_the_general_one(
    messages: list[dict[str, Any]], model: str
) -> None:
    """`_prompt` takes a shortcut for the usual message and `input_tokens` one for the table lookup:
    both must count what the general path (every text through `_item_texts` and `count_text`) counts."""
    from costlens.pipeline._estimate import _item_texts, input_tokens

    texts = [t for m in messages for t in _item_texts(m)]
    body = {"model": model, "messages": messages}
    got, exact = input_tokens("chat", body, model)
    framing = len(messages) * 3 + 3
    if exact:
        assert got == sum(tokens.count_text(t, model).tokens for t in texts) + framing
    else:
        assert got == sum(len(t.encode()) for t in texts) + len(messages) * 8 + 3


_PROSE = st.text(
    alphabet=st.sampled_from(list("abcdefgh ÄéZ'\n\t.,!?0123456789-_:/")) | st.characters(),
    min_size=0,
    max_size=400,
)


@settings(max_examples=150, deadline=None)
@given(text=_PROSE, size=st.integers(min_value=8, max_value=120))
def test_a_text_counted_in_pieces_is_cut_only_before_a_space_between_letters(text: str, size: int) -> None:
    """Every cut the piecewise count makes is before a space between two letters, or at the limit
    when there is none; the pieces put together are the text."""
    pieces = list(tokens._pieces(text, size))
    assert "".join(pieces) == text
    assert all(0 < len(p) <= size for p in pieces[:-1]) and len(pieces[-1]) <= max(size, len(text))
    at = 0
    for piece in pieces[:-1]:
        at += len(piece)
        between_letters = text[at] == " " and text[at - 1].isalpha() and text[at + 1 : at + 2].isalpha()
        assert between_letters or len(piece) == size


_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzÄé'", min_size=1, max_size=12)
_WORDS = st.lists(_WORD, min_size=1, max_size=200)
_SEPARATOR = st.sampled_from([" ", "  ", ", ", ". ", "\n", " 42 ", "'s ", "-"])
_SEPARATORS = st.lists(_SEPARATOR, min_size=1, max_size=50)


@settings(max_examples=80, deadline=None)
@given(words=_WORDS, seps=_SEPARATORS, encoding=st.sampled_from(["o200k_base", "cl100k_base"]))
def test_a_text_counted_in_pieces_counts_what_the_whole_text_counts(
    words: list[str], seps: list[str], encoding: str
) -> None:
    """Prose counted in pieces (as a prompt of a million characters or more is: bpe-openai refuses
    those whole) has the whole text's exact count; pieces made small here to cut often."""
    pytest.importorskip("bpe_openai")
    encoder = tokens._encoder(encoding)
    assert encoder is not None
    text = "".join(w + seps[i % len(seps)] for i, w in enumerate(words))
    pieces = list(tokens._pieces(text, 40))
    cuts = [sum(len(p) for p in pieces[: i + 1]) for i in range(len(pieces) - 1)]
    whole, counted = len(encoder.encode(text)), tokens._encoded_length(encoder, text, 40)
    if all(text[c] == " " and text[c - 1].isalpha() and text[c + 1 : c + 2].isalpha() for c in cuts):
        assert counted == whole
    else:  # cut where it must be: a token split in two at each such cut, at most
        assert abs(counted - whole) <= 2 * (len(pieces) - 1)


def test_a_prompt_of_a_million_characters_is_counted_not_refused() -> None:
    """bpe-openai raises for 1,000,000 characters or more: a 1M-token model's prompt was an error
    (and a budgeted call with it refused as if the ledger were down). The count of a phrase repeated
    k times is linear in k (checked on small k), so the million-character count is known exactly."""
    pytest.importorskip("bpe_openai")
    phrase, times = "lorem ipsum dolor sit amet ", 40_000  # 1,080,000 characters
    small = [tokens.count_text(phrase * k, "gpt-4.1").tokens for k in (1, 2, 3, 4)]
    step = small[1] - small[0]
    assert [small[0] + step * i for i in range(4)] == small
    counted = tokens.count_text(phrase * times, "gpt-4.1")
    assert counted.exact and counted.tokens == small[0] + step * (times - 1)


def test_long_texts_are_remembered_a_few_at_a_time() -> None:
    """A count is cached with its text: long texts (16,384 characters or more) go to a cache of 8,
    so counting many long prompts keeps a few alive, not 512; the count is the same either way."""
    pytest.importorskip("bpe_openai")
    tokens._count.cache_clear()
    tokens._count_long.cache_clear()
    texts = [f"document {i} " + "word " * 4_000 for i in range(20)]
    counts = [tokens.count_text(text, "gpt-4o").tokens for text in texts]
    assert counts == [tokens._count_now(text, "o200k_base") for text in texts]
    assert tokens._count_long.cache_info().currsize == 8 and tokens._count.cache_info().currsize == 0
    assert tokens.count_text(texts[-1], "gpt-4o").tokens == counts[-1]
    assert tokens._count_long.cache_info().hits == 1
