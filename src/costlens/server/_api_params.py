"""Query-parameter checks shared by the REST API's endpoints: each bad value is a 422 naming the
parameter and what to write, never a 500.

These mirror the CLI's flag checks (`costlens report --by/--where/--since/--until/--tz`), which live
in `costlens.cli` and exit the process; the rules are the same library rules underneath
(`costlens.store.parse_key`, `costlens.reports.parse_since`, `costlens.store._time.get_zone`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NoReturn

__all__ = [
    "COMMON_TAGS",
    "bad",
    "check_zone",
    "cursor_text",
    "jsonable",
    "parse_cursor",
    "parse_keys",
    "parse_range",
    "parse_time",
    "parse_where",
]

#: Tags common enough to be named bare (`by=feature`); any other tag is written `tag:NAME` (as the CLI).
COMMON_TAGS = ("project", "feature", "user", "environment", "task")
_CURSOR = re.compile(r"^(\d{1,19}):([^\x00-\x1f\x7f]{1,200})$")


def bad(name: str, message: str, value: object = None, where: str = "query") -> NoReturn:
    """A 422 in FastAPI's own validation-error shape (`{"detail": [{"loc", "msg", "type"}]}`)."""
    from fastapi.exceptions import RequestValidationError

    raise RequestValidationError(
        [{"type": "value_error", "loc": (where, name), "msg": message, "input": value}]
    )


def _check_key(key: str, name: str, *, columns: Sequence[str] = ()) -> str:
    from difflib import get_close_matches

    from costlens.store import BUILTIN_KEYS, parse_key

    try:
        parse_key(key)
    except ValueError as exc:
        bad(name, str(exc), key)
    if key in BUILTIN_KEYS or key in COMMON_TAGS or key.startswith("tag:") or key in columns:
        return key
    close = get_close_matches(key, [*BUILTIN_KEYS, *COMMON_TAGS], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    bad(
        name,
        f"unknown key {key!r}{hint}: use one of {', '.join(BUILTIN_KEYS)}, a common tag "
        f"({', '.join(COMMON_TAGS)}), or tag:NAME for any other tag (tag:{key})",
        key,
    )


def parse_keys(values: Sequence[str], name: str = "by") -> list[str]:
    """Group keys, repeated or comma-separated; a measure name is left for `spend()` to refuse."""
    from costlens.analytics import MEASURES

    keys = [part.strip() for value in values for part in value.split(",") if part.strip()]
    for key in keys:
        _check_key(key, name, columns=MEASURES)
    if len(set(keys)) != len(keys):
        bad(name, f"a key is repeated in {keys}", keys)
    return keys


def parse_where(values: Sequence[str], name: str = "where") -> dict[str, str]:
    """`key=value` filters (repeatable)."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            bad(name, f"{item!r}: write key=value, e.g. where=feature=search", item)
        out[_check_key(key.strip(), name)] = value
    return out


def check_zone(timezone: str, name: str = "timezone") -> str:
    from costlens.store._time import get_zone

    try:
        get_zone(timezone)
    except Exception:  # ValueError for unknown names; odd text can raise others: all mean "not a zone"
        bad(name, f"unknown time zone {timezone!r}: use UTC or an IANA name such as Europe/Berlin", timezone)
    return timezone


def parse_time(text: str | None, name: str, timezone: str = "UTC") -> datetime | None:
    """A duration (`30d`: that long ago) or an ISO date/datetime; a date, or a datetime without an
    offset, is local time in `timezone`."""
    from costlens.reports import parse_since

    if text is None or text == "":
        return None
    try:
        when = parse_since(text)
        if timezone != "UTC" and _is_local(text):
            from costlens.store._time import get_zone

            when = when.replace(tzinfo=get_zone(timezone)).astimezone(UTC)
        when.astimezone(UTC).timestamp()  # out of range for the stores: refused here
    except (ValueError, OverflowError, OSError) as exc:
        message = str(exc) if isinstance(exc, ValueError) else f"{text!r} is out of range"
        bad(name, message, text)
    return when


def _is_local(text: str) -> bool:
    try:
        return datetime.fromisoformat(text.strip()).tzinfo is None
    except ValueError:
        return False


def parse_range(
    since: str | None, until: str | None, timezone: str = "UTC"
) -> tuple[datetime | None, datetime | None]:
    start, end = parse_time(since, "since", timezone), parse_time(until, "until", timezone)
    if start is not None and end is not None and start >= end:
        bad("since", f"since ({start.isoformat()}) is not before until ({end.isoformat()})", since)
    return start, end


def parse_cursor(text: str | None) -> tuple[int, str] | None:
    """A page cursor (`<started_at microseconds>:<call id>`, as `next_cursor` gives it)."""
    if text is None or text == "":
        return None
    match = _CURSOR.match(text)
    if match is None or int(match[1]) > 253402300799999999:
        bad("cursor", "not a page cursor: pass the next_cursor of the previous page", text)
    return int(match[1]), match[2]


def cursor_text(micros: int, record_id: str) -> str:
    return f"{micros}:{record_id}"


def jsonable(value: Any) -> Any:
    """Decimals as exact decimal text, datetimes as ISO 8601; containers recursively."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
