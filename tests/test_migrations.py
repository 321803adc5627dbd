"""Migrations are append-only: names and SQL of applied ones are pinned; each applies once, in order."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from costlens._errors import ConfigError
from costlens.store import SpendQuery
from costlens.store._migrations import MIGRATIONS, migration_hash, statements
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

# Append a line when you append a migration. NEVER edit a line: the SQL has shipped to user files.
PINNED = [
    ("0001_create_calls", "e957130c184005d11d2c0a22a347643f091c877ac84f25c4c11584e49cf2ecbf"),
    ("0002_create_call_tags", "dc490ecbc45005e636e09cc37e349c0ad0741dcbf1af08b803df352b8d2cb8dd"),
    ("0003_index_unpriced_calls", "d747100a3e01fef072e90cf814afb7fb795acda098d0d0c8956f30827f1962ab"),
]


def test_migration_names_and_sql_are_pinned() -> None:
    assert [(name, migration_hash(sql)) for name, sql in MIGRATIONS] == PINNED


def test_names_are_ordered_and_unique() -> None:
    names = [name for name, _ in MIGRATIONS]
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    assert all(statements(sql) for _, sql in MIGRATIONS)


def applied(path: Path) -> list[str]:
    with sqlite3.connect(path) as raw:
        rows = [name for (name,) in raw.execute("SELECT name FROM schema_migrations ORDER BY name")]
    raw.close()
    return rows


def test_fresh_file_gets_every_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = SQLiteStore(path)
    store.migrate()
    store.migrate()
    store.close()
    SQLiteStore(path).close()
    assert applied(path) == [name for name, _ in MIGRATIONS]


def test_an_old_file_gets_only_the_missing_migrations(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    name, sql = MIGRATIONS[0]
    raw = sqlite3.connect(path)
    for statement in statements(sql):
        raw.execute(statement)
    raw.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    raw.execute("INSERT INTO schema_migrations VALUES (?, '2025-01-01T00:00:00+00:00')", (name,))
    raw.execute(
        "INSERT INTO calls (id, started_at_us, provider, operation, request_model) "
        "VALUES ('x', 0, 'p', 'o', 'm')"
    )
    raw.commit()
    raw.close()
    store = SQLiteStore(path)
    store.append([CallRecord("openai", "chat", "m", tags={"feature": "f"})])
    assert store.query(SpendQuery())[0].calls == 2
    store.close()
    assert applied(path) == [name for name, _ in MIGRATIONS]


def test_a_file_from_a_newer_costlens_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteStore(path).migrate()
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO schema_migrations VALUES ('9999_future', 'later')")
    raw.close()
    store = SQLiteStore(path)
    with pytest.raises(ConfigError, match=r"9999_future.*upgrade costlens"):
        store.query(SpendQuery())
    store.close()


def test_without_auto_migrate_nothing_is_created_until_asked(tmp_path: Path) -> None:
    path = tmp_path / "manual.db"
    store = SQLiteStore(path, auto_migrate=False)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        store.query(SpendQuery())
    store.migrate()
    assert store.query(SpendQuery()) == []
    store.close()
