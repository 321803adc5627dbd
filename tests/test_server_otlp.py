"""The OTLP receiver (`POST /v1/traces`): real uvicorn, the real OpenTelemetry SDK and exporter.

Costs are checked against a sum computed here from the catalogue's per-token rates, not against the
pricing code the receiver calls.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from typer.testing import CliRunner

import costlens
from costlens.cli import app as cli_app
from costlens.pricing import get_catalogue
from costlens.server import ServerConfig, create_app
from costlens.usage import CallRecord
from tests.conftest import Recorded

NANO = Decimal("1e-9")
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """uvicorn in a thread on a socket already listening: requests wait in the backlog, nothing to poll."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    """One server for the module: what it records goes to the store configured at the time."""
    with serving(create_app(ServerConfig(), configure=False)) as url:
        yield url


class Captured(SpanExporter):
    """Keeps the SDK's finished spans, to send them through the OTLP exporter by hand (twice)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def provider(exporter: SpanExporter, **resource: str) -> TracerProvider:
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "checkout", **resource}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider


def otlp(base: str, compression: Compression | None = None) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=30, compression=compression)


def genai_span(
    tracer_provider: TracerProvider,
    attributes: dict[str, Any],
    *,
    start_ns: int,
    duration_ms: int = 1250,
    name: str = "chat",
    error: bool = False,
) -> None:
    tracer = tracer_provider.get_tracer("app")
    span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns)
    if error:
        span.set_status(Status(StatusCode.ERROR, "boom"))
    span.end(end_time=start_ns + duration_ms * 1_000_000)


def now_ns() -> int:
    return time.time_ns() - 60 * 1_000_000_000  # a minute ago: inside any report window


def expected_cost(
    provider: str,
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read: int = 0,
    cache_write: int = 0,
    tier: str | None = None,
) -> Decimal:
    """The exact cost from the catalogue's per-token rates (no long-context tier in these tests)."""
    price = get_catalogue().resolve(provider, model, datetime.now(UTC), tier)
    assert price is not None, (provider, model)
    assert all(input_tokens <= t.threshold for t in price.long_context)
    rates = price.rates
    total = (
        (input_tokens - cache_read - cache_write) * rates.input
        + cache_read * rates.cache_read
        + cache_write * rates.cache_write
        + output_tokens * rates.output
        + rates.request
    )
    return total.quantize(NANO)


def by_model(records: list[CallRecord]) -> dict[str, CallRecord]:
    return {r.request_model: r for r in records}


# -- the SDK's protobuf export --------------------------------------------------------------------


