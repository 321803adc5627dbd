"""What the SQLite and PostgreSQL stores' query builders share, whatever the dialect.

Both read one of two sources aliased `c` (raw `calls`, or `rollup_hourly`) exposing the same group
keys; a tag key is a LEFT JOIN on `tagset_tags` (NULL where the call lacks the tag). A dialect
gives its parameter placeholder and how it labels a time bucket (`Filter` subclasses); the
rollup's sums, the CASE over a zone's offset segments and the merging of result rows into
`SpendRow`s are written once, here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from costlens._errors import ConfigError
from costlens.store._base import SpendQuery, SpendRow, parse_key
from costlens.usage import USAGE_PARTS

_M = TypeVar("_M")  # a migration's SQL: one text, or (ClickHouse) its statements

__all__ = [
    "PART_SUMS",
    "ROLLUP_AGGREGATES",
    "SHARED_COLUMNS",
    "Filter",
    "Segments",
    "Source",
    "case",
    "spend_rows",
    "unapplied",
]

Segments = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Source:
    """What a query reads: its table, its time column, its column expressions and aggregates."""

    table: str
    time_col: str
    columns: Mapping[str, str]
    aggregates: str


#: The usage parts, summed after the original aggregates (`SpendRow` takes them in this order).
PART_SUMS = "".join(f", SUM(c.{name})" for name in USAGE_PARTS)
#: Group keys read the same from both sources (`model` differs: computed in calls, stored in the rollup).
SHARED_COLUMNS = {
    "request_model": "c.request_model",
    "provider": "c.provider",
    "operation": "c.operation",
    "status": "c.status",
    "service_tier": "NULLIF(c.service_tier, '')",
}
ROLLUP_AGGREGATES = (
    """SUM(c.calls), SUM(c.input_tokens), SUM(c.output_tokens), SUM(c.cache_read_tokens),
    SUM(c.cache_write_tokens), SUM(c.reasoning_tokens), SUM(c.cost_nanousd), SUM(c.unpriced_calls),
    SUM(c.error_calls), SUM(c.estimated_calls)"""
    + PART_SUMS
)


def case(time_col: str, segments: Segments, values: Sequence[str]) -> str:
    """The value of the segment `time_col` falls in (values[i] for segments[i])."""
    if len(segments) == 1:
        return values[0]
    whens = " ".join(
        f"WHEN {time_col} < {start} THEN {value}"
        for (start, _), value in zip(segments[1:], values, strict=False)
    )
    return f"CASE {whens} ELSE {values[-1]} END"


class Filter:
    """Builds FROM/WHERE clauses for one source: a LEFT JOIN per tag key, shared by group-by and where.

    A dialect sets `placeholder` and implements `time_label` (the SQL of a time bucket's label)."""

    placeholder = "?"

    def __init__(self, source: Source, segments: Segments = ((0, 0),), zone_name: str = "UTC") -> None:
        self.source = source
        self.segments = segments
        self.zone_name = zone_name
        self.joins: list[str] = []
        self.join_params: list[object] = []
        self.conds: list[str] = []
        self.cond_params: list[object] = []
        self._tag_alias: dict[str, str] = {}

    def time_label(self, bucket: str) -> str:
        raise NotImplementedError

    def expr(self, key: str) -> str:
        kind, name = parse_key(key)
        if kind == "column":
            column = self.source.columns.get(name)
            if column is not None:
                return column
            return self.time_label(name)
        alias = self._tag_alias.get(name)
        if alias is None:
            alias = self._tag_alias[name] = f"t{len(self._tag_alias)}"
            self.joins.append(
                f"LEFT JOIN tagset_tags {alias} ON {alias}.tagset_id = c.tagset_id "
                f"AND {alias}.key = {self.placeholder}"
            )
            self.join_params.append(name)
        return f"{alias}.value"

    def add(self, lo_us: int | None, hi_us: int | None, where: Mapping[str, str] | None) -> None:
        col, p = self.source.time_col, self.placeholder
        if lo_us is not None:
            self.conds.append(f"{col} >= {p}")
            self.cond_params.append(lo_us)
        if hi_us is not None:
            self.conds.append(f"{col} < {p}")
            self.cond_params.append(hi_us)
        for key, value in (where or {}).items():
            self.conds.append(f"{self.expr(key)} = {p}")
            self.cond_params.append(value)

    def sql(self) -> str:
        where = f" WHERE {' AND '.join(self.conds)}" if self.conds else ""
        return f"FROM {self.source.table} " + " ".join(self.joins) + where

    def params(self) -> list[object]:
        return [*self.join_params, *self.cond_params]


def spend_rows(q: SpendQuery, raw: Iterable[Sequence[Any]]) -> list[SpendRow]:
    """SpendRows from (keys..., sums...) rows; parts of one group (rollup + edges) are added up.

    Sums may arrive as `Decimal` (PostgreSQL's NUMERIC) or NULL: they become exact ints, no float."""
    n = len(q.group_by)
    merged: dict[tuple[Any, ...], list[int]] = {}
    for row in raw:
        if not row[n]:  # no GROUP BY: one row even when nothing matched
            continue
        sums = [int(v or 0) for v in row[n:]]
        key = tuple(row[:n])
        old = merged.get(key)
        merged[key] = sums if old is None else [a + b for a, b in zip(old, sums, strict=True)]
    return [SpendRow(dict(zip(q.group_by, key, strict=True)), *sums) for key, sums in merged.items()]


def unapplied(
    migrations: Sequence[tuple[str, _M]], applied: set[str], what: str = "the store", use: str = "read it"
) -> list[tuple[str, _M]]:
    """The migrations not in `applied`, in order; ConfigError if a newer costlens applied ones unknown
    here (`what` names the file or server in that message, `use` what upgrading lets the caller do)."""
    unknown = applied - {name for name, _ in migrations}
    if unknown:
        raise ConfigError(
            f"{what} has migrations this costlens does not know ({', '.join(sorted(unknown))}): "
            f"upgrade costlens to {use}"
        )
    return [(name, sql) for name, sql in migrations if name not in applied]
