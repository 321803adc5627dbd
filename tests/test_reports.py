"""spend_report rows, totals and the --since/--until parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from costlens.reports import METRICS, parse_since, parse_time, report_totals, spend_report
from costlens.store.memory import MemoryStore
from costlens.usage import CallRecord

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def call(model: str, cost: int | None, *, days_ago: int = 0, **tags: str) -> CallRecord:
    return CallRecord(
        "openai",
        "chat",
        model,
        started_at=NOW - timedelta(days=days_ago),
        input_tokens=100,
        output_tokens=10,
        cache_read_tokens=40,
        reasoning_tokens=3,
        cost_nanousd=cost,
        tags=tags,
    )


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    s.append(
        [
            call("cheap", 1_234_500, feature="search"),
            call("cheap", 1, feature="chat"),
            call("dear", 900_000_000, feature="search"),
            call("mystery", None, feature="search", days_ago=40),
        ]
    )
    return s


def test_rows_are_sorted_by_cost_and_carry_exact_decimals(store: MemoryStore) -> None:
    rows = spend_report(store, by=["model"])
    assert [r["model"] for r in rows] == ["dear", "cheap", "mystery"]
    assert list(rows[0]) == ["model", *METRICS]
    assert rows[1] == {
        "model": "cheap",
        "calls": 2,
        "input_tokens": 200,
        "output_tokens": 20,
        "cache_read_tokens": 80,
        "cache_write_tokens": 0,
        "reasoning_tokens": 6,
        "cost_usd": Decimal("0.001234501"),
        "unpriced_calls": 0,
    }
    assert str(rows[1]["cost_usd"]) == "0.001234501"
    assert rows[2]["cost_usd"] == 0
    assert rows[2]["unpriced_calls"] == 1


def test_filters_and_several_keys(store: MemoryStore) -> None:
    rows = spend_report(
        store, by=["feature", "model"], since=NOW - timedelta(days=30), where={"feature": "search"}
    )
    assert [(r["feature"], r["model"], r["cost_usd"]) for r in rows] == [
        ("search", "dear", Decimal("0.900000000")),
        ("search", "cheap", Decimal("0.001234500")),
    ]
    assert spend_report(store, by=["model"], until=NOW - timedelta(days=41)) == []


def test_totals_are_exact_sums(store: MemoryStore) -> None:
    totals = report_totals(spend_report(store, by=["feature"]))
    assert totals == {
        "calls": 4,
        "input_tokens": 400,
        "output_tokens": 40,
        "cache_read_tokens": 160,
        "cache_write_tokens": 0,
        "reasoning_tokens": 12,
        "cost_usd": Decimal("0.901234501"),
        "unpriced_calls": 1,
    }
    assert report_totals([])["cost_usd"] == 0


def test_ties_sort_by_calls_then_keys_with_missing_last() -> None:
    s = MemoryStore()
    s.append([call("b", 5), call("a", 5), call("c", 5), call("c", 0), call("b", 5, feature="x")])
    assert [(r["model"], r["feature"]) for r in spend_report(s, by=["model", "feature"])] == [
        ("c", None),  # same cost, more calls
        ("a", None),
        ("b", "x"),
        ("b", None),  # a missing tag sorts after any value
    ]


def test_a_group_key_named_like_a_column_needs_the_prefix(store: MemoryStore) -> None:
    with pytest.raises(ValueError, match="write tag:calls"):
        spend_report(store, by=["calls"])
    assert spend_report(store, by=["tag:calls"])[0]["tag:calls"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", NOW - timedelta(days=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("2w", NOW - timedelta(weeks=2)),
        ("90m", NOW - timedelta(minutes=90)),
        ("45s", NOW - timedelta(seconds=45)),
        (" 7D ", NOW - timedelta(days=7)),
        ("2025-01-31", datetime(2025, 1, 31, tzinfo=UTC)),
        ("2025-01-31T12:30", datetime(2025, 1, 31, 12, 30, tzinfo=UTC)),
        ("2025-01-31T12:30Z", datetime(2025, 1, 31, 12, 30, tzinfo=UTC)),
        ("2025-01-31T14:30+02:00", datetime(2025, 1, 31, 12, 30, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    got = parse_since(text, now=NOW)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "30", "d30", "-3d", "2025-13-01", "", "3 months"])
def test_parse_since_errors_say_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match=r"use a duration such as 30d, 12h, 2w or 90m, or an ISO date"):
        parse_since(text)


def test_parse_time_is_the_same_parser() -> None:
    assert parse_time("1d", now=NOW) == NOW - timedelta(days=1)
