"""The --since/--until parser (`costlens.reports.parse_since`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from costlens.reports import parse_since

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", NOW - timedelta(days=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("2w", NOW - timedelta(weeks=2)),
        ("90m", NOW - timedelta(minutes=90)),
        ("45s", NOW - timedelta(seconds=45)),
        (" 7D ", NOW - timedelta(days=7)),
        ("2025-01-31", datetime(2025, 1, 31, tzinfo=UTC)),
        ("2025-01-31T12:30", datetime(2025, 1, 31, 12, 30, tzinfo=UTC)),
        ("2025-01-31T12:30Z", datetime(2025, 1, 31, 12, 30, tzinfo=UTC)),
        ("2025-01-31T14:30+02:00", datetime(2025, 1, 31, 12, 30, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    got = parse_since(text, now=NOW)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "30", "d30", "-3d", "2025-13-01", "", "3 months"])
def test_parse_since_errors_say_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match=r"use a duration such as 30d, 12h, 2w or 90m, or an ISO date"):
        parse_since(text)
