"""OpenTelemetry export through the OTel SDK, with the GenAI semantic conventions (`gen_ai.*`).

One CLIENT span per call, named `{operation} {model}`, at the call's real start and end, with
`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`,
`gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens` (and the cache parts), `error.type` on
errors, and costlens attributes: `costlens.call.id`, `costlens.cost.usd` (exact decimal text),
`costlens.cost.nanousd`, `costlens.price_known`, `costlens.estimated`, `costlens.tag.<name>`.
A call recorded with a trace and span id becomes a child of that span.

Metrics: `gen_ai.client.token.usage` (histogram, `gen_ai.token.type` input/output),
`gen_ai.client.operation.duration` (histogram, seconds) and `costlens.client.cost` (an integer
counter of nano-USD, so sums stay exact). Metric data points carry the export time, not the call's
(OTel metrics cannot be back-dated); spans carry the real times. The SDK and the OTLP/HTTP exporter
are the `otel` extra, imported only here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from costlens.store import nanousd_to_usd
from costlens.store._base import to_micros
from costlens.usage import USAGE_PARTS, CallRecord

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["OTLPExportError", "export_otel", "otlp_export", "span_attributes"]

_SCOPE = "costlens"
_TOKEN_BUCKETS = [4.0**i for i in range(14)]  # 1 ... 67,108,864, as the GenAI conventions advise
_DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]  # 0.01 s ... 81.92 s


def _end_ns(record: CallRecord) -> int:
    if record.ended_at is not None:
        return to_micros(record.ended_at) * 1000
    latency = timedelta(milliseconds=record.latency_ms or 0)
    return to_micros(record.started_at + latency) * 1000


def _base_attributes(record: CallRecord) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": record.operation,
        "gen_ai.provider.name": record.provider,
        "gen_ai.request.model": record.request_model,
    }
    if record.response_model:
        attrs["gen_ai.response.model"] = record.response_model
    if record.status != "ok":
        attrs["error.type"] = record.error_type or record.status
    return attrs


def span_attributes(record: CallRecord) -> dict[str, Any]:
    """Every attribute of a call's span (GenAI conventions, then costlens's own)."""
    attrs = _base_attributes(record)
    attrs["gen_ai.usage.input_tokens"] = record.input_tokens
    attrs["gen_ai.usage.output_tokens"] = record.output_tokens
    if record.cache_read_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = record.cache_read_tokens
    if record.cache_write_tokens:
        attrs["gen_ai.usage.cache_creation.input_tokens"] = record.cache_write_tokens
    if record.http_status is not None:
        attrs["http.response.status_code"] = record.http_status
    attrs["costlens.call.id"] = record.id
    if record.cost_nanousd is not None:
        attrs["costlens.cost.usd"] = format(nanousd_to_usd(record.cost_nanousd), "f")
        attrs["costlens.cost.nanousd"] = record.cost_nanousd
    attrs["costlens.price_known"] = record.price_known
    attrs["costlens.estimated"] = record.estimated
    if record.reasoning_tokens:
        attrs["costlens.usage.reasoning_tokens"] = record.reasoning_tokens
    for name in USAGE_PARTS:  # 1-hour cache writes, audio, citations, server-side tool requests
        value = getattr(record, name)
        if value:
            attrs[f"costlens.usage.{name}"] = value
    if record.service_tier:
        attrs["costlens.service_tier"] = record.service_tier
    for key, value in record.tags.items():
        attrs[f"costlens.tag.{key}"] = str(value)
    return attrs


def _parent(record: CallRecord) -> Any:
    """The context of the span the call was made under, when the record names a valid one."""
    from opentelemetry import trace

    try:
        trace_id, span_id = int(record.trace_id or "", 16), int(record.span_id or "", 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    ctx = trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(1))
    return trace.set_span_in_context(trace.NonRecordingSpan(ctx))


class _Instruments:
    def __init__(self, meter_provider: MeterProvider) -> None:
        meter = meter_provider.get_meter(_SCOPE)
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.cost = meter.create_counter(
            "costlens.client.cost", unit="{nanoUSD}", description="Exact cost of GenAI calls in nano-USD"
        )

    def record(self, record: CallRecord, metric_tags: Sequence[str]) -> None:
        attrs = _base_attributes(record)
        for key in metric_tags:
            if key in record.tags:
                attrs[f"costlens.tag.{key}"] = str(record.tags[key])
        self.tokens.record(record.input_tokens, {**attrs, "gen_ai.token.type": "input"})
        self.tokens.record(record.output_tokens, {**attrs, "gen_ai.token.type": "output"})
        if record.latency_ms is not None:
            self.duration.record(record.latency_ms / 1000, attrs)
        if record.cost_nanousd is not None:
            self.cost.add(record.cost_nanousd, attrs)


def export_otel(
    records: Iterable[CallRecord],
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    metric_tags: Sequence[str] = ("feature",),
    tick: Callable[[int], None] | None = None,
) -> int:
    """Emit a span (and metric points) per record through the given OTel SDK providers.

    Either provider may be left out. Only the tags named in `metric_tags` become metric attributes
    (tags such as `user` would explode metric cardinality); spans carry every tag.
    """
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = None if tracer_provider is None else tracer_provider.get_tracer(_SCOPE)
    instruments = None if meter_provider is None else _Instruments(meter_provider)
    n = 0
    for record in records:
        if tracer is not None:
            model = record.response_model or record.request_model
            span = tracer.start_span(
                f"{record.operation} {model}",
                context=_parent(record),
                kind=SpanKind.CLIENT,
                attributes=span_attributes(record),
                start_time=to_micros(record.started_at) * 1000,
            )
            if record.status != "ok":
                span.set_status(Status(StatusCode.ERROR, record.error_type or record.status))
            span.end(end_time=_end_ns(record))
        if instruments is not None:
            instruments.record(record, metric_tags)
        n += 1
        if tick is not None and n % 10_000 == 0:
            tick(n)
    return n


class OTLPExportError(ConnectionError):
    """The OTLP endpoint did not accept what was sent (no collector there, or it refused the data)."""

    def __init__(self, endpoint: str, message: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class _Batches:
    """A span processor that exports whole batches synchronously (no queue to overflow, no spans
    dropped) and stops sending after the first batch the endpoint does not accept."""

    def __init__(self, exporter: Any, size: int = 512) -> None:
        self.exporter, self.size = exporter, size
        self.buffer: list[Any] = []
        self.sent = self.failed = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        self.buffer.append(span)
        if len(self.buffer) >= self.size:
            self.force_flush()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        from opentelemetry.sdk.trace.export import SpanExportResult

        batch, self.buffer = self.buffer, []
        if not batch:
            return True
        if self.failed:
            self.failed += len(batch)
            return False
        if self.exporter.export(batch) is SpanExportResult.SUCCESS:
            self.sent += len(batch)
            return True
        self.failed += len(batch)
        return False

    def shutdown(self) -> None:
        self.force_flush()
        self.exporter.shutdown()


def _checked_metric_exporter(inner: Any) -> Any:
    """`inner` (an OTLP metric exporter) wrapped so a refused export is remembered (`.ok`), and
    skipped altogether once `.enabled` is False (no second wait on a dead endpoint)."""
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    class Checked(MetricExporter):
        def __init__(self) -> None:
            super().__init__(
                preferred_temporality=inner._preferred_temporality,
                preferred_aggregation=inner._preferred_aggregation,
            )
            self.ok, self.enabled = True, True

        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
            if not self.enabled:
                return MetricExportResult.SUCCESS
            result = inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            self.ok = self.ok and result is MetricExportResult.SUCCESS
            return result

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return bool(inner.force_flush(timeout_millis=timeout_millis))

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    return Checked()


def otlp_export(
    records: Iterable[CallRecord],
    endpoint: str,
    *,
    metric_tags: Sequence[str] = ("feature",),
    timeout_s: float = 10.0,
    tick: Callable[[int], None] | None = None,
) -> int:
    """Send spans and metrics to an OTLP/HTTP endpoint (`http://host:4318`); returns the call count.

    Spans go in batches of 512, each sent before the next is built, so none is dropped. When the
    endpoint does not accept a batch (nothing listens there, or it answers with an error), sending
    stops and `OTLPExportError` says how many calls were sent and names the endpoint.
    """
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

    base = endpoint.rstrip("/")
    resource = Resource.create({"service.name": "costlens-export"})
    tracer_provider = SdkTracerProvider(resource=resource)
    spans = _Batches(OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=timeout_s))
    tracer_provider.add_span_processor(spans)  # type: ignore[arg-type]
    metrics = _checked_metric_exporter(OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=timeout_s))
    reader = PeriodicExportingMetricReader(metrics, export_interval_millis=3_600_000)
    meter_provider = SdkMeterProvider(resource=resource, metric_readers=[reader])

    def until_refused() -> Iterator[CallRecord]:
        for record in records:
            if spans.failed:
                return
            yield record

    try:
        n = export_otel(
            until_refused(),
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            metric_tags=metric_tags,
            tick=tick,
        )
        tracer_provider.force_flush(int(timeout_s * 1000))
        if spans.failed:
            metrics.enabled = False
        else:
            meter_provider.force_flush(int(timeout_s * 1000))
    finally:
        tracer_provider.shutdown()
        metrics.enabled = False
        meter_provider.shutdown()
    if spans.failed:
        raise OTLPExportError(
            base,
            f"the OTLP endpoint {base} did not accept the spans: {spans.sent:,} calls sent before it "
            "refused or stopped answering, the rest not sent",
        )
    if not metrics.ok:
        raise OTLPExportError(base, f"the OTLP endpoint {base} did not accept the metrics (spans were sent)")
    return n
