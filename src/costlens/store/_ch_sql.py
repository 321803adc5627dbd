"""SQL pieces for the ClickHouse store: key expressions, filters and time-bucket labels.

Time zones are not left to ClickHouse: `toTimeZone`/`toStartOfDay(t, tz)` depend on the server's
time-zone data and version, and `DateTime` cannot hold times before 1970. Instead the zone's UTC
offsets over the queried range (`costlens.store._time.offset_segments`, from Python's zoneinfo,
the reference) become a `multiIf` giving each call's offset in microseconds. SQL groups by the
local hour number plus the offset (`hour`) or the local day number (`day`, `week`, `month`), and
Python turns those integers into the reference labels. This is exact for any offset, whole hour or
not (Asia/Kolkata +5:30, Asia/Kathmandu +5:45, historic LMT offsets), and across DST changes.

Values reach SQL as clickhouse-driver `%(name)s` parameters (quoted by the driver); the SQL avoids
the `%` operator (`modulo()` instead) so that parameter substitution never sees a stray percent.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from costlens.store._base import parse_key
from costlens.store._time import HOUR_US, offset_label

__all__ = ["DAY_US", "MODEL", "ROLLUP_COLUMNS", "Reader", "Segments", "floor_div"]

DAY_US = 24 * HOUR_US
_EPOCH_DAY = date(1970, 1, 1)
Segments = tuple[tuple[int, int], ...]

#: `model`: the response model, else the requested one (an empty response model counts as none).
MODEL = "if(ifNull(response_model, '') = '', request_model, assumeNotNull(response_model))"
_COLUMN_SQL = {
    "model": MODEL,
    "request_model": "request_model",
    "provider": "provider",
    "operation": "operation",
    "status": "status",
    "service_tier": "nullIf(ifNull(service_tier, ''), '')",
}
#: The same keys read from `rollup_hourly`, which stores the model and the tier ('' for none) as grouped.
ROLLUP_COLUMNS = {**_COLUMN_SQL, "model": "model", "service_tier": "nullIf(tier, '')"}
_HOUR_LABEL = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):00(Z|[+-]\d{2}:\d{2}(?::\d{2})?)$")
_DAY_LABEL = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH_LABEL = re.compile(r"^(\d{4})-(\d{2})$")

Decoder = Callable[[Sequence[Any]], str | None]


def floor_div(expr: str, again: str | None = None, *, divisor: int) -> str:
    """Floor division in SQL (`intDiv` truncates toward zero, which is wrong before 1970).

    The divisor is an Int64 literal: with a bare one, 18.16 types `modulo(Int64, 3600000000)` as
    Int32, and remainders past 2**31 wrap negative."""
    d = _int(divisor)
    return f"(intDiv({expr}, {d}) - (modulo({again or expr}, {d}) < 0))"


def _int(value: int) -> str:
    # Typed literals keep every branch Int64 (mixed UInt/Int literals widen differently by version).
    return f"toInt64({value})"


@functools.lru_cache(maxsize=65536)
def _day_label(day: int) -> str:
    return (_EPOCH_DAY + timedelta(days=day)).isoformat()


@functools.lru_cache(maxsize=65536)
def _week_label(day: int) -> str:
    when = _EPOCH_DAY + timedelta(days=day)
    return (when - timedelta(days=when.weekday())).isoformat()


@functools.lru_cache(maxsize=65536)
def _month_label(day: int) -> str:
    when = _EPOCH_DAY + timedelta(days=day)
    return f"{when.year:04d}-{when.month:02d}"


@functools.lru_cache(maxsize=65536)
def _hour_label(hour: int, offset_us: int, zone_name: str) -> str:
    day, in_day = divmod(hour, 24)
    return f"{_day_label(day)}T{in_day:02d}:00" + offset_label(offset_us, zone_name)


def _day_number(text: str) -> int | None:
    """The day number of a canonical `YYYY-MM-DD` label, else None (matches no call)."""
    if not _DAY_LABEL.match(text):
        return None
    try:
        return (date.fromisoformat(text) - _EPOCH_DAY).days
    except ValueError:
        return None


class Reader:
    """The WHERE clause and group-key expressions of one read, with their parameters.

    `segments` are the zone's offsets over the read's range (`((0, 0),)` for UTC). A read of the
    hourly rollup passes its time column (`hour_us`) and `ROLLUP_COLUMNS`; tags are the same two
    arrays there, so tag keys and filters are written alike.
    """

    def __init__(
        self,
        segments: Segments = ((0, 0),),
        zone_name: str = "UTC",
        *,
        time_col: str = "started_at_us",
        columns: Mapping[str, str] = _COLUMN_SQL,
    ) -> None:
        self.zone_name = zone_name
        self.time_col = time_col
        self._columns = columns
        self._local_defined = False
        self.params: dict[str, Any] = {}
        self.conditions: list[str] = []
        if len(segments) == 1:
            self._offset_sql = _int(segments[0][1])
            self._aliased = True
        else:
            # Plain literals in the conditions (Int64 comparisons), typed ones in the results.
            conditions = (
                f"{time_col} < {start}, {_int(before)}"
                for (start, _), (_, before) in zip(segments[1:], segments, strict=False)
            )
            self._offset_sql = f"(multiIf({', '.join(conditions)}, {_int(segments[-1][1])}) AS utc_offset)"
            self._aliased = False

    @property
    def offset(self) -> str:
        """The call's UTC offset (microseconds) in the zone. A long `multiIf` is written once, with an
        alias the other uses name (ClickHouse aliases are query-wide): analysing hundreds of branches
        three or four times over costs 18.16 a noticeable fraction of a second per query."""
        if self._aliased:
            return "utc_offset" if self._offset_sql.endswith("AS utc_offset)") else self._offset_sql
        self._aliased = True
        return self._offset_sql

    def _local(self) -> tuple[str, str]:
        """The call's local time: its first spelling here (defining the alias), and later ones."""
        if self._offset_sql.startswith("toInt64("):
            local = f"({self.time_col} + {self._offset_sql})"
            return local, local
        if self._local_defined:
            return "local_us", "local_us"
        self._local_defined = True
        return f"(({self.time_col} + {self.offset}) AS local_us)", "local_us"

    @property
    def local_hour(self) -> str:
        return floor_div(*self._local(), divisor=HOUR_US)

    @property
    def local_day(self) -> str:
        return floor_div(*self._local(), divisor=DAY_US)

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    # -- group keys ----------------------------------------------------------------------------

    def key(self, key: str) -> tuple[list[str], Decoder]:
        """SQL expressions for one group key, and how to turn their values into its label."""
        kind, name = parse_key(key)
        if kind == "tag":
            p = self.param(name)
            return [f"if(has(tag_keys, {p}), tag_values[indexOf(tag_keys, {p})], NULL)"], _first
        if name == "hour":
            zone = self.zone_name
            return [self.local_hour, self.offset], lambda v: _hour_label(v[0], v[1], zone)
        if name in ("day", "week", "month"):
            label = {"day": _day_label, "week": _week_label, "month": _month_label}[name]
            return [self.local_day], lambda v: label(v[0])
        return [self._columns[name]], _first

    def keys(
        self, keys: Sequence[str]
    ) -> tuple[list[str], Callable[[Sequence[Any]], tuple[str | None, ...]]]:
        """All group keys' expressions (flattened) and a decoder of the leading values of a row."""
        exprs: list[str] = []
        parts: list[tuple[int, int, Decoder]] = []
        for key in keys:
            sql, decode = self.key(key)
            parts.append((len(exprs), len(exprs) + len(sql), decode))
            exprs.extend(sql)

        def decode_all(row: Sequence[Any]) -> tuple[str | None, ...]:
            return tuple(decode(row[lo:hi]) for lo, hi, decode in parts)

        return exprs, decode_all

    # -- filters -------------------------------------------------------------------------------

    def add_range(self, lo: int | None, hi: int | None) -> None:
        """[lo, hi) in microseconds: on the sorting key's first column, so the primary index prunes."""
        if lo is not None:
            self.conditions.append(f"{self.time_col} >= {_int(lo)}")
        if hi is not None:
            self.conditions.append(f"{self.time_col} < {_int(hi)}")

    def add_where(self, where: Mapping[str, str] | None) -> None:
        for key, value in (where or {}).items():
            self.conditions.append(self._equals(key, value))

    def _equals(self, key: str, value: str) -> str:
        kind, name = parse_key(key)
        if kind == "tag":
            k, v = self.param(name), self.param(value)
            return f"(has(tag_keys, {k}) AND tag_values[indexOf(tag_keys, {k})] = {v})"
        if name == "hour":
            return self._hour_equals(value)
        if name in ("day", "week", "month"):
            span = _day_span(name, value)
            if span is None:
                return "0"
            return f"({self.local_day} BETWEEN {_int(span[0])} AND {_int(span[1])})"
        return f"({self._columns[name]} = {self.param(value)})"

    def _hour_equals(self, value: str) -> str:
        m = _HOUR_LABEL.match(value)
        if m is None:
            return "0"
        day = _day_number(f"{m[1]}-{m[2]}-{m[3]}")
        hour_of_day, suffix = int(m[4]), m[5]
        if day is None or hour_of_day > 23:
            return "0"
        if suffix == "Z":
            offset = 0
        else:
            sign = -1 if suffix[0] == "-" else 1
            pieces = [int(x) for x in suffix[1:].split(":")]
            offset = (
                sign * (pieces[0] * 3600 + pieces[1] * 60 + (pieces[2] if len(pieces) > 2 else 0)) * 10**6
            )
        hour = day * 24 + hour_of_day
        if _hour_label(hour, offset, self.zone_name) != value:  # not how the reference writes it
            return "0"
        return f"({self.local_hour} = {_int(hour)} AND {self.offset} = {_int(offset)})"

    def where_sql(self) -> str:
        return f"WHERE {' AND '.join(self.conditions)}" if self.conditions else ""


def _first(values: Sequence[Any]) -> str | None:
    value: str | None = values[0]
    return value


def _day_span(bucket: str, value: str) -> tuple[int, int] | None:
    """The first and last local day numbers a day/week/month label covers; None if not a label."""
    if bucket == "month":
        m = _MONTH_LABEL.match(value)
        if m is None:
            return None
        year, month = int(m[1]), int(m[2])
        if not (1 <= year <= 9999 and 1 <= month <= 12):
            return None
        last = date(year, 12, 31) if month == 12 else date(year, month + 1, 1) - timedelta(days=1)
        return (date(year, month, 1) - _EPOCH_DAY).days, (last - _EPOCH_DAY).days
    day = _day_number(value)
    if day is None:
        return None
    if bucket == "day":
        return day, day
    if _week_label(day) != value:  # a week is labelled by its Monday only
        return None
    return day, day + 6
