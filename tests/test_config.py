"""Process-wide configuration: env defaults, lazy data dir, privacy in emit(), replacing recorders."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import costlens
from costlens import config
from costlens._errors import ConfigError
from costlens.store import SpendQuery
from costlens.store.memory import MemoryStore
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord


@pytest.fixture(autouse=True)
def _fresh_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "COSTLENS_DURABILITY", "COSTLENS_STORE_CONTENT", "COSTLENS_HASH_USER_IDS", "COSTLENS_BATCH_SIZE",
        "COSTLENS_FLUSH_INTERVAL_S",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    config.shutdown()
    yield
    config.shutdown()


def home() -> Path:
    return Path(os.environ["COSTLENS_HOME"])


def call(**kw: object) -> CallRecord:
    return CallRecord("openai", "chat", "gpt-4o", cost_nanousd=10, **kw)  # type: ignore[arg-type]


def test_defaults_come_from_the_environment_and_touch_no_disk() -> None:
    settings = config.configure()
    assert settings == config.Settings(
        store_url=f"sqlite://{home() / 'costlens.db'}",
        durability="async",
        store_content=False,
        hash_user_ids=False,
    )
    assert not (home() / "costlens.db").exists()
    assert config.default_store_url() == settings.store_url
    assert config.data_dir() == home()


def test_the_data_folder_is_created_on_first_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTLENS_HOME", str(tmp_path / "not" / "yet"))
    config.configure()
    assert not (tmp_path / "not").exists()
    config.emit(call())
    assert config.flush(timeout=10)
    assert (tmp_path / "not" / "yet" / "costlens.db").exists()


def test_env_picks_store_durability_and_privacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTLENS_STORE", f"sqlite://{tmp_path / 'env.db'}")
    monkeypatch.setenv("COSTLENS_DURABILITY", "SYNC")
    monkeypatch.setenv("COSTLENS_STORE_CONTENT", "yes")
    monkeypatch.setenv("COSTLENS_HASH_USER_IDS", "1")
    settings = config.get_settings()
    assert settings == config.Settings(f"sqlite://{tmp_path / 'env.db'}", "sync", True, True)
    config.emit(call(content={"prompt": "hi"}))
    store = SQLiteStore(tmp_path / "env.db")  # sync: already written, no flush needed
    assert [r.content for r in store.iter_records()] == [{"prompt": "hi"}]
    store.close()


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTLENS_DURABILITY", "sync")
    store = MemoryStore()
    settings = config.configure(store, durability="async", store_content=True, hash_user_ids=True)
    assert settings == config.Settings(None, "async", True, True)
    assert config.get_recorder().store is store


@pytest.mark.parametrize(
    ("kwargs", "env", "message"),
    [
        ({"durability": "eventually"}, {}, "durability 'eventually' is not known: use 'async'"),
        ({}, {"COSTLENS_DURABILITY": "fast"}, "COSTLENS_DURABILITY"),
        (
            {},
            {"COSTLENS_STORE_CONTENT": "maybe"},
            "COSTLENS_STORE_CONTENT='maybe' is not a boolean: set it to 1 or 0",
        ),
        ({"store": "mysql://x"}, {}, "unknown store URL 'mysql://x': use one of the schemes"),
        ({}, {"COSTLENS_STORE": "nope"}, "unknown store URL 'nope'"),
        ({"store": 42}, {}, "takes a store URL or a Store, got int"),
        ({"batch_size": 0}, {}, "batch_size must be a whole number of records from 1 to 2,500, got 0"),
        ({"batch_size": 2.5}, {}, "batch_size must be a whole number"),
        ({"batch_size": True}, {}, "batch_size must be a whole number"),
        ({}, {"COSTLENS_BATCH_SIZE": "lots"}, "COSTLENS_BATCH_SIZE='lots' is not a whole number"),
        ({}, {"COSTLENS_BATCH_SIZE": "100000"}, "got 100000 (in configure() or COSTLENS_BATCH_SIZE)"),
        ({"flush_interval_s": 0}, {}, "flush_interval_s must be a number of seconds above 0 and at most 60"),
        ({"flush_interval_s": float("nan")}, {}, "flush_interval_s must be a number of seconds"),
        ({}, {"COSTLENS_FLUSH_INTERVAL_S": "1m"}, "COSTLENS_FLUSH_INTERVAL_S='1m' is not a number"),
        ({}, {"COSTLENS_FLUSH_INTERVAL_S": "3600"}, "got 3600.0 (in configure() or COSTLENS_FLUSH_"),
    ],
)
def test_bad_values_say_what_to_do(
    kwargs: dict[str, object], env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        config.configure(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_the_writers_wake_settings_come_from_arguments_else_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = config.configure(MemoryStore())
    assert (defaults.batch_size, defaults.flush_interval_s) == (500, 0.5)
    monkeypatch.setenv("COSTLENS_BATCH_SIZE", " 2000 ")
    monkeypatch.setenv("COSTLENS_FLUSH_INTERVAL_S", "2")
    from_env = config.configure(MemoryStore())
    assert (from_env.batch_size, from_env.flush_interval_s) == (2000, 2.0)
    recorder = config.get_recorder()
    assert (recorder._batch_size, recorder._interval) == (2000, 2.0)
    store = _Signalling()
    settings = config.configure(store, batch_size=3, flush_interval_s=60)  # arguments win
    assert (settings.batch_size, settings.flush_interval_s) == (3, 60.0)
    assert (config.get_recorder()._batch_size, config.get_recorder()._interval) == (3, 60.0)
    for _ in range(3):  # a batch's worth wakes the writer: written with no flush, long before 60 s
        config.emit(call())
    assert store.written.wait(10)
    assert len(list(store.iter_records())) == 3


class _Signalling(MemoryStore):
    """Says when a batch was written (the writer thread's work, waited for without a flush)."""

    def __init__(self) -> None:
        super().__init__()
        self.written = threading.Event()

    def append(self, records: Sequence[CallRecord]) -> None:
        super().append(records)
        self.written.set()


def test_get_recorder_configures_lazily_once() -> None:
    first = config.get_recorder()
    assert config.get_recorder() is first
    assert costlens.get_recorder() is first
    assert config.get_settings().store_url == config.default_store_url()


def test_configure_replaces_and_flushes_the_old_recorder() -> None:
    old_store, new_store = MemoryStore(), MemoryStore()
    config.configure(old_store)
    old = config.get_recorder()
    for _ in range(3):
        config.emit(call())
    config.configure(new_store, durability="sync")
    assert sum(r.calls for r in old_store.query(SpendQuery())) == 3  # flushed on replacement
    assert config.get_recorder() is not old
    config.emit(call())
    assert sum(r.calls for r in new_store.query(SpendQuery())) == 1


def test_owned_stores_are_closed_with_their_recorder(tmp_path: Path) -> None:
    config.configure(f"sqlite://{tmp_path / 'owned.db'}", durability="sync")
    owned = config.get_recorder().store
    config.emit(call())
    config.configure("memory://")
    with pytest.raises(RuntimeError, match="closed"):
        owned.append([call()])
    mine = MemoryStore()
    config.configure(mine)
    config.configure("memory://")
    mine.append([call()])  # a Store the caller passed stays open


def test_emit_drops_content_unless_opted_in() -> None:
    store = MemoryStore()
    config.configure(store, durability="sync")
    config.emit(call(content={"prompt": "secret"}))
    config.configure(store, durability="sync", store_content=True)
    config.emit(call(content={"prompt": "kept"}))
    assert sorted(str(r.content) for r in store.iter_records()) == ["None", "{'prompt': 'kept'}"]


def test_emit_hashes_user_ids_when_asked() -> None:
    store = MemoryStore()
    config.configure(store, durability="sync", hash_user_ids=True)
    config.emit(call(tags={"user": "alice@example.com", "feature": "f"}))
    config.emit(call(tags={"feature": "g"}))
    tags = sorted((r.tags for r in store.iter_records()), key=len)
    digest = hashlib.sha256(b"alice@example.com").hexdigest()[:16]
    assert tags == [{"feature": "g"}, {"user": digest, "feature": "f"}]
    assert config.hash_user_id("alice@example.com") == digest


def test_emit_never_raises_outside_strict_mode(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(MemoryStore):
        def append(self, records: object) -> None:
            raise AssertionError("bug in a store")

    config.configure(Broken(), durability="sync")
    recorder = config.get_recorder()
    monkeypatch.setattr(recorder, "submit", lambda record: 1 / 0)
    monkeypatch.setenv("COSTLENS_STRICT", "0")
    config.emit(call())
    assert "recording an LLM call failed" in caplog.text
    monkeypatch.setenv("COSTLENS_STRICT", "1")
    with pytest.raises(ZeroDivisionError):
        config.emit(call())


def test_flush_without_configuration_is_a_no_op() -> None:
    assert config.flush() is True
    assert costlens.flush(timeout=1) is True


def test_replay_spool_uses_the_current_recorder(tmp_path: Path) -> None:
    from costlens.recorder import spool_records

    spooled = [call(), call()]
    spool_records(spooled, home() / "spool")
    store = MemoryStore()
    config.configure(store)
    assert config.replay_spool() == 2
    assert {r.id for r in store.iter_records()} == {r.id for r in spooled}


def test_import_costlens_loads_no_config_cli_or_store() -> None:
    code = (
        "import sys, costlens; "
        "bad = [m for m in ('costlens.config', 'costlens.recorder', 'costlens.store', 'sqlite3', "
        "'typer', 'rich', 'platformdirs') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
