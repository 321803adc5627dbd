"""Reading the times people type for `--since` / `--until` (`30d`, `2w`, an ISO date) as aware UTC.

Spend reports themselves are queries of `costlens.analytics`; this module only parses times.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

__all__ = ["parse_since"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


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
