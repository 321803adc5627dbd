"""`/api/reports/spend`, `/api/forecasts`, `/api/anomalies`: the library behind `costlens report`,
`costlens forecast` and `costlens anomalies` (`costlens.analytics.spend`, `forecast`,
`detect_anomalies`), with the same defaults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from costlens.server._api_models import AnomalyOut, ForecastOut, SpendReportOut
from costlens.server._api_params import (
    bad,
    check_zone,
    jsonable,
    parse_keys,
    parse_range,
    parse_time,
    parse_where,
)
from costlens.server._context import ServerContext

__all__ = ["router", "spend_rows"]

#: Measures measured in money: unknown (null) for a group whose every call is unpriced (as the CLI).
_COST_MEASURES = ("cost_usd", "cost_per_call", "cost_per_1k_tokens", "share")
_PRICING_MEASURES = ("calls", "unpriced_calls")
_WHEN = "A duration before now (30d, 12h, 2w, 90m) or an ISO date/datetime."
_KEYS = "model, request_model, provider, operation, status, service_tier, hour, day, week, month, a tag"


def _wholly_unpriced(row: Mapping[str, object]) -> bool:
    calls, unpriced = row.get("calls"), row.get("unpriced_calls")
    return isinstance(calls, int) and isinstance(unpriced, int) and 0 < calls == unpriced


def spend_rows(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows as `costlens report --format json` writes them: the asked columns, money as exact text,
    null cost measures for a group whose every call is unpriced (its cost is unknown, not $0)."""
    out = []
    for row in rows:
        unknown = _wholly_unpriced(row)
        out.append({c: None if unknown and c in _COST_MEASURES else jsonable(row.get(c)) for c in columns})
    return out


def _measures(text: str | None) -> list[str]:
    from costlens.analytics import DEFAULT_MEASURES, MEASURES

    if text is None or text == "":
        return list(DEFAULT_MEASURES)
    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return list(MEASURES)
    for name in names:
        if name not in MEASURES:
            bad("measures", f"unknown measure {name!r}: use any of {', '.join(MEASURES)} or all", text)
    if not names:
        bad("measures", "give at least one measure", text)
    return names


