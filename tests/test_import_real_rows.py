"""Import of real rows (see tests/data/README): OpenAI cookbook exports, LiteLLM spend logs and daily
tables, BurstGPT and Mooncake traces with relative timestamps (issue 10 items 6-8)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from costlens.analytics import detect_format, import_file
from costlens.store import SpendQuery
from costlens.store.memory import MemoryStore
from costlens.usage import CallRecord

DATA = Path(__file__).resolve().parent / "data"


def records(store: MemoryStore) -> list[CallRecord]:
    return sorted(store.iter_records(), key=lambda r: (r.started_at, r.id))


# --- item 6: OpenAI usage and costs --------------------------------------------------------------


def test_costs_line_items_that_differ_only_by_api_key_stay_separate() -> None:
    store = MemoryStore()
    result = import_file(store, DATA / "openai_costs_by_api_key.json")
    assert (result.format, result.rows, result.imported, result.duplicates) == ("openai-costs", 4, 4, 0)
    assert result.cost_nanousd == 127_717_000  # 0.127440 + 0.000271 + 0.000003 + 0.000003 USD
    keys = sorted(r.tags.get("api_key_id", "") for r in store.iter_records())
    assert keys == ["", "key_derived_A", "key_derived_A", "key_derived_B"]


def test_a_page_with_has_more_imports_with_a_warning() -> None:
    result = import_file(MemoryStore(), DATA / "openai_costs_by_api_key.json")
    assert len(result.warnings) == 1
    assert "incomplete" in result.warnings[0] and "page_AAAAAGeHJIAAAAAAZ4kZgA==" in result.warnings[0]
    assert result.as_dict()["warnings"] == result.warnings
    complete = import_file(MemoryStore(), DATA / "openai_costs.json")  # has_more only on a middle page
    assert complete.warnings == []


def test_the_cookbook_list_of_usage_buckets_imports() -> None:
    path = DATA / "openai_cookbook_usage_buckets.json"
    assert detect_format(path) == ("openai-usage", None)
    store = MemoryStore()
    result = import_file(store, path, model="gpt-4o-mini", on_error="reject")
    assert (result.imported, result.bad, result.warnings) == (470 + 150 + 3053 + 157, [], [])
    totals = store.query(SpendQuery())[0]
    # audio is counted apart from OpenAI's text `input_tokens`/`output_tokens`: added, and kept as parts
    audio_in, audio_out = 5776 + 4066, 3166 + 1097
    assert (totals.input_tokens, totals.output_tokens, totals.cache_read_tokens) == (
        141201 + 45949 + 3718360 + 52786 + audio_in,
        9756 + 282 + 97756 + 38204 + audio_out,
        76544 + 5440,
    )
    assert (
        sum(r.input_audio_tokens for r in records(store)),
        sum(r.output_audio_tokens for r in records(store)),
    ) == (
        audio_in,
        audio_out,
    )
    first = records(store)[0]
    assert first.started_at == datetime(2025, 1, 11, 17, 31, tzinfo=UTC)  # 1736616660
    without_model = import_file(MemoryStore(), path, on_error="skip")
    assert "or give the model (--model)" in without_model.bad[0].message


def test_the_cookbook_list_of_cost_buckets_keeps_exact_amounts() -> None:
    store = MemoryStore()
    result = import_file(store, DATA / "openai_cookbook_costs_buckets.json")
    assert (result.format, result.imported) == ("openai-costs", 3)
    amounts = [r.cost_usd for r in records(store)]
    assert amounts == [Decimal("0.130804383"), Decimal("0.122704233"), Decimal("9.888144383")]
    assert all(r.tags == {} for r in records(store))


def test_ids_of_files_without_new_grouping_fields_are_unchanged() -> None:
    """Files of the older shape keep the ids earlier versions gave them: re-importing adds nothing."""
    usage, costs = MemoryStore(), MemoryStore()
    import_file(usage, DATA / "openai_usage_completions.json")
    import_file(costs, DATA / "openai_costs.json")
    assert "0d5b2e1ab74f6a6e54983b7eb87c89ce" in {r.id for r in usage.iter_records()}
    assert "03881f01062012533f7661a4a7744081" in {r.id for r in costs.iter_records()}


# --- item 7: LiteLLM -------------------------------------------------------------------------------


def test_litellm_real_rows_call_types_tags_cache_and_inferred_provider() -> None:
    store = MemoryStore()
    result = import_file(store, DATA / "litellm_spend_logs_real.json")
    assert (result.format, result.imported, result.bad) == ("litellm", 3, [])
    rows = {r.tags.get("api_key_alias", r.request_model): r for r in store.iter_records()}
    real = rows["claude-3-7-sonnet-20250219"]
    assert (real.provider, real.operation, real.input_tokens, real.output_tokens) == (
        "anthropic", "chat", 2095, 503,
    )  # fmt: skip
    assert real.cost_usd == Decimal("0.013830000") and real.tags["end_user"] == "test_user_1"
    messages = rows["support-bot"]
    assert messages.operation == "chat"  # anthropic_messages, not "nthropic_messages"
    assert messages.provider == "anthropic"  # no custom_llm_provider: inferred from the model name
    assert (messages.cache_read_tokens, messages.cache_write_tokens) == (1200, 300)  # additional_usage_values
    assert messages.tags == {
        "api_key_alias": "support-bot", "team_alias": "docs-team", "feature": "summarise",
        "customer": "acme", "end_user": "test_user_1",
    }  # fmt: skip
    gpt = rows["gpt-4o"]
    assert gpt.provider == "openai"  # custom_llm_provider is empty: inferred, not "unknown"


@pytest.mark.parametrize(
    ("call_type", "operation"),
    [
        ("anthropic_messages", "chat"),
        ("acompletion", "chat"),
        ("aembedding", "embeddings"),
        ("atext_completion", "text_completion"),
        ("aresponses", "responses"),
        ("aimage_generation", "image_generation"),
        ("allm_passthrough_route", "allm_passthrough_route"),
    ],
)
def test_only_async_call_types_lose_their_a(call_type: str, operation: str, tmp_path: Path) -> None:
    row = json.loads((DATA / "litellm_spend_logs_real.json").read_text())[0]
    row["call_type"] = call_type
    path = tmp_path / "one.json"
    path.write_text(json.dumps([row]))
    store = MemoryStore()
    import_file(store, path)
    assert records(store)[0].operation == operation


def test_litellm_daily_user_spend_rows_become_aggregate_records() -> None:
    path = DATA / "litellm_daily_user_spend.csv"
    assert detect_format(path) == ("litellm-daily", None)
    store = MemoryStore()
    result = import_file(store, path)
    assert (result.format, result.imported, result.bad) == ("litellm-daily", 3, [])
    assert result.cost_nanousd == 27_660_000 + 225_000
    claude, _gpt, failed = records(store)
    assert (claude.operation, claude.provider, claude.started_at) == (
        "aggregate", "anthropic", datetime(2025, 3, 24, tzinfo=UTC),
    )  # fmt: skip
    assert (claude.input_tokens, claude.output_tokens, claude.price_version) == (4190, 1006, "litellm")
    assert claude.tags == {
        "aggregate": "litellm-daily", "litellm_table": "LiteLLM_DailyUserSpend", "requests": "2",
        "successful_requests": "2", "failed_requests": "0", "user": "default_user_id",
        "model_group": "my-anthropic-model-group",
    }  # fmt: skip
    assert failed.status == "error" and failed.tags["failed_requests"] == "1"
    assert import_file(store, path).imported == 0  # idempotent (the row's own id)


def test_litellm_daily_team_rows_as_json(tmp_path: Path) -> None:
    lines = (DATA / "litellm_daily_user_spend.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    for row in rows:
        row["team_id"] = "team-docs"
        del row["user_id"]
    path = tmp_path / "team.json"
    path.write_text(json.dumps(rows))
    assert detect_format(path) == ("litellm-daily", None)
    store = MemoryStore()
    assert import_file(store, path).imported == 3
    assert {r.tags["litellm_table"] for r in store.iter_records()} == {"LiteLLM_DailyTeamSpend"}
    assert {r.tags["team"] for r in store.iter_records()} == {"team-docs"}


# --- item 8: relative timestamps, JSON lines -------------------------------------------------------


def test_relative_timestamps_are_refused_without_start() -> None:
    path = DATA / "burstgpt_head.csv"
    assert detect_format(path) == ("csv", "burstgpt")
    store = MemoryStore()
    with pytest.raises(ValueError, match="--start"):
        import_file(store, path)
    assert list(store.iter_records()) == []


def test_burstgpt_with_start() -> None:
    store = MemoryStore()
    start = datetime(2023, 7, 1, tzinfo=UTC)
    result = import_file(store, DATA / "burstgpt_head.csv", start=start)
    assert (result.imported, result.bad) == (3, [])
    got = [(r.started_at - start, r.request_model, r.input_tokens, r.output_tokens) for r in records(store)]
    assert got == [
        (timedelta(seconds=5), "ChatGPT", 472, 18),
        (timedelta(seconds=45), "ChatGPT", 1087, 230),
        (timedelta(seconds=118), "GPT-4", 417, 276),
    ]
    assert records(store)[0].tags == {"log_type": "Conversation log"}
    assert records(store)[0].provider == "azure"


def test_mooncake_jsonl_with_start_in_milliseconds() -> None:
    path = DATA / "mooncake_conversation_trace.jsonl"
    assert detect_format(path) == ("jsonl", "mooncake")
    store = MemoryStore()
    start = datetime(2024, 6, 1, 12, tzinfo=UTC)
    result = import_file(store, path, start=start, model="gpt-4o-mini", provider="openai")
    assert (result.format, result.imported, result.bad) == ("jsonl", 10, [])
    got = records(store)
    assert got[0].started_at == start and got[-1].started_at == start + timedelta(seconds=9)
    assert (
        sum(r.input_tokens for r in got)
        == 6758 + 7322 + 7236 + 2290 + 6760 + 6324 + 2012 + 1053 + 5710 + 1477
    )
    assert all(r.cost_nanousd is not None for r in got)
    assert import_file(store, path, start=start, model="gpt-4o-mini", provider="openai").imported == 0
    with pytest.raises(ValueError, match="--start"):
        import_file(MemoryStore(), path, model="gpt-4o-mini", provider="openai")


def test_map_works_for_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text(
        '{"ts": "2025-01-01T10:00:00Z", "usage": {"in": 10, "out": 2}, "m": "gpt-4o", "who": "ann"}\n'
        '{"ts": "2025-01-01T10:00:01Z", "usage": {"in": 20, "out": 4}, "m": "gpt-4o", "who": null}\n'
        '{"ts": "2025-01-01T10:00:02Z", "m": "gpt-4o"}\n'
    )
    mapping = "timestamp=ts,input_tokens=usage.in,output_tokens=usage.out,model=m,tag.user=who"
    store = MemoryStore()
    result = import_file(store, path, mapping=mapping, provider="openai", on_error="skip")
    assert result.format == "jsonl" and result.imported == 2
    assert [str(b) for b in result.bad] == ["line 3: no usage.in in the object (keys: ts, m)"]
    first, second = records(store)
    assert (first.input_tokens, first.output_tokens, first.tags) == (10, 2, {"user": "ann"})
    assert second.tags == {}


def test_start_rejects_absolute_times_and_bad_units(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown time unit"):
        import_file(MemoryStore(), DATA / "burstgpt_head.csv", start=datetime(2023, 1, 1), time_unit="h")
    result = import_file(
        MemoryStore(), DATA / "azure_trace_with_bad_rows.csv", model="m", start=datetime(2023, 1, 1)
    )
    assert "as a relative time" in result.bad[0].message
