"""FanoutStore: appends reach every store, reads come from the primary, failures name the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from costlens._errors import ConfigError
from costlens.store import SpendQuery, Store, StoreNotFound, check_store_url, open_store
from costlens.store._base import scan_calls, write_all
from costlens.store.fanout import FanoutStore, FanoutWriteError, safe_url
from costlens.store.memory import MemoryStore
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord
from tests.servers import server_down


def records(n: int, model: str = "gpt-4o") -> list[CallRecord]:
    return [CallRecord("openai", "chat", model, cost_nanousd=10 * (i + 1), input_tokens=i) for i in range(n)]


def calls(store: Store) -> int:
    found = store.query(SpendQuery())
    return found[0].calls if found else 0


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[FanoutStore, MemoryStore, SQLiteStore]]:
    memory, sqlite = MemoryStore(), SQLiteStore(tmp_path / "calls.db")
    fan = FanoutStore(memory, sqlite)
    yield fan, memory, sqlite
    fan.close()


def test_appends_reach_every_store_and_reads_come_from_the_primary(
    pair: tuple[FanoutStore, MemoryStore, SQLiteStore],
) -> None:
    fan, memory, sqlite = pair
    batch = records(3)
    fan.append(batch)
    fan.append(batch)  # idempotent on every store
    assert calls(memory) == calls(sqlite) == 3
    sqlite.append(records(2, "only-in-sqlite"))  # not visible: reads go to the primary
    assert calls(fan) == 3
    assert [r.id for r in fan.iter_records(newest_first=True, limit=2)] == [r.id for r in batch][::-1][:2]
    assert fan.unpriced_models() == memory.unpriced_models() == []
    assert sorted(scan_calls(fan, SpendQuery(("model",)), ("id",))) == sorted(("gpt-4o", r.id) for r in batch)
    with write_all(fan) as write:
        assert write(records(4)) == 4
    assert calls(memory) == calls(sqlite) - 2 == 7
    fan.migrate()
    assert isinstance(fan, Store)


@pytest.mark.parametrize("failing_first", [True, False])
def test_a_failing_store_is_named_after_the_others_were_written(tmp_path: Path, failing_first: bool) -> None:
    (tmp_path / "a-folder.db").mkdir()
    broken, good = SQLiteStore(tmp_path / "a-folder.db"), MemoryStore()
    stores = (broken, good) if failing_first else (good, broken)
    fan = FanoutStore(*stores, names=["sqlite://broken" if s is broken else "memory://" for s in stores])
    batch = records(2)
    with pytest.raises(FanoutWriteError, match=r"1 of 2 stores \(sqlite://broken: StoreUnusable") as caught:
        fan.append(batch)
    assert "replaying" in str(caught.value)
    assert [name for name, _ in caught.value.failures] == ["sqlite://broken"]
    assert calls(good) == 2


def test_sqlite_and_clickhouse_from_a_url_list(tmp_path: Path, clickhouse_url: str) -> None:
    url = f"sqlite://{tmp_path / 'calls.db'}, {clickhouse_url}"
    fan = open_store(url)
    assert isinstance(fan, FanoutStore)
    sqlite, ch = fan.stores
    batch = records(5)
    fan.append(batch)
    assert calls(sqlite) == calls(ch) == 5
    ch.append(records(1, "only-in-clickhouse"))
    assert calls(fan) == 5
    more = records(3, "later")
    with server_down("clickhouse"):
        with pytest.raises(FanoutWriteError, match=f"{clickhouse_url}: ClickHouseUnavailable"):
            fan.append(more)
        assert calls(sqlite) == 8  # the primary got them, and reads keep working
    fan.append(batch + more)  # the spool's replay: each store keeps each record once
    assert calls(sqlite) == 8
    assert calls(ch) == 9
    fan.close()


def test_url_list_parsing(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    fan = open_store(f" memory:// ,sqlite://{db}")
    assert isinstance(fan, FanoutStore)
    assert isinstance(fan.primary, MemoryStore) and isinstance(fan.stores[1], SQLiteStore)
    assert repr(fan) == f"FanoutStore(memory://, sqlite://{db})"
    assert isinstance(open_store("memory://"), MemoryStore)  # one URL: as before
    check_store_url(f"memory://,sqlite://{db}")
    with pytest.raises(ConfigError, match=r"part 2 \('nope://x'\): unknown store URL"):
        check_store_url("memory://,nope://x")
    with pytest.raises(ConfigError, match="part 2 is empty"):
        open_store("memory://,,sqlite:///tmp/x.db")
    with pytest.raises(ConfigError, match="listed twice"):
        open_store(f"sqlite://{db},sqlite://{db}")
    with pytest.raises(ConfigError, match=r"part 2 \('sqlite://'\): bad SQLite store URL"):
        open_store("memory://,sqlite://")
    with pytest.raises(ConfigError) as caught:
        open_store("memory://,clickhouse://bob:s3cret@/db")
    assert "s3cret" not in str(caught.value) and "part 2" in str(caught.value)
    assert safe_url("clickhouse://bob:s3cret@h:9000/db") == "clickhouse://bob:***@h:9000/db"
    fan.close()


def test_readers_need_only_the_primary_to_exist(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFound):
        open_store(f"sqlite://{tmp_path / 'missing.db'},memory://", create=False)
    assert not (tmp_path / "missing.db").exists()
    opened: Any = open_store(f"memory://,sqlite://{tmp_path / 'missing.db'}", create=False)
    assert isinstance(opened, FanoutStore)
    opened.close()
