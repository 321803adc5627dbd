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
- `import_file()`: formats in `FORMATS`, recognised from the file (`format="auto"`) or named: `csv`
  traces with a column mapping (`mapping=`) or a preset from `PRESETS` (`azure-llm-2023`, `burstgpt`,
  `mooncake`); `jsonl`, any JSON lines through a mapping with dotted keys (`usage.prompt_tokens`);
  `openai-usage` and `openai-costs` exports (the bucketed API pages); `litellm` spend logs and
  `litellm-daily` aggregate tables; `costlens-jsonl`, costlens' own lossless export. `start=` (a
  datetime) anchors relative timestamps (BurstGPT's seconds, Mooncake's milliseconds since the trace
  began; `time_unit=` s, ms or us); without it such times raise `ImplausibleTime` and nothing is
  imported. Idempotent (importing a file twice adds nothing); bad rows are reported with where they
  are, and warnings about the file as a whole are kept in `ImportResult.warnings`.
- `export_records()` (CSV, JSONL, Parquet), `export_otel()` (OpenTelemetry GenAI spans and
  metrics through your SDK providers), `otlp_export()` (to an OTLP/HTTP endpoint; `OTLPExportError`
  when it does not accept them), `prometheus_text()` / `prometheus_app()` (a `/metrics` exposition). Optional
  dependencies (pyarrow, opentelemetry, prometheus-client, matplotlib) are imported only when used.

Nothing here is imported by `import costlens`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from costlens.analytics._anomalies import METRICS as ANOMALY_METRICS
from costlens.analytics._anomalies import Anomaly, AnomalySink, detect_anomalies, notify
from costlens.analytics._forecast import Forecast, forecast, month_window
from costlens.analytics._import import BadRow, ImplausibleTime, ImportResult
from costlens.analytics._import_csv import PRESETS
from costlens.analytics._importers import FORMATS, detect_format, import_file
from costlens.analytics._latency import latency_p95
from costlens.analytics._measures import DEFAULT_MEASURES, MEASURES, PERCENTILE_MEASURES
from costlens.analytics._reprice import REPRICE_COLUMNS, RepriceReport, reprice
from costlens.analytics._spend import COMPARE_COLUMNS, OTHER, SpendReport, spend

if TYPE_CHECKING:
    from costlens.analytics._export import EXPORT_FORMATS, export_records
    from costlens.analytics._otel import OTLPExportError, export_otel, otlp_export
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
    "ImplausibleTime",
    "ImportResult",
    "OTLPExportError",
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
    "otlp_export",
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
    "otlp_export": "costlens.analytics._otel",
    "OTLPExportError": "costlens.analytics._otel",
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
