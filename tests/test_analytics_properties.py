"""Properties: analytics answers equal a brute-force recomputation from the raw records.

The SQLite store is asked with and without its hourly rollup, the memory store is the plain
reference, and the expected answer is recomputed here from the records with nothing but
`zoneinfo` and integer arithmetic. Time zones include DST (Berlin, New York) and offsets that are
not whole hours (Kolkata, Lord Howe), which the rollup cannot serve and must hand to a raw scan.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costlens.analytics import spend
from costlens.analytics._pricer import Pricer
from costlens.pricing import cost
from costlens.store import SpendQuery, SpendRow
from costlens.store.memory import MemoryStore
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord, Usage

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
KEYS = ["model", "request_model", "provider", "status", "service_tier", "feature", "tag:user"]
BUCKETS = ["hour", "day", "week", "month"]
BASE = datetime(2025, 3, 29, tzinfo=UTC)  # two days before the EU DST change, four weeks after the US one
# Around hour edges and a DST change, plus anywhere in a 5-week span.
TIMES = st.sampled_from(
    [BASE + timedelta(hours=h, microseconds=u) for h in (0, 25, 26, 49) for u in (-1, 0, 1)]
) | st.datetimes(datetime(2025, 3, 1), datetime(2025, 4, 5), timezones=st.just(UTC))
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def records(draw: st.DrawFn) -> CallRecord:
    inp = draw(st.integers(0, 10**6))
    out = draw(st.integers(0, 10**5))
    cache_read = draw(st.integers(0, inp))
    tags = {
        k: v
        for k, v in {
            "feature": draw(st.none() | st.sampled_from(["search", "chat"])),
            "user": draw(st.none() | st.sampled_from(["u1", "ü2"])),
        }.items()
        if v is not None
    }
    return CallRecord(
        provider=draw(st.sampled_from(["openai", "anthropic"])),
        operation="chat",
        request_model=draw(st.sampled_from(["gpt-4o", "claude"])),
        response_model=draw(st.none() | st.sampled_from(["", "gpt-4o-2024"])),
        started_at=draw(TIMES),
        latency_ms=draw(st.none() | st.floats(1, 5000)),
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=cache_read,
        cache_write_tokens=draw(st.integers(0, inp - cache_read)),
        reasoning_tokens=draw(st.integers(0, out)),
        cost_nanousd=draw(st.none() | st.integers(0, 10**12)),
        status=draw(st.sampled_from(["ok", "error"])),
        estimated=draw(st.booleans()),
        service_tier=draw(st.none() | st.sampled_from(["", "batch"])),
        tags=tags,
    )


@st.composite
def queries(draw: st.DrawFn) -> SpendQuery:
    keys = draw(st.lists(st.sampled_from(KEYS), max_size=2, unique=True))
    bucket = draw(st.none() | st.sampled_from(BUCKETS))
    since = draw(st.none() | TIMES)
    until = draw(st.none() | TIMES)
    where = draw(st.sampled_from([{}, {"feature": "search"}, {"provider": "openai", "status": "ok"}]))
    return SpendQuery(
        tuple(([bucket] if bucket else []) + keys), since, until, where, timezone=draw(st.sampled_from(ZONES))
    )


def label(when: datetime, bucket: str, zone: str) -> str:
    """Reference bucket labels, written independently of the store's helpers."""
    local = when.astimezone(UTC if zone == "UTC" else ZoneInfo(zone))
    if bucket == "hour":
        offset = local.utcoffset() or timedelta()
        sign = "-" if offset < timedelta() else "+"
        minutes = abs(int(offset.total_seconds())) // 60
        suffix = "Z" if zone == "UTC" else f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
        return f"{local.year:04d}-{local.month:02d}-{local.day:02d}T{local.hour:02d}:00{suffix}"
    if bucket == "day":
        return local.date().isoformat()
    if bucket == "week":
        return (local.date() - timedelta(days=local.weekday())).isoformat()
    return f"{local.year:04d}-{local.month:02d}"


def key_of(record: CallRecord, key: str, zone: str) -> str | None:
    if key in BUCKETS:
        return label(record.started_at, key, zone)
    if key == "model":
        return record.response_model or record.request_model
    if key == "service_tier":
        return record.service_tier or None
    if key in ("request_model", "provider", "status"):
        value: str = getattr(record, key)
        return value
    return record.tags.get(key.removeprefix("tag:"))


