"""`costlens export` and `costlens import` at the edges (issue 10 items 8-9): a reader that stops early,
an OTLP endpoint with nothing listening, relative timestamps and JSON lines from the command line."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from costlens.cli import app
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

DATA = Path(__file__).resolve().parent / "data"
runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    store = SQLiteStore(tmp_path / "calls.db")
    start = datetime(2025, 3, 1, tzinfo=UTC)
    store.append(
        [
            CallRecord(
                "openai", "chat", "gpt-4o-mini", started_at=start + timedelta(seconds=i), input_tokens=i,
                tags={"feature": "f" * 40},
            )
            for i in range(3000)
        ]
    )  # fmt: skip
    store.close()
    return f"sqlite://{tmp_path / 'calls.db'}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_to_a_reader_that_stops_early_exits_quietly(db: str, fmt: str, tmp_path: Path) -> None:
    env = {**os.environ, "COSTLENS_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-c", "from costlens.cli import app; app()", "export", "--format", fmt]
    proc = subprocess.Popen(
        [*command, "--store", db], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, stderr
    assert first and stderr == ""


def test_otlp_export_to_no_collector_fails_naming_the_endpoint(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from costlens.analytics import _otel

    monkeypatch.setattr(_otel, "otlp_export", functools.partial(_otel.otlp_export, timeout_s=1))
    endpoint = f"http://127.0.0.1:{_free_port()}"
    result = runner.invoke(app, ["export", "--format", "otlp", "--endpoint", endpoint, "--store", db])
    assert result.exit_code == 1, result.stderr
    assert endpoint in result.stderr and "--endpoint" in result.stderr and "collector" in result.stderr
    assert "calls sent to" not in result.stderr


def test_otlp_export_raises_when_nothing_listens() -> None:
    from costlens.analytics._otel import OTLPExportError, otlp_export

    endpoint = f"http://127.0.0.1:{_free_port()}"
    calls = [CallRecord("openai", "chat", "m", started_at=datetime(2025, 3, 1, tzinfo=UTC))]
    with pytest.raises(OTLPExportError, match="0 calls sent") as caught:
        otlp_export(calls, endpoint, timeout_s=1)
    assert caught.value.endpoint == endpoint


def test_import_cli_refuses_relative_times_and_takes_start(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 'i.db'}"
    trace = str(DATA / "burstgpt_head.csv")
    refused = runner.invoke(app, ["import", trace, "--store", store])
    assert refused.exit_code == 2 and "--start" in refused.stderr and "1970" in refused.stderr
    done = runner.invoke(
        app, ["import", trace, "--start", "2023-07-01T00:00:00Z", "--store", store, "--json"]
    )
    assert done.exit_code == 0, done.stderr
    assert '"imported": 3' in done.stdout
    bad = runner.invoke(app, ["import", trace, "--time-unit", "ms", "--store", store])
    assert bad.exit_code == 2 and "--start" in bad.stderr


def test_import_cli_reads_mooncake_json_lines_and_warns_on_incomplete_pages(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 'm.db'}"
    args = ["--start", "2024-06-01T12:00:00", "--model", "gpt-4o-mini", "--provider", "openai"]
    result = runner.invoke(
        app, ["import", str(DATA / "mooncake_conversation_trace.jsonl"), *args, "--store", store]
    )
    assert result.exit_code == 0, result.stderr
    assert "mooncake_conversation_trace.jsonl" in result.stdout and "jsonl" in result.stdout
    costs = runner.invoke(app, ["import", str(DATA / "openai_costs_by_api_key.json"), "--store", store])
    assert costs.exit_code == 0
    assert "warning: the export is incomplete" in costs.stderr


def test_export_refuses_an_empty_range_and_a_missing_store(db: str, tmp_path: Path) -> None:
    backwards = runner.invoke(
        app, ["export", "--store", db, "--since", "2025-03-02", "--until", "2025-03-01"]
    )
    assert backwards.exit_code == 2 and backwards.stdout == ""
    assert backwards.stderr.count("\n") == 1 and "nothing could match" in backwards.stderr
    missing = tmp_path / "typo.db"
    result = runner.invoke(app, ["export", "--store", f"sqlite://{missing}"])
    assert result.exit_code == 1 and "no store at" in result.stderr and not missing.exists()
