"""`costlens budgets list|status|set|remove`: every format, and one-line errors (exit 2 usage, 1 failure)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from costlens.budgets import Budget, BudgetKey
from costlens.budgets._sqlite_ledger import SQLiteLedger
from costlens.cli import app

runner = CliRunner()


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """COSTLENS_HOME is a tmp folder (conftest): the default budgets file and ledger live there."""
    from costlens.config import data_dir

    return data_dir()


def test_set_list_and_remove_in_the_default_file(home: Path) -> None:
    ok = run(
        "budgets", "set", "conv", "--limit", "5.00", "--window", "day", "--timezone", "Europe/Berlin",
        "--scope", "feature=conversation", "--mode", "downgrade", "--downgrade-to", "gpt-4o-mini",
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "Added budget 'conv'" in ok.output
    assert (
        run("budgets", "set", "users", "--limit", "1", "--window", "24h", "--scope", "user=*").exit_code == 0
    )
    listed = run("budgets", "list")
    assert listed.exit_code == 0
    assert "conv" in listed.output and "feature=conversation" in listed.output and "$5.00" in listed.output
    rows = json.loads(run("budgets", "list", "--format", "json").output)
    assert [r["name"] for r in rows] == ["conv", "users"] and rows[0]["limit_usd"] == "5.00"
    table = list(csv.DictReader(io.StringIO(run("budgets", "list", "--format", "csv").output)))
    assert table[1] == {
        "name": "users", "scope": "user=*", "limit_usd": "1", "window": "24h", "mode": "block",
        "downgrade_to": "", "thresholds": "50%, 80%, 100%", "notify": "", "defined_in": "file",
    }  # fmt: skip
    updated = run("budgets", "set", "conv", "--limit", "7.5")
    assert updated.exit_code == 0 and "Updated budget 'conv'" in updated.output
    assert json.loads(run("budgets", "list", "--format", "json").output)[0]["downgrade_to"] == "gpt-4o-mini"
    assert run("budgets", "remove", "users").exit_code == 0
    assert [r["name"] for r in json.loads(run("budgets", "list", "--format", "json").output)] == ["conv"]
    assert (home / "budgets.toml").is_file()


def _first_hour(at: datetime) -> bool:
    return at - at.replace(hour=0, minute=0, second=0, microsecond=0) < timedelta(hours=1)


def test_status_reads_the_ledger(tmp_path: Path) -> None:
    file, ledger_path = tmp_path / "b.toml", tmp_path / "l.db"
    file.write_text(
        f'[settings]\nledger = "sqlite://{ledger_path}"\n\n'
        '[[budgets]]\nname = "d"\nlimit_usd = "2"\nwindow = "day"\n\n'
        '[[budgets]]\nname = "u"\nlimit_usd = "1"\nwindow = "lifetime"\nscope = { user = "*" }\n'
    )
    ledger = SQLiteLedger(ledger_path)
    now = datetime.now(UTC)
    spends = [
        (Budget("d", limit_usd=2, window="day"), "d", 1_100_000_000),
        (Budget("u", limit_usd=1, window="lifetime"), "u[user=ann]", 250_000_000),
    ]
    for budget, key, amount in spends:
        pos = budget.window.position(now)
        ledger.settle(
            ledger.reserve([BudgetKey(key, budget.limit_nanousd, pos.since_us, pos.bucket_us)], 5, 60), amount
        )
    ledger.close()
    rows = json.loads(run("budgets", "status", "--file", str(file), "--format", "json").output)
    d, u = rows
    assert (d["key"], d["spent_usd"], d["remaining_usd"], d["thresholds_crossed"]) == (
        "d",
        "1.1",
        "0.9",
        ["50%"],
    )
    # The projection is withheld for the first 1/24 of a window (too little to extrapolate from).
    early, after = _first_hour(now), datetime.now(UTC)
    if after.date() != now.date() or _first_hour(after) != early:
        pytest.skip("the clock crossed midnight or 01:00 UTC during the test")
    assert d["window_end"] is not None and (d["projected_usd"] is None) == early
    assert (u["key"], u["spent_usd"], u["projected_usd"]) == ("u[user=ann]", "0.25", None)
    table = run("budgets", "status", "--file", str(file))
    assert table.exit_code == 0 and "u[user=ann]" in table.output and "$1.10" in table.output
    only = list(
        csv.DictReader(
            io.StringIO(run("budgets", "status", "d", "--file", str(file), "--format", "csv").output)
        )
    )
    assert [r["key"] for r in only] == ["d"] and only[0]["limit_usd"] == "2"


def test_status_without_a_ledger_yet_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    file = tmp_path / "b.toml"
    file.write_text(
        f'[settings]\nledger = "sqlite://{tmp_path / "l.db"}"\n[[budgets]]\nname = "d"\nlimit_usd = 1\n'
    )
    result = run("budgets", "status", "--file", str(file), "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["spent_usd"] == "0"
    assert not (tmp_path / "l.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("budgets", "set", "new"), "give its limit"),
        (("budgets", "set", "x", "--limit", "-1"), "positive"),
        (("budgets", "set", "x", "--limit", "1", "--window", "fortnight"), "unknown window"),
        (("budgets", "set", "x", "--limit", "1", "--scope", "feature"), "KEY=VALUE"),
        (("budgets", "set", "x", "--limit", "1", "--mode", "downgrade"), "downgrade_to"),
        (("budgets", "set", "x", "--limit", "1", "--notify", "ops"), "no [[alerts]] table is named 'ops'"),
        (("budgets", "list", "--format", "xml"), "unknown --format"),
        (("budgets", "status", "nope"), "no budget named 'nope'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(home: Path, args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_failures_exit_1_with_one_line(home: Path) -> None:
    result = run("budgets", "remove", "nope")
    assert result.exit_code == 1 and "no budget named 'nope'" in result.output
    (home / "budgets.toml").parent.mkdir(parents=True, exist_ok=True)
    (home / "budgets.toml").write_text('[[budgets]]\nname = "x"\nlimit_usd = "1"\nwindow = "dayly"\n')
    broken = run("budgets", "list")
    assert broken.exit_code == 1 and "line 4" in broken.output and "unknown window" in broken.output
    assert len(broken.output.strip().splitlines()) == 1
    assert run("budgets", "remove", "x").exit_code == 1  # a broken file is reported, not edited


def test_empty_list(home: Path) -> None:
    result = run("budgets", "list")
    assert result.exit_code == 0 and "costlens budgets set NAME --limit USD" in result.output


def test_status_of_a_budget_neither_in_the_file_nor_recorded_in_the_ledger(home: Path) -> None:
    result = run("budgets", "status", "from-code")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "nor defined in code" in result.output and "costlens budgets set" in result.output


def test_status_money_columns_share_one_precision(tmp_path: Path) -> None:
    file, ledger_path = tmp_path / "b.toml", tmp_path / "l.db"
    file.write_text(
        f'[settings]\nledger = "sqlite://{ledger_path}"\n[[budgets]]\nname = "d"\nlimit_usd = "2"\n'
    )
    ledger = SQLiteLedger(ledger_path)
    budget = Budget("d", limit_usd=2)
    pos = budget.window.position(datetime.now(UTC))
    key = BudgetKey("d", budget.limit_nanousd, pos.since_us, pos.bucket_us)
    ledger.settle(ledger.reserve([key], 5, 60), 1_234_500)
    ledger.close()
    table = run("budgets", "status", "--file", str(file)).output
    assert (
        "$2.0012345" not in table
        and "$2.0000000" in table
        and "$0.0012345" in table
        and "$1.9987655" in table
    )


@pytest.mark.parametrize(
    ("mode", "downgrade_to", "says"),
    [
        ("block", None, "calls that would pass it are refused"),
        ("downgrade", "gpt-4o-mini", "downgraded to gpt-4o-mini"),
        ("warn", None, "calls go on"),
    ],
)
def test_limit_effect_words_what_each_mode_does(mode: str, downgrade_to: str | None, says: str) -> None:
    from costlens.budgets._alerts import limit_effect

    text = limit_effect(mode, downgrade_to)
    assert says in text
    if mode != "block":
        assert not text.startswith("calls that would pass it are refused")
