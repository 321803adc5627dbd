"""Migrations are append-only: names and SQL of applied ones are pinned; each applies once, in order."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from costlens._errors import ConfigError
from costlens.store import SpendQuery
from costlens.store._migrations import MIGRATIONS, migration_hash, sqlite_statements, statements
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

# Append a line when you append a migration. NEVER edit a line: the SQL has shipped to user files.
PINNED = [
    ("0001_create_calls", "e957130c184005d11d2c0a22a347643f091c877ac84f25c4c11584e49cf2ecbf"),
    ("0002_create_call_tags", "dc490ecbc45005e636e09cc37e349c0ad0741dcbf1af08b803df352b8d2cb8dd"),
    ("0003_index_unpriced_calls", "d747100a3e01fef072e90cf814afb7fb795acda098d0d0c8956f30827f1962ab"),
    ("0004_tagsets", "bd8a51247229172b70c62af8c0ee67a5b9b2bfc1fe4baa9224b5d5962a1bf276"),
    ("0005_rollup_hourly", "dc3b532e26fb6fbe267de5b334479dfd1c8a0f59342c0013967f594c18b9431c"),
    ("0006_usage_parts", "4051f59bfebca5025f7753414dc8a38a1c5a0cc08a6b5472109695d0c8698cce"),
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


def test_a_file_with_call_tags_is_migrated_to_tagsets_and_rollups(tmp_path: Path) -> None:
    """0004 moves the per-call tags of 0002 into tag sets; 0005 builds the rollup from existing calls."""
    path = tmp_path / "v3.db"
    raw = sqlite3.connect(path)
    for _, sql in MIGRATIONS[:3]:
        for statement in statements(sql):
            raw.execute(statement)
    raw.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, _ in MIGRATIONS[:3]:
        raw.execute("INSERT INTO schema_migrations VALUES (?, '2025-01-01T00:00:00+00:00')", (name,))
    calls = [
        ("a", 3_600_000_000 * 10 + 5, '{"feature":"search"}', 100, 7),
        ("b", 3_600_000_000 * 10 + 9, '{"feature":"search"}', 50, None),
        ("c", 3_600_000_000 * 11, "{}", 1, 3),
    ]
    for call_id, at, tags, tokens, cost in calls:
        raw.execute(
            "INSERT INTO calls (id, started_at_us, provider, operation, request_model, input_tokens, "
            "cost_nanousd, tags) VALUES (?, ?, 'openai', 'chat', 'gpt-4o', ?, ?, ?)",
            (call_id, at, tokens, cost, tags),
        )
    raw.executemany("INSERT INTO call_tags VALUES (?, 'feature', 'search')", [("a",), ("b",)])
    raw.commit()
    raw.close()
    store = SQLiteStore(path)
    rows = {r.keys["feature"]: r for r in store.query(SpendQuery(("feature",)))}
    assert (rows["search"].calls, rows["search"].input_tokens, rows["search"].cost_nanousd) == (2, 150, 7)
    assert rows["search"].unpriced_calls == 1
    assert (rows[None].calls, rows[None].cost_nanousd) == (1, 3)
    raw_rows = store.query(SpendQuery(("feature", "hour"), use_rollups=False))
    rolled = store.query(SpendQuery(("feature", "hour")))
    assert sorted(map(repr, raw_rows)) == sorted(map(repr, rolled))
    store.close()
    with sqlite3.connect(path) as check:
        tables = {name for (name,) in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "call_tags" not in tables
        assert check.execute("SELECT SUM(calls) FROM rollup_hourly").fetchone() == (3,)
    check.close()


def test_sqlite_statements_keep_a_trigger_body_whole_and_split_the_rest_as_before() -> None:
    sql = """
CREATE TABLE a (x INTEGER);
CREATE TRIGGER t AFTER INSERT ON a BEGIN
    INSERT INTO a (x) SELECT NEW.x WHERE 0;
    DELETE FROM a WHERE x < 0;
END;
CREATE INDEX a_x ON a (x);
"""
    parts = sqlite_statements(sql)
    assert len(parts) == 3 and parts[1].startswith("CREATE TRIGGER") and parts[1].endswith("END")
    conn = sqlite3.connect(":memory:")
    for part in parts:
        conn.execute(part)  # each is one complete statement
    conn.close()
    for _, migration in MIGRATIONS:  # no trigger: the same split as statements()
        assert sqlite_statements(migration) == statements(migration)
