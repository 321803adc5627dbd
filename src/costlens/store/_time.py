"""Time buckets in a time zone: the reference labels, and the UTC-offset segments SQL backends need.

A bucket key (`hour`, `day`, `week`, `month`) is labelled in the query's time zone:
`hour` -> `2025-03-30T03:00+02:00` (`...Z` when the zone is `UTC`), `day` -> `2025-03-30`,
`week` -> the date of its Monday, `month` -> `2025-03`. Buckets follow the zone's civil calendar,
so a DST day has 23 or 25 hours.

SQLite has no time-zone database, so the SQLite store turns a zone into the list of UTC offsets in
force over the queried range (`offset_segments`) and adds the right one with a CASE expression.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "HOUR_US",
    "TIME_KEYS",
    "bucket_label",
    "get_zone",
    "hour_aligned",
    "offset_label",
    "offset_segments",
]

#: Group keys that are time buckets (all others are columns or tags).
TIME_KEYS = ("hour", "day", "week", "month")
HOUR_US = 3_600_000_000
_DAY_US = 24 * HOUR_US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Range where datetime arithmetic is safe in any zone (a day inside year 1 and year 9999).
_MIN_US = (datetime(1, 1, 2, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime(9999, 12, 30, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_TABLE_FROM = (datetime(1970, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_TABLE_TO = (datetime(2050, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_Y1900 = (datetime(1900, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_Y2100 = (datetime(2100, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


@functools.lru_cache(maxsize=64)
def get_zone(name: str) -> tzinfo:
    """`UTC` or an IANA zone name (`Europe/Berlin`); ValueError saying what to write otherwise."""
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use UTC or an IANA name such as Europe/Berlin or America/New_York"
        ) from None


def _at(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def offset_label(offset_us: int, zone_name: str) -> str:
    """`Z` for the zone named UTC, else `+01:00` / `-03:30` (seconds only when the offset has some)."""
    if zone_name == "UTC":
        return "Z"
    sign = "-" if offset_us < 0 else "+"
    seconds = abs(offset_us) // 1_000_000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def bucket_label(when: datetime, bucket: str, zone_name: str = "UTC") -> str:
    """The label of the `bucket` holding `when` in the zone (the reference every backend matches)."""
    zone = get_zone(zone_name)
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    local = aware.astimezone(zone)
    if bucket == "hour":
        offset = local.utcoffset() or timedelta()
        hour = f"{local.date().isoformat()}T{local.hour:02d}:00"
        return hour + offset_label(offset // timedelta(microseconds=1), zone_name)
    if bucket == "day":
        return local.date().isoformat()
    if bucket == "week":
        return (local.date() - timedelta(days=local.weekday())).isoformat()
    if bucket == "month":
        return f"{local.year:04d}-{local.month:02d}"
    raise ValueError(f"unknown time bucket {bucket!r}: use one of {', '.join(TIME_KEYS)}")


def _offset(zone: tzinfo, micros: int) -> int:
    offset = _at(micros).astimezone(zone).utcoffset() or timedelta()
    return offset // timedelta(microseconds=1)


def offset_segments(zone_name: str, lo_us: int, hi_us: int) -> tuple[tuple[int, int], ...]:
    """`((start_us, offset_us), ...)`: the zone's UTC offsets over [lo_us, hi_us], in time order.

    The first segment starts at `lo_us` (clamped to the supported range); each later one at the
    exact microsecond the offset changes. Changes are found by stepping a day at a time and
    bisecting, so two changes less than a day apart would be missed (no zone has had that since 1970).
    """
    zone = get_zone(zone_name)
    lo, hi = max(lo_us, _MIN_US), min(max(hi_us, lo_us), _MAX_US)
    if zone is UTC:
        return ((lo, 0),)
    # One table of changes per zone, found once per process: 1970-2050, else 1900-2100, else the range.
    start = _TABLE_FROM if lo >= _TABLE_FROM else min(lo - lo % _DAY_US, _Y1900)
    end = _TABLE_TO if hi < _TABLE_TO else max(hi - hi % _DAY_US + _DAY_US, _Y2100)
    changes = _changes(zone, start, end)
    first = [offset for start, offset in changes if start <= lo][-1]
    return ((lo, first), *((start, offset) for start, offset in changes if lo < start <= hi))


@functools.lru_cache(maxsize=256)
def _changes(zone: tzinfo, lo_day: int, hi_day: int) -> tuple[tuple[int, int], ...]:
    """The offset at `lo_day`, then every (change_us, new_offset) in (lo_day, hi_day]."""
    changes = [(lo_day, _offset(zone, lo_day))]
    t, before = lo_day, changes[0][1]
    while t < hi_day:
        step = min(t + _DAY_US, hi_day)
        after = _offset(zone, step)
        if after != before:
            changes.append((_bisect_change(zone, t, step, before), after))
            before = after
        t = step
    return tuple(changes)


def _bisect_change(zone: tzinfo, lo: int, hi: int, before: int) -> int:
    """The first microsecond in (lo, hi] whose offset differs from `before`."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(zone, mid) == before:
            lo = mid
        else:
            hi = mid
    return hi


def hour_aligned(segments: tuple[tuple[int, int], ...]) -> bool:
    """True when every offset is whole hours and every change falls on a UTC hour: then hourly UTC
    rollups map exactly onto the zone's hours, days, weeks and months."""
    if any(offset % HOUR_US for _, offset in segments):
        return False
    return all(start % HOUR_US == 0 for start, _ in segments[1:])