def test_sdk_genai_spans_become_priced_records(base: str, recorded: Recorded) -> None:
    tp = provider(otlp(base), **{"deployment.environment.name": "prod"})
    start = now_ns()
    genai_span(
        tp,
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.response.id": "chatcmpl-123",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 200,
            "feature": "search",
            "gen_ai.input.messages": '[{"role": "user", "content": "secret prompt"}]',
            "http.response.status_code": 200,
        },
        start_ns=start,
        duration_ms=1250,
    )
    # the older conventions: gen_ai.system, cache attributes with underscores, input without the cache
    genai_span(
        tp,
        {
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.usage.cache_read_input_tokens": 3000,
            "gen_ai.usage.cache_creation_input_tokens": 400,
        },
        start_ns=start,
        duration_ms=800,
    )
    # reasoning and a service tier
    genai_span(
        tp,
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "o4-mini",
            "gen_ai.usage.input_tokens": 500,
            "gen_ai.usage.output_tokens": 900,
            "gen_ai.usage.reasoning.output_tokens": 700,
            "openai.response.service_tier": "flex",
        },
        start_ns=start,
    )
    tp.shutdown()

    records = by_model(recorded.all())
    assert set(records) == {"gpt-4o-mini", "claude-sonnet-4-5", "o4-mini"}
    gpt = records["gpt-4o-mini"]
    assert (gpt.provider, gpt.operation, gpt.response_model) == ("openai", "chat", "gpt-4o-mini-2024-07-18")
    assert (gpt.input_tokens, gpt.output_tokens, gpt.cache_read_tokens) == (1200, 300, 200)
    assert gpt.price_known and gpt.status == "ok" and gpt.http_status == 200
    assert gpt.cost_usd == expected_cost(
        "openai", "gpt-4o-mini-2024-07-18", input_tokens=1200, output_tokens=300, cache_read=200
    )
    assert gpt.started_at == datetime.fromtimestamp(start // 1000 / 1e6, UTC)
    assert gpt.latency_ms == pytest.approx(1250.0)
    assert gpt.tags == {
        "service": "checkout",
        "environment": "prod",
        "feature": "search",
    }  # gen_ai.response.id is unique per call: not a tag
    assert gpt.content is None  # content is not stored unless costlens stores content
    assert len(gpt.trace_id or "") == 32 and len(gpt.span_id or "") == 16

    claude = records["claude-sonnet-4-5"]
    assert claude.provider == "anthropic"
    assert (claude.input_tokens, claude.cache_read_tokens, claude.cache_write_tokens) == (3500, 3000, 400)
    assert claude.cost_usd == expected_cost(
        "anthropic",
        "claude-sonnet-4-5",
        input_tokens=3500,
        output_tokens=50,
        cache_read=3000,
        cache_write=400,
    )
    assert claude.latency_ms == pytest.approx(800.0)

    o4 = records["o4-mini"]
    assert (o4.output_tokens, o4.reasoning_tokens, o4.service_tier) == (900, 700, "flex")
    assert o4.cost_usd == expected_cost("openai", "o4-mini", input_tokens=500, output_tokens=900, tier="flex")
    assert o4.cost_usd != expected_cost("openai", "o4-mini", input_tokens=500, output_tokens=900)


def test_report_shows_the_ingested_calls_with_exact_prices(base: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    costlens.configure(store=url, durability="sync")
    try:
        tp = provider(otlp(base))
        for i in range(3):
            genai_span(
                tp,
                {
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 1000 + i,
                    "gen_ai.usage.output_tokens": 77,
                },
                start_ns=now_ns(),
            )
        tp.shutdown()
        costlens.flush()
    finally:
        costlens.configure(store="memory://", durability="sync")
    result = CliRunner().invoke(cli_app, ["report", "--store", url, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("[") :])
    assert len(rows) == 1
    row = rows[0]
    want = sum(
        expected_cost("openai", "gpt-4o-mini", input_tokens=1000 + i, output_tokens=77) for i in range(3)
    )
    assert (row["model"], row["calls"], row["input_tokens"], row["output_tokens"]) == (
        "gpt-4o-mini",
        3,
        3003,
        231,
    )
    assert Decimal(row["cost_usd"]) == want
    assert row["unpriced_calls"] == 0


def test_unknown_model_is_recorded_with_cost_unknown_and_flagged(base: str, recorded: Recorded) -> None:
    tp = provider(otlp(base))
    genai_span(
        tp,
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "no-such-model-7b",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
        },
        start_ns=now_ns(),
    )
    tp.shutdown()
    record = recorded.one()
    assert record.cost_nanousd is None and record.cost_usd is None  # never $0
    assert not record.price_known
    assert [m.model for m in recorded.store.unpriced_models()] == ["no-such-model-7b"]


def test_spans_without_usage(base: str, recorded: Recorded) -> None:
    """No token counts: a failed call billed nothing (cost 0); a successful one has its cost unknown."""
    start = now_ns()
    model = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini"}
    body = json_request(
        json_span("00000000000000e1", {**model, "error.type": "429"}, start),
        json_span("00000000000000e2", model, start),
    )
    assert httpx.post(f"{base}/v1/traces", json=body).json() == {}
    records = {r.span_id: r for r in recorded.all()}
    failed, unknown = records["00000000000000e1"], records["00000000000000e2"]
    assert (failed.status, failed.error_type, failed.cost_nanousd, failed.price_known) == (
        "error",
        "429",
        0,
        True,
    )
    assert (unknown.status, unknown.cost_nanousd, unknown.price_known) == ("ok", None, False)


def test_non_genai_spans_are_ignored_not_rejected(base: str, recorded: Recorded) -> None:
    captured = Captured()
    tp = provider(captured)
    tracer = tp.get_tracer("app")
    with tracer.start_as_current_span("GET /checkout", attributes={"http.request.method": "GET"}):
        pass
    genai_span(
        tp, {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o"}, start_ns=now_ns()
    )
    tp.shutdown()
    request = encode(captured.spans)
    answer = httpx.post(f"{base}/v1/traces", content=request, headers=PROTOBUF)
    assert answer.status_code == 200
    response = ExportTraceServiceResponse.FromString(answer.content)
    assert not response.HasField("partial_success")
    assert recorded.all() == []


def encode(spans: list[ReadableSpan]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return bytes(encode_spans(spans).SerializeToString())


def test_a_span_exported_twice_is_recorded_once(base: str, recorded: Recorded) -> None:
    captured = Captured()
    tp = provider(captured)
    genai_span(
        tp,
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 9,
        },
        start_ns=now_ns(),
    )
    tp.shutdown()
    exporter = otlp(base)
    assert exporter.export(captured.spans) is SpanExportResult.SUCCESS
    assert exporter.export(captured.spans) is SpanExportResult.SUCCESS  # a retry
    exporter.shutdown()
    gzipped = otlp(base, Compression.Gzip)
    assert gzipped.export(captured.spans) is SpanExportResult.SUCCESS
    gzipped.shutdown()
    records = recorded.all()
    assert len(records) == 1
    assert records[0].input_tokens == 9


def test_gzip_protobuf_from_the_sdk(base: str, recorded: Recorded) -> None:
    tp = provider(otlp(base, Compression.Gzip))
    genai_span(
        tp,
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 40,
            "gen_ai.usage.output_tokens": 2,
            "error.type": "RateLimitError",
        },
        start_ns=now_ns(),
        error=True,
    )
    tp.shutdown()
    record = recorded.one()
    assert (record.status, record.error_type) == ("error", "RateLimitError")
    assert record.cost_usd == expected_cost("openai", "gpt-4o-mini", input_tokens=40, output_tokens=2)


# -- OTLP/JSON --------------------------------------------------------------------------------------


TRACE_ID = "5b8efff798038103d269b633813fc60c"


def json_span(
    span_id: str, attributes: dict[str, Any], start_ns: int, duration_ns: int = 2_000_000_000
) -> dict[str, Any]:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}  # 64-bit integers are strings in OTLP/JSON
        if isinstance(v, float):
            return {"doubleValue": v}
        return {"stringValue": v}

    return {
        "traceId": TRACE_ID,
        "spanId": span_id,
        "parentSpanId": "",
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + duration_ns),
        "attributes": [{"key": k, "value": value(v)} for k, v in attributes.items()],
        "status": {},
    }


