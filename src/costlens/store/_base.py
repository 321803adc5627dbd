"""The `Store` protocol every backend implements, and the query shapes it speaks.

Backends (memory, SQLite today; PostgreSQL, ClickHouse later) share one contract test suite,
so everything here is deliberately small: append, one aggregate query, one record scan.

Two optional capabilities, found with `getattr`, let a backend go faster without widening the
protocol (`scan_calls` and `bulk_writer` below fall back to the protocol when they are absent):
`scan(q, fields)` streams per-call values grouped like `query` (percentiles, re-pricing, the calls
behind an anomaly), and `bulk()` opens one write transaction for a whole import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from costlens.store._time import TIME_KEYS, bucket_label, get_zone
from costlens.usage import USAGE_PARTS, CallRecord, micros_of

__all__ = [
    "BUILTIN_KEYS",
    "SCAN_FIELDS",
    "TIME_KEYS",
    "SpendQuery",
    "SpendRow",
    "Store",
    "UnpricedModel",
    "from_micros",
    "group_value",
    "nanousd_to_usd",
    "parse_key",
    "scan_calls",
    "to_micros",
    "write_all",
]

#: Group-by / filter keys that are columns of a call or time buckets; any other name is a tag.
BUILTIN_KEYS = (
    "model", "request_model", "provider", "operation", "status", "service_tier", *TIME_KEYS,
)  # fmt: skip
#: Per-call values `scan_calls` can return after the group keys.
SCAN_FIELDS = (
    "id", "started_at_us", "latency_ms", "ttft_ms", "provider", "request_model", "response_model",
    "service_tier", "status", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_nanousd", "estimated", *USAGE_PARTS,
)  # fmt: skip

_TAG_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


#: Microseconds since the epoch, UTC; a naive datetime is taken as UTC (the records' rows use it too).
to_micros = micros_of


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def day_bucket(when: datetime) -> str:
    """`2025-01-31` (UTC)."""
    return from_micros(to_micros(when)).strftime("%Y-%m-%d")


def hour_bucket(when: datetime) -> str:
    """`2025-01-31T13:00Z` (UTC): sorts as text and parses with `datetime.fromisoformat`."""
    return from_micros(to_micros(when)).strftime("%Y-%m-%dT%H:00Z")


def group_value(record: CallRecord, key: str, timezone: str = "UTC") -> str | None:
    """The value of one group/filter key for one record (the reference semantics of every backend).

    Time buckets are labelled in `timezone` (see `costlens.store._time`); an empty
    `response_model` or `service_tier` counts as none.
    """
    kind, name = parse_key(key)
    if kind == "tag":
        return record.tags.get(name)
    if name == "model":
        return record.response_model or record.request_model
    if name in TIME_KEYS:
        return bucket_label(record.started_at, name, timezone)
    if name == "service_tier":
        return record.service_tier or None
    value: str = getattr(record, name)
    return value


def nanousd_to_usd(nanousd: int) -> Decimal:
    """Exact dollars with nine decimals kept (`1234500` -> `Decimal('0.001234500')`)."""
    return Decimal(nanousd).scaleb(-9)


@dataclass(frozen=True, slots=True)
class SpendQuery:
    """One aggregate question: group by these keys, over [since, until), where key == value.

    Keys are `model` (response model, else requested), `request_model`, `provider`, `operation`,
    `status`, `service_tier`, the time buckets `hour`, `day`, `week` (labelled by its Monday) and
    `month`, in `timezone` (UTC unless set; DST-correct), or a tag name (`feature` or `tag:feature`).
    `use_rollups=False` makes a backend with pre-aggregated rollups scan raw calls instead (the
    answer is the same; tests and benchmarks compare both).
    """

    group_by: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    where: Mapping[str, str] = field(default_factory=dict)
    timezone: str = "UTC"
    use_rollups: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.group_by, str):
            raise TypeError("SpendQuery.group_by is a tuple of keys, not a string")
        for key in (*self.group_by, *self.where):
            parse_key(key)
        get_zone(self.timezone)

    @property
    def time_keys(self) -> bool:
        """Whether any group or filter key is a time bucket (then the time zone matters)."""
        return any(key in TIME_KEYS for key in (*self.group_by, *self.where))


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
    cache_write_1h_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    citation_tokens: int = 0
    web_search_requests: int = 0
    file_search_requests: int = 0

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


def _matches(record: CallRecord, q: SpendQuery) -> bool:
    at = to_micros(record.started_at)
    if q.since is not None and at < to_micros(q.since):
        return False
    if q.until is not None and at >= to_micros(q.until):
        return False
    return all(group_value(record, k, q.timezone) == v for k, v in q.where.items())


def scan_calls(store: Store, q: SpendQuery, fields: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """Per-call rows for the calls `q` matches: the `q.group_by` values, then `fields` (`SCAN_FIELDS`).

    Uses the backend's `scan` when it has one, else `iter_records` (the reference). Unordered.
    """
    for name in fields:
        if name not in SCAN_FIELDS:
            raise ValueError(f"unknown scan field {name!r}: use one of {', '.join(SCAN_FIELDS)}")
    fast: Callable[[SpendQuery, Sequence[str]], Iterator[tuple[Any, ...]]] | None = getattr(
        store, "scan", None
    )
    if fast is not None:
        yield from fast(q, fields)
        return
    tz = q.timezone
    for record in store.iter_records(since=q.since, until=q.until):
        if _matches(record, q):
            keys = tuple(group_value(record, k, tz) for k in q.group_by)
            yield keys + tuple(_field(record, name) for name in fields)


def _field(record: CallRecord, name: str) -> Any:
    if name == "started_at_us":
        return to_micros(record.started_at)
    if name == "estimated":
        return int(record.estimated)
    return getattr(record, name)


#: Appends one batch inside an open bulk transaction; returns how many records were new.
BatchWriter = Callable[[Sequence[CallRecord]], int]


def write_all(store: Store) -> AbstractContextManager[BatchWriter]:
    """One all-or-nothing write for many batches: the backend's `bulk()` if it has one, else the
    batches are kept in memory and appended together when the block ends without an error."""
    bulk: Callable[[], AbstractContextManager[BatchWriter]] | None = getattr(store, "bulk", None)
    return bulk() if bulk is not None else _buffered(store)


@contextmanager
def _buffered(store: Store) -> Iterator[BatchWriter]:
    pending: list[CallRecord] = []
    seen: set[str] = set()

    def write(batch: Sequence[CallRecord]) -> int:
        fresh = [r for r in batch if r.id not in seen]
        seen.update(r.id for r in fresh)
        pending.extend(fresh)
        return len(fresh)

    yield write
    store.append(pending)
