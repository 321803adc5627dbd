"""SELECT builders of the SQLite store, over raw calls or over the hourly rollup.

Both sources are aliased `c` and expose the same group keys, so one builder serves both; only the
time column (`started_at_us` vs `hour_us`) and the aggregates differ. Time buckets in a zone are
computed by adding the zone's UTC offset (a CASE over the offset changes in the queried range,
see `costlens.store._time`) and formatting with `strftime`. The SQL stays close to what
PostgreSQL accepts; only `strftime`/`date` would be spelled differently there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from costlens.store._base import parse_key
from costlens.store._time import offset_label
from costlens.usage import USAGE_PARTS

__all__ = ["RAW", "ROLLUP", "Filter", "Source"]

Segments = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Source:
    """What a query reads: its table, its time column, its column expressions and aggregates."""

    table: str
    time_col: str
    columns: Mapping[str, str]
    aggregates: str


# The usage parts, summed after the original aggregates (`SpendRow` takes them in this order).
_PART_SUMS = "".join(f", SUM(c.{name})" for name in USAGE_PARTS)
_SHARED = {
    "request_model": "c.request_model",
    "provider": "c.provider",
    "operation": "c.operation",
    "status": "c.status",
    "service_tier": "NULLIF(c.service_tier, '')",
}
RAW = Source(
    table="calls c",
    time_col="c.started_at_us",
    columns={**_SHARED, "model": "COALESCE(NULLIF(c.response_model, ''), c.request_model)"},
    aggregates="""COUNT(*), SUM(c.input_tokens), SUM(c.output_tokens), SUM(c.cache_read_tokens),
    SUM(c.cache_write_tokens), SUM(c.reasoning_tokens), SUM(c.cost_nanousd),
    SUM(CASE WHEN c.cost_nanousd IS NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END), SUM(c.estimated)"""
    + _PART_SUMS,
)
ROLLUP = Source(
    table="rollup_hourly c",
    time_col="c.hour_us",
    columns={**_SHARED, "model": "c.model"},
    aggregates="""SUM(c.calls), SUM(c.input_tokens), SUM(c.output_tokens), SUM(c.cache_read_tokens),
    SUM(c.cache_write_tokens), SUM(c.reasoning_tokens), SUM(c.cost_nanousd), SUM(c.unpriced_calls),
    SUM(c.error_calls), SUM(c.estimated_calls)"""
    + _PART_SUMS,
)


def _floor_seconds(expr: str) -> str:
    """Floor division of microseconds to whole seconds, right for negative times too."""
    return f"(({expr} - ((({expr}) % 1000000 + 1000000) % 1000000)) / 1000000)"


def _case(time_col: str, segments: Segments, values: Sequence[str]) -> str:
    """The value of the segment `time_col` falls in (values[i] for segments[i])."""
    if len(segments) == 1:
        return values[0]
    whens = " ".join(
        f"WHEN {time_col} < {start} THEN {value}"
        for (start, _), value in zip(segments[1:], values, strict=False)
    )
    return f"CASE {whens} ELSE {values[-1]} END"


def time_expr(bucket: str, time_col: str, segments: Segments, zone_name: str) -> str:
    """SQL for the label of a time bucket (`hour`, `day`, `week`, `month`) in the zone."""
    offsets = [str(offset) for _, offset in segments]
    local = time_col if offsets == ["0"] else f"({time_col} + {_case(time_col, segments, offsets)})"
    seconds = _floor_seconds(local)
    if bucket == "hour":
        labels = [f"'{offset_label(offset, zone_name)}'" for _, offset in segments]
        return f"(strftime('%Y-%m-%dT%H:00', {seconds}, 'unixepoch') || {_case(time_col, segments, labels)})"
    if bucket == "day":
        return f"strftime('%Y-%m-%d', {seconds}, 'unixepoch')"
    if bucket == "week":
        return f"date({seconds}, 'unixepoch', '-6 days', 'weekday 1')"
    return f"strftime('%Y-%m', {seconds}, 'unixepoch')"


class Filter:
    """Builds FROM/WHERE clauses for one source: a LEFT JOIN per tag key, shared by group-by and where."""

    def __init__(self, source: Source, segments: Segments = ((0, 0),), zone_name: str = "UTC") -> None:
        self.source = source
        self.segments = segments
        self.zone_name = zone_name
        self.joins: list[str] = []
        self.join_params: list[object] = []
        self.conds: list[str] = []
        self.cond_params: list[object] = []
        self._tag_alias: dict[str, str] = {}

    def expr(self, key: str) -> str:
        kind, name = parse_key(key)
        if kind == "column":
            column = self.source.columns.get(name)
            if column is not None:
                return column
            return time_expr(name, self.source.time_col, self.segments, self.zone_name)
        alias = self._tag_alias.get(name)
        if alias is None:
            alias = self._tag_alias[name] = f"t{len(self._tag_alias)}"
            self.joins.append(
                f"LEFT JOIN tagset_tags {alias} ON {alias}.tagset_id = c.tagset_id AND {alias}.key = ?"
            )
            self.join_params.append(name)
        return f"{alias}.value"

    def add(self, lo_us: int | None, hi_us: int | None, where: Mapping[str, str] | None) -> None:
        col = self.source.time_col
        if lo_us is not None:
            self.conds.append(f"{col} >= ?")
            self.cond_params.append(lo_us)
        if hi_us is not None:
            self.conds.append(f"{col} < ?")
            self.cond_params.append(hi_us)
        for key, value in (where or {}).items():
            self.conds.append(f"{self.expr(key)} = ?")
            self.cond_params.append(value)

    def sql(self) -> str:
        where = f" WHERE {' AND '.join(self.conds)}" if self.conds else ""
        return f"FROM {self.source.table} " + " ".join(self.joins) + where

    def params(self) -> list[object]:
        return [*self.join_params, *self.cond_params]


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
