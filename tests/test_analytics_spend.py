"""`spend()`: measures, time buckets in a zone (DST), top-N, period-over-period, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costlens.analytics import MEASURES, OTHER, spend
from costlens.store import Store, open_store
from costlens.usage import CallRecord

T0 = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)  # 01:30 in Berlin; clocks go forward at 01:00 UTC


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend = open_store("memory://" if request.param == "memory" else f"sqlite://{tmp_path / 's.db'}")
    yield backend
    backend.close()


def rec(model: str, cost: int | None, *, at: datetime = T0, **kw: Any) -> CallRecord:
    kw.setdefault("input_tokens", 1000)
    kw.setdefault("output_tokens", 100)
    return CallRecord(
        "openai", "chat", model, started_at=at, cost_nanousd=cost, price_known=cost is not None, **kw
    )


def test_every_measure(store: Store) -> None:
    store.append(
        [
            rec("a", 3_000, latency_ms=100.0, ttft_ms=10.0, tags={"feature": "x"}),
            rec("a", 1_000, latency_ms=300.0, status="error", estimated=True),
            rec("b", None, latency_ms=200.0, input_tokens=10, output_tokens=0),
        ]
    )
    report = spend(store, ["model"], measures=MEASURES)
    a, b = report.rows
    assert a["model"] == "a"
    assert a["calls"] == 2
    assert a["total_tokens"] == 2200
    assert a["cost_usd"] == Decimal("0.000004000")
    assert a["cost_per_call"] == Decimal("0.000002000000")
    assert a["cost_per_1k_tokens"] == Decimal("0.000001818182")  # 4000 nano / 2200 tokens * 1000
    assert a["share"] == Decimal("1.000000")
    assert a["error_rate"] == Decimal("0.500000")
    assert a["estimated_share"] == Decimal("0.500000")
    assert (a["latency_p50"], a["latency_p95"], a["latency_p99"]) == (200.0, 290.0, 298.0)
    assert (a["ttft_p50"], a["ttft_p99"]) == (10.0, 10.0)
    assert b["unpriced_calls"] == 1
    assert b["share"] == Decimal("0E-6")
    assert b["ttft_p50"] is None
    assert report.totals["calls"] == 3
    assert report.totals["latency_p50"] == 200.0


def test_day_buckets_follow_the_zone_and_its_dst(store: Store) -> None:
    store.append(
        [
            rec("a", 1, at=datetime(2025, 3, 29, 22, 59, tzinfo=UTC)),  # 23:59 CET, 29 March
            rec("a", 2, at=datetime(2025, 3, 29, 23, 0, tzinfo=UTC)),  # 00:00 CET, 30 March
            rec("a", 4, at=datetime(2025, 3, 30, 21, 59, tzinfo=UTC)),  # 23:59 CEST, 30 March (23 h day)
            rec("a", 8, at=datetime(2025, 3, 30, 22, 0, tzinfo=UTC)),  # 00:00 CEST, 31 March
        ]
    )
    days = spend(store, [], bucket="day", timezone="Europe/Berlin", measures=["cost_usd"])
    assert [(r["day"], r["cost_usd"]) for r in days.rows] == [
        ("2025-03-29", Decimal("1E-9")),
        ("2025-03-30", Decimal("6E-9")),
        ("2025-03-31", Decimal("8E-9")),
    ]
    hours = spend(store, [], bucket="hour", timezone="Europe/Berlin", measures=["calls"])
    assert [r["hour"] for r in hours.rows] == [
        "2025-03-29T23:00+01:00",
        "2025-03-30T00:00+01:00",
        "2025-03-30T23:00+02:00",
        "2025-03-31T00:00+02:00",
    ]
    weeks = spend(store, [], bucket="week", timezone="Europe/Berlin", measures=["calls"])
    assert [(r["week"], r["calls"]) for r in weeks.rows] == [("2025-03-24", 3), ("2025-03-31", 1)]
    months = spend(store, [], bucket="month", timezone="America/New_York", measures=["calls"])
    assert [(r["month"], r["calls"]) for r in months.rows] == [("2025-03", 4)]
    kolkata = spend(store, [], bucket="day", timezone="Asia/Kolkata", measures=["calls"])
    assert [(r["day"], r["calls"]) for r in kolkata.rows] == [("2025-03-30", 2), ("2025-03-31", 2)]


def test_top_n_folds_the_rest_into_other(store: Store) -> None:
    store.append(
        [rec("a", 50), rec("b", 30), rec("c", 15), rec("d", 5), rec("c", 1, at=T0 + timedelta(days=1))]
    )
    report = spend(store, ["model"], top=2, measures=["calls", "cost_usd", "share"])
    assert [r["model"] for r in report.rows] == ["a", "b"]
    assert report.other == [
        {"model": OTHER, "calls": 3, "cost_usd": Decimal("2.1E-8"), "share": Decimal("0.207921")}
    ]
    by_day = spend(store, ["model"], bucket="day", top=1, measures=["cost_usd"])
    assert [(r["day"], r["model"]) for r in by_day.rows] == [("2025-03-30", "a")]
    assert [(r["day"], r["model"], r["cost_usd"]) for r in by_day.other] == [
        ("2025-03-30", OTHER, Decimal("5.0E-8")),
        ("2025-03-31", OTHER, Decimal("1E-9")),
    ]


def test_compare_with_the_previous_period(store: Store) -> None:
    week = timedelta(days=7)
    store.append(
        [
            rec("a", 100, at=T0 - week),
            rec("b", 40, at=T0 - week),
            rec("a", 150, at=T0),
            rec("c", 10, at=T0),
        ]
    )
    report = spend(
        store, ["model"], since=T0 - timedelta(days=3), until=T0 + timedelta(days=4), compare="previous"
    )
    rows = {r["model"]: r for r in report.rows}
    assert report.previous == (T0 - timedelta(days=10), T0 - timedelta(days=3))
    assert rows["a"]["previous_cost_usd"] == Decimal("1.00E-7")
    assert rows["a"]["cost_change_usd"] == Decimal("5.0E-8")
    assert rows["a"]["cost_change"] == Decimal("0.500000")
    assert rows["c"]["cost_change"] is None  # nothing before: no ratio
    assert rows["b"]["calls"] == 0  # only in the previous period: shown with zeros
    assert rows["b"]["cost_change"] == Decimal("-1.000000")
    assert report.totals["previous_cost_usd"] == Decimal("1.40E-7")
    assert "cost_change" in report.columns


def test_compare_in_a_top_n_report_puts_unshown_groups_in_other(store: Store) -> None:
    store.append([rec("a", 100, at=T0 - timedelta(days=1)), rec("b", 10), rec("a", 5)])
    report = spend(
        store,
        ["model"],
        since=T0 - timedelta(hours=1),
        until=T0 + timedelta(hours=1),
        top=1,
        compare="previous",
    )
    assert [r["model"] for r in report.rows] == ["b"]
    assert report.other[0]["model"] == OTHER
    assert report.totals["previous_cost_usd"] == Decimal(0).scaleb(-9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"by": ["calls"]}, "collides with a report column: write tag:calls"),
        ({"bucket": "year"}, "unknown bucket 'year'"),
        ({"measures": ["speed"]}, "unknown measure 'speed'"),
        ({"top": 0}, "top must be at least 1"),
        ({"compare": "previous"}, "needs a start"),
        ({"compare": "lastyear", "since": T0}, "unknown comparison"),
        ({"compare": "previous", "since": T0, "bucket": "day"}, "drop the time bucket"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"by": ["model", "model"]}, "repeated"),
    ],
)
def test_bad_options_say_what_to_do(store: Store, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spend(store, **kwargs)
