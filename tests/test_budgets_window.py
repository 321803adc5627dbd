"""Window arithmetic from timestamps alone: time zones, DST changes, tiling, rolling buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costlens._errors import ConfigError
from costlens.budgets import Window, parse_window, window_bounds
from costlens.budgets._window import LIFETIME_SINCE_US, to_us

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/St_Johns",  # -3:30, DST
    "Australia/Lord_Howe",  # 30-minute DST
    "America/Santiago",  # DST changes at midnight: some local midnights do not exist
    "America/Havana",  # also at midnight
    "Asia/Beirut",  # also at midnight
    "Asia/Kathmandu",  # +5:45
    "Asia/Kolkata",
    "Pacific/Apia",  # skipped a whole day in 2011
    "Pacific/Chatham",  # +12:45 / +13:45
]
instants = st.datetimes(
    min_value=datetime(1995, 1, 1), max_value=datetime(2045, 1, 1), timezones=st.just(UTC)
)
calendar = st.sampled_from(["day", "week", "month"])


@settings(max_examples=400, deadline=None)
@given(at=instants, zone=st.sampled_from(ZONES), kind=calendar)
def test_every_instant_lies_in_exactly_one_window_and_windows_tile_time(
    at: datetime, zone: str, kind: str
) -> None:
    window = parse_window(kind, zone)
    start, end = window_bounds(window, at)
    assert end is not None
    assert start <= at < end
    # the next window starts exactly where this one ends, the previous one ends where it starts
    assert window_bounds(window, end)[0] == end
    assert window_bounds(window, start - timedelta(microseconds=1))[1] == start
    # and the window is the one of every instant inside it
    assert window_bounds(window, start) == (start, end)
    assert window_bounds(window, end - timedelta(microseconds=1)) == (start, end)


@settings(max_examples=400, deadline=None)
@given(at=instants, zone=st.sampled_from(ZONES), kind=calendar)
def test_windows_start_at_local_midnight_of_the_period_or_at_the_jump_over_it(
    at: datetime, zone: str, kind: str
) -> None:
    tz = ZoneInfo(zone)
    start, _ = window_bounds(parse_window(kind, zone), at)
    local = start.astimezone(tz)
    before = (start - timedelta(microseconds=1)).astimezone(tz)
    assert before.date() < local.date()  # the first instant of its local date
    if local.time() != datetime.min.time():
        assert local.utcoffset() != before.utcoffset()  # midnight skipped: the window starts at the jump
    if kind == "week":
        assert local.date().weekday() == 0 or local.time() != datetime.min.time()
    if kind == "month":
        assert local.day == 1 or local.time() != datetime.min.time()


@settings(max_examples=300, deadline=None)
@given(at=instants, zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Europe/London", "UTC"]))
def test_a_calendar_day_is_23_24_or_25_hours_and_24_away_from_dst_changes(at: datetime, zone: str) -> None:
    start, end = window_bounds(parse_window("day", zone), at)
    assert end is not None
    length = end - start
    assert length in (timedelta(hours=23), timedelta(hours=24), timedelta(hours=25))
    tz = ZoneInfo(zone)
    changed = start.astimezone(tz).utcoffset() != end.astimezone(tz).utcoffset()
    assert (length != timedelta(hours=24)) == changed


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Europe/Berlin", "2025-03-30", 23),
        ("Europe/Berlin", "2025-10-26", 25),
        ("America/New_York", "2025-03-09", 23),
        ("America/New_York", "2025-11-02", 25),
        ("Australia/Lord_Howe", "2025-04-06", 24.5),
        ("Australia/Lord_Howe", "2025-10-05", 23.5),
        ("America/Santiago", "2024-09-08", 23),  # local midnight does not exist that day
        ("UTC", "2025-03-30", 24),
    ],
)
def test_day_lengths_on_dst_changes(zone: str, day: str, hours: float) -> None:
    noon = datetime.fromisoformat(f"{day}T12:00").replace(tzinfo=ZoneInfo(zone))
    start, end = window_bounds(parse_window("day", zone), noon)
    assert end is not None
    assert end - start == timedelta(hours=hours)
    assert start.astimezone(ZoneInfo(zone)).date().isoformat() == day


def test_santiago_day_without_midnight_starts_at_one_am() -> None:
    zone = ZoneInfo("America/Santiago")
    start, _ = window_bounds(parse_window("day", "America/Santiago"), datetime(2024, 9, 8, 15, tzinfo=UTC))
    assert start.astimezone(zone).replace(tzinfo=None) == datetime(2024, 9, 8, 1, 0)


def test_month_and_week_in_berlin_span_dst() -> None:
    start, end = window_bounds(parse_window("month", "Europe/Berlin"), datetime(2025, 3, 15, tzinfo=UTC))
    assert (start, end) == (datetime(2025, 2, 28, 23, tzinfo=UTC), datetime(2025, 3, 31, 22, tzinfo=UTC))
    assert end is not None and end - start == timedelta(days=31, hours=-1)
    start, end = window_bounds(parse_window("week", "Europe/Berlin"), datetime(2025, 3, 30, 12, tzinfo=UTC))
    assert start == datetime(2025, 3, 23, 23, tzinfo=UTC)  # Monday 24 March, local midnight
    assert end == datetime(2025, 3, 30, 22, tzinfo=UTC)  # Monday 31 March, local midnight (CEST)


@settings(max_examples=300, deadline=None)
@given(at=instants, hours=st.integers(1, 24 * 40))
def test_rolling_windows_count_every_bucket_that_overlaps_them_and_at_most_one_more(
    at: datetime, hours: int
) -> None:
    window = Window("rolling", seconds=hours * 3600)
    pos = window.position(at)
    at_us, length = to_us(at), hours * 3_600_000_000
    size = max(60_000_000, length // 240)
    assert length % size == 0
    assert pos.bucket_us <= at_us < pos.bucket_us + size
    assert pos.since_us <= at_us - length < pos.since_us + size  # conservative by less than one bucket
    assert (pos.bucket_us - pos.since_us) // size <= 240
    assert pos.bucket_us <= at_us < pos.valid_until_us
    later = datetime.fromtimestamp((pos.valid_until_us - 1) / 1e6, UTC)
    assert window.position(later).since_us == pos.since_us


@settings(max_examples=200, deadline=None)
@given(at=instants, zone=st.sampled_from(ZONES), kind=calendar)
def test_calendar_position_is_one_bucket_per_window(at: datetime, zone: str, kind: str) -> None:
    window = parse_window(kind, zone)
    pos = window.position(at)
    start, end = window.bounds(at)
    assert end is not None
    assert pos.bucket_us == pos.since_us == pos.period_us == to_us(start)
    assert pos.valid_until_us == to_us(end)


def test_lifetime_counts_everything() -> None:
    pos = parse_window("lifetime").position(datetime(2030, 1, 1, tzinfo=UTC))
    assert pos.since_us == LIFETIME_SINCE_US and pos.end is None and pos.bucket_us == 0


@pytest.mark.parametrize(
    ("spec", "kind", "seconds", "text"),
    [
        ("day", "day", 0, "day"),
        ("Week", "week", 0, "week"),
        ("24h", "rolling", 86400, "24h"),
        ("7d", "rolling", 7 * 86400, "7d"),
        ("rolling 2 days", "rolling", 2 * 86400, "2d"),
        ("lifetime", "lifetime", 0, "lifetime"),
    ],
)
def test_parse_window(spec: str, kind: str, seconds: int, text: str) -> None:
    window = parse_window(spec)
    assert (window.kind, window.seconds, window.spec) == (kind, seconds, text)


@pytest.mark.parametrize("spec", ["daily", "0h", "90m", "", "1.5d"])
def test_bad_windows_say_what_to_use(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"day, week, month|at least 1 hour"):
        parse_window(spec)


def test_unknown_time_zone_says_what_to_use() -> None:
    with pytest.raises(ConfigError, match="IANA name"):
        parse_window("day", "Mars/Olympus")


def test_naive_datetimes_mean_utc() -> None:
    window = parse_window("day")
    assert window_bounds(window, datetime(2025, 1, 1, 5)) == window_bounds(
        window, datetime(2025, 1, 1, 5, tzinfo=UTC)
    )
