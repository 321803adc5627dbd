"""SELECT builders of the PostgreSQL store, over raw calls or over the hourly rollup.

The shape follows the SQLite store's `_sql.py`: both sources are aliased `c` and expose the same
group keys; a tag key is a LEFT JOIN on `tagset_tags` (NULL where the call lacks the tag). Time
buckets use the zone's UTC offsets over the queried range, computed in Python by
`costlens.store._time.offset_segments` (the reference's own time-zone data, so the labels cannot
drift from it the way the server's tz database could), added with a CASE, and turned into labels
with integer arithmetic only (floor division to a day number, then `date + integer`): no float
touches a timestamp. Every query built here is run with parameters, so `%` is written `%%`.
Groups are by position (`GROUP BY 1, 2`), because a tag expression holds a bound parameter and
PostgreSQL does not match `$1` in the select list with `$4` in a GROUP BY.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from costlens.store import _sqlcommon
from costlens.store._base import parse_key
from costlens.store._sqlcommon import PART_SUMS, ROLLUP_AGGREGATES, SHARED_COLUMNS, Segments, Source, case
from costlens.store._time import HOUR_US, TIME_KEYS, offset_label

__all__ = ["RAW", "ROLLUP", "Aggregate", "Filter", "Source", "aggregate_sql"]

_DAY_US = 24 * HOUR_US
_EPOCH_DATE = date(1970, 1, 1)
#: The model a call is grouped under: the response model, else the requested one.
MODEL = "COALESCE(NULLIF(c.response_model, ''), c.request_model)"
RAW = Source(
    table="calls c",
    time_col="c.started_at_us",
    columns={**SHARED_COLUMNS, "model": MODEL},
    aggregates="""COUNT(*), SUM(c.input_tokens), SUM(c.output_tokens), SUM(c.cache_read_tokens),
    SUM(c.cache_write_tokens), SUM(c.reasoning_tokens), SUM(c.cost_nanousd),
    COUNT(*) FILTER (WHERE c.cost_nanousd IS NULL), COUNT(*) FILTER (WHERE c.status = 'error'),
    SUM(c.estimated)"""
    + PART_SUMS,
)
ROLLUP = Source(
    table="rollup_hourly c",
    time_col="c.hour_us",
    columns={**SHARED_COLUMNS, "model": "c.model"},
    aggregates=ROLLUP_AGGREGATES,
)


def _floor_div(expr: str, unit: int) -> str:
    """Floor division of a BIGINT expression (PostgreSQL's `/` and `%` truncate toward zero)."""
    return f"(({expr}) - ((({expr}) %% {unit}) + {unit}) %% {unit}) / {unit}"


def time_expr(bucket: str, time_col: str, segments: Segments, zone_name: str) -> str:
    """SQL for the label of a time bucket (`hour`, `day`, `week`, `month`) in the zone."""
    offsets = [f"{offset}::bigint" for _, offset in segments]
    local = time_col if offsets == ["0::bigint"] else f"({time_col} + {case(time_col, segments, offsets)})"
    day = _floor_div(local, _DAY_US)
    if bucket == "week":  # 1970-01-01 was a Thursday: Monday is 3 days before day 0
        day = f"({day} - ((({day}) + 3) %% 7 + 7) %% 7)"
    # `::timestamp`: to_char would otherwise take the date as a timestamptz in the session's zone.
    date = f"(DATE '1970-01-01' + ({day})::integer)::timestamp"
    if bucket == "month":
        return f"to_char({date}, 'YYYY-MM')"
    if bucket != "hour":
        return f"to_char({date}, 'YYYY-MM-DD')"
    hour = f"(((({local}) %% {_DAY_US}) + {_DAY_US}) %% {_DAY_US}) / {HOUR_US}"
    labels = [f"'{offset_label(offset, zone_name)}'" for _, offset in segments]
    return (
        f"(to_char({date}, 'YYYY-MM-DD') || 'T' || lpad(({hour})::text, 2, '0') || ':00' || "
        f"{case(time_col, segments, labels)})"
    )


class Filter(_sqlcommon.Filter):
    """FROM/WHERE clauses in PostgreSQL's dialect (`%s` parameters, `to_char` labels)."""

    placeholder = "%s"

    def time_label(self, bucket: str) -> str:
        return time_expr(bucket, self.source.time_col, self.segments, self.zone_name)


def _bucket_numbers(bucket: str, time_col: str, segments: Segments) -> list[str]:
    """Integer SQL keys a time bucket is grouped on (labels are made in Python, after grouping:
    grouping 8-byte integers is much cheaper than formatting and sorting a text label per call).

    `day`, `week`, `month`: the local day number (a week or month is several of them, merged by
    label in Python); `hour`: the local hour number and the UTC offset (which tells apart the two
    01:00 hours of a night that turns the clocks back)."""
    offsets = [f"{offset}::bigint" for _, offset in segments]
    offset = case(time_col, segments, offsets)
    local = time_col if offsets == ["0::bigint"] else f"({time_col} + {offset})"
    if bucket == "hour":
        return [_floor_div(local, HOUR_US), offset]
    return [_floor_div(local, _DAY_US)]


def _label(bucket: str, numbers: Sequence[int], zone_name: str) -> str:
    """The reference label (`costlens.store._time.bucket_label`) from `_bucket_numbers` values."""
    if bucket == "hour":
        local_hour, offset = numbers
        day = _EPOCH_DATE + timedelta(days=local_hour // 24)
        return f"{day.isoformat()}T{local_hour % 24:02d}:00{offset_label(offset, zone_name)}"
    day = _EPOCH_DATE + timedelta(days=numbers[0])
    if bucket == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if bucket == "month":
        return f"{day.year:04d}-{day.month:02d}"
    return day.isoformat()


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One aggregate query and how to read its rows back as (group values..., sums...)."""

    sql: str
    params: list[object]
    keys: tuple[tuple[str | None, int], ...]  # per group key: its time bucket (or None), its columns
    zone_name: str

    def decode(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """A result row with every time bucket's numbers turned into its label."""
        out: list[Any] = []
        at = 0
        for bucket, width in self.keys:
            if bucket is None:
                out.append(row[at])
            else:
                out.append(_label(bucket, [int(v) for v in row[at : at + width]], self.zone_name))
            at += width
        return (*out, *row[at:])


def aggregate_sql(
    source: Source,
    group_by: Sequence[str],
    lo_us: int | None,
    hi_us: int | None,
    where: Mapping[str, str],
    segments: Segments,
    zone_name: str,
) -> Aggregate:
    """`SELECT <group exprs>, <aggregates> FROM ... WHERE ... GROUP BY 1, 2...` and how to read it."""
    f = Filter(source, segments, zone_name)
    exprs: list[str] = []
    keys: list[tuple[str | None, int]] = []
    for key in group_by:
        kind, name = parse_key(key)
        if kind == "column" and name in TIME_KEYS:
            numbers = _bucket_numbers(name, source.time_col, segments)
            exprs += numbers
            keys.append((name, len(numbers)))
        else:
            exprs.append(f.expr(key))
            keys.append((None, 1))
    f.add(lo_us, hi_us, where)
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(exprs)))}" if exprs else ""
    sql = f"SELECT {', '.join([*exprs, source.aggregates])} {f.sql()}{group}"
    return Aggregate(sql, f.params(), tuple(keys), zone_name)
