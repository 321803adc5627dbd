"""Budgets defined in code are visible to `costlens budgets status` in another process: each engine
records its budgets' definitions in the ledger when it is configured (never on a call), and marks one
removed; `status` and `list` show those the budgets file does not define, marked `code`."""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest
from typer.testing import CliRunner, Result

import costlens
from costlens.budgets import (
    Budget,
    BudgetDefinition,
    BudgetKey,
    Ledger,
    MemoryLedger,
    budget_status,
    recorded_budgets,
)
from costlens.budgets._sqlite_ledger import MIGRATIONS, SQLiteLedger
from costlens.cli import app
from costlens.config import configure_budgets, remove_budget, reset_budgets
from costlens.testing import FakeProvider
from tests.conftest import Recorded

T0 = datetime(2025, 6, 1, 12, tzinfo=UTC)
T0_US = 1_748_779_200_000_000
runner = CliRunner()


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    reset_budgets()


@pytest.fixture(params=["memory", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    made: Ledger = MemoryLedger() if request.param == "memory" else SQLiteLedger(tmp_path / "budgets.db")
    yield made
    made.close()


def _definition(name: str, *, source: Any = "code", at: int = T0_US, **kw: Any) -> BudgetDefinition:
    budget = Budget(name, limit_usd=kw.pop("limit_usd", "5"), **kw)
    return BudgetDefinition(name, source, "app.py (pid 1)", budget.as_dict(), at)


def _spend(url_path: Path, budget: Budget, key: str, amount: int) -> None:
    book = SQLiteLedger(url_path)
    pos = budget.window.position(datetime.now(UTC))
    r = book.reserve([BudgetKey(key, budget.limit_nanousd, pos.since_us, pos.bucket_us)], 1, 60)
    book.settle(r, amount)
    book.close()


# -- the ledger keeps the latest definition of each name ------------------------------------------------


def test_ledgers_keep_the_latest_definition_of_each_name(ledger: Ledger) -> None:
    assert ledger.definitions() == []
    first = _definition("b", limit_usd="5")
    ledger.record_definitions([first, _definition("a", window="day", scope={"user": "*"})])
    later = _definition("b", limit_usd="7.5", at=T0_US + 1)
    ledger.record_definitions([later])
    found = ledger.definitions()
    assert [d.name for d in found] == ["a", "b"]
    assert found[1] == later and found[1].definition["limit_usd"] == "7.5"
    assert Budget.from_dict(found[0].definition) == Budget(
        "a", limit_usd=5, window="day", scope={"user": "*"}
    )
    gone = BudgetDefinition("a", "code", "x", found[0].definition, T0_US + 2, removed_us=T0_US + 2)
    ledger.record_definitions([gone])
    assert [(d.name, d.removed) for d in ledger.definitions()] == [("a", True), ("b", False)]


def test_a_ledger_from_before_definitions_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE budget_schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, sql in MIGRATIONS[:3]:
            raw.executescript(sql)
            raw.execute("INSERT INTO budget_schema_migrations VALUES (?, 'then')", (name,))
    raw.close()
    book = SQLiteLedger(path)
    book.record_definitions([_definition("a")])
    assert [d.name for d in book.definitions()] == ["a"]
    book.close()


# -- engines record definitions when configured ----------------------------------------------------------


def test_configure_records_code_and_file_budgets_and_remove_marks_removed(tmp_path: Path) -> None:
    db, file = tmp_path / "l.db", tmp_path / "b.toml"
    file.write_text('[[budgets]]\nname = "from-file"\nlimit_usd = "2"\nwindow = "day"\n')
    configure_budgets(
        [Budget("in-code", limit_usd="3", window="week", scope={"feature": "chat"}, mode="warn")],
        file=file,
        ledger=f"sqlite://{db}",
        clock=lambda: T0,
    )
    costlens.budget("added", limit_usd="1", mode="downgrade", downgrade_to="gpt-4o-mini")
    found = {d.name: d for d in SQLiteLedger(db).definitions()}
    assert {n: d.source for n, d in found.items()} == {
        "from-file": "file",
        "in-code": "code",
        "added": "code",
    }
    assert found["from-file"].origin == str(file.absolute())
    assert found["in-code"].defined_us == T0_US and "pid" in found["in-code"].origin
    assert (
        found["in-code"].definition
        == Budget("in-code", limit_usd="3", window="week", scope={"feature": "chat"}, mode="warn").as_dict()
    )
    assert found["added"].definition["downgrade_to"] == "gpt-4o-mini"
    assert remove_budget("in-code") and not remove_budget("in-code")
    after = {d.name: d.removed for d in SQLiteLedger(db).definitions()}
    assert after == {"from-file": False, "in-code": True, "added": False}


def test_a_budget_in_the_file_and_in_code_is_recorded_as_the_one_in_force(tmp_path: Path) -> None:
    file = tmp_path / "b.toml"
    file.write_text('[[budgets]]\nname = "x"\nlimit_usd = "2"\n')
    engine = configure_budgets([Budget("x", limit_usd="9")], file=file, ledger="memory://")
    (only,) = engine.ledger.definitions()
    assert (only.source, only.definition["limit_usd"]) == ("code", "9")
    assert engine.get("x") == Budget("x", limit_usd="9")


def test_a_ledger_down_at_configure_time_does_not_break_configure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="costlens"):
        engine = configure_budgets([Budget("a", limit_usd=1)], ledger=f"sqlite://{blocker / 'l.db'}")
    assert engine.get("a") is not None
    assert "could not record the definitions of budgets 'a'" in caplog.text and "not-a-folder" in caplog.text


class _OldLedger:
    """A third-party ledger written before definitions: no record_definitions / definitions."""

    def __init__(self) -> None:
        self._inner = MemoryLedger()
        self.url = "old://"

    def __getattr__(self, name: str) -> Any:
        if name in ("record_definitions", "definitions"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_a_ledger_without_definitions_still_enforces_and_status_shows_the_given_budgets() -> None:
    old: Any = _OldLedger()
    engine = configure_budgets([Budget("a", limit_usd=1)], ledger=old)
    assert engine.get("a") is not None
    found = recorded_budgets(old, [])
    assert found.budgets == [] and found.notes == {}
    assert [s.key for s in budget_status([Budget("a", limit_usd=1)], old)] == ["a"]


class _Counting(MemoryLedger):
    def __init__(self) -> None:
        super().__init__()
        self.recorded = 0

    def record_definitions(self, definitions: Sequence[BudgetDefinition]) -> None:
        self.recorded += 1
        super().record_definitions(definitions)


def test_definitions_are_recorded_at_configure_time_never_on_a_call(
    fake: FakeProvider, recorded: Recorded
) -> None:
    book = _Counting()
    configure_budgets([Budget("a", limit_usd=1), Budget("b", limit_usd=2)], ledger=book)
    assert book.recorded == 1  # one write for every budget of the engine
    client = costlens.track(openai.OpenAI(base_url=fake.openai_base_url, api_key="k"), provider="openai")
    for _ in range(3):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
        )
    assert book.recorded == 1
    assert [r.status for r in recorded.all()] == ["ok"] * 3


# -- costlens budgets status / list --------------------------------------------------------------------


@pytest.fixture
def shared(tmp_path: Path) -> tuple[Path, Path]:
    """A budgets file with one budget, and the ledger it names."""
    file, db = tmp_path / "b.toml", tmp_path / "l.db"
    file.write_text(
        f'[settings]\nledger = "sqlite://{db}"\n\n'
        '[[budgets]]\nname = "in-file"\nlimit_usd = "2"\nwindow = "day"\n'
    )
    return file, db


def _define_in_code(db: Path, *budgets: Budget) -> None:
    """What another process does: configure budgets in code with the shared ledger."""
    configure_budgets(list(budgets), ledger=f"sqlite://{db}")
    reset_budgets()


def test_status_shows_budgets_defined_in_code_with_their_spend(shared: tuple[Path, Path]) -> None:
    file, db = shared
    coded = Budget("chat-code", limit_usd="4", window="month", scope={"feature": "chat"})
    _define_in_code(db, coded)
    _spend(db, coded, "chat-code", 1_000_000_000)
    rows = json.loads(run("budgets", "status", "--file", str(file), "--format", "json").stdout)
    assert [(r["budget"], r["defined_in"]) for r in rows] == [("in-file", "file"), ("chat-code", "code")]
    code = rows[1]
    assert (code["spent_usd"], code["remaining_usd"], code["limit_usd"], code["thresholds_crossed"]) == (
        "1",
        "3",
        "4",
        [],
    )
    assert code["scope"] == "feature=chat" and "pid" in code["defined_by"] and code["defined_at"]
    assert rows[0]["defined_by"] is None and rows[0]["defined_at"] is None
    table = run("budgets", "status", "--file", str(file)).output
    assert "chat-code" in table and "defined in" in table and "code" in table and "$1.00" in table
    lines = list(
        csv.DictReader(io.StringIO(run("budgets", "status", "--file", str(file), "--format", "csv").stdout))
    )
    assert [(r["key"], r["defined_in"]) for r in lines] == [("in-file", "file"), ("chat-code", "code")]
    only = json.loads(run("budgets", "status", "chat-code", "--file", str(file), "--format", "json").stdout)
    assert [r["key"] for r in only] == ["chat-code"]


def test_status_of_file_budgets_only_has_no_defined_in_column(shared: tuple[Path, Path]) -> None:
    file, _ = shared
    table = run("budgets", "status", "--file", str(file)).output
    assert "in-file" in table and "defined in" not in table


def test_a_starred_budget_defined_in_code_shows_one_row_per_value(shared: tuple[Path, Path]) -> None:
    file, db = shared
    per_user = Budget("per-user", limit_usd="1", window="lifetime", scope={"user": "*"})
    _define_in_code(db, per_user)
    _spend(db, per_user, "per-user[user=ann]", 250_000_000)
    rows = json.loads(run("budgets", "status", "--file", str(file), "--format", "json").stdout)
    assert [(r["key"], r["spent_usd"], r["defined_in"]) for r in rows[1:]] == [
        ("per-user[user=ann]", "0.25", "code")
    ]


def test_the_file_wins_and_a_note_says_how_code_differs(shared: tuple[Path, Path]) -> None:
    file, db = shared
    _define_in_code(db, Budget("in-file", limit_usd="9", window="day", mode="warn"))
    result = run("budgets", "status", "--file", str(file), "--format", "json")
    rows = json.loads(result.stdout)
    assert [(r["budget"], r["limit_usd"], r["mode"], r["defined_in"]) for r in rows] == [
        ("in-file", "2", "block", "file")
    ]
    assert "budget 'in-file' is also defined in code" in result.stderr
    assert "limit_usd 2 in the file, 9 in code" in result.stderr and "mode block in the file" in result.stderr
    _define_in_code(db, Budget("in-file", limit_usd="2", window="day"))  # the same: nothing to say
    assert "also defined" not in run("budgets", "status", "--file", str(file), "--format", "json").stderr


def test_removed_budgets_and_those_taken_out_of_the_file_are_not_shown(shared: tuple[Path, Path]) -> None:
    file, db = shared
    configure_budgets([Budget("gone", limit_usd=1), Budget("kept", limit_usd=1)], ledger=f"sqlite://{db}")
    assert remove_budget("gone")
    reset_budgets()
    # a process that read this very file recorded "in-file"; then it is taken out of the file
    configure_budgets(file=file)
    reset_budgets()
    file.write_text(f'[settings]\nledger = "sqlite://{db}"\n')
    rows = json.loads(run("budgets", "status", "--file", str(file), "--format", "json").stdout)
    assert [r["budget"] for r in rows] == ["kept"]
    missing = run("budgets", "status", "gone", "--file", str(file))
    assert missing.exit_code == 2 and "no budget named 'gone'" in missing.output


def test_a_budget_from_another_budgets_file_is_shown_as_defined_there(
    shared: tuple[Path, Path], tmp_path: Path
) -> None:
    file, db = shared
    other = tmp_path / "other.toml"
    other.write_text(f'[settings]\nledger = "sqlite://{db}"\n[[budgets]]\nname = "theirs"\nlimit_usd = "3"\n')
    configure_budgets(file=other)
    reset_budgets()
    rows = json.loads(run("budgets", "status", "--file", str(file), "--format", "json").stdout)
    assert [(r["budget"], r["defined_in"], r["defined_by"]) for r in rows] == [
        ("in-file", "file", None),
        ("theirs", "file", str(other)),
    ]


def test_list_shows_budgets_defined_in_code(shared: tuple[Path, Path]) -> None:
    file, db = shared
    _define_in_code(db, Budget("chat-code", limit_usd="4", scope={"feature": "chat"}))
    rows = json.loads(run("budgets", "list", "--file", str(file), "--format", "json").stdout)
    assert [(r["name"], r["defined_in"]) for r in rows] == [("in-file", "file"), ("chat-code", "code")]
    assert rows[1]["limit_usd"] == "4" and rows[1]["scope"] == {"feature": "chat"}
    lines = list(
        csv.DictReader(io.StringIO(run("budgets", "list", "--file", str(file), "--format", "csv").stdout))
    )
    assert [(r["name"], r["defined_in"]) for r in lines] == [("in-file", "file"), ("chat-code", "code")]
    table = run("budgets", "list", "--file", str(file)).output
    assert "chat-code" in table and "defined in code" in table


def test_status_and_list_create_no_ledger(tmp_path: Path) -> None:
    file, db = tmp_path / "b.toml", tmp_path / "l.db"
    file.write_text(f'[settings]\nledger = "sqlite://{db}"\n[[budgets]]\nname = "d"\nlimit_usd = 1\n')
    assert run("budgets", "list", "--file", str(file)).exit_code == 0
    assert run("budgets", "status", "--file", str(file)).exit_code == 0
    assert not db.exists()


def test_a_budget_defined_in_code_in_another_process_shows_in_status(tmp_path: Path) -> None:
    """The issue itself: one process defines a budget in code and spends under it; `status` (this
    process) shows it, with its spend."""
    db, file = tmp_path / "l.db", tmp_path / "b.toml"
    file.write_text(f'[settings]\nledger = "sqlite://{db}"\n')
    script = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "import costlens\n"
        "from costlens.budgets import BudgetKey\n"
        "from costlens.config import configure_budgets\n"
        "engine = configure_budgets(ledger=sys.argv[1])\n"
        "b = costlens.budget('batch', limit_usd='10', window='day', mode='warn')\n"
        "pos = b.window.position(datetime.now(UTC))\n"
        "key = BudgetKey('batch', b.limit_nanousd, pos.since_us, pos.bucket_us, False)\n"
        "engine.ledger.settle(engine.ledger.reserve([key], 1, 60), 2_500_000_000)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, f"sqlite://{db}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(run("budgets", "status", "--file", str(file), "--format", "json").stdout)
    assert [(r["budget"], r["mode"], r["spent_usd"], r["defined_in"]) for r in rows] == [
        ("batch", "warn", "2.5", "code")
    ]
    assert "-c (pid" in rows[0]["defined_by"]


def test_remove_marks_a_budget_defined_in_code_removed(shared: tuple[Path, Path]) -> None:
    file, db = shared
    _define_in_code(db, Budget("stale", limit_usd="1"))
    before = file.read_text()
    done = run("budgets", "remove", "stale", "--file", str(file))
    assert done.exit_code == 0, done.output
    assert "Removed budget 'stale' (defined in code by" in done.output
    assert file.read_text() == before
    assert [d.removed for d in SQLiteLedger(db).definitions() if d.name == "stale"] == [True]
    assert "stale" not in run("budgets", "status", "--file", str(file), "--format", "json").stdout
    again = run("budgets", "remove", "stale", "--file", str(file))
    assert again.exit_code == 1 and "no budget named 'stale'" in again.output


def test_the_table_names_another_budgets_file(shared: tuple[Path, Path], tmp_path: Path) -> None:
    file, db = shared
    other = tmp_path / "other.toml"
    other.write_text(f'[settings]\nledger = "sqlite://{db}"\n[[budgets]]\nname = "theirs"\nlimit_usd = "3"\n')
    configure_budgets(file=other)
    reset_budgets()
    status = run("budgets", "status", "--file", str(file)).output
    listed = run("budgets", "list", "--file", str(file)).output
    for table in (status, listed):
        assert "theirs" in table and "other.toml" in table and "defined in code" not in table
