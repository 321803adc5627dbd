"""Issue 10, items 14-16 for the CLI: stores that are missing or unusable, follow, keys, time ranges,
plots, unpriced groups, units, local-time windows, one-line usage errors, NO_COLOR, money precision."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner, Result

from costlens.cli import app
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

runner = CliRunner()
NOW = datetime.now(UTC).replace(microsecond=0)


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""
    return result.stderr


def call(
    model: str, cost: int | None, *, minutes_ago: float = 60, tokens: int = 1000, **tags: str
) -> CallRecord:
    return CallRecord(
        "openai",
        "chat",
        model,
        started_at=NOW - timedelta(minutes=minutes_ago),
        input_tokens=tokens,
        output_tokens=100,
        cost_nanousd=cost,
        price_known=cost is not None,
        tags=tags,
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    store = SQLiteStore(tmp_path / "calls.db")
    store.append(
        [
            call("gpt-4o-mini", 1_234_500, feature="search"),
            call("gpt-4o-mini", None, minutes_ago=70, feature="search"),  # partly priced group
            call("claude-x", 900_000_000, minutes_ago=120, feature="chat"),
            call("mystery-1", None, minutes_ago=180, feature="chat"),  # wholly unpriced group
        ]
    )
    store.close()
    return f"sqlite://{tmp_path / 'calls.db'}"


# -- item 14 -----------------------------------------------------------------------------------------


def test_tail_n_1_follow_prints_one_old_call_then_only_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import costlens.cli._calls as calls_cli

    path = tmp_path / "busy.db"
    store = SQLiteStore(path)
    store.append([call(f"m{i}", i, minutes_ago=i / 10) for i in range(1, 51)])  # 50 calls in 5 minutes
    store.close()
    fresh = [call("fresh", 7, minutes_ago=0)]

    def sleep(_: float) -> None:
        if fresh:
            writer = SQLiteStore(path)
            writer.append([fresh.pop()])
            writer.close()

    monkeypatch.setattr(calls_cli, "time", SimpleNamespace(sleep=sleep))
    args = ["calls", "tail", "-n", "1", "--follow", "--max-polls", "3", "--poll-interval", "0"]
    lines = ok(*args, "--store", f"sqlite://{path}", "--format", "json").stdout.splitlines()
    assert [json.loads(line)["model"] for line in lines] == ["m1", "fresh"]


def test_by_and_where_refuse_an_unknown_key_naming_the_known_ones(db: str) -> None:
    err = one_line_error(run("report", "--store", db, "--by", "modle"), 2)
    assert "unknown key 'modle'" in err and "did you mean 'model'" in err
    assert "model, request_model, provider" in err and "tag:modle" in err
    assert "tag:team" in one_line_error(run("report", "--store", db, "--where", "team=a"), 2)
    # well-known tags and tag:NAME still work
    assert json.loads(ok("report", "--store", db, "--by", "feature", "--format", "json").stdout)
    assert json.loads(ok("report", "--store", db, "--by", "tag:team", "--format", "json").stdout)


@pytest.mark.parametrize(
    "command",
    [
        ["report"],
        ["calls", "tail"],
        ["calls", "tail", "--follow", "--max-polls", "1"],
        ["forecast"],
        ["anomalies"],
        ["reprice", "--model", "gpt-4o-mini"],
    ],
)
def test_read_commands_never_create_a_store(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "typo" / "calls.db"
    err = one_line_error(run(*command, "--store", f"sqlite://{path}"), 1)
    assert f"no store at {path}" in err and "costlens import" in err
    assert not path.exists() and not path.parent.exists()


def test_the_default_store_missing_says_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    from costlens.config import default_store_url

    err = one_line_error(run("report"), 1)
    assert default_store_url().partition("://")[2] in err


@pytest.mark.parametrize("kind", ["folder", "text", "under-a-file"])
@pytest.mark.parametrize("command", [["report"], ["calls", "tail"]])
def test_an_unusable_store_file_is_one_line_naming_it(tmp_path: Path, kind: str, command: list[str]) -> None:
    if kind == "folder":
        path = tmp_path / "dir.db"
        path.mkdir()
        problem = "it is a folder"
    elif kind == "text":
        path = tmp_path / "notes.db"
        path.write_text("not a database " * 100)
        problem = "it is not a SQLite database"
    else:
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "calls.db"
        problem = f"{tmp_path / 'file'} is a file, not a folder"
    err = one_line_error(run(*command, "--store", f"sqlite://{path}"), 1)
    assert err.startswith(f"costlens: cannot use the store {path}: {problem}")


def test_a_write_into_an_unusable_store_is_one_line_too(tmp_path: Path) -> None:
    from costlens.store import StoreUnusable, open_store

    (tmp_path / "dir.db").mkdir()
    store = open_store(f"sqlite://{tmp_path / 'dir.db'}")
    with pytest.raises(StoreUnusable, match="it is a folder"):
        store.append([call("x", 1)])


@pytest.mark.parametrize("command", [["report"], ["anomalies"], ["reprice", "--model", "gpt-4o"]])
def test_since_after_until_is_a_usage_error(db: str, command: list[str]) -> None:
    err = one_line_error(run(*command, "--store", db, "--since", "2d", "--until", "3d"), 2)
    assert "--since" in err and "after --until" in err


@pytest.mark.parametrize(
    ("name", "message"), [("x.jpg", "name a .png or .svg file"), ("no/x.png", "no folder")]
)
def test_report_plot_is_checked_before_any_work(db: str, tmp_path: Path, name: str, message: str) -> None:
    err = one_line_error(run("report", "--store", db, "--plot", str(tmp_path / name)), 2)
    assert message in err
    err = one_line_error(run("forecast", "--store", db, "--plot", str(tmp_path / name)), 2)
    assert message in err


# -- item 15 -----------------------------------------------------------------------------------------


def test_unpriced_groups_say_unpriced_and_partly_priced_ones_mark_their_unpriced_calls(db: str) -> None:
    table = ok("report", "--store", db).stdout
    mystery = next(line for line in table.splitlines() if "mystery-1" in line)
    assert "unpriced" in mystery and "$0.00" not in mystery
    mini = next(line for line in table.splitlines() if "gpt-4o-mini" in line)
    assert "$0.0012345 + 1 unpriced" in mini
    total = next(line for line in table.splitlines() if "total" in line)
    assert "$0.9012345 + 2 unpriced" in total
    rows = {r["model"]: r for r in json.loads(ok("report", "--store", db, "--format", "json").stdout)}
    assert rows["mystery-1"]["cost_usd"] is None
    assert rows["gpt-4o-mini"]["cost_usd"] == "0.001234500" and rows["gpt-4o-mini"]["unpriced_calls"] == 1
    narrow = json.loads(ok("report", "--store", db, "--measures", "cost_usd", "--format", "json").stdout)
    assert {r["model"]: r["cost_usd"] for r in narrow}["mystery-1"] is None
    assert all(set(r) == {"model", "cost_usd"} for r in narrow)


def test_anomaly_tables_show_each_metric_in_its_unit(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    store.append([call("m", 1000, minutes_ago=60 * h + 30) for h in range(2, 40)])
    store.append([call("m", 1000, minutes_ago=30, tokens=50_000)])  # tokens per call spike, same spend
    store.close()
    db = f"sqlite://{tmp_path / 'a.db'}"
    options = ["--since", "2h", "--min-baseline", "10", "--metric", "tokens_per_call"]
    table = ok("anomalies", "--store", db, *options).stdout
    line = next(line for line in table.splitlines() if "tokens_per_call" in line)
    assert "50,100 tokens" in line and "1,100 tokens" in line
    assert "$50,100" not in line
    (row,) = json.loads(ok("anomalies", "--store", db, *options, "--format", "json").stdout)
    assert (row["value"], row["baseline"], row["unit"]) == ("50100.00", "1100.00", "tokens")


def test_forecast_until_a_date_ends_at_local_midnight_of_the_zone(db: str) -> None:
    day = (NOW + timedelta(days=3)).date()
    for zone in ("Asia/Tokyo", "America/New_York"):
        rows = json.loads(
            ok("forecast", "--store", db, "--until", day.isoformat(), "--tz", zone, "--format", "json").stdout
        )
        end = datetime.fromisoformat(rows[0]["window_end"])
        assert end == datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
        table = ok("forecast", "--store", db, "--until", day.isoformat(), "--tz", zone).stdout
        assert f"Forecast to {day.isoformat()} 00:00 {zone}" in table


# -- item 16 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--bogus"], "No such option: --bogus (try 'costlens report --help')"),
        (["calls", "tail", "-n", "x"], "(try 'costlens calls tail --help')"),
        (["budgets", "set"], "Missing argument 'name' (try 'costlens budgets set --help')"),
        (["nope"], "No such command 'nope' (try 'costlens --help')"),
        (["anomalies", "--threshold", "0"], "--threshold"),
    ],
)
def test_click_usage_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    err = one_line_error(run(*args), 2)
    assert err.startswith("costlens: error: ") and message in err
    assert "╭" not in err


def test_a_bare_group_still_prints_its_help() -> None:
    result = run("prices")
    assert result.exit_code == 2 and "Usage" in result.output


def test_no_color_turns_off_every_style(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[" in ok("report", "--store", db).stdout  # styled when colour is forced
    monkeypatch.setenv("NO_COLOR", "1")
    for command in (["report"], ["calls", "tail"], ["forecast"]):
        assert "\x1b[" not in ok(*command, "--store", db).stdout


def test_money_columns_have_one_precision(db: str) -> None:
    table = ok("report", "--store", db, "--measures", "calls,cost_usd,cost_per_call").stdout
    amounts = re.findall(r"\$[\d,]+\.(\d+)", table)
    assert len(amounts) >= 6
    cost = re.findall(r"\$[\d,]+\.\d+", table)
    assert "$0.9000000" in cost and "$0.0012345" in cost  # one column: 7 decimals each
    tail = ok("calls", "tail", "--store", db).stdout
    assert "$0.9000000" in tail and "$0.0012345" in tail
