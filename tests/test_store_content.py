"""`store_content=True` keeps prompt and answer text (plain and streamed, both SDKs), cut to a size
and with API-key-shaped strings redacted; off by default, when nothing is kept or extracted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import costlens
from costlens.config import current_pipeline, get_pipeline
from costlens.pipeline import Pipeline, Request
from costlens.pipeline._content import content_of, redact
from costlens.store import open_store
from costlens.store.memory import MemoryStore
from costlens.testing import FakeProvider

PROMPT = "Summarise: the cat sat on the mat."
MSG: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    memory = MemoryStore()
    costlens.configure(store=memory, durability="sync", store_content=True)
    yield memory
    costlens.configure(store="memory://", durability="sync")


def _oa(fake: FakeProvider) -> openai.OpenAI:
    return costlens.track(openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0))


def _records(store: MemoryStore) -> list[Any]:
    costlens.flush()
    return list(store.iter_records())


def test_plain_and_streamed_openai_calls_keep_both_sides(fake: FakeProvider, store: MemoryStore) -> None:
    client = _oa(fake)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    plain, live = _records(store)
    assert plain.content == {"input": f"Be brief.\n{PROMPT}", "output": reply.choices[0].message.content,
                             "truncated": False}  # fmt: skip
    assert live.content is not None and live.content["output"] == streamed and streamed
    assert live.content["input"].endswith(PROMPT)


def test_anthropic_streamed_call_keeps_both_sides(fake: FakeProvider, store: MemoryStore) -> None:
    client = costlens.track(anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0))
    with client.messages.stream(
        model="claude-3-5-haiku-latest", max_tokens=50, system="Be brief.", messages=MSG[1:]
    ) as stream:
        text = stream.get_final_text()
    (record,) = _records(store)
    assert record.content == {"input": f"Be brief.\n{PROMPT}", "output": text, "truncated": False}


def test_text_is_cut_to_the_cap_and_keys_are_redacted(fake: FakeProvider, store: MemoryStore) -> None:
    costlens.configure(store=store, durability="sync", store_content=True, content_max_chars=40)
    client = _oa(fake)
    secret = "my key is sk-proj-" + "A1b2C3d4" * 5
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": secret * 3}])
    (record,) = _records(store)
    assert record.content["truncated"] is True
    assert len(record.content["input"]) == 40 and "A1b2C3d4" not in record.content["input"]
    assert record.content["input"].startswith("my key is [redacted]")


def test_content_reaches_the_sqlite_store(fake: FakeProvider, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    costlens.configure(store=url, durability="sync", store_content=True)
    try:
        _oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG)
        costlens.flush()
    finally:
        costlens.configure(store="memory://", durability="sync")
    db = open_store(url)
    try:
        (record,) = list(db.iter_records())
    finally:
        db.close()
    assert record.content is not None and record.content["input"].endswith(PROMPT)


def test_off_by_default_nothing_is_kept_or_extracted(fake: FakeProvider) -> None:
    memory = MemoryStore()
    costlens.configure(store=memory, durability="sync")
    assert get_pipeline().content_chars == 0
    _oa(fake).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    (record,) = _records(memory)
    assert record.content is None
    costlens.configure(store=memory, durability="sync", store_content=True)
    pipeline = current_pipeline()
    assert pipeline is not None and pipeline.content_chars > 0  # configure() follows the setting


def test_a_pipeline_with_content_still_yields_to_the_privacy_setting(fake: FakeProvider) -> None:
    memory = MemoryStore()
    costlens.configure(store=memory, durability="sync", store_content=False)
    own = Pipeline(sinks=get_pipeline().sinks, content_chars=100)
    call = own.start(Request("openai", "chat", "gpt-4o-mini", {"messages": MSG}))
    call.text.append("answer")
    call.finish()
    (record,) = _records(memory)
    assert record.content is None


@pytest.mark.parametrize(
    "text",
    [
        "sk-ant-api03-" + "x" * 40,
        "sk-" + "a" * 48,
        "xai-" + "b" * 40,
        "gsk_" + "c" * 40,
        "AIza" + "d" * 35,
        "Authorization: Bearer abcdefghijklmnop1234",
        "AKIAABCDEFGHIJKLMNOP",
    ],
)
def test_key_shaped_strings_are_redacted(text: str) -> None:
    assert "[redacted]" in redact(text)
    assert redact("a skeleton key opens the desk") == "a skeleton key opens the desk"


def test_bad_content_settings_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(costlens.ConfigError, match="content_max_chars"):
        costlens.configure(store="memory://", content_max_chars=0)
    monkeypatch.setenv("COSTLENS_CONTENT_MAX_CHARS", "lots")
    with pytest.raises(costlens.ConfigError, match="COSTLENS_CONTENT_MAX_CHARS"):
        costlens.configure(store="memory://")
    with pytest.raises(costlens.ConfigError, match="content_chars"):
        Pipeline(content_chars=-1)
    request = Request("openai", "responses", "gpt-4o", {"instructions": "Be brief.", "input": "hi"})
    assert content_of(request, ["ok"], 100) == {"input": "Be brief.\nhi", "output": "ok", "truncated": False}
