"""Forecasts on series with known trends and injected spikes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from costlens.analytics import forecast, month_window
from costlens.store.memory import MemoryStore
from costlens.usage import NANO, CallRecord

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
FEB_15 = datetime(2025, 2, 15, 12, 0, tzinfo=UTC)  # day 0 of the 28-day lookback before 15 March


def call(at: datetime, usd: float, **tags: str) -> CallRecord:
    return CallRecord(
        "openai", "chat", "m", started_at=at, cost_nanousd=round(usd * NANO), price_known=True, tags=tags
    )


def test_a_linear_trend_is_recovered_despite_a_spike() -> None:
    store = MemoryStore()
    for day in range(28):
        usd = 10 + 0.5 * day
        store.append([call(FEB_15 + timedelta(days=day), usd * (5 if day == 20 else 1))])
    store.append([call(NOW - timedelta(hours=6), 12.0)])  # half of today's 24 USD so far
    (result,) = forecast(store, now=NOW)
    assert result.method == "theil-sen"
    assert result.history_days == 28
    assert result.daily_trend_usd == Decimal("0.500000000")
    assert result.daily_rate_usd == Decimal("24.000000000")  # 10 + 0.5 * 28
    # spent: 1-14 March (days 14..27 of the line, plus the spike's extra 80) + 12 today
    assert result.spent_usd == Decimal("375.500000000")
    # still to come: half of today (12) + 16-31 March (days 29..44: 160 + 0.5 * 584)
    assert result.forecast_usd == Decimal("839.500000000")
    assert result.low_usd is not None and result.high_usd is not None
    assert result.spent_usd <= result.low_usd < result.forecast_usd < result.high_usd
    assert result.high_usd - result.low_usd < result.forecast_usd * Decimal("0.15")  # one spike: still narrow
    assert (result.window_start, result.window_end) == month_window(NOW)


def test_the_interval_covers_about_its_level() -> None:
    rng = random.Random(7)
    hits = 0
    trials = 40
    for _ in range(trials):
        store = MemoryStore()
        daily = [100 + 2 * d + rng.gauss(0, 8) for d in range(28 + 17)]
        for day in range(28):
            store.append([call(FEB_15 + timedelta(days=day), daily[day])])
        (result,) = forecast(store, now=datetime(2025, 3, 15, tzinfo=UTC), level=0.8)
        actual = sum(daily[14:]) - 0  # 1 March (day 14) to 31 March (day 44)
        assert result.low_usd is not None and result.high_usd is not None
        hits += result.low_usd <= Decimal(repr(actual)) <= result.high_usd
    assert 0.6 * trials <= hits <= trials


def test_scopes_are_forecast_separately_and_sorted() -> None:
    store = MemoryStore()
    for day in range(28):
        at = FEB_15 + timedelta(days=day)
        store.append([call(at, 1.0, feature="search"), call(at, 3.0 + day, feature="chat")])
    results = forecast(store, ["feature"], now=NOW)
    assert [r.keys for r in results] == [{"feature": "chat"}, {"feature": "search"}]
    assert results[1].daily_trend_usd == Decimal("0E-9")
    assert results[1].forecast_usd == Decimal("30.500000000")  # 1 USD a day; none yet today (noon)


def test_little_history_falls_back_to_the_run_rate() -> None:
    store = MemoryStore()
    store.append([call(NOW - timedelta(days=1), 4.0), call(NOW - timedelta(hours=1), 2.0)])
    (result,) = forecast(store, now=NOW)
    assert result.method == "run-rate"
    assert result.low_usd is None
    assert result.forecast_usd > result.spent_usd == Decimal("6.000000000")
    assert forecast(MemoryStore(), now=NOW) == []


def test_windows_follow_the_time_zone() -> None:
    start, end = month_window(datetime(2025, 3, 31, 23, 30, tzinfo=UTC), "Europe/Berlin")
    assert (start, end) == (datetime(2025, 3, 31, 22, tzinfo=UTC), datetime(2025, 4, 30, 22, tzinfo=UTC))
    store = MemoryStore()
    for day in range(28):
        store.append([call(FEB_15 + timedelta(days=day), 24.0)])
    (result,) = forecast(store, now=NOW, timezone="Europe/Berlin")
    # 24 USD a day; what is left: 11 h of 15 March (Berlin), then 16 days of which 30 March has 23 h
    expected = result.spent_usd + Decimal(24 * 11 / 24 + 16 * 24)
    assert abs(result.forecast_usd - expected) < Decimal("0.000001")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"level": 1.5}, "level must be between 0 and 1"),
        ({"lookback_days": 0}, "lookback_days must be at least 1"),
        ({"window": (NOW - timedelta(days=3), NOW - timedelta(days=1))}, "must contain now"),
    ],
)
def test_bad_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        forecast(MemoryStore(), now=NOW, **kwargs)  # type: ignore[arg-type]
