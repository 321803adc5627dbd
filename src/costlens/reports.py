"""Spend reports as plain data: the library function behind `costlens report` (and, later, the API).

Money stays exact: rows carry `cost_usd` as a `Decimal` built from integer nano-USD.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from costlens.store import SpendQuery, SpendRow, Store

__all__ = ["METRICS", "parse_since", "parse_time", "report_totals", "spend_report"]

#: The metric columns of every report row, after the group keys.
METRICS = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_calls",
)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def spend_report(
    store: Store,
    *,
    by: Sequence[str] = ("model",),
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, str] | None = None,
) -> list[dict[str, object]]:
    """Spend grouped by `by` over [since, until), most expensive first.

    Each row: the group keys (None where a tag is absent), then `METRICS`. ValueError on a bad key.
    """
    for key in by:
        if key in METRICS:
            raise ValueError(f"group key {key!r} collides with a report column: write tag:{key}")
    rows = store.query(SpendQuery(tuple(by), since, until, dict(where or {})))
    rows.sort(key=lambda r: (-r.cost_nanousd, -r.calls, [(r.keys[k] is None, r.keys[k] or "") for k in by]))
    return [_report_row(row, by) for row in rows]


def _report_row(row: SpendRow, by: Sequence[str]) -> dict[str, object]:
    out: dict[str, object] = {key: row.keys[key] for key in by}
    out.update(
        calls=row.calls,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cache_read_tokens=row.cache_read_tokens,
        cache_write_tokens=row.cache_write_tokens,
        reasoning_tokens=row.reasoning_tokens,
        cost_usd=row.cost_usd,
        unpriced_calls=row.unpriced_calls,
    )
    return out


def report_totals(rows: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """Column sums of report rows (exact: integers and Decimals only)."""
    totals: dict[str, object] = {}
    for name in METRICS:
        total: int | Decimal = Decimal("0E-9") if name == "cost_usd" else 0
        for row in rows:
            value = row[name]
            assert isinstance(value, int | Decimal)
            total += value
        totals[name] = total
    return totals


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """`30d`, `12h`, `2w`, `90m`, `45s` (that long before now) or an ISO date/datetime, as aware UTC.

    A date means its midnight UTC; a datetime without an offset is taken as UTC.
    """
    match = _DURATION.match(text)
    if match:
        seconds = int(match[1]) * _UNIT_SECONDS[match[2].lower()]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: use a duration such as 30d, 12h, 2w or 90m, "
            "or an ISO date or datetime such as 2025-01-31 or 2025-01-31T12:00Z"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


#: `--until` accepts the same forms as `--since`.
parse_time = parse_since
