"""Spend and tokens-per-call spikes per scope (feature, model...), with the calls that caused them.

Each scope's hourly series (UTC hours with calls) is compared, hour by hour, with a robust baseline:
the median and MAD of the same metric over the preceding `baseline_hours` (hours with calls only,
so a quiet night is not a baseline of zeros). The score is `(value - median) / scale` with
`scale = max(1.4826 * MAD, 10% of the median, a tiny floor)`; an hour scoring at least `threshold`
above its baseline is an anomaly. Each anomaly lists its most expensive (or largest) calls.

Alert sinks are plain callables taking one JSON-friendly dict (`Anomaly.to_event()`), so the budget
alert sinks (webhook, log, ...) can subscribe as they are: `notify(anomalies, [sink, ...])`.
"""

from __future__ import annotations

import bisect
import logging
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from costlens.analytics._measures import Sums
from costlens.store import SpendQuery, Store, nanousd_to_usd
from costlens.store._base import scan_calls

__all__ = ["METRICS", "Anomaly", "AnomalySink", "detect_anomalies", "notify"]

log = logging.getLogger("costlens")

#: What can spike: spend per hour (USD) and tokens per call (input + output, mean over the hour).
METRICS = ("spend", "tokens_per_call")
#: The unit of each metric's `value` and `baseline`.
UNITS = {"spend": "usd", "tokens_per_call": "tokens"}
#: Receives one anomaly as a JSON-friendly dict: a callable, or an object with a `send(event)` method.
AnomalySink = Callable[[dict[str, object]], object]
_HOUR = timedelta(hours=1)
_FLOORS = {"spend": 1.0, "tokens_per_call": 0.5}  # nano-USD, tokens
_REL_FLOOR = 0.1
Scope = tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One anomalous hour of one scope. `value` and `baseline` are USD for spend, tokens per call
    otherwise; `top_calls` are the largest calls of that hour (id, started_at, cost_usd, tokens)."""

    keys: dict[str, str | None]
    metric: str
    hour: datetime
    value: Decimal
    baseline: Decimal
    score: float
    calls: int
    cost_usd: Decimal
    top_calls: tuple[dict[str, object], ...]

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.keys)
        out.update(
            metric=self.metric,
            hour=self.hour,
            value=self.value,
            baseline=self.baseline,
            unit=self.unit,
            score=self.score,
            calls=self.calls,
            cost_usd=self.cost_usd,
            top_call_ids=[c["id"] for c in self.top_calls],
        )
        return out

    @property
    def unit(self) -> str:
        """`usd` (spend) or `tokens` (tokens per call): the unit of `value` and `baseline`."""
        return UNITS[self.metric]

    def describe(self, value: Decimal) -> str:
        """`value` in this metric's unit: `$0.012`, `1,250.5 tokens per call`."""
        if self.metric == "spend":
            return f"${value}"
        return f"{value:,.2f}".rstrip("0").rstrip(".") + " tokens per call"

    def to_event(self) -> dict[str, object]:
        """What an alert sink receives: strings and numbers only."""
        scope = ", ".join(f"{k}={v}" for k, v in self.keys.items()) or "all calls"
        return {
            "kind": "anomaly",
            "metric": self.metric,
            "scope": dict(self.keys),
            "hour": self.hour.isoformat(),
            "value": str(self.value),
            "baseline": str(self.baseline),
            "unit": self.unit,
            "score": self.score,
            "calls": self.calls,
            "cost_usd": str(self.cost_usd),
            "top_call_ids": [str(c["id"]) for c in self.top_calls],
            "message": (
                f"{self.metric} spike for {scope} at {self.hour:%Y-%m-%d %H:00} UTC: "
                f"{self.describe(self.value)} vs a baseline of {self.describe(self.baseline)} "
                f"(score {self.score:.1f})"
            ),
        }


def detect_anomalies(
    store: Store,
    by: Sequence[str] = ("model",),
    *,
    since: datetime,
    until: datetime | None = None,
    where: Mapping[str, str] | None = None,
    metrics: Sequence[str] = METRICS,
    threshold: float = 4.0,
    baseline_hours: int = 168,
    min_baseline: int = 24,
    top_calls: int = 5,
) -> list[Anomaly]:
    """Anomalous hours in [since, until), scored against the `baseline_hours` before each; highest
    score first. A scope needs `min_baseline` hours with calls before an hour can be judged."""
    for metric in metrics:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}: use {' or '.join(METRICS)}")
    if threshold <= 0 or baseline_hours < 1 or min_baseline < 1:
        raise ValueError("threshold, baseline_hours and min_baseline must be positive")
    keys = tuple(by)
    lo = since - baseline_hours * _HOUR
    q = SpendQuery(("hour", *keys), lo, until, dict(where or {}))
    series: dict[Scope, dict[datetime, Sums]] = {}
    for row in store.query(q):
        hour = datetime.fromisoformat(str(row.keys["hour"]))
        series.setdefault(tuple(row.keys[k] for k in keys), {})[hour] = Sums.of(row)
    found = []
    for scope, hours in series.items():
        for metric in metrics:
            for hour, value, base, score in _spikes(
                hours, metric, since, baseline_hours, min_baseline, threshold
            ):
                found.append((scope, metric, hour, value, base, score))
    anomalies = [
        _anomaly(store, keys, where, scope, metric, hour, series[scope][hour], value, base, score, top_calls)
        for scope, metric, hour, value, base, score in found
    ]
    return sorted(anomalies, key=lambda a: (-a.score, a.hour))