def router(ctx: ServerContext) -> Any:
    api = APIRouter()

    @api.get("/reports/spend", response_model=SpendReportOut, tags=["reports"])
    def report(
        by: Annotated[list[str], Query(description=f"Group keys: {_KEYS} (repeat or comma-separate).")] = [],  # noqa: B006
        since: Annotated[str | None, Query(max_length=64, description=_WHEN)] = None,
        until: Annotated[str | None, Query(max_length=64, description="End (exclusive). " + _WHEN)] = None,
        where: Annotated[list[str], Query(description="key=value filters (repeat).")] = [],  # noqa: B006
        bucket: Annotated[str | None, Query(pattern="^(hour|day|week|month)$")] = None,
        timezone: Annotated[str, Query(max_length=64, description="UTC or an IANA zone name.")] = "UTC",
        measures: Annotated[
            str | None, Query(max_length=2000, description="Comma-separated, or all.")
        ] = None,
        top: Annotated[int | None, Query(ge=1, le=10_000)] = None,
        compare: Annotated[str | None, Query(pattern="^previous$")] = None,
    ) -> Any:
        """Exact spend, grouped (`costlens report`; `costlens.analytics.spend`)."""
        from costlens.analytics import spend

        zone = check_zone(timezone)
        keys = parse_keys(by or ["model"])
        filters = parse_where(where)
        start, end = parse_range(since, until, zone)
        names = _measures(measures)
        if compare is not None and start is None:
            bad("compare", "compare=previous needs since", compare)
        hidden = [m for m in _PRICING_MEASURES if m not in names]
        try:
            result = spend(
                ctx.store, keys, bucket=bucket, timezone=zone, since=start, until=end, where=filters,
                measures=[*names, *hidden], top=top, compare=compare,
            )  # fmt: skip
        except ValueError as exc:
            bad("by", str(exc), by)
        columns = [c for c in result.columns if c not in hidden]
        return {
            "keys": list(result.keys),
            "columns": columns,
            "since": result.since,
            "until": result.until,
            "timezone": result.timezone,
            "previous": list(result.previous) if result.previous is not None else None,
            "rows": spend_rows(result.all_rows, columns),
            "totals": spend_rows([result.totals], [c for c in columns if c in result.totals])[0],
        }

    @api.get("/forecasts", response_model=list[ForecastOut], tags=["reports"])
    def forecasts(
        by: Annotated[list[str], Query(description="One forecast per group of these keys.")] = [],  # noqa: B006
        where: Annotated[list[str], Query(description="key=value filters (repeat).")] = [],  # noqa: B006
        until: Annotated[
            str | None, Query(max_length=64, description="Window end (default: the end of this month).")
        ] = None,
        timezone: Annotated[str, Query(max_length=64)] = "UTC",
        lookback: Annotated[int, Query(ge=1, le=366, description="Days of history to fit.")] = 28,
        level: Annotated[float, Query(ge=0.5, le=0.99, description="Coverage of the interval.")] = 0.8,
    ) -> Any:
        """Window-end spend per scope with an interval (`costlens forecast`; `analytics.forecast`)."""
        from costlens.analytics import forecast, month_window

        zone = check_zone(timezone)
        keys = parse_keys(by)
        filters = parse_where(where)
        end = parse_time(until, "until", zone)
        now = datetime.now(UTC)
        window = (month_window(now, zone)[0], end) if end is not None else None
        if window is not None and window[1] <= now:
            bad("until", "the window must end in the future", until)
        try:
            found = forecast(
                ctx.store, keys, where=filters, timezone=zone, now=now, window=window,
                lookback_days=lookback, level=level,
            )  # fmt: skip
        except ValueError as exc:
            bad("by", str(exc), by)
        return [
            {
                "scope": dict(f.keys),
                **jsonable({k: v for k, v in f.as_dict().items() if k not in f.keys}),
                "window_start": f.window_start,
                "window_end": f.window_end,
            }
            for f in found
        ]

    @api.get("/anomalies", response_model=list[AnomalyOut], tags=["reports"])
    def anomalies(
        by: Annotated[list[str], Query(description="Scopes to watch (default: model).")] = [],  # noqa: B006
        since: Annotated[str, Query(max_length=64, description=_WHEN)] = "24h",
        until: Annotated[str | None, Query(max_length=64)] = None,
        where: Annotated[list[str], Query(description="key=value filters (repeat).")] = [],  # noqa: B006
        metric: Annotated[list[str], Query(description="spend and/or tokens_per_call (default both).")] = [],  # noqa: B006
        threshold: Annotated[float, Query(ge=0.1, le=1000)] = 4.0,
        baseline: Annotated[int, Query(ge=1, le=24 * 366, description="Hours of baseline.")] = 168,
        min_baseline: Annotated[int, Query(ge=1, le=24 * 366)] = 24,
        top_calls: Annotated[int, Query(ge=0, le=100)] = 5,
    ) -> Any:
        """Hours whose spend or tokens per call spiked (`costlens anomalies`; `detect_anomalies`)."""
        from costlens.analytics import ANOMALY_METRICS, detect_anomalies

        keys = parse_keys(by or ["model"])
        filters = parse_where(where)
        start, end = parse_range(since, until)
        start = start or datetime.now(UTC) - timedelta(days=1)
        metrics = [m.strip() for value in (metric or list(ANOMALY_METRICS)) for m in value.split(",")]
        for name in metrics:
            if name not in ANOMALY_METRICS:
                bad("metric", f"unknown metric {name!r}: use {' or '.join(ANOMALY_METRICS)}", name)
        try:
            found = detect_anomalies(
                ctx.store, keys, since=start, until=end, where=filters, metrics=metrics,
                threshold=threshold, baseline_hours=baseline, min_baseline=min_baseline, top_calls=top_calls,
            )  # fmt: skip
        except ValueError as exc:
            bad("by", str(exc), by)
        return [
            {
                "scope": dict(a.keys),
                "metric": a.metric,
                "hour": a.hour,
                "value": jsonable(a.value),
                "baseline": jsonable(a.baseline),
                "unit": a.unit,
                "score": a.score,
                "calls": a.calls,
                "cost_usd": jsonable(a.cost_usd),
                "top_call_ids": [str(c["id"]) for c in a.top_calls],
            }
            for a in found
        ]

    return api
