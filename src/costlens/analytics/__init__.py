"""Analytics over any store: spend queries, forecasts, anomalies, re-pricing, import and export.

    from costlens.analytics import spend, forecast, detect_anomalies, reprice, import_file
    report = spend(store, by=["model"], bucket="day", timezone="Europe/Berlin", since=..., top=5)

- `spend()`: group by provider, model, request_model, operation, status, service_tier, any tag, and
  a time bucket (hour/day/week/month in a time zone, DST-correct); filters; measures from
  `MEASURES` (exact sums, ratios, latency/TTFT percentiles); top-N; period-over-period.
  Backends answer from pre-aggregated rollups where they have them (the SQLite store keeps an
  hourly rollup in step with every append); the sums are exact either way.
- `forecast()`: month-end (or window-end) spend per scope with a prediction interval.
- `detect_anomalies()` / `notify()`: hourly spend and tokens-per-call spikes against a robust
  baseline, with the calls behind them; any callable taking a dict is an alert sink.
- `latency_p95()`: recorded p95 latency per model, for the router's latency target.
- `reprice()`: what recorded calls would have cost on another model or price catalogue.
- `import_file()`: CSV traces with a column mapping or a preset (`azure-llm-2023`), OpenAI usage
  and costs exports, LiteLLM spend logs, costlens JSON lines; idempotent; bad rows reported.
- `export_records()` (CSV, JSONL, Parquet), `export_otel()` (OpenTelemetry GenAI spans and
  metrics), `prometheus_text()` / `prometheus_app()` (a `/metrics` exposition). Optional
  dependencies (pyarrow, opentelemetry, prometheus-client, matplotlib) are imported only when used.

Nothing here is imported by `import costlens`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from costlens.analytics._anomalies import METRICS as ANOMALY_METRICS
from costlens.analytics._anomalies import Anomaly, AnomalySink, detect_anomalies, notify
from costlens.analytics._forecast import Forecast, forecast, month_window
from costlens.analytics._import import BadRow, ImportResult
from costlens.analytics._import_csv import PRESETS
from costlens.analytics._importers import FORMATS, detect_format, import_file
from costlens.analytics._latency import latency_p95
from costlens.analytics._measures import DEFAULT_MEASURES, MEASURES, PERCENTILE_MEASURES
from costlens.analytics._reprice import REPRICE_COLUMNS, RepriceReport, reprice
from costlens.analytics._spend import COMPARE_COLUMNS, OTHER, SpendReport, spend

if TYPE_CHECKING:
    from costlens.analytics._export import EXPORT_FORMATS, export_records
    from costlens.analytics._otel import export_otel
    from costlens.analytics._prometheus import prometheus_app, prometheus_registry, prometheus_text

__all__ = [
    "ANOMALY_METRICS",
    "COMPARE_COLUMNS",
    "DEFAULT_MEASURES",
    "EXPORT_FORMATS",
    "FORMATS",
    "MEASURES",
    "OTHER",
    "PERCENTILE_MEASURES",
    "PRESETS",
    "REPRICE_COLUMNS",
    "Anomaly",
    "AnomalySink",
    "BadRow",
    "Forecast",
    "ImportResult",
    "RepriceReport",
    "SpendReport",
    "detect_anomalies",
    "detect_format",
    "export_otel",
    "export_records",
    "forecast",
    "import_file",
    "latency_p95",
    "month_window",
    "notify",
    "prometheus_app",
    "prometheus_registry",
    "prometheus_text",
    "reprice",
    "spend",
]

_LAZY = {
    "EXPORT_FORMATS": "costlens.analytics._export",
    "export_records": "costlens.analytics._export",
    "export_otel": "costlens.analytics._otel",
    "prometheus_app": "costlens.analytics._prometheus",
    "prometheus_registry": "costlens.analytics._prometheus",
    "prometheus_text": "costlens.analytics._prometheus",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