def _metric(sums: Sums, metric: str) -> float:
    if metric == "spend":
        return float(sums.cost_nanousd)
    return sums.total_tokens / sums.calls if sums.calls else 0.0


def _spikes(
    hours: Mapping[datetime, Sums],
    metric: str,
    since: datetime,
    window: int,
    min_baseline: int,
    threshold: float,
) -> Iterable[tuple[datetime, float, float, float]]:
    """(hour, value, baseline median, score) of each hour from `since` on that scores >= threshold."""
    order = sorted(hours)
    values = [_metric(hours[h], metric) for h in order]
    for i, hour in enumerate(order):
        if hour < since:
            continue
        baseline = values[bisect.bisect_left(order, hour - window * _HOUR) : i]
        if len(baseline) < min_baseline:
            continue
        median = statistics.median(baseline)
        mad = statistics.median(abs(v - median) for v in baseline)
        scale = max(1.4826 * mad, _REL_FLOOR * abs(median), _FLOORS[metric])
        score = (values[i] - median) / scale
        if score >= threshold:
            yield hour, values[i], median, score


def _as_value(metric: str, value: float) -> Decimal:
    if metric == "spend":
        return nanousd_to_usd(round(value))
    return Decimal(repr(value)).quantize(Decimal("0.01"), ROUND_HALF_EVEN)


def _anomaly(
    store: Store,
    keys: tuple[str, ...],
    where: Mapping[str, str] | None,
    scope: Scope,
    metric: str,
    hour: datetime,
    sums: Sums,
    value: float,
    baseline: float,
    score: float,
    top: int,
) -> Anomaly:
    return Anomaly(
        keys=dict(zip(keys, scope, strict=True)),
        metric=metric,
        hour=hour,
        value=_as_value(metric, value),
        baseline=_as_value(metric, baseline),
        score=round(score, 2),
        calls=sums.calls,
        cost_usd=nanousd_to_usd(sums.cost_nanousd),
        top_calls=_top_calls(store, keys, where, scope, hour, metric, top),
    )


def _top_calls(
    store: Store,
    keys: tuple[str, ...],
    where: Mapping[str, str] | None,
    scope: Scope,
    hour: datetime,
    metric: str,
    top: int,
) -> tuple[dict[str, object], ...]:
    """The hour's largest calls in the scope: by cost for spend, by tokens for tokens per call."""
    filters = dict(where or {})
    filters.update({k: v for k, v in zip(keys, scope, strict=True) if v is not None})
    fields = ("id", "started_at_us", "cost_nanousd", "input_tokens", "output_tokens")
    n = len(keys)
    calls = [
        row[n:]
        for row in scan_calls(store, SpendQuery(keys, hour, hour + _HOUR, filters), fields)
        if tuple(row[:n]) == scope
    ]
    if metric == "spend":
        calls.sort(key=lambda c: (-(c[2] or 0), c[0]))
    else:
        calls.sort(key=lambda c: (-(c[3] + c[4]), c[0]))
    return tuple(
        {
            "id": call_id,
            "started_at": datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=at),
            "cost_usd": None if cost is None else nanousd_to_usd(cost),
            "input_tokens": inp,
            "output_tokens": out,
        }
        for call_id, at, cost, inp, out in calls[:top]
    )


def notify(anomalies: Iterable[Anomaly], sinks: Sequence[AnomalySink | object]) -> int:
    """Send every anomaly to every sink; a failing sink is logged and the others still run.

    A sink is a callable taking the event dict, or an object whose `send` takes it (such as the
    budgets' `CallbackSink`). Returns the number of deliveries that succeeded.
    """
    delivered = 0
    for anomaly in anomalies:
        event = anomaly.to_event()
        for sink in sinks:
            deliver = getattr(sink, "send", sink)
            try:
                if not callable(deliver):
                    raise TypeError(f"{sink!r} is not a sink: pass a callable or an object with send()")
                deliver(dict(event))
            except Exception:
                log.exception("costlens: anomaly alert sink %r failed", sink)
            else:
                delivered += 1
    return delivered