def json_request(*spans: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
                "scopeSpans": [{"scope": {"name": "my.genai"}, "spans": list(spans), "someFutureField": 1}],
            }
        ]
    }


GOOD = {
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 2000,
    "gen_ai.usage.output_tokens": 100,
    "temperature_bucket": 0.5,
    "cached": True,
}


def as_protobuf(body: dict[str, Any]) -> ExportTraceServiceRequest:
    """An OTLP/JSON request as the protobuf message (hex ids -> bytes), built apart from the server's code."""
    from google.protobuf import json_format

    body = json.loads(json.dumps(body))
    for resource_spans in body["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId"):
                    span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    message = ExportTraceServiceRequest()
    json_format.ParseDict(body, message, ignore_unknown_fields=True)
    return message


def test_json_encoding_with_hex_ids(base: str, recorded: Recorded) -> None:
    start = now_ns()
    body = json_request(json_span("eee19b7ec3c1b174", GOOD, start))
    answer = httpx.post(f"{base}/v1/traces", json=body)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {}
    record = recorded.one()
    assert (record.trace_id, record.span_id) == (TRACE_ID, "eee19b7ec3c1b174")
    assert record.cost_usd == expected_cost("openai", "gpt-4o-mini", input_tokens=2000, output_tokens=100)
    assert record.latency_ms == pytest.approx(2000.0)
    assert record.tags == {"service": "billing", "temperature_bucket": "0.5", "cached": "true"}
    # the same span in protobuf: the same record id, so nothing new
    message = as_protobuf(json_request(json_span("eee19b7ec3c1b174", GOOD, start)))
    again = httpx.post(f"{base}/v1/traces", content=message.SerializeToString(), headers=PROTOBUF)
    assert again.status_code == 200
    assert len(recorded.all()) == 1


