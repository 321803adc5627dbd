"""OpenTelemetry export: GenAI spans and metrics through the SDK, in memory and to a local OTLP receiver."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from costlens.analytics import export_otel
from costlens.analytics._otel import otlp_export
from costlens.usage import CallRecord

T0 = datetime(2025, 4, 1, 12, tzinfo=UTC)


def calls() -> list[CallRecord]:
    ok = CallRecord(
        "openai",
        "chat",
        "gpt-4o",
        started_at=T0,
        ended_at=T0 + timedelta(milliseconds=1500),
        latency_ms=1500.0,
        response_model="gpt-4o-2024-08-06",
        input_tokens=1200,
        output_tokens=80,
        cache_read_tokens=1024,
        cost_nanousd=2_105_000,
        price_known=True,
        tags={"feature": "search", "user": "u1"},
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
        id="c" * 32,
    )
    failed = CallRecord(
        "anthropic",
        "chat",
        "claude-haiku-4-5",
        started_at=T0 + timedelta(seconds=5),
        latency_ms=300.0,
        status="error",
        error_type="RateLimitError",
        http_status=429,
        tags={"feature": "chat"},
        id="d" * 32,
    )
    return [ok, failed]


def test_spans_follow_the_genai_conventions() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert export_otel(calls(), tracer_provider=provider) == 2
    ok, failed = exporter.get_finished_spans()
    assert ok.name == "chat gpt-4o-2024-08-06"
    assert ok.kind is SpanKind.CLIENT
    assert ok.start_time == int(T0.timestamp()) * 10**9
    assert ok.end_time is not None and ok.end_time - ok.start_time == 1_500_000_000
    attrs = dict(ok.attributes or {})
    assert {k: attrs[k] for k in attrs if k.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 80,
        "gen_ai.usage.cache_read.input_tokens": 1024,
    }
    assert attrs["costlens.cost.usd"] == "0.002105000"
    assert attrs["costlens.cost.nanousd"] == 2_105_000
    assert attrs["costlens.tag.user"] == "u1"
    assert ok.parent is not None and format(ok.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert format(ok.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {})["error.type"] == "RateLimitError"
    assert failed.end_time is not None and failed.end_time - failed.start_time == 300_000_000


def test_metrics_use_the_genai_instruments_and_an_exact_cost_counter() -> None:
    reader = InMemoryMetricReader()
    export_otel(calls(), meter_provider=MeterProvider(metric_readers=[reader]))
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert set(metrics) == {
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "costlens.client.cost",
    }
    tokens = {
        (p.attributes["gen_ai.token.type"], p.attributes["gen_ai.provider.name"]): p.sum
        for p in metrics["gen_ai.client.token.usage"].data.data_points
    }
    assert tokens == {("input", "openai"): 1200, ("output", "openai"): 80, ("input", "anthropic"): 0,
                      ("output", "anthropic"): 0}  # fmt: skip
    (cost,) = metrics["costlens.client.cost"].data.data_points
    assert cost.value == 2_105_000
    assert cost.attributes["costlens.tag.feature"] == "search"
    assert "costlens.tag.user" not in cost.attributes  # only the tags asked for become metric attributes
    durations = {
        p.attributes.get("error.type"): p.sum
        for p in metrics["gen_ai.client.operation.duration"].data.data_points
    }
    assert durations == {None: 1.5, "RateLimitError": 0.3}


class _Receiver(BaseHTTPRequestHandler):
    received: dict[str, list[bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.setdefault(self.path, []).append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, dict[str, list[bytes]]]]:
    received: dict[str, list[bytes]] = {}
    handler = type("Handler", (_Receiver,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


def test_a_local_otlp_receiver_gets_spans_and_metrics(receiver: tuple[str, dict[str, list[bytes]]]) -> None:
    url, received = receiver
    assert otlp_export(calls(), url, timeout_s=5) == 2
    traces = ExportTraceServiceRequest()
    for body in received["/v1/traces"]:
        traces.MergeFromString(body)
    spans = [s for rs in traces.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert sorted(s.name for s in spans) == ["chat claude-haiku-4-5", "chat gpt-4o-2024-08-06"]
    attrs = {a.key: a.value for a in spans[0].attributes}
    assert attrs["gen_ai.provider.name"].string_value in ("openai", "anthropic")
    resource = {a.key: a.value.string_value for a in traces.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "costlens-export"
    metrics = ExportMetricsServiceRequest()
    for body in received["/v1/metrics"]:
        metrics.MergeFromString(body)
    names = {m.name for rm in metrics.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"gen_ai.client.token.usage", "costlens.client.cost"} <= names
