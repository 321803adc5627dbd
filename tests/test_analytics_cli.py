"""The analytics commands: report options, forecast, anomalies, reprice, import, export."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from costlens.cli import app
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

runner = CliRunner()
NOW = datetime.now(UTC).replace(microsecond=0)
DATA = Path(__file__).resolve().parent / "data"
CODE = Path(__file__).resolve().parent.parent / "data" / "traces" / "azure_llm_2023_code.csv"


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def usage(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("costlens: error: ") and result.stderr.count("\n") == 1
    return result.stderr


@pytest.fixture
def db(tmp_path: Path) -> str:
    store = SQLiteStore(tmp_path / "calls.db")
    records = []
    for day in range(1, 20):
        for model, cost in (("gpt-4o", 2_000_000), ("gpt-4o-mini", 150_000), ("claude-haiku-4-5", 800_000)):
            records.append(
                CallRecord(
                    "anthropic" if model.startswith("claude") else "openai",
                    "chat",
                    model,
                    started_at=NOW - timedelta(days=day, minutes=day),
                    input_tokens=1000,
                    output_tokens=100,
                    latency_ms=100.0 * day,
                    cost_nanousd=cost * (3 if day < 8 else 1),
                    price_known=True,
                    tags={"feature": "search" if model != "gpt-4o" else "chat"},
                )
            )
    store.append(records)
    store.close()
    return f"sqlite://{tmp_path / 'calls.db'}"


def test_report_with_bucket_zone_top_and_measures(db: str) -> None:
    options = ["--bucket", "week", "--tz", "Europe/Berlin", "--top", "1", "--format", "json"]
    out = ok("report", "--store", db, *options, "--measures", "calls,cost_usd,share,latency_p50").stdout
    rows = json.loads(out)
    assert {r["model"] for r in rows} == {"gpt-4o", "(other)"}
    assert set(rows[0]) == {"week", "model", "calls", "cost_usd", "share", "latency_p50"}
    assert sum(r["calls"] for r in rows) == 57
    header = ok("report", "--store", db, "--by", "feature", "--measures", "all", "--format", "csv").stdout
    assert header.splitlines()[0].endswith("error_rate,estimated_share,latency_p50,latency_p95,latency_p99,"
                                            "ttft_p50,ttft_p95,ttft_p99")  # fmt: skip
    table = ok("report", "--store", db, "--by", "feature", "--measures", "calls,share,latency_p95").stdout
    assert "100.0%" in table and " ms" in table


def test_report_compare_previous_in_csv(db: str) -> None:
    out = ok("report", "--store", db, "--since", "7d", "--compare", "previous", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["model"] == "gpt-4o"
    # now: days 1-6 at 6,000,000 nano-USD; before: day 7 at 6,000,000 and days 8-13 at 2,000,000
    assert (rows[0]["cost_usd"], rows[0]["previous_cost_usd"]) == ("0.036000000", "0.018000000")
    assert rows[0]["cost_change"] == "1.000000"
    table = ok("report", "--store", db, "--since", "7d", "--compare", "previous").stdout
    assert "+100.00%" in table and "$0.018" in table


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_report_and_forecast_plots(db: str, tmp_path: Path, suffix: str) -> None:
    chart = tmp_path / f"spend.{suffix}"
    result = ok("report", "--store", db, "--bucket", "day", "--top", "2", "--plot", str(chart))
    head = chart.read_bytes()[:5]
    assert head == b"\x89PNG\r" if suffix == "png" else b"<?xml"
    assert "chart written to" in result.stderr
    shares = tmp_path / f"share.{suffix}"
    ok("report", "--store", db, "--plot", str(shares))
    assert shares.stat().st_size > 1000
    forecast_chart = tmp_path / f"forecast.{suffix}"
    ok("forecast", "--store", db, "--by", "model", "--plot", str(forecast_chart))
    assert forecast_chart.stat().st_size > 1000


def test_forecast_in_every_format(db: str) -> None:
    rows = json.loads(ok("forecast", "--store", db, "--by", "feature", "--format", "json").stdout)
    assert {r["feature"] for r in rows} == {"search", "chat"}
    assert all(r["method"] in ("theil-sen", "run-rate") for r in rows)
    assert ok("forecast", "--store", db, "--format", "csv").stdout.startswith(
        "window_start,window_end,spent_usd"
    )
    assert "Forecast to" in ok("forecast", "--store", db).stdout


def test_anomalies(db: str, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "calls.db")
    big = CallRecord("openai", "chat", "gpt-4o", started_at=NOW - timedelta(hours=2), id="big-one")
    big.cost_nanousd, big.price_known = 5_000_000_000, True
    store.append([big])
    store.close()
    # the 3x step between day 8 and day 7 scores about 20; the 5 USD call scores thousands
    options = [
        "--since",
        "3d",
        "--baseline",
        "600",
        "--min-baseline",
        "10",
        "--metric",
        "spend",
        "--threshold",
        "50",
    ]
    rows = json.loads(ok("anomalies", "--store", db, *options, "--format", "json").stdout)
    assert [(r["model"], r["metric"], r["top_call_ids"][0]) for r in rows] == [("gpt-4o", "spend", "big-one")]
    assert "No anomalies" in ok("anomalies", "--store", db, "--since", "1h").stdout


def test_reprice(db: str) -> None:
    out = ok(
        "reprice", "--store", db, "--model", "gpt-4o-mini", "--provider", "openai", "--format", "json"
    ).stdout
    data = json.loads(out)
    assert data["totals"]["calls"] == 57
    assert data["totals"]["unpriced_after"] == 0
    assert "Re-priced on gpt-4o-mini" in ok("reprice", "--store", db, "--model", "gpt-4o-mini").stdout
    assert ok("reprice", "--store", db, "--model", "gpt-4o", "--format", "csv").stdout.startswith(
        "model,calls,"
    )


def test_import_then_again_then_export(tmp_path: Path) -> None:
    db = f"sqlite://{tmp_path / 'imp.db'}"
    first = ok(
        "import", str(CODE), "--model", "gpt-4o-mini", "--tag", "feature=code", "--store", db, "--json"
    )
    (summary,) = json.loads(first.stdout)
    assert (summary["rows"], summary["imported"], summary["input_tokens"]) == (8819, 8819, 18_059_974)
    again = ok("import", str(CODE), "--model", "gpt-4o-mini", "--tag", "feature=code", "--store", db)
    assert "8,819" in again.stdout and "duplicates" in again.stdout
    out = ok(
        "export", "--store", db, "--format", "csv", "--where", "feature=code", "--since", "2023-11-16"
    ).stdout
    assert out.count("\n") == 8820
    jsonl = tmp_path / "out.jsonl"
    assert "8,819 calls written" in ok("export", "--store", db, "--output", str(jsonl)).stderr
    parquet = tmp_path / "out.parquet"
    ok("export", "--store", db, "--format", "parquet", "-o", str(parquet))
    assert parquet.read_bytes()[:4] == b"PAR1"
    assert "costlens_spend_usd_total" in ok("export", "--store", db, "--format", "prometheus").stdout


def test_import_bad_rows(tmp_path: Path) -> None:
    db = f"sqlite://{tmp_path / 'bad.db'}"
    bad = str(DATA / "azure_trace_with_bad_rows.csv")
    rejected = run("import", bad, "--model", "gpt-4o-mini", "--store", db)
    assert rejected.exit_code == 1
    lines = rejected.stderr.splitlines()
    assert lines[0] == "azure_trace_with_bad_rows.csv: line 4: input_tokens is not a whole number: 'lots'"
    assert lines[-1].startswith("costlens: nothing imported from files with bad rows")
    skipped = ok("import", bad, "--model", "gpt-4o-mini", "--store", db, "--on-error", "skip", "--json")
    assert json.loads(skipped.stdout)[0]["imported"] == 3
    assert skipped.stderr.splitlines()[-1] == "4 bad rows skipped"


def test_import_of_other_formats(tmp_path: Path) -> None:
    db = f"sqlite://{tmp_path / 'many.db'}"
    files = [str(DATA / n) for n in ("openai_usage_completions.json", "litellm_spend_logs.csv")]
    rows = json.loads(ok("import", *files, "--store", db, "--json").stdout)
    assert [(r["format"], r["imported"]) for r in rows] == [("openai-usage", 15), ("litellm", 4)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--measures", "speed"], "bad --measures: unknown measure 'speed'"),
        (["report", "--bucket", "year"], "unknown bucket 'year'"),
        (["report", "--tz", "Mars/Base"], "unknown time zone 'Mars/Base'"),
        (["report", "--compare", "previous"], "needs a start"),
        (["report", "--plot", "x.gif"], "name a .png or .svg file"),
        (["reprice"], "say what to re-price with"),
        (["forecast", "--until", "2001-01-01"], "the window must end in the future"),
        (["anomalies", "--metric", "speed"], "unknown metric 'speed'"),
        (["import", "no-such-file.csv"], "no such file: no-such-file.csv"),
        (["import", str(CODE), "--no-price", "--reprice"], "contradict"),
        (["import", str(CODE), "--on-error", "ignore"], "bad --on-error 'ignore'"),
        (["import", str(CODE)], "names no model"),
        (["import", str(CODE), "--tag", "oops"], "bad --tag 'oops'"),
        (["export", "--format", "xml"], "unknown --format 'xml'"),
        (["export", "--format", "parquet"], "--format parquet needs --output FILE"),
    ],
)
def test_usage_errors_exit_2_with_one_line(db: str, args: list[str], message: str) -> None:
    assert message in usage(*args, "--store", db)


def test_help_lists_the_commands() -> None:
    text = ok("--help").stdout
    for command in ("forecast", "anomalies", "reprice", "import", "export"):
        assert command in text
    for command in ("forecast", "anomalies", "reprice"):
        assert "--format" in ok(command, "--help").stdout


def test_export_to_an_otlp_receiver(db: str) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    paths: list[str] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        result = ok("export", "--store", db, "--format", "otlp", "--endpoint", url, "--since", "7d")
    finally:
        server.shutdown()
        server.server_close()
    assert "18 calls sent to" in result.stderr  # days 1-6, three calls a day
    assert {"/v1/traces", "/v1/metrics"} <= set(paths)
