"""Import of OpenAI usage/costs exports, LiteLLM spend logs, costlens JSONL and mapped CSV; bad rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from costlens.analytics import detect_format, import_file
from costlens.store import SpendQuery
from costlens.store.memory import MemoryStore
from costlens.usage import CallRecord

DATA = Path(__file__).resolve().parent / "data"


def by_id(store: MemoryStore) -> dict[str, CallRecord]:
    return {r.id: r for r in store.iter_records()}


def test_openai_usage_buckets_become_calls_with_exact_token_sums() -> None:
    store = MemoryStore()
    result = import_file(store, DATA / "openai_usage_completions.json")
    assert (result.format, result.rows, result.imported, result.bad) == ("openai-usage", 15, 15, [])
    rows = {
        (r.keys["model"], r.keys["service_tier"]): r
        for r in store.query(SpendQuery(("model", "service_tier")))
    }
    mini = rows[("gpt-4o-mini-2024-07-18", None)]
    assert (mini.calls, mini.input_tokens, mini.output_tokens, mini.cache_read_tokens) == (
        12,
        78328,
        14154,
        28672,
    )
    batch = rows[("gpt-4o-2024-08-06", "batch")]
    assert (batch.calls, batch.input_tokens, batch.estimated_calls) == (3, 12903, 3)
    records = sorted(store.iter_records(), key=lambda r: r.started_at)
    assert records[0].started_at == datetime(2025, 1, 15, tzinfo=UTC)
    assert records[0].tags == {"project": "proj_wJ4kqLq2gQ9xYbZ"}
    assert all(r.price_known and r.cache_read_tokens <= r.input_tokens for r in records)
    assert import_file(store, DATA / "openai_usage_completions.json").imported == 0


def test_openai_costs_keep_the_exact_amounts() -> None:
    store = MemoryStore()
    result = import_file(store, DATA / "openai_costs.json", pricing="catalogue")
    assert (result.format, result.imported) == ("openai-costs", 3)
    assert result.cost_nanousd == 75_572_100  # 0.0101517 + 0.0054204 + 0.06 USD, exactly
    line = next(r for r in store.iter_records() if r.request_model == "gpt-4o-mini-2024-07-18, output")
    assert (line.operation, line.cost_usd, line.price_version) == (
        "cost",
        Decimal("0.005420400"),
        "openai-costs-api",
    )


def test_litellm_csv_export() -> None:
    store = MemoryStore()
    result = import_file(store, DATA / "litellm_spend_logs.csv")
    assert (result.format, result.imported, result.bad) == ("litellm", 4, [])
    records = {r.request_model: r for r in store.iter_records()}
    haiku = records["claude-3-5-haiku-20241022"]
    assert haiku.provider == "anthropic"  # from the model's prefix, custom_llm_provider being empty
    assert (haiku.input_tokens, haiku.cache_read_tokens, haiku.cache_write_tokens) == (2400, 1200, 300)
    assert haiku.cost_usd == Decimal("0.003750000") and haiku.price_version == "litellm"
    assert haiku.latency_ms == pytest.approx(7831.0) and haiku.ttft_ms == pytest.approx(962.0)
    assert haiku.tags == {"user": "bob@example.com", "team": "team-docs", "end_user": "customer-42",
                          "model_group": "claude-haiku", "feature": "summarise"}  # fmt: skip
    mini = records["gpt-4o-mini"]
    assert mini.tags["litellm_tags"] == "prod" and mini.tags["feature"] == "search"
    assert records["text-embedding-3-small"].operation == "embeddings"
    assert records["gpt-4o"].status == "error"
    assert not any("messages" in str(r.content) for r in store.iter_records())


def test_litellm_json_export_and_repricing() -> None:
    store = MemoryStore()
    result = import_file(store, DATA / "litellm_spend_logs.json", pricing="catalogue")
    assert (result.format, result.imported) == ("litellm", 2)
    mini = next(r for r in store.iter_records() if r.request_model == "gpt-4o-mini")
    assert mini.started_at == datetime(2025, 1, 16, 8, 30, 0, 100000, tzinfo=UTC)
    assert mini.price_version.startswith("genai-prices")  # re-priced with costlens prices, not "litellm"


def test_costlens_jsonl_round_trip(tmp_path: Path) -> None:
    from costlens.analytics import export_records

    first = CallRecord(
        "openai", "chat", "gpt-4o", started_at=datetime(2025, 2, 1, tzinfo=UTC), input_tokens=5
    )
    first.cost_nanousd, first.price_known, first.tags, first.route = (
        7,
        True,
        {"feature": "x"},
        {"policy": "a"},
    )
    source = MemoryStore()
    source.append(
        [first, CallRecord("anthropic", "messages", "claude", started_at=datetime(2025, 2, 2, tzinfo=UTC))]
    )
    path = tmp_path / "calls.jsonl"
    assert export_records(source, path, "jsonl") == 2
    assert detect_format(path) == ("costlens-jsonl", None)
    target = MemoryStore()
    assert import_file(target, path).imported == 2
    assert by_id(target) == by_id(source)
    assert import_file(target, path).duplicates == 2


def test_mapped_csv_with_every_kind_of_column(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(
        "when,req,model,prov,in,out,cached,ms,usd,team\n"
        "2025-01-01T10:00:00+01:00,r1,gpt-4o,openai,100,10,40,512.5,0.0001,core\n"
        "1735725600,r2,gpt-4o,openai,200,20,0,,,\n"
    )
    mapping = (
        "timestamp=when,id=req,model=model,provider=prov,input_tokens=in,output_tokens=out,"
        "cache_read_tokens=cached,latency_ms=ms,cost_usd=usd,tag.team=team"
    )
    store = MemoryStore()
    result = import_file(store, path, "csv", mapping=mapping, tags={"source": "csv"})
    assert (result.imported, result.bad) == (2, [])
    first, second = sorted(store.iter_records(), key=lambda r: r.started_at)
    assert first.started_at == datetime(2025, 1, 1, 9, tzinfo=UTC)
    assert (first.cache_read_tokens, first.latency_ms, first.cost_nanousd) == (40, 512.5, 100_000)
    assert first.tags == {"source": "csv", "team": "core"}
    assert second.started_at == datetime(2025, 1, 1, 10, tzinfo=UTC)  # Unix seconds
    assert second.cost_nanousd is not None and second.price_version.startswith("genai-prices")
    assert import_file(store, path, "csv", mapping=mapping).imported == 0  # natural ids


def test_bad_rows_are_rejected_with_line_numbers() -> None:
    store = MemoryStore()
    path = DATA / "azure_trace_with_bad_rows.csv"
    result = import_file(store, path, model="gpt-4o-mini")
    assert result.rejected and result.imported == 0
    assert [(b.line, b.message) for b in result.bad] == [
        (4, "input_tokens is not a whole number: 'lots'"),
        (5, "2 fields where the header has 3"),
        (6, "cannot read 'yesterday' as a time: use ISO 8601 or Unix seconds"),
        (7, "input_tokens is negative: -5"),
    ]
    assert list(store.iter_records()) == []


def test_bad_rows_are_skipped_when_asked(tmp_path: Path) -> None:
    from costlens.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "skip.db")
    result = import_file(store, DATA / "azure_trace_with_bad_rows.csv", model="gpt-4o-mini", on_error="skip")
    assert (result.rows, result.imported, len(result.bad), result.rejected) == (7, 3, 4, False)
    assert str(result.bad[0]) == "line 4: input_tokens is not a whole number: 'lots'"
    assert sum(r.calls for r in store.query(SpendQuery())) == 3
    store.close()


def test_rejecting_rolls_back_everything_already_written(tmp_path: Path) -> None:
    from costlens.store.sqlite import SQLiteStore

    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"] + [
        f"2023-11-16 18:00:{i % 60:02d},{i},1" for i in range(120)
    ]
    path = tmp_path / "late.csv"
    path.write_text("\n".join([*lines, "2023-11-16 18:10:00,oops,1"]) + "\n")
    store = SQLiteStore(tmp_path / "r.db")
    result = import_file(store, path, model="gpt-4o-mini", batch_size=25)
    assert result.rejected and [b.line for b in result.bad] == [122]
    assert store.query(SpendQuery()) == []
    store.close()


def test_bad_json_and_bad_results(tmp_path: Path) -> None:
    store = MemoryStore()
    usage = json.loads((DATA / "openai_usage_completions.json").read_text())
    usage["data"][0]["results"][0]["model"] = None
    usage["data"][0]["results"][1]["input_cached_tokens"] = 10**9
    path = tmp_path / "usage.json"
    path.write_text(json.dumps(usage))
    result = import_file(store, path, "openai-usage", on_error="skip")
    assert [str(b) for b in result.bad] == [
        "page 0 data[0].results[0]: the result names no model: export usage grouped by model "
        "(group_by=model), or give the model (--model)",
        "page 0 data[0].results[1]: input_cached_tokens (1000000000) exceed input_tokens (12903)",
    ]
    assert result.imported == 5
    broken = tmp_path / "broken.json"
    broken.write_text('{"object": "page", "data": [')
    assert import_file(store, broken, "openai-usage").bad[0].where == "file"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "xml"}, "unknown import format 'xml'"),
        ({"format": "csv"}, "needs a column mapping"),
        ({"format": "csv", "mapping": "when=TIMESTAMP"}, "unknown mapping target 'when'"),
        ({"format": "csv", "mapping": "timestamp"}, "bad mapping 'timestamp'"),
        (
            {"format": "csv", "mapping": "timestamp=TIMESTAMP", "model": "m", "provider": "p"},
            "needs input_tokens",
        ),
        ({"preset": "nope"}, "unknown preset 'nope'"),
        ({"model": "m", "timezone": "Nowhere/City"}, "unknown time zone"),
        ({"model": "m", "pricing": "maybe"}, "unknown pricing"),
        ({"model": "m", "on_error": "ignore"}, "unknown on_error"),
    ],
)
def test_bad_options_say_what_to_do(kwargs: dict[str, str], message: str) -> None:
    fmt = kwargs.pop("format", "auto")
    with pytest.raises(ValueError, match=message):
        import_file(MemoryStore(), DATA / "azure_trace_with_bad_rows.csv", fmt, **kwargs)  # type: ignore[arg-type]


def test_unrecognisable_files(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="cannot tell the format"):
        detect_format(path)
