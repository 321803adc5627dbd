"""A store server that goes down mid-run: tracked calls keep working, their records go to the spool,
and when the server is back every record arrives exactly once (PostgreSQL, ClickHouse)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import openai
import pytest

import costlens
from costlens.config import get_recorder
from costlens.store import SpendQuery, open_store
from costlens.testing import FakeProvider
from tests.servers import server_down

MSG: Any = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize("backend", ["postgres", "clickhouse"])
def test_records_made_while_the_store_is_down_arrive_once_when_it_returns(
    backend: str, request: pytest.FixtureRequest, fake: FakeProvider, tmp_path: Path
) -> None:
    url: str = request.getfixturevalue(f"{backend}_url")
    costlens.configure(store=url, durability="async")
    client = costlens.track(openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0))

    def calls(n: int) -> None:
        for _ in range(n):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        costlens.flush(timeout=60)

    try:
        calls(20)
        recorder = get_recorder()
        assert recorder.spooled == 0
        with server_down(backend):
            calls(25)  # the calls succeed; their records cannot be written and are spooled
            assert recorder.spooled == 25
            assert list(recorder.spool_dir.glob("*.jsonl"))
        calls(5)  # the first batch the store accepts brings the spool back with it
        assert not list(recorder.spool_dir.glob("*.jsonl"))
    finally:
        costlens.configure(store="memory://", durability="sync")
    store = open_store(url, create=False)
    try:
        ids = Counter(r.id for r in store.iter_records())
        [total] = store.query(SpendQuery())
        raw = store.query(SpendQuery(use_rollups=False))
    finally:
        store.close()
    assert len(ids) == 50 and set(ids.values()) == {1}
    assert total.calls == 50 and raw[0].calls == 50
    assert total.cost_nanousd == raw[0].cost_nanousd > 0