def test_gzip_json(base: str, recorded: Recorded) -> None:
    body = gzip.compress(json.dumps(json_request(json_span("00000000000000aa", GOOD, now_ns()))).encode())
    answer = httpx.post(f"{base}/v1/traces", content=body, headers={**JSON, "content-encoding": "gzip"})
    assert answer.status_code == 200, answer.text
    assert recorded.one().input_tokens == 2000


def test_partial_success_names_the_rejected_spans(base: str, recorded: Recorded) -> None:
    start = now_ns()
    body = json_request(
        json_span("0000000000000001", GOOD, start),
        json_span("0000000000000002", {**GOOD, "gen_ai.usage.input_tokens": -5}, start),
        json_span("0000000000000003", {**GOOD, "gen_ai.usage.output_tokens": "lots"}, start),
        json_span("0000000000000004", {"http.request.method": "GET"}, start),  # ignored, not rejected
        json_span("0000000000000005", {**GOOD, "gen_ai.usage.input_tokens": 1e300}, start),
        json_span("0000000000000000", GOOD, start),  # no span id
        json_span("0000000000000007", {**GOOD, "gen_ai.usage.cache_read.input_tokens": 5000}, start),
    )
    answer = httpx.post(f"{base}/v1/traces", json=body)
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "4"
    assert "gen_ai.usage.input_tokens" in partial["errorMessage"]
    assert "gen_ai.usage.output_tokens" in partial["errorMessage"]
    records = {r.span_id: r for r in recorded.all()}
    assert set(records) == {"0000000000000001", "0000000000000007"}
    # cache reads above the input: the sender counted input without the cache, so it is added
    assert (records["0000000000000007"].input_tokens, records["0000000000000007"].cache_read_tokens) == (
        7000,
        5000,
    )
    # the same answer in protobuf
    message = as_protobuf(body)
    again = httpx.post(f"{base}/v1/traces", content=message.SerializeToString(), headers=PROTOBUF)
    response = ExportTraceServiceResponse.FromString(again.content)
    assert response.partial_success.rejected_spans == 4
    assert response.partial_success.error_message == partial["errorMessage"]
    assert len(recorded.all()) == 2


