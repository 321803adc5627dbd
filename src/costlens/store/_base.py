"""The `Store` protocol every backend implements, and the query shapes it speaks.

Backends (memory, SQLite today; PostgreSQL, ClickHouse later) share one contract test suite,
so everything here is deliberately small: append, one aggregate query, one record scan.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol, runtime_checkable

from costlens.usage import CallRecord

__all__ = [
    "BUILTIN_KEYS",
    "SpendQuery",
    "SpendRow",
    "Store",
    "UnpricedModel",
    "from_micros",
    "group_value",
    "nanousd_to_usd",
    "parse_key",
    "to_micros",
]

#: Group-by / filter keys that are columns of a call; any other name is a tag.
BUILTIN_KEYS = ("model", "request_model", "provider", "operation", "status", "day", "hour")

_TAG_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def parse_key(key: str) -> tuple[str, str]:
    """Split a group/filter key into `("column", name)` or `("tag", name)`; ValueError if malformed.

    `tag:model` reaches a tag whose name collides with a built-in key.
    """
    if key in BUILTIN_KEYS:
        return "column", key
    name = key[4:] if key.startswith("tag:") else key
    if not _TAG_NAME.match(name):
        raise ValueError(
            f"bad group/filter key {key!r}: use one of {', '.join(BUILTIN_KEYS)}, "
            "or a tag name such as feature or tag:feature"
        )
    return "tag", name


def to_micros(when: datetime) -> int:
    """Microseconds since the epoch, UTC; a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _MICRO


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def day_bucket(when: datetime) -> str:
    """`2025-01-31` (UTC)."""
    return from_micros(to_micros(when)).strftime("%Y-%m-%d")


def hour_bucket(when: datetime) -> str:
    """`2025-01-31T13:00Z` (UTC): sorts as text and parses with `datetime.fromisoformat`."""
    return from_micros(to_micros(when)).strftime("%Y-%m-%dT%H:00Z")


def group_value(record: CallRecord, key: str) -> str | None:
    """The value of one group/filter key for one record (the reference semantics of every backend)."""
    kind, name = parse_key(key)
    if kind == "tag":
        return record.tags.get(name)
    if name == "model":
        return record.response_model or record.request_model
    if name == "day":
        return day_bucket(record.started_at)
    if name == "hour":
        return hour_bucket(record.started_at)
    value: str = getattr(record, name)
    return value


def nanousd_to_usd(nanousd: int) -> Decimal:
    """Exact dollars with nine decimals kept (`1234500` -> `Decimal('0.001234500')`)."""
    return Decimal(nanousd).scaleb(-9)


@dataclass(frozen=True, slots=True)
class SpendQuery:
    """One aggregate question: group by these keys, over [since, until), where key == value.

    Keys are `model` (response model, else requested), `request_model`, `provider`, `operation`,
    `status`, `day`, `hour` (UTC buckets), or a tag name (`feature` or `tag:feature`).
    """

    group_by: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    where: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in (*self.group_by, *self.where):
            parse_key(key)
        if isinstance(self.group_by, str):
            raise TypeError("SpendQuery.group_by is a tuple of keys, not a string")


@dataclass(frozen=True, slots=True)
class SpendRow:
    """One group: its key values (None where a tag is absent) and exact sums.

    `cost_nanousd` sums priced calls only; `unpriced_calls` counts the calls with no known price.
    """

    keys: dict[str, str | None]
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanousd: int = 0
    unpriced_calls: int = 0
    error_calls: int = 0
    estimated_calls: int = 0

    @property
    def cost_usd(self) -> Decimal:
        return nanousd_to_usd(self.cost_nanousd)


@dataclass(frozen=True, slots=True)
class UnpricedModel:
    """A model seen in traffic that had no known price (for `costlens prices missing`)."""

    provider: str
    model: str
    calls: int
    first_seen: datetime
    last_seen: datetime


@runtime_checkable
class Store(Protocol):
    """Where call records live. Every method is safe to call from several threads."""

    def append(self, records: Sequence[CallRecord]) -> None:
        """Write records in one transaction; a record whose id is already stored is skipped."""

    def query(self, q: SpendQuery) -> list[SpendRow]:
        """Aggregate matching calls; only non-empty groups, in no particular order."""

    def iter_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, str] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[CallRecord]:
        """Records in [since, until) ordered by (started_at, id), oldest first unless asked."""

    def unpriced_models(self) -> list[UnpricedModel]:
        """Models with calls that had no known price, most calls first."""

    def migrate(self) -> None:
        """Bring the schema up to date (idempotent; safe from several processes at once)."""

    def close(self) -> None:
        """Release connections; the store may not be used afterwards."""