def brute_force(recs: list[CallRecord], q: SpendQuery) -> dict[tuple[str | None, ...], tuple[int, ...]]:
    out: dict[tuple[str | None, ...], list[int]] = {}
    for r in recs:
        if q.since is not None and r.started_at < q.since:
            continue
        if q.until is not None and r.started_at >= q.until:
            continue
        if any(key_of(r, k, q.timezone) != v for k, v in q.where.items()):
            continue
        sums = out.setdefault(tuple(key_of(r, k, q.timezone) for k in q.group_by), [0] * 10)
        tokens = (
            r.input_tokens,
            r.output_tokens,
            r.cache_read_tokens,
            r.cache_write_tokens,
            r.reasoning_tokens,
        )
        flags = (int(r.cost_nanousd is None), int(r.status == "error"), int(r.estimated))
        for i, value in enumerate((1, *tokens, r.cost_nanousd or 0, *flags)):
            sums[i] += value
    return {k: tuple(v) for k, v in out.items()}


def as_dict(rows: list[SpendRow], keys: tuple[str, ...]) -> dict[tuple[str | None, ...], tuple[int, ...]]:
    out = {}
    for row in rows:
        out[tuple(row.keys[k] for k in keys)] = (
            row.calls, row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens,
            row.reasoning_tokens, row.cost_nanousd, row.unpriced_calls, row.error_calls, row.estimated_calls,
        )  # fmt: skip
    assert len(out) == len(rows), "a group came back twice"
    return out


@contextmanager
def stores(recs: list[CallRecord]) -> Iterator[tuple[SQLiteStore, MemoryStore]]:
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteStore(Path(tmp) / "p.db")
        memory = MemoryStore()
        # Several batches, some repeated, so rollups are folded more than once and duplicates skipped.
        for start in range(0, len(recs), 7):
            sqlite.append(recs[start : start + 7])
            memory.append(recs[start : start + 7])
        sqlite.append(recs[: len(recs) // 2] + recs[len(recs) // 2 : len(recs) // 2 + 3])
        try:
            yield sqlite, memory
        finally:
            sqlite.close()


@SETTINGS
@given(st.lists(records(), max_size=40), st.lists(queries(), min_size=1, max_size=6))
def test_queries_equal_brute_force_with_and_without_rollups(
    recs: list[CallRecord], qs: list[SpendQuery]
) -> None:
    with stores(recs) as (sqlite, memory):
        for q in qs:
            expected = brute_force(recs, q)
            raw = SpendQuery(q.group_by, q.since, q.until, q.where, q.timezone, use_rollups=False)
            assert as_dict(sqlite.query(q), q.group_by) == expected, q
            assert as_dict(sqlite.query(raw), q.group_by) == expected, raw
            assert as_dict(memory.query(q), q.group_by) == expected, q


@SETTINGS
@given(st.lists(records(), min_size=1, max_size=30), st.sampled_from(ZONES), st.integers(1, 3))
def test_spend_measures_and_top_n_add_up(recs: list[CallRecord], zone: str, top: int) -> None:
    with stores(recs) as (sqlite, _):
        measures = [
            "calls",
            "total_tokens",
            "cost_usd",
            "share",
            "cost_per_call",
            "error_rate",
            "latency_p95",
        ]
        for use_rollups in (True, False):
            report = spend(
                sqlite,
                ["model"],
                bucket="day",
                timezone=zone,
                measures=measures,
                top=top,
                use_rollups=use_rollups,
            )
            rows = report.all_rows
            assert sum(int(str(r["calls"])) for r in rows) == len(recs)
            assert sum(Decimal(str(r["cost_usd"])) for r in rows) == report.totals["cost_usd"]
            expected_cost = sum(r.cost_nanousd or 0 for r in recs)
            assert report.totals["cost_usd"] == Decimal(expected_cost).scaleb(-9)
            assert len({r["model"] for r in report.rows}) <= top
            latencies = sorted(r.latency_ms for r in recs if r.latency_ms is not None)
            if latencies:
                rank = (len(latencies) - 1) * 0.95
                low = latencies[int(rank)]
                high = latencies[min(int(rank) + 1, len(latencies) - 1)]
                assert report.totals["latency_p95"] == round(low + (high - low) * (rank - int(rank)), 3)


TOKENS = st.tuples(
    st.integers(0, 400_000),
    st.integers(0, 20_000),
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.integers(0, 1000),
).filter(lambda t: t[2] + t[3] <= t[0] and t[4] <= t[1])
MODELS = st.sampled_from(
    [
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("openai", "o3"),
        ("google", "gemini-2.5-pro"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    MODELS,
    TOKENS,
    st.sampled_from([None, "batch", "priority"]),
    st.datetimes(datetime(2024, 1, 1), datetime(2026, 1, 1)),
)
def test_integer_pricer_equals_decimal_pricing(
    model: tuple[str, str], tokens: tuple[int, int, int, int, int], tier: str | None, at: datetime
) -> None:
    at = at.replace(tzinfo=UTC)
    micros = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    expected = cost(Usage(*tokens), provider=model[0], model=model[1], at=at, service_tier=tier).nanousd
    assert Pricer()(model[0], model[1], tier, micros, tokens) == expected
