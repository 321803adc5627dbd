"""`spend()`: the analytics query over any store, with measures, top-N and period-over-period.

Exact sums come from `Store.query` (which a backend may answer from rollups); percentiles need
the raw calls and are read only when asked for. Rows are plain dicts (keys, then measures), ready
for a table, JSON, CSV or a chart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from costlens.analytics._measures import (
    DEFAULT_MEASURES,
    MEASURES,
    PERCENTILE_MEASURES,
    Sums,
    check_measures,
    measure_values,
)
from costlens.store import SpendQuery, Store, nanousd_to_usd
from costlens.store._base import TIME_KEYS, scan_calls

__all__ = ["COMPARE_COLUMNS", "OTHER", "SpendReport", "spend"]

#: The label of the group that collects everything outside the top N.
OTHER = "(other)"
#: Columns added to every row by `compare="previous"`.
COMPARE_COLUMNS = ("previous_cost_usd", "previous_calls", "cost_change_usd", "cost_change")
Key = tuple[str | None, ...]
_TOTAL: Key = ("\0total",)


@dataclass(frozen=True, slots=True)
class SpendReport:
    """What `spend()` found. `rows` hold the group keys then the measures (then `COMPARE_COLUMNS`);
    `other` holds what fell outside the top N (keys labelled `(other)`, one row per time bucket)."""

    keys: tuple[str, ...]
    measures: tuple[str, ...]
    rows: list[dict[str, object]]
    totals: dict[str, object]
    other: list[dict[str, object]] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    timezone: str = "UTC"
    previous: tuple[datetime, datetime] | None = None

    @property
    def columns(self) -> list[str]:
        extra = list(COMPARE_COLUMNS) if self.previous is not None else []
        return [*self.keys, *self.measures, *extra]

    @property
    def all_rows(self) -> list[dict[str, object]]:
        """`rows` then `other`."""
        return [*self.rows, *self.other]


def spend(
    store: Store,
    by: Sequence[str] = ("model",),
    *,
    bucket: str | None = None,
    timezone: str = "UTC",
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, str] | None = None,
    measures: Sequence[str] = DEFAULT_MEASURES,
    top: int | None = None,
    compare: str | None = None,
    now: datetime | None = None,
    use_rollups: bool = True,
) -> SpendReport:
    """Spend grouped by `by` (plus a time `bucket`: hour, day, week or month in `timezone`).

    `top=N` keeps the N most expensive groups (series, when there is a bucket) and folds the rest
    into `other`. `compare="previous"` adds the same measures for the window of equal length just
    before [since, until) (until defaults to now). ValueError on a bad key, measure or option.
    """
    keys = _keys(by, bucket)
    names = check_measures(measures)
    if top is not None and top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    q = SpendQuery(keys, since, until, dict(where or {}), timezone, use_rollups)
    groups = {_key(row.keys, keys): Sums.of(row) for row in store.query(q)}
    total = _sum(groups.values())
    series = [i for i, k in enumerate(keys) if k not in TIME_KEYS]
    keep = _top_series(groups, series, top)
    kept = {k: v for k, v in groups.items() if keep is None or _series(k, series) in keep}
    other = _fold_other(groups, kept, series)
    previous = None if compare is None else _previous_window(compare, keys, since, until, now)
    before = None if previous is None else _before(store, q, previous, kept, other, top is not None)
    samples = _samples(store, q, keep, series) if set(names) & set(PERCENTILE_MEASURES) else {}

    def build(part: dict[Key, Sums]) -> list[dict[str, object]]:
        out = []
        for key, sums in _ordered(part, keys):
            row = _row(keys, key, sums, names, total.cost_nanousd, samples.get(key))
            if before is not None:
                _compare_columns(row, sums, before.get(key, Sums()))
            out.append(row)
        return out

    totals = measure_values(total, names, total.cost_nanousd, samples.get(_TOTAL))
    if before is not None:
        _compare_columns(totals, total, _sum(before.values()))
    return SpendReport(keys, names, build(kept), totals, build(other), since, until, timezone, previous)


def _keys(by: Sequence[str], bucket: str | None) -> tuple[str, ...]:
    if isinstance(by, str):
        raise TypeError("by is a sequence of keys, not a string")
    keys = list(by)
    if bucket is not None:
        if bucket not in TIME_KEYS:
            raise ValueError(f"unknown bucket {bucket!r}: use one of {', '.join(TIME_KEYS)}")
        if bucket not in keys:
            keys.insert(0, bucket)
    for key in keys:
        if key in MEASURES or key in COMPARE_COLUMNS:
            raise ValueError(f"group key {key!r} collides with a report column: write tag:{key}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"a group key is repeated in {keys}")
    return tuple(keys)


def _key(values: Mapping[str, str | None], keys: Sequence[str]) -> Key:
    return tuple(values[k] for k in keys)


def _series(key: Key, series: Sequence[int]) -> Key:
    return tuple(key[i] for i in series)


def _top_series(groups: Mapping[Key, Sums], series: Sequence[int], top: int | None) -> set[Key] | None:
    """The `top` most expensive series (the non-time part of a key); None keeps everything."""
    if top is None:
        return None
    totals: dict[Key, Sums] = {}
    for key, sums in groups.items():
        totals.setdefault(_series(key, series), Sums()).add(sums)
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1].cost_nanousd, -kv[1].calls, _sortable(kv[0])))
    return {k for k, _ in ranked[:top]}


def _fold_other(
    groups: Mapping[Key, Sums], kept: Mapping[Key, Sums], series: Sequence[int]
) -> dict[Key, Sums]:
    other: dict[Key, Sums] = {}
    for key, sums in groups.items():
        if key not in kept:
            folded = tuple(OTHER if i in series else v for i, v in enumerate(key))
            other.setdefault(folded, Sums()).add(sums)
    return other


def _sortable(key: Key) -> list[tuple[bool, str]]:
    return [(v is None, v or "") for v in key]


def _ordered(groups: Mapping[Key, Sums], keys: Sequence[str]) -> list[tuple[Key, Sums]]:
    """Time buckets ascending first, then the most expensive first; a missing tag sorts last."""
    times = [i for i, k in enumerate(keys) if k in TIME_KEYS]

    def order(item: tuple[Key, Sums]) -> tuple[object, ...]:
        key, sums = item
        return (_sortable(tuple(key[i] for i in times)), -sums.cost_nanousd, -sums.calls, _sortable(key))

    return sorted(groups.items(), key=order)


def _samples(
    store: Store, q: SpendQuery, keep: set[Key] | None, series: Sequence[int]
) -> dict[Key, dict[str, list[float]]]:
    """Sorted latency and TTFT values (ms) per group, per `(other)` group, and in total."""
    out: dict[Key, dict[str, list[float]]] = {}
    total: dict[str, list[float]] = {"latency": [], "ttft": []}
    n = len(q.group_by)
    for row in scan_calls(store, q, ("latency_ms", "ttft_ms")):
        key: Key = tuple(row[:n])
        if keep is not None and _series(key, series) not in keep:
            key = tuple(OTHER if i in series else v for i, v in enumerate(key))
        bucket = out.get(key)
        if bucket is None:
            bucket = out[key] = {"latency": [], "ttft": []}
        for kind, value in (("latency", row[n]), ("ttft", row[n + 1])):
            if value is not None:
                bucket[kind].append(float(value))
                total[kind].append(float(value))
    out[_TOTAL] = total
    for values in out.values():
        for kind in values:
            values[kind].sort()
    return out


def _row(
    keys: Sequence[str],
    key: Key,
    sums: Sums,
    names: Sequence[str],
    total_cost: int,
    samples: Mapping[str, Sequence[float]] | None,
) -> dict[str, object]:
    out: dict[str, object] = dict(zip(keys, key, strict=True))
    out.update(measure_values(sums, names, total_cost, samples))
    return out


def _previous_window(
    compare: str, keys: Sequence[str], since: datetime | None, until: datetime | None, now: datetime | None
) -> tuple[datetime, datetime]:
    if compare != "previous":
        raise ValueError(f"unknown comparison {compare!r}: use previous")
    if since is None:
        raise ValueError("comparing with the previous period needs a start: give since (e.g. --since 30d)")
    if any(k in TIME_KEYS for k in keys):
        raise ValueError("comparing with the previous period works on totals: drop the time bucket")
    end = until or now or datetime.now(UTC)
    if end <= since:
        raise ValueError("comparing with the previous period needs since before until")
    return since - (end - since), since


def _before(
    store: Store,
    q: SpendQuery,
    window: tuple[datetime, datetime],
    kept: dict[Key, Sums],
    other: dict[Key, Sums],
    top_mode: bool,
) -> dict[Key, Sums]:
    """Sums of the previous window per shown group. A group seen only then is added to `kept` with
    zeros (or, in a top-N report, to the `(other)` group)."""
    prev_q = SpendQuery(q.group_by, window[0], window[1], q.where, q.timezone, q.use_rollups)
    before: dict[Key, Sums] = {}
    other_key: Key = (OTHER,) * len(q.group_by)
    for row in store.query(prev_q):
        key = _key(row.keys, q.group_by)
        if key not in kept and (top_mode or key in other):
            other.setdefault(other_key, Sums())
            before.setdefault(other_key, Sums()).add(Sums.of(row))
            continue
        kept.setdefault(key, Sums())
        before[key] = Sums.of(row)
    return before


def _sum(parts: Iterable[Sums]) -> Sums:
    total = Sums()
    for part in parts:
        total.add(part)
    return total


def _compare_columns(row: dict[str, object], now: Sums, before: Sums) -> None:
    change = now.cost_nanousd - before.cost_nanousd
    row["previous_cost_usd"] = nanousd_to_usd(before.cost_nanousd)
    row["previous_calls"] = before.calls
    row["cost_change_usd"] = nanousd_to_usd(change)
    row["cost_change"] = (
        None
        if before.cost_nanousd == 0
        else (Decimal(change) / Decimal(before.cost_nanousd)).quantize(Decimal("1e-6"), ROUND_HALF_EVEN)
    )
