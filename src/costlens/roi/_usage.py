"""From real traffic to a scenario: volume, token distributions, model mix and cost per call.

`usage_profile()` reads one feature's recorded calls from a store; `read_trace()` turns an imported
trace (the Azure LLM inference CSVs, or any CSV with timestamp / input / output token columns) into
call records priced with the current catalogue. `scenario_from_usage()` builds the prompt-engineering
path from the profile ("current") and takes everything else (the tuned path, horizon, quality, task
facts) from the user's assumptions, so only the tuned-path assumptions need to be typed in.

Volume per month = calls × days per month ÷ observed days, rounded half-even to whole requests.
The observed span is the part of the window the data covers: from the later of `since` and the
first call to `until` (default: now); with no window (a trace), from the first call to the last.
A window with 25 days of data is divided by 25, not 30. A span shorter than `SHORT_SPAN_DAYS`
(7: a week of traffic, with its weekdays and weekend) is extrapolated all the same, with a
warning in `UsageProfile.warnings`, and so is a window the data covers only in part.
Mean tokens are rounded half-even to 3 decimals (the only rounding; stated in the profile).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from costlens._errors import ConfigError
from costlens.roi._money import round_fraction
from costlens.roi._scenario import Scenario
from costlens.usage import CallRecord, Usage

__all__ = [
    "SHORT_SPAN_DAYS",
    "RecordSource",
    "TokenStats",
    "UsageProfile",
    "profile_from_records",
    "read_trace",
    "scenario_from_usage",
    "usage_profile",
]

_DAY = timedelta(days=1)
#: Traffic observed over fewer days than this is extrapolated to a month with a warning.
SHORT_SPAN_DAYS = 7
_TRACE_COLUMNS = (
    ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
    ("timestamp", "input_tokens", "output_tokens"),
)


class RecordSource(Protocol):
    """Where recorded calls are read from: any `costlens.store.Store` (roi imports no store)."""

    def iter_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        where: Mapping[str, str] | None = None,
    ) -> Iterator[CallRecord]: ...


@dataclass(frozen=True, slots=True)
class TokenStats:
    """A token count over calls: mean (3 decimals), median, 95th percentile (nearest rank), total."""

    mean: Decimal
    median: Decimal
    p95: int
    total: int

    @classmethod
    def of(cls, values: list[int]) -> TokenStats:
        if not values:
            return cls(Decimal(0), Decimal(0), 0, 0)
        ordered = sorted(values)
        n = len(ordered)
        middle = Fraction(ordered[(n - 1) // 2] + ordered[n // 2], 2)
        p95 = ordered[max(0, -(-95 * n // 100) - 1)]
        return cls(round_fraction(Fraction(sum(ordered), n), 3), round_fraction(middle, 1), p95, sum(ordered))


@dataclass(frozen=True, slots=True)
class UsageProfile:
    """What the recorded traffic of one feature looks like, scaled to a month."""

    feature: str | None
    calls: int
    first_call: datetime
    last_call: datetime
    period_days: Fraction
    requests_per_month: int
    input_tokens: TokenStats
    output_tokens: TokenStats
    cached_tokens: TokenStats
    models: dict[str, int]
    provider: str
    model: str
    priced_calls: int
    recorded_cost: Decimal
    cost_per_call: Decimal | None
    window_days: Fraction | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        def stats(s: TokenStats) -> dict[str, Any]:
            return {"mean": s.mean, "median": s.median, "p95": s.p95, "total": s.total}

        return {
            "feature": self.feature,
            "calls": self.calls,
            "first_call": self.first_call,
            "last_call": self.last_call,
            "period_days": str(round_fraction(self.period_days, 4)),
            "window_days": None if self.window_days is None else str(round_fraction(self.window_days, 4)),
            "requests_per_month": self.requests_per_month,
            "input_tokens": stats(self.input_tokens),
            "output_tokens": stats(self.output_tokens),
            "cached_tokens": stats(self.cached_tokens),
            "models": self.models,
            "provider": self.provider,
            "model": self.model,
            "priced_calls": self.priced_calls,
            "recorded_cost": self.recorded_cost,
            "cost_per_call": self.cost_per_call,
            "warnings": list(self.warnings),
        }


def profile_from_records(
    records: Iterable[CallRecord],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    feature: str | None = None,
    days_per_month: int = 30,
) -> UsageProfile:
    """Profile calls. Left out: blocked calls (they never reached a provider), fine-tuning jobs
    (operation `fine_tuning`: what tuning cost, not traffic) and experiment calls (tagged `eval_run`:
    measurements, not traffic); a warning counts the last two.

    The observed period starts at the later of `since` and the first call and ends at `until`
    (default: now when `since` is given, else the last call); a period with no span cannot be scaled
    to a month and is an error. `warnings` says when the period is short or covers only part of
    the window.
    """
    offered = [r for r in records if r.status != "blocked"]
    calls = [r for r in offered if r.operation != "fine_tuning" and "eval_run" not in r.tags]
    not_traffic = len(offered) - len(calls)
    if not calls:
        where = f" for feature {feature!r}" if feature else ""
        raise ConfigError(
            f"no recorded calls{where} in this period: widen --since or check --feature and --store"
        )
    times = sorted(_utc(r.started_at) for r in calls)
    window_start = _utc(since) if since is not None else None
    start = max(window_start, times[0]) if window_start is not None else times[0]
    end = _utc(until) if until is not None else (datetime.now(UTC) if since is not None else times[-1])
    period = _days(end - start)
    window = _days(end - window_start) if window_start is not None else None
    if period <= 0:
        raise ConfigError("the calls span no time, so volume per month is unknown: give --since (e.g. 30d)")
    per_month = round(len(calls) * days_per_month / period)
    mix = Counter(f"{r.provider}/{r.response_model or r.request_model}" for r in calls)
    provider, _, model = mix.most_common(1)[0][0].partition("/")
    priced = [r.cost_nanousd for r in calls if r.cost_nanousd is not None]
    cost = Decimal(sum(priced)).scaleb(-9)
    return UsageProfile(
        feature=feature,
        calls=len(calls),
        first_call=times[0],
        last_call=times[-1],
        period_days=period,
        requests_per_month=per_month,
        input_tokens=TokenStats.of([r.input_tokens for r in calls]),
        output_tokens=TokenStats.of([r.output_tokens for r in calls]),
        cached_tokens=TokenStats.of([r.cache_read_tokens for r in calls]),
        models=dict(mix.most_common()),
        provider=provider,
        model=model,
        priced_calls=len(priced),
        recorded_cost=cost,
        cost_per_call=round_fraction(Fraction(sum(priced), len(priced)), 0).scaleb(-9) if priced else None,
        window_days=window,
        warnings=_span_warnings(len(calls), period, window, per_month, days_per_month)
        + _left_out(not_traffic),
    )


def _left_out(count: int) -> tuple[str, ...]:
    if not count:
        return ()
    return (f"{count} fine-tuning job(s) and experiment call(s) are not traffic and were left out",)


def _days(span: timedelta) -> Fraction:
    return Fraction(span // timedelta(microseconds=1), _DAY // timedelta(microseconds=1))


def _span_text(days: Fraction) -> str:
    if days < 1:
        return f"{round_fraction(days * 24, 1)} hours"
    return f"{round_fraction(days, 1)} days"


def _span_warnings(
    calls: int, period: Fraction, window: Fraction | None, per_month: int, days_per_month: int
) -> tuple[str, ...]:
    """Say when the data covers only part of the window, and when it is too short to extrapolate."""
    out = []
    if window is not None and period < window:
        out.append(
            f"the data covers {_span_text(period)} of the {_span_text(window)} window (the first call "
            f"comes {_span_text(window - period)} after its start): volume is scaled from the "
            f"{_span_text(period)} observed"
        )
    if period < SHORT_SPAN_DAYS:
        factor = round_fraction(days_per_month / period, 1)
        out.append(
            f"short observation: {calls:,} calls over {_span_text(period)} extrapolated x{factor} to "
            f"{per_month:,} requests a month; record at least {SHORT_SPAN_DAYS} days of traffic "
            "or set [volume] in the assumptions"
        )
    return tuple(out)


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def usage_profile(
    store: RecordSource,
    feature: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    days_per_month: int = 30,
) -> UsageProfile:
    """The profile of one feature's calls (all calls when `feature` is None) recorded in [since, until)."""
    where = {"feature": feature} if feature else None
    records = store.iter_records(since=since, until=until, where=where)
    return profile_from_records(
        records, since=since, until=until, feature=feature, days_per_month=days_per_month
    )


