"""Offline token counts: exact for OpenAI models, and the BPE table built once per process."""

from __future__ import annotations

import threading
from typing import Any

import pytest

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
