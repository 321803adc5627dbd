"""SELECT builders of the SQLite store, over raw calls or over the hourly rollup.

Both sources are aliased `c` and expose the same group keys, so one builder serves both; only the
time column (`started_at_us` vs `hour_us`) and the aggregates differ. Time buckets in a zone are
computed by adding the zone's UTC offset (a CASE over the offset changes in the queried range,
see `costlens.store._time`) and formatting with `strftime`. The SQL stays close to what
PostgreSQL accepts; only `strftime`/`date` would be spelled differently there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from costlens.store import _sqlcommon
from costlens.store._sqlcommon import PART_SUMS, ROLLUP_AGGREGATES, SHARED_COLUMNS, Segments, Source, case
from costlens.store._time import offset_label

__all__ = ["RAW", "ROLLUP", "Filter", "Source", "aggregate_sql"]

RAW = Source(
    table="calls c",
    time_col="c.started_at_us",
    columns={**SHARED_COLUMNS, "model": "COALESCE(NULLIF(c.response_model, ''), c.request_model)"},
    aggregates="""COUNT(*), SUM(c.input_tokens), SUM(c.output_tokens), SUM(c.cache_read_tokens),
    SUM(c.cache_write_tokens), SUM(c.reasoning_tokens), SUM(c.cost_nanousd),
    SUM(CASE WHEN c.cost_nanousd IS NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END), SUM(c.estimated)"""
    + PART_SUMS,
)
ROLLUP = Source(
    table="rollup_hourly c",
    time_col="c.hour_us",
    columns={**SHARED_COLUMNS, "model": "c.model"},
    aggregates=ROLLUP_AGGREGATES,
)


def _floor_seconds(expr: str) -> str:
    """Floor division of microseconds to whole seconds, right for negative times too."""
    return f"(({expr} - ((({expr}) % 1000000 + 1000000) % 1000000)) / 1000000)"


def time_expr(bucket: str, time_col: str, segments: Segments, zone_name: str) -> str:
    """SQL for the label of a time bucket (`hour`, `day`, `week`, `month`) in the zone."""
    offsets = [str(offset) for _, offset in segments]
    local = time_col if offsets == ["0"] else f"({time_col} + {case(time_col, segments, offsets)})"
    seconds = _floor_seconds(local)
    if bucket == "hour":
        labels = [f"'{offset_label(offset, zone_name)}'" for _, offset in segments]
        return f"(strftime('%Y-%m-%dT%H:00', {seconds}, 'unixepoch') || {case(time_col, segments, labels)})"
    if bucket == "day":
        return f"strftime('%Y-%m-%d', {seconds}, 'unixepoch')"
    if bucket == "week":
        return f"date({seconds}, 'unixepoch', '-6 days', 'weekday 1')"
    return f"strftime('%Y-%m', {seconds}, 'unixepoch')"


class Filter(_sqlcommon.Filter):
    """FROM/WHERE clauses in SQLite's dialect (`?` parameters, `strftime` labels)."""

    placeholder = "?"

    def time_label(self, bucket: str) -> str:
        return time_expr(bucket, self.source.time_col, self.segments, self.zone_name)


def aggregate_sql(
    source: Source,
    group_by: Sequence[str],
    lo_us: int | None,
    hi_us: int | None,
    where: Mapping[str, str],
    segments: Segments,
    zone_name: str,
) -> tuple[str, list[object]]:
    """`SELECT <group exprs>, <aggregates> FROM ... WHERE ... GROUP BY ...` and its parameters."""
    f = Filter(source, segments, zone_name)
    exprs = [f.expr(key) for key in group_by]
    f.add(lo_us, hi_us, where)
    group = f" GROUP BY {', '.join(exprs)}" if exprs else ""
    return f"SELECT {', '.join([*exprs, source.aggregates])} {f.sql()}{group}", f.params()