def read_trace(path: str | Path, *, provider: str, model: str, feature: str = "trace") -> list[CallRecord]:
    """Call records from a CSV trace, priced at today's catalogue price of `model`.

    Columns: `TIMESTAMP, ContextTokens, GeneratedTokens` (Azure LLM inference traces) or
    `timestamp, input_tokens, output_tokens` (+ optional `cache_read_tokens`). Naive times are UTC.
    """
    from costlens.pricing import cost

    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = tuple(reader.fieldnames or ())
        columns = next((c for c in _TRACE_COLUMNS if set(c) <= set(header)), None)
        if columns is None:
            raise ConfigError(
                f"trace {path}: expected columns TIMESTAMP, ContextTokens, GeneratedTokens or "
                f"timestamp, input_tokens, output_tokens; found {', '.join(header) or 'none'}"
            )
        records = [_trace_record(row, columns, provider, model, feature) for row in reader]
    for record in records:
        record.set_cost(cost(record.usage, provider=provider, model=model))
    return records


def _trace_record(
    row: Mapping[str, str], columns: tuple[str, ...], provider: str, model: str, feature: str
) -> CallRecord:
    when, n_in, n_out = columns
    usage = Usage(int(row[n_in]), int(row[n_out]), int(row.get("cache_read_tokens") or 0))
    record = CallRecord(
        provider,
        "chat",
        model,
        started_at=_utc(datetime.fromisoformat(row[when].strip())),
        tags={"feature": feature},
    )
    record.set_usage(usage)
    return record


