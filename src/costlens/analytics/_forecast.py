"""Window-end spend forecasts (month-end by default) per scope, with a prediction interval.

Method, per scope (a group of `by` keys):
- the series: spend of each complete local day over the lookback (default 28 days), from the
  scope's first day with spend; days without calls count as $0;
- the trend: Theil–Sen (median of pairwise slopes; one spike moves it little), intercept the median
  of `y - slope * x`;
- the point forecast: spent so far in the window (exact) + the trend summed over what is left of
  the window (today's remainder, then each day; DST days weigh 23 or 25 hours), never below $0 a day;
- the interval: a normal prediction interval for that sum, with the residuals' robust scale
  (1.4826 x MAD) standing in for sigma, widened for the uncertainty of the slope and level.
With fewer than 3 complete days it falls back to the run rate, without an interval.
Forecasts are estimates: floats inside, rounded to nano-USD on the way out.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from costlens.store import SpendQuery, Store, nanousd_to_usd
from costlens.store._time import get_zone

__all__ = ["Forecast", "forecast", "month_window"]

_MIN_DAYS = 3


@dataclass(frozen=True, slots=True)
class Forecast:
    """The forecast of one scope. Money in USD; `low`/`high` bound `forecast_usd` at `level`."""

    keys: dict[str, str | None]
    window_start: datetime
    window_end: datetime
    spent_usd: Decimal
    forecast_usd: Decimal
    low_usd: Decimal | None
    high_usd: Decimal | None
    level: float
    daily_rate_usd: Decimal
    daily_trend_usd: Decimal | None
    history_days: int
    method: str
    history: tuple[tuple[str, Decimal], ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, object]:
        """Flat, JSON-friendly (the daily history is left out)."""
        out: dict[str, object] = dict(self.keys)
        for name in (
            "window_start", "window_end", "spent_usd", "forecast_usd", "low_usd", "high_usd", "level",
            "daily_rate_usd", "daily_trend_usd", "history_days", "method",
        ):  # fmt: skip
            out[name] = getattr(self, name)
        return out


def month_window(now: datetime, timezone: str = "UTC") -> tuple[datetime, datetime]:
    """[first midnight of the month, first midnight of the next month) in the zone, as UTC."""
    zone = get_zone(timezone)
    local = now.astimezone(zone)
    start = datetime(local.year, local.month, 1, tzinfo=zone)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return start.astimezone(UTC), datetime(year, month, 1, tzinfo=zone).astimezone(UTC)


def _midnight(day: date, timezone: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=get_zone(timezone)).astimezone(UTC)


def forecast(
    store: Store,
    by: Sequence[str] = (),
    *,
    where: Mapping[str, str] | None = None,
    timezone: str = "UTC",
    now: datetime | None = None,
    window: tuple[datetime, datetime] | None = None,
    lookback_days: int = 28,
    level: float = 0.8,
) -> list[Forecast]:
    """Forecast spend at the end of `window` (default: this calendar month in `timezone`) per scope.

    Scopes are the groups of `by` (one overall forecast when empty) with spend in the window or the
    lookback; most expensive forecast first.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if lookback_days < 1:
        raise ValueError(f"lookback_days must be at least 1, got {lookback_days}")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    start, end = window or month_window(now, timezone)
    if not start <= now < end:
        raise ValueError("the forecast window must contain now: it starts before now and ends after it")
    today = now.astimezone(get_zone(timezone)).date()
    days = [today - timedelta(days=lookback_days - i) for i in range(lookback_days)]
    keys = tuple(by)
    history = _daily(store, keys, where, timezone, _midnight(days[0], timezone), _midnight(today, timezone))
    spent = _spent(store, keys, where, timezone, start, now)
    future = _future_weights(now, end, today, timezone)
    out: list[Forecast] = []
    for scope in sorted(set(history) | set(spent), key=lambda k: [(v is None, v or "") for v in k]):
        series = [history.get(scope, {}).get(d.isoformat(), 0) for d in days]
        labelled = tuple((d.isoformat(), nanousd_to_usd(v)) for d, v in zip(days, series, strict=True))
        base = Forecast(
            keys=dict(zip(keys, scope, strict=True)),
            window_start=start,
            window_end=end,
            spent_usd=nanousd_to_usd(spent.get(scope, 0)),
            forecast_usd=Decimal(0),
            low_usd=None,
            high_usd=None,
            level=level,
            daily_rate_usd=Decimal(0),
            daily_trend_usd=None,
            history_days=0,
            method="none",
            history=labelled,
        )
        out.append(_one(base, series, spent.get(scope, 0), future))
    return sorted(out, key=lambda f: -f.forecast_usd)


