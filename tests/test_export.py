"""Exports: CSV, JSON lines and Parquet (exact money), and the import-free `import costlens`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from costlens.analytics import export_records
from costlens.analytics._export import CSV_COLUMNS
from costlens.store.memory import MemoryStore
from costlens.usage import CallRecord

T0 = datetime(2025, 4, 1, 12, tzinfo=UTC)


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    s.append(
        [
            CallRecord(
                "openai",
                "chat",
                "gpt-4o",
                started_at=T0,
                ended_at=T0 + timedelta(seconds=2),
                latency_ms=2000.0,
                input_tokens=1200,
                output_tokens=80,
                cache_read_tokens=1024,
                cost_nanousd=1_234_567_891,
                price_known=True,
                price_version="v1",
                tags={"feature": "search"},
                content={"prompt": "secret"},
                id="a" * 32,
            ),
            CallRecord(
                "anthropic",
                "messages",
                "claude",
                started_at=T0 + timedelta(hours=1),
                status="error",
                error_type="RateLimitError",
                http_status=429,
                id="b" * 32,
            ),
        ]
    )
    return s


def test_csv_has_exact_money_and_no_content(store: MemoryStore) -> None:
    out = io.StringIO()
    assert export_records(store, out, "csv") == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert rows[0]["cost_usd"] == "1.234567891"
    assert rows[0]["cost_nanousd"] == "1234567891"
    assert rows[0]["tags"] == '{"feature":"search"}'
    assert rows[0]["price_known"] == "1"
    assert rows[1]["cost_usd"] == "" and rows[1]["http_status"] == "429"
    assert "secret" not in out.getvalue()


def test_jsonl_is_lossless_and_filters(store: MemoryStore, tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    assert export_records(store, path, "jsonl", where={"provider": "openai"}, include_content=True) == 1
    (line,) = path.read_text().splitlines()
    data = json.loads(line)
    assert data["cost_nanousd"] == 1_234_567_891
    assert data["content"] == {"prompt": "secret"}
    assert data["started_at"] == "2025-04-01T12:00:00+00:00"
    assert export_records(store, tmp_path / "none.jsonl", "jsonl", since=T0 + timedelta(days=1)) == 0


def test_parquet_has_typed_columns_and_exact_decimals(store: MemoryStore, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "calls.parquet"
    seen: list[tuple[int, int]] = []
    assert (
        export_records(store, path, "parquet", progress=lambda done, total: seen.append((done, total))) == 2
    )
    table = pq.read_table(path)
    assert table.num_rows == 2
    assert str(table.schema.field("cost_usd").type) == "decimal128(38, 9)"
    assert str(table.schema.field("started_at").type) == "timestamp[us, tz=UTC]"
    rows = table.to_pylist()
    assert rows[0]["cost_usd"] == Decimal("1.234567891")
    assert rows[0]["tags"] == [("feature", "search")]
    assert rows[0]["content"] is None
    assert rows[1]["cost_usd"] is None and rows[1]["error_type"] == "RateLimitError"
    assert seen[-1] == (2, 2)


def test_an_empty_parquet_export_still_has_the_schema(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "empty.parquet"
    assert export_records(MemoryStore(), path, "parquet") == 0
    assert pq.read_table(path).num_rows == 0


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        export_records(MemoryStore(), io.StringIO(), "xml")


def test_importing_costlens_and_analytics_loads_no_optional_dependency() -> None:
    code = (
        "import sys, costlens, costlens.analytics\n"
        "heavy = {'pyarrow', 'opentelemetry', 'prometheus_client', 'matplotlib', 'numpy'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