def scenario_from_usage(profile: UsageProfile, assumptions: Mapping[str, Any]) -> Scenario:
    """A scenario whose baseline path ("current") and volume come from `profile`.

    `assumptions` is a partial scenario (same keys as a scenario file): its `paths` are the
    alternatives (a tuned path's `tokens.output` defaults to the measured mean); `volume` keys it
    gives (e.g. `growth_per_month`) are merged over the measured volume. The cached prefix is the
    measured mean of cache-read tokens, at the cached price. A `current` table adds path keys to the
    measured path (`recurring` monthly costs, `accuracy`, `one_off`, `prices`, `note`).
    """
    from costlens.roi._load import parse_scenario

    data = dict(assumptions)
    extra = dict(data.pop("current", None) or {})
    if fixed := sorted({"name", "kind", "model", "provider", "tokens"} & set(extra)):
        raise ConfigError(
            f"the assumptions' [current] table cannot set {', '.join(fixed)}: they are measured"
        )
    output = profile.output_tokens.mean
    cached = profile.cached_tokens.mean
    current = {
        "name": "current",
        "kind": "prompt",
        "provider": profile.provider,
        "model": profile.model,
        "tokens": {
            "system": cached,
            "user_input": profile.input_tokens.mean - cached,
            "output": output,
            "cached_share": 1 if cached else 0,
        },
        "note": f"measured: {profile.calls:,} calls over {round_fraction(profile.period_days, 2)} days",
    } | extra
    others = [_with_output(p, output) for p in data.get("paths", [])]
    if any(p.get("name") == "current" for p in others):
        raise ConfigError("the assumptions name a path 'current': that name is the measured path; rename it")
    volume = dict(data.get("volume", {}))
    if not {"requests_per_month", "requests_per_day", "monthly"} & set(volume):
        volume["requests_per_month"] = profile.requests_per_month
    data.update(paths=[current, *others], volume=volume)
    data.setdefault("title", f"From recorded usage: {profile.feature or 'all features'}")
    data.setdefault("baseline", "current")
    return parse_scenario(data, "built from usage + assumptions")


def _with_output(path: Mapping[str, Any], output: Decimal) -> dict[str, Any]:
    tokens = dict(path.get("tokens", {}))
    tokens.setdefault("output", output)
    return {**path, "tokens": tokens}