def _daily(
    store: Store, keys: tuple[str, ...], where: Mapping[str, str] | None, tz: str, lo: datetime, hi: datetime
) -> dict[tuple[str | None, ...], dict[str, int]]:
    out: dict[tuple[str | None, ...], dict[str, int]] = {}
    for row in store.query(SpendQuery(("day", *keys), lo, hi, dict(where or {}), tz)):
        scope = tuple(row.keys[k] for k in keys)
        out.setdefault(scope, {})[str(row.keys["day"])] = row.cost_nanousd
    return out


def _spent(
    store: Store, keys: tuple[str, ...], where: Mapping[str, str] | None, tz: str, lo: datetime, hi: datetime
) -> dict[tuple[str | None, ...], int]:
    rows = store.query(SpendQuery(keys, lo, hi, dict(where or {}), tz))
    return {tuple(row.keys[k] for k in keys): row.cost_nanousd for row in rows}


def _future_weights(now: datetime, end: datetime, today: date, tz: str) -> list[tuple[int, float]]:
    """(day offset from today, fraction of that local day left inside (now, end)) for each day."""
    out: list[tuple[int, float]] = []
    offset = 0
    while True:
        day_start = _midnight(today + timedelta(days=offset), tz)
        day_end = _midnight(today + timedelta(days=offset + 1), tz)
        lo, hi = max(day_start, now), min(day_end, end)
        if lo >= end:
            return out
        if hi > lo:
            out.append((offset, (hi - lo) / (day_end - day_start)))
        offset += 1


def _theil_sen(y: Sequence[float]) -> tuple[float, float]:
    slopes = [(y[j] - y[i]) / (j - i) for i in range(len(y)) for j in range(i + 1, len(y))]
    slope = statistics.median(slopes)
    return statistics.median(v - slope * x for x, v in enumerate(y)), slope


def _sigma(residuals: Sequence[float]) -> float:
    mad = statistics.median(abs(r - statistics.median(residuals)) for r in residuals)
    if mad > 0:
        return 1.4826 * mad
    return 1.2533 * statistics.fmean(abs(r) for r in residuals)


def _one(base: Forecast, series: list[int], spent: int, future: list[tuple[int, float]]) -> Forecast:
    first = next((i for i, v in enumerate(series) if v), len(series))
    y = [float(v) for v in series[first:]]
    history = base.history[first:]
    if len(y) < _MIN_DAYS:
        rate = (sum(y) + spent) / (len(y) + 1) if y else 0.0
        point = spent + rate * sum(w for _, w in future)
        method = "run-rate" if y or spent else "none"
        return replace(
            base, forecast_usd=_usd(point), daily_rate_usd=_usd(rate), history_days=len(y), method=method,
            history=history,
        )  # fmt: skip
    intercept, slope = _theil_sen(y)
    n = len(y)
    xs = [n + offset for offset, _ in future]
    weights = [w for _, w in future]
    point = spent + sum(w * max(0.0, intercept + slope * x) for x, w in zip(xs, weights, strict=True))
    sigma = _sigma([v - (intercept + slope * x) for x, v in enumerate(y)])
    mean_x = (n - 1) / 2
    sxx = sum((x - mean_x) ** 2 for x in range(n))
    lever = sum(w * (x - mean_x) for x, w in zip(xs, weights, strict=True))
    sd = sigma * (sum(w * w for w in weights) + lever**2 / sxx + sum(weights) ** 2 / n) ** 0.5
    z = statistics.NormalDist().inv_cdf((1 + base.level) / 2)
    return replace(
        base,
        forecast_usd=_usd(point),
        low_usd=_usd(max(float(spent), point - z * sd)),
        high_usd=_usd(point + z * sd),
        daily_rate_usd=_usd(max(0.0, intercept + slope * n)),
        daily_trend_usd=_usd(slope),
        history_days=n,
        method="theil-sen",
        history=history,
    )


def _usd(nano: float) -> Decimal:
    return nanousd_to_usd(round(nano))
