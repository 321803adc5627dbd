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
