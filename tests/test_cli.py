"""The `costlens` command: every command in table/json/csv, and exit 2 with one line for usage errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from costlens.cli import app
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

NOW = datetime.now(UTC).replace(microsecond=0)
runner = CliRunner()


def call(
    model: str, cost: int | None, *, hours_ago: float = 1, provider: str = "openai", **tags: str
) -> CallRecord:
    return CallRecord(
        provider,
        "chat",
        model,
        started_at=NOW - timedelta(hours=hours_ago),
        input_tokens=1000,
        output_tokens=100,
        cache_read_tokens=200,
        reasoning_tokens=20,
        cost_nanousd=cost,
        price_known=cost is not None,
        tags=tags,
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "calls.db"
    store = SQLiteStore(path)
    store.append(
        [
            call("gpt-4o-mini", 1_234_500, feature="search"),
            call("gpt-4o-mini", 2_000_000, feature="chat", hours_ago=30),
            call("claude-x", 900_000_000, provider="anthropic", feature="search", hours_ago=2),
            call("mystery-1", None, provider="acme", feature="search", hours_ago=3),
            call("old", 5, hours_ago=24 * 60),
        ]
    )
    store.close()
    return f"sqlite://{path}"


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


# -- report --------------------------------------------------------------------------------------


def test_report_table_has_totals_and_an_unpriced_note(db: str) -> None:
    result = ok("report", "--store", db, "--since", "30d")
    lines = result.stdout.splitlines()
    body = [line for line in lines if "gpt-4o-mini" in line or "claude-x" in line or "total" in line]
    assert "claude-x" in body[0]
    assert "$0.90" in body[0]
    assert "gpt-4o-mini" in body[1]
    assert "$0.0032345" in body[1]
    assert "2,000" in body[1]
    assert "total" in body[-1]
    assert "$0.9032345" in body[-1]
    assert "4,000" in body[-1]
    assert "old" not in result.stdout  # 60 days ago
    assert result.stderr == "1 call has no known price: see `costlens prices missing`\n"


def test_report_json_is_exact_and_machine_readable(db: str) -> None:
    rows = json.loads(ok("report", "--store", db, "--format", "json", "--since", "30d").stdout)
    assert rows[0] == {
        "model": "claude-x",
        "calls": 1,
        "input_tokens": 1000,
        "output_tokens": 100,
        "cache_read_tokens": 200,
        "cache_write_tokens": 0,
        "reasoning_tokens": 20,
        "cost_usd": "0.900000000",
        "unpriced_calls": 0,
    }
    assert [(r["model"], r["cost_usd"]) for r in rows] == [
        ("claude-x", "0.900000000"),
        ("gpt-4o-mini", "0.003234500"),
        ("mystery-1", None),  # every call unpriced: its cost is unknown, not $0
    ]


def test_report_csv_has_a_header_row(db: str) -> None:
    out = ok("report", "--store", db, "--format", "CSV", "--by", "provider,feature").stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == [
        "provider",
        "feature",
        "calls",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "cost_usd",
        "unpriced_calls",
    ]
    assert rows[1][:3] == ["anthropic", "search", "1"]
    assert rows[1][8] == "0.900000000"
    assert len(rows) == 1 + 5  # anthropic/search, openai/search, openai/chat, openai/none, acme/search


def test_report_groups_by_day_hour_and_tags_with_filters(db: str) -> None:
    day = json.loads(ok("report", "--store", db, "--by", "day", "--format", "json").stdout)
    assert sum(r["calls"] for r in day) == 5
    assert all(len(str(r["day"])) == 10 for r in day)
    hours = json.loads(
        ok("report", "--store", db, "--by", "hour", "--by", "model", "--format", "json").stdout
    )
    assert all(str(r["hour"]).endswith(":00Z") for r in hours)
    search = json.loads(
        ok(
            "report", "--store", db, "--by", "tag:feature", "--where", "feature=search", "--format", "json"
        ).stdout
    )
    assert [(r["tag:feature"], r["calls"]) for r in search] == [("search", 3)]
    until = (NOW - timedelta(hours=2, minutes=30)).isoformat()
    early = json.loads(ok("report", "--store", db, "--until", until, "--format", "json").stdout)
    assert {r["model"] for r in early} == {"gpt-4o-mini", "mystery-1", "old"}


def empty_store(path: Path) -> str:
    store = SQLiteStore(path)
    store.migrate()
    store.close()
    return f"sqlite://{path}"


def test_empty_report(tmp_path: Path) -> None:
    url = empty_store(tmp_path / "empty.db")
    assert "No calls recorded in" in ok("report", "--store", url).stdout
    assert json.loads(ok("report", "--store", url, "--format", "json").stdout) == []
    assert ok("report", "--store", url, "--format", "csv").stdout.startswith("model,calls,")


def test_report_uses_costlens_store_by_default(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTLENS_STORE", db)
    assert "claude-x" in ok("report").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--by", "a b"], "bad --by: bad group/filter key 'a b': use one of model,"),
        (
            ["report", "--since", "yesterday"],
            "bad --since: cannot read 'yesterday' as a time: use a duration",
        ),
        (["report", "--until", "soon"], "bad --until: cannot read 'soon'"),
        (
            ["report", "--where", "feature"],
            "bad --where 'feature': write key=value, e.g. --where feature=search",
        ),
        (["report", "--where", "a b=1"], "bad --where: bad group/filter key 'a b'"),
        (["report", "--by", "calls"], "collides with a report column: write tag:calls"),
        (["report", "--format", "xml"], "unknown --format 'xml': use table, json or csv"),
        (
            ["report", "--store", "foo://x"],
            "unknown store URL 'foo://x': use one of the schemes clickhouse://, memory://, postgres://",
        ),
        (["prices", "missing", "--format", "yaml"], "unknown --format 'yaml'"),
        (["prices", "missing", "--store", "nope"], "unknown store URL 'nope'"),
        (["prices", "show", "gpt-4o", "--at", "someday"], "bad --at: cannot read 'someday'"),
        (["prices", "show", "gpt-4o", "--format", "xml"], "unknown --format 'xml'"),
        (["calls", "tail", "--format", "xml"], "unknown --format 'xml'"),
        (["calls", "tail", "--store", "x://"], "unknown store URL 'x://'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str, db: str) -> None:
    if "--store" not in args:
        args = [*args, "--store", db] if args[0] != "prices" or args[1] == "missing" else args
    result = run(*args)
    assert result.exit_code == 2, result.stdout
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("costlens: error: ")
    assert message in result.stderr
    assert result.stdout == ""


def test_an_unreadable_store_exits_1_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("this is not a database, just text " * 100)
    result = run("report", "--store", f"sqlite://{tmp_path / 'notes.db'}")
    assert result.exit_code == 1
    assert result.stderr == (
        f"costlens: cannot use the store {tmp_path / 'notes.db'}: it is not a SQLite database "
        "(another kind of file?)\n"
    )


# -- prices ----------------------------------------------------------------------------------------


def test_prices_show_in_every_format() -> None:
    table = ok("prices", "show", "gpt-4o-mini", "--provider", "openai").stdout
    assert "in force" in table and "cached input" in table
    assert "0.15" in table
    data = json.loads(ok("prices", "show", "gpt-4o-mini", "--format", "json").stdout)
    assert data["known"] is True
    assert data["model"] == "gpt-4o-mini"
    header, row = list(csv.reader(io.StringIO(ok("prices", "show", "gpt-4o-mini", "--format", "csv").stdout)))
    assert row[header.index("per_mtok.input")] == data["per_mtok"]["input"]  # type: ignore[index]
    ok("prices", "show", "gpt-4o-mini", "--at", "2025-01-01")


def test_prices_show_lists_us_only_inference_where_the_provider_bills_it() -> None:
    table = ok("prices", "show", "claude-sonnet-4-6", "--provider", "anthropic").stdout
    row = next(line for line in table.splitlines() if "standard+us" in line)
    assert "us inference at 110%" in row and "3.30" in row and "16.50" in row
    data = json.loads(
        ok("prices", "show", "claude-sonnet-4-6", "--provider", "anthropic", "--format", "json").stdout
    )
    us = data["service_tiers"]["standard+us"]
    assert us["rule"] == "standard+us-110%" and Decimal(us["per_mtok"]["output"]) == Decimal("16.5")
    openai_tiers = json.loads(
        ok("prices", "show", "gpt-4o-mini", "--provider", "openai", "--format", "json").stdout
    )
    assert not any("+" in tier for tier in openai_tiers["service_tiers"])


def test_prices_show_unknown_model_says_how_to_add_a_price() -> None:
    result = run("prices", "show", "no-such-model-xyz")
    assert result.exit_code == 1
    assert "no price known for model 'no-such-model-xyz'" in result.stderr
    assert "COSTLENS_PRICES" in result.stderr


def test_prices_missing_in_every_format(db: str) -> None:
    table = ok("prices", "missing", "--store", db)
    assert "acme" in table.stdout
    assert "mystery-1" in table.stdout
    assert "COSTLENS_PRICES" in table.stderr
    data = json.loads(ok("prices", "missing", "--store", db, "--format", "json").stdout)
    assert [(d["provider"], d["model"], d["calls"]) for d in data] == [("acme", "mystery-1", 1)]
    assert datetime.fromisoformat(data[0]["first_seen"]) == NOW - timedelta(hours=3)
    rows = list(csv.reader(io.StringIO(ok("prices", "missing", "--store", db, "--format", "csv").stdout)))
    assert rows[0] == ["provider", "model", "calls", "first_seen", "last_seen"]
    assert rows[1][:3] == ["acme", "mystery-1", "1"]


def test_prices_missing_when_everything_is_priced(tmp_path: Path) -> None:
    empty = SQLiteStore(tmp_path / "e.db")  # an empty store: `prices missing` never creates one
    empty.migrate()
    empty.close()
    url = f"sqlite://{tmp_path / 'e.db'}"
    assert "Every recorded call has a known price." in ok("prices", "missing", "--store", url).stdout
    assert json.loads(ok("prices", "missing", "--store", url, "--format", "json").stdout) == []


def test_prices_update_prints_the_result_or_a_clean_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import costlens.pricing
    from costlens._errors import CostlensError

    monkeypatch.setattr(costlens.pricing, "update_prices", lambda: "genai-prices-9.9")
    assert ok("prices", "update").stdout == "Prices updated: genai-prices-9.9\n"
    assert json.loads(ok("prices", "update", "--format", "json").stdout) == {"version": "genai-prices-9.9"}

    def offline() -> str:
        raise CostlensError("could not reach the price catalogue; offline?")

    monkeypatch.setattr(costlens.pricing, "update_prices", offline)
    result = run("prices", "update")
    assert result.exit_code == 1
    assert result.stderr == "costlens: prices not updated: could not reach the price catalogue; offline?\n"


# -- calls tail ------------------------------------------------------------------------------------


def test_calls_tail_shows_the_latest_calls_oldest_first(db: str) -> None:
    data = json.loads(ok("calls", "tail", "-n", "3", "--store", db, "--format", "json").stdout)
    assert [d["model"] for d in data] == ["mystery-1", "claude-x", "gpt-4o-mini"]
    assert data[0]["cost_usd"] is None
    assert data[2]["cost_usd"] == "0.001234500"
    assert list(data[0]) == [
        "started_at", "provider", "model", "input_tokens", "output_tokens", "cost_usd", "status", "tags",
        "id",
    ]  # fmt: skip
    assert data[0]["tags"] == {"feature": "search"}
    table = ok("calls", "tail", "--store", db).stdout
    assert table.index("old") < table.index("mystery-1") < table.index("claude-x")
    assert "unpriced" in table
    assert "$0.0012345" in table
    assert "feature=search" in table
    rows = list(
        csv.reader(io.StringIO(ok("calls", "tail", "--store", db, "--format", "csv", "-n", "1").stdout))
    )
    assert rows[0][:3] == ["started_at", "provider", "model"]
    assert rows[1][2] == "gpt-4o-mini"


def test_calls_tail_on_an_empty_store(tmp_path: Path) -> None:
    url = empty_store(tmp_path / "e.db")
    assert "No calls recorded yet." in ok("calls", "tail", "--store", url).stdout


def test_calls_tail_follow_prints_new_calls_once(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import costlens.cli._calls as calls_cli

    late = [call("late-start", 7, hours_ago=5), call("newest", 8, hours_ago=0)]  # long call lands late

    def sleep(_: float) -> None:
        if late:
            store = SQLiteStore(db.removeprefix("sqlite://"))
            store.append([late.pop(0)])
            store.close()

    monkeypatch.setattr(calls_cli, "time", SimpleNamespace(sleep=sleep))
    args = ["calls", "tail", "-n", "1", "--store", db, "--follow", "--max-polls", "4", "--poll-interval", "0"]
    lines = ok(*args, "--format", "json").stdout.splitlines()
    assert [json.loads(line)["model"] for line in lines] == ["gpt-4o-mini", "newest"]
    # "late-start" began 5 hours ago: outside the 10-minute look-back, so `tail` never saw it.


def test_calls_tail_follow_catches_calls_that_started_a_bit_earlier(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import costlens.cli._calls as calls_cli

    late = [call("slow", 1, hours_ago=1.05)]  # began 3 minutes before the newest call shown

    def sleep(_: float) -> None:
        if late:
            store = SQLiteStore(db.removeprefix("sqlite://"))
            store.append([late.pop()])
            store.close()

    monkeypatch.setattr(calls_cli, "time", SimpleNamespace(sleep=sleep))
    out = ok("calls", "tail", "-n", "1", "--store", db, "-f", "--max-polls", "2", "--format", "csv").stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert [r[2] for r in rows] == ["model", "gpt-4o-mini", "slow"]


# -- fake-provider, help, startup ------------------------------------------------------------------


def test_fake_provider_serves_on_the_given_address(monkeypatch: pytest.MonkeyPatch) -> None:
    import costlens.testing

    seen: dict[str, Any] = {}

    def serve_forever(host: str, port: int, *, on_ready: Any = None) -> None:
        seen.update(host=host, port=port)
        on_ready(SimpleNamespace(base_url=f"http://{host}:{port}"))

    monkeypatch.setattr(costlens.testing, "serve_forever", serve_forever)
    out = ok("fake-provider", "--port", "9123", "--host", "0.0.0.0").stdout
    assert seen == {"host": "0.0.0.0", "port": 9123}
    assert "listening on http://0.0.0.0:9123" in out


def test_help_and_version() -> None:
    assert "report" in ok("--help").stdout
    for sub in (
        ["report"],
        ["prices", "show"],
        ["prices", "missing"],
        ["prices", "update"],
        ["calls", "tail"],
    ):
        assert "--format" in ok(*sub, "--help").stdout
    assert ok("--version").stdout.startswith("costlens ")


def test_cli_startup_imports_no_pricing_or_sdk() -> None:
    code = (
        "import sys, costlens.cli; "
        "print([m for m in ('costlens.pricing', 'genai_prices', 'openai', 'anthropic', 'sqlite3', "
        "'costlens.testing') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