# -- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"\xff\xff\xff garbage", PROTOBUF),
        (b"{not json", JSON),
        (b"[1, 2]", JSON),
        (json.dumps(json_request(json_span("zz-not-hex", GOOD, 1_760_000_000_000_000_000))).encode(), JSON),
        (
            json.dumps(
                {"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "noon"}]}]}]}
            ).encode(),
            JSON,
        ),
        (b"not gzip at all", {**JSON, "content-encoding": "gzip"}),
        (
            gzip.compress(json.dumps(json_request(json_span("00000000000000ab", GOOD, 1))).encode())[:-12],
            {**JSON, "content-encoding": "gzip"},
        ),
    ],
    ids=["protobuf", "json", "json-list", "hex-id", "bad-time", "not-gzip", "truncated-gzip"],
)
def test_malformed_body_is_400_and_records_nothing(
    base: str, recorded: Recorded, body: bytes, headers: dict[str, str]
) -> None:
    answer = httpx.post(f"{base}/v1/traces", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    if headers["content-type"] == JSON["content-type"]:
        assert answer.json()["code"] == 3 and answer.json()["message"]
    else:
        status = status_pb2.Status.FromString(answer.content)
        assert status.code == 3 and "protobuf" in status.message
    assert recorded.all() == []


@pytest.mark.parametrize(
    "headers",
    [{"content-type": "text/plain"}, {}, {**JSON, "content-encoding": "br"}],
    ids=["text", "none", "brotli"],
)
def test_other_content_type_or_encoding_is_415(
    base: str, recorded: Recorded, headers: dict[str, str]
) -> None:
    body = json.dumps(json_request(json_span("00000000000000ac", GOOD, now_ns()))).encode()
    answer = httpx.post(f"{base}/v1/traces", content=body, headers=headers)
    assert answer.status_code == 415
    assert recorded.all() == []


def test_a_gzip_bomb_is_refused(recorded: Recorded) -> None:
    small = create_app(ServerConfig(max_body_bytes=4096), configure=False)
    bomb = gzip.compress(b" " * (4096 * 16 + 1))
    with serving(small) as url:
        answer = httpx.post(f"{url}/v1/traces", content=bomb, headers={**JSON, "content-encoding": "gzip"})
    assert answer.status_code == 413
    assert recorded.all() == []


# -- costlens's own spans, header tags, content ---------------------------------------------------


def test_costlens_exported_spans_come_back_as_the_same_records(base: str, recorded: Recorded) -> None:
    from costlens.analytics import export_otel

    original = CallRecord(
        provider="anthropic",
        operation="chat",
        request_model="claude-sonnet-4-5",
        started_at=datetime.fromtimestamp(now_ns() / 1e9, UTC),
        latency_ms=420.0,
        input_tokens=5000,
        output_tokens=200,
        cache_read_tokens=4000,
        cache_write_tokens=600,
        cache_write_1h_tokens=100,
        tags={"feature": "summaries", "user": "u-1"},
    )
    tp = TracerProvider(resource=Resource.create({"service.name": "exporter"}))
    tp.add_span_processor(SimpleSpanProcessor(otlp(base)))
    export_otel([original], tracer_provider=tp)
    tp.shutdown()
    record = recorded.one()
    assert record.id == original.id
    assert record.cache_write_1h_tokens == 100
    assert record.tags == {"feature": "summaries", "user": "u-1", "service": "exporter"}
    assert record.price_known and record.cost_nanousd is not None


def test_tag_headers_and_content_when_stored(base: str) -> None:
    from costlens.store.memory import MemoryStore

    store = MemoryStore()
    costlens.configure(store=store, durability="sync", store_content=True)
    try:
        attrs = {
            **GOOD,
            "gen_ai.input.messages": "use key sk-proj-abcdefghijklmnopqrstuvwxyz123456 please",
            "gen_ai.output.messages": "done",
            "feature": "from-span",
            "big": "x" * 1000,
        }
        body = json_request(json_span("00000000000000ad", attrs, now_ns()))
        headers = {"x-costlens-feature": "from-header", "x-costlens-tag-team": "core"}
        assert httpx.post(f"{base}/v1/traces", json=body, headers=headers).status_code == 200
        costlens.flush()
        (record,) = store.iter_records()
    finally:
        costlens.configure(store="memory://", durability="sync")
    assert record.tags["feature"] == "from-header" and record.tags["team"] == "core"
    assert "big" not in record.tags and "gen_ai.input.messages" not in record.tags
    assert record.content is not None
    assert record.content["input"] == "use key [redacted] please"
    assert record.content["output"] == "done"


def test_many_batches(base: str, recorded: Recorded) -> None:
    """2,000 spans in 4 protobuf batches: every one recorded, priced, with its own id."""
    start = now_ns()
    for batch in range(4):
        request = ExportTraceServiceRequest()
        spans = request.resource_spans.add().scope_spans.add().spans
        for i in range(500):
            span = spans.add()
            n = batch * 500 + i + 1
            span.trace_id = n.to_bytes(16, "big")
            span.span_id = n.to_bytes(8, "big")
            span.name = "chat"
            span.start_time_unix_nano = start
            span.end_time_unix_nano = start + 1_000_000
            for key, value in (("gen_ai.provider.name", "openai"), ("gen_ai.request.model", "gpt-4o-mini")):
                kv = span.attributes.add()
                kv.key, kv.value.string_value = key, value
            kv = span.attributes.add()
            kv.key, kv.value.int_value = "gen_ai.usage.input_tokens", n
        answer = httpx.post(f"{base}/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
        assert answer.status_code == 200
    records = recorded.all()
    assert len(records) == 2000 == len({r.id for r in records})
    assert sum(r.input_tokens for r in records) == sum(range(1, 2001))
    assert all(r.price_known for r in records)
