"""What the overview, anomalies and calls pages show, computed by the library the CLI uses:
`costlens.analytics.spend` (`costlens report`), `detect_anomalies` (`costlens anomalies`) and
`Store.iter_records(newest_first=True)` (`costlens calls tail`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from costlens.store import SpendQuery, Store
from costlens.store._base import from_micros, to_micros
from costlens.usage import CallRecord

__all__ = [
    "ANOMALY_PERIODS",
    "DIMENSIONS",
    "PERIODS",
    "CallsPage",
    "anomalies_view",
    "calls_page",
    "overview",
    "parse_cursor",
]

#: The overview's periods: this many days up to now, against the same number of days before.
PERIODS = {"7d": 7, "30d": 30, "90d": 90}
#: What spend is broken down by on the overview (a built-in key, then two common tags).
DIMENSIONS = ("model", "feature", "user")
#: The anomalies page's look-back windows.
ANOMALY_PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
_SERIES = 8  # stacked series per chart; the rest is folded into "(other)"
_TOP = 10  # rows of each top-spenders table
_TOTAL_MEASURES = ("calls", "input_tokens", "output_tokens", "cost_usd", "unpriced_calls")
_TOP_MEASURES = ("calls", "input_tokens", "output_tokens", "cost_usd", "unpriced_calls", "share")


def _days(since: datetime, until: datetime) -> list[str]:
    """Every UTC day label (`2025-01-31`) touched by [since, until)."""
    day, last = since.date(), (until - timedelta(microseconds=1)).date()
    out = []
    while day <= last:
        out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def _label(value: object) -> str:
    return "(none)" if value is None else str(value)


def _series_chart(
    rows: Sequence[Mapping[str, object]], key: str, days: list[str], title: str
) -> dict[str, Any]:
    """A stacked bar chart of cost per day, one trace per value of `key` (most expensive first)."""
    totals: dict[str, Decimal] = {}
    per_day: dict[str, dict[str, Decimal]] = {}
    for row in rows:
        name, cost = _label(row[key]), row.get("cost_usd")
        amount = cost if isinstance(cost, Decimal) else Decimal(0)
        totals[name] = totals.get(name, Decimal(0)) + amount
        per_day.setdefault(name, {})[str(row["day"])] = amount
    order = sorted(totals, key=lambda n: (n == "(other)", -totals[n], n))
    data = [
        {
            "type": "bar",
            "name": name,
            "x": days,
            "y": [float(per_day[name].get(d, 0)) for d in days],
            "customdata": [str(per_day[name].get(d, Decimal(0))) for d in days],
            "hovertemplate": "%{x}: $%{customdata}<extra>%{fullData.name}</extra>",
        }
        for name in order
    ]
    layout = {
        "title": {"text": title, "font": {"size": 14}},
        "barmode": "stack",
        "height": 340,
        "margin": {"l": 60, "r": 10, "t": 40, "b": 10},
        "yaxis": {"title": {"text": "USD"}, "tickprefix": "$", "tickformat": ",.2~f", "rangemode": "tozero"},
        "xaxis": {"type": "date", "tickformat": "%b %d", "automargin": True},
        "legend": {"orientation": "h", "y": -0.15, "yanchor": "top"},
    }
    return {"data": data, "layout": layout}


def overview(store: Store, period: str, now: datetime | None = None) -> dict[str, Any]:
    """The overview page: totals now vs the previous period, spend per day by model, feature and user,
    and the top spenders by each (all from `spend()`)."""
    from costlens.analytics import spend

    until = now or datetime.now(UTC)
    since = until - timedelta(days=PERIODS[period])
    totals = spend(store, [], since=since, until=until, measures=_TOTAL_MEASURES, compare="previous").totals
    days = _days(since, until)
    charts, tops = {}, {}
    for key in DIMENSIONS:
        series = spend(
            store, [key], bucket="day", since=since, until=until, measures=("cost_usd",), top=_SERIES
        )
        charts[key] = _series_chart(series.all_rows, key, days, f"Spend per day by {key}")
        top = spend(
            store, [key], since=since, until=until, measures=_TOP_MEASURES, top=_TOP, compare="previous"
        )
        tops[key] = top.all_rows
    return {
        "since": since,
        "until": until,
        "previous": (since - (until - since), since),
        "totals": totals,
        "charts": charts,
        "tops": tops,
        "empty": not totals.get("calls") and not totals.get("previous_calls"),
    }


def anomalies_view(
    store: Store, period: str, by: str, metrics: Sequence[str], threshold: float, now: datetime | None = None
) -> dict[str, Any]:
    """Anomalous hours (`detect_anomalies`, the defaults of `costlens anomalies`) and a chart of them."""
    from costlens.analytics import detect_anomalies

    until = now or datetime.now(UTC)
    since = until - ANOMALY_PERIODS[period]
    found = detect_anomalies(store, [by], since=since, until=until, metrics=metrics, threshold=threshold)
    chart = None
    spikes = [a for a in found if a.metric == "spend"]
    if spikes:
        names = sorted({_label(a.keys.get(by)) for a in spikes})
        data = []
        for name in names:
            mine = [a for a in spikes if _label(a.keys.get(by)) == name]
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": name,
                    "x": [a.hour.strftime("%Y-%m-%d %H:%M") for a in mine],
                    "y": [float(a.value) for a in mine],
                    "customdata": [[str(a.value), str(a.baseline), round(a.score, 1)] for a in mine],
                    "hovertemplate": "%{x} UTC: $%{customdata[0]} vs baseline $%{customdata[1]} "
                    "(score %{customdata[2]})<extra></extra>",
                    "marker": {"size": 11},
                }
            )
        layout = {
            "title": {"text": "Spend spikes (USD in the hour)", "font": {"size": 14}},
            "height": 300,
            "margin": {"l": 60, "r": 10, "t": 40, "b": 40},
            "yaxis": {"tickprefix": "$", "tickformat": ",.2~f", "rangemode": "tozero"},
        }
        chart = {"data": data, "layout": layout}
    return {"since": since, "until": until, "anomalies": found, "chart": chart}


@dataclass(frozen=True, slots=True)
class CallsPage:
    records: list[CallRecord]
    total: int  # calls in the store
    offset: int  # calls newer than the first shown
    next_cursor: str | None  # the `before` of the next (older) page


def parse_cursor(text: str) -> tuple[int, str]:
    """`<started_at microseconds>:<id>` (the last call of the previous page); ValueError if malformed."""
    micros, sep, record_id = text.partition(":")
    if not sep or not micros.isdigit() or not record_id or len(text) > 200:
        raise ValueError(f"bad page cursor {text!r}")
    return int(micros), record_id


def calls_page(store: Store, size: int, cursor: tuple[int, str] | None, offset: int) -> CallsPage:
    """The `size` calls just older than `cursor` (newest first), by (started_at, id) like the store
    orders them; the store's call count comes from one aggregate query."""
    total = sum(row.calls for row in store.query(SpendQuery()))
    until = None if cursor is None else from_micros(cursor[0] + 1)
    limit = size + 1 + 64
    while True:
        fetched = list(store.iter_records(until=until, limit=limit, newest_first=True))
        kept = [r for r in fetched if cursor is None or _older(r, cursor)]
        if len(kept) > size or len(fetched) < limit:
            break
        limit *= 4  # many calls share the cursor's microsecond: look further
    shown = kept[:size]
    more = len(kept) > size
    last = shown[-1] if shown else None
    following = f"{to_micros(last.started_at)}:{last.id}" if more and last is not None else None
    return CallsPage(shown, total, offset, following)


def _older(record: CallRecord, cursor: tuple[int, str]) -> bool:
    at = to_micros(record.started_at)
    return at < cursor[0] or (at == cursor[0] and record.id < cursor[1])


def route_of(record: CallRecord) -> dict[str, str] | None:
    """The routing decision kept on a call: policy, from -> to, reason (None when not routed)."""
    route = record.route
    if not route:
        return None
    asked = route.get("from") or record.request_model
    sent = route.get("to") or route.get("model") or record.response_model or record.request_model
    return {
        "policy": str(route.get("policy") or "—"),
        "from": str(asked),
        "to": str(sent),
        "reason": str(route.get("reason") or ""),
    }
