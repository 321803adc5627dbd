"""GenAI spans -> priced `CallRecord`s (the OpenTelemetry GenAI semantic conventions, `gen_ai.*`).

A span is an LLM call when it names a model (`gen_ai.request.model` or `gen_ai.response.model`) and
its `gen_ai.operation.name` is not an agent or tool step (`invoke_agent`, `create_agent`,
`execute_tool`, `invoke_workflow`: their usage, when given, sums the calls under them). Other spans
are ignored. The attributes read (the first one present of each row wins):

* provider: `gen_ai.provider.name`, `gen_ai.system`, mapped to costlens ids (`azure.ai.openai` ->
  `azure`, `gcp.gemini` -> `google`, ...); neither: inferred from the model name, else `unknown`;
* operation: `gen_ai.operation.name` (default `chat`);
* request_model, response_model: `gen_ai.request.model`, `gen_ai.response.model` (either stands in
  for the other when missing);
* input_tokens: `gen_ai.usage.input_tokens`, `gen_ai.usage.prompt_tokens`;
* output_tokens: `gen_ai.usage.output_tokens`, `gen_ai.usage.completion_tokens`;
* cache_read_tokens: `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cache_read_input_tokens`,
  `gen_ai.usage.input_tokens.cached`;
* cache_write_tokens: `gen_ai.usage.cache_creation.input_tokens`,
  `gen_ai.usage.cache_creation_input_tokens`, `gen_ai.usage.input_tokens.cache_write`;
* reasoning_tokens: `gen_ai.usage.reasoning.output_tokens`, `gen_ai.usage.output_tokens.reasoning`,
  `gen_ai.usage.reasoning_tokens`, `gen_ai.openai.usage.reasoning_tokens`,
  `openai.usage.reasoning_tokens`, `costlens.usage.reasoning_tokens`;
* 1-hour cache writes, audio, citations, tool requests: `costlens.usage.<field>` (what
  `costlens export --format otlp` writes, `costlens.analytics.span_attributes`);
* service_tier: `openai.response.service_tier`, `gen_ai.openai.response.service_tier`,
  `gen_ai.response.service_tier`, `costlens.service_tier`, then the requested tier
  (`openai.request.service_tier`, `gen_ai.openai.request.service_tier`, `gen_ai.request.service_tier`);
* status, error_type: `error.type` (else a span status of ERROR: its message when short, else `_OTHER`);
* http_status: `http.response.status_code`;
* started_at, ended_at, latency_ms: the span's start and end times; trace_id, span_id: its ids (hex);
* id: `costlens.call.id` when it is a costlens record id (a span costlens exported), else derived
  from (trace id, span id) with the importers' `derive_id`: a span sent twice is one record;
* tags: see below.

As the conventions say, input tokens include cache reads and writes, and output tokens include
reasoning. A sender that counts them apart is recognised when the parts exceed the total (cache
reads above the input): the parts are then added to it. A span without any token count is recorded
with its cost unknown (never $0), unless it failed: then, as for a call the pipeline saw fail before
any answer, nothing was billed and the cost is exactly 0. Prices come from the pipeline's pricer,
exactly as for a call made through costlens (unknown model: cost unknown, `price_known` false, one
warning per model).

Tags and content: see `_otlp_attrs`.

A GenAI span that cannot be used (no valid ids, no plausible start time, a token count that is
not a non-negative integer, counts that do not add up) is rejected, with the reason.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from costlens.analytics._import import PLAUSIBLE_FROM, derive_id
from costlens.pipeline._price import Pricer
from costlens.pricing._providers import canonical_provider
from costlens.server._otlp_attrs import (
    CACHE_READ,
    CACHE_WRITE,
    CALL_ID,
    ERROR_TYPE,
    HTTP_STATUS,
    INPUT,
    NOT_CALLS,
    OPERATION,
    OUTPUT,
    PARTS,
    PROVIDER,
    REASONING,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    SERVICE_TIER,
    attribute_tags,
    attributes,
    content_of,
    merge_tags,
)
from costlens.usage import USAGE_PARTS, CallRecord, Usage

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

__all__ = ["Ingested", "Rejected", "span_record", "spans_to_records"]

_CALL_ID = re.compile(r"^[0-9a-f]{32}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS_ERROR = 2  # Status.STATUS_CODE_ERROR
_PARTS = frozenset(PARTS)
#: The largest token count read (a bigger one is a broken sender, and would not fit a store's column).
MAX_COUNT = 10**12


class Rejected(ValueError):
    """A GenAI span that cannot become a record; the text says why."""


@dataclass
class Ingested:
    """What one export request gave: the records, and the GenAI spans rejected (with why)."""

    records: list[CallRecord] = field(default_factory=list)
    spans: int = 0
    ignored: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def message(self) -> str:
        """The partial-success error message: the rejected count and the commonest reasons."""
        if not self.rejected:
            return ""
        shown = "; ".join(
            f"{reason}: {n} span{'' if n == 1 else 's'}" for reason, n in self.reasons.most_common(3)
        )
        more = "; ..." if len(self.reasons) > 3 else ""
        return f"{self.rejected} GenAI span(s) rejected: {shown}{more}"


def _first(attrs: Mapping[str, object], names: tuple[str, ...]) -> tuple[str, object] | None:
    for name in names:
        value = attrs.get(name)
        if value is not None:
            return name, value
    return None


def _text(attrs: Mapping[str, object], names: tuple[str, ...]) -> str | None:
    found = _first(attrs, names)
    if found is None:
        return None
    text = str(found[1]).strip()
    return text or None


def _count(attrs: Mapping[str, object], names: tuple[str, ...]) -> int | None:
    """A token count: an integer from 0 to `MAX_COUNT` (an integral double or digit text is read as one)."""
    found = _first(attrs, names)
    if found is None:
        return None
    name, value = found
    count: int | float | None = None
    if type(value) is int or (isinstance(value, float) and value.is_integer()):
        count = value
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 15:
        count = int(value.strip())
    if count is None or not 0 <= count <= MAX_COUNT:
        raise Rejected(f"{name} is not a token count ({value!r:.40})")
    return int(count)


def _usage(attrs: Mapping[str, object]) -> Usage | None:
    """The span's token counts (None: it reports none); parts counted apart are added to the totals."""
    n_in, n_out = _count(attrs, INPUT), _count(attrs, OUTPUT)
    read, write = _count(attrs, CACHE_READ) or 0, _count(attrs, CACHE_WRITE) or 0
    reasoning = _count(attrs, REASONING) or 0
    parts: dict[str, int] = {}
    if not _PARTS.isdisjoint(attrs):  # only spans costlens exported carry them
        parts = {name: _count(attrs, (key,)) or 0 for name, key in zip(USAGE_PARTS, PARTS, strict=True)}
    if n_in is None and n_out is None and not (read or write or reasoning or any(parts.values())):
        return None
    n_in, n_out = n_in or 0, n_out or 0
    if read + write > n_in:  # input counted without the cache (Anthropic's own usage shape)
        n_in += read + write
    if reasoning > n_out:  # output counted without reasoning (xAI's chat usage shape)
        n_out += reasoning
    try:
        return Usage(n_in, n_out, read, write, reasoning, **parts)
    except ValueError as exc:
        raise Rejected(f"token counts do not add up: {exc}") from None


def _time(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _error(attrs: Mapping[str, object], span: Span) -> str | None:
    error = _text(attrs, ERROR_TYPE)
    if error is not None:
        return error
    if span.status.code == _STATUS_ERROR:
        message = span.status.message.strip()
        return message if message and len(message) <= 100 else "_OTHER"
    return None


def _ids(span: Span) -> tuple[str, str]:
    trace_id, span_id = bytes(span.trace_id), bytes(span.span_id)
    if len(trace_id) != 16 or len(span_id) != 8 or not any(trace_id) or not any(span_id):
        raise Rejected("no valid trace and span id")
    return trace_id.hex(), span_id.hex()


def _http_status(attrs: Mapping[str, object]) -> int | None:
    found = _first(attrs, HTTP_STATUS)
    if found is None:
        return None
    value = found[1]
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) == 3:
        value = int(value)
    return value if type(value) is int and 100 <= value <= 599 else None


def span_record(
    span: Span,
    attrs: Mapping[str, object],
    layers: tuple[Mapping[str, str], Mapping[str, str]],
    pricer: Pricer,
    content_chars: int,
) -> CallRecord | None:
    """The call record of one span (None: not an LLM call); `Rejected` when it cannot be used."""
    request_model = _text(attrs, REQUEST_MODEL)
    response_model = _text(attrs, RESPONSE_MODEL)
    operation = _text(attrs, OPERATION) or "chat"
    if (request_model is None and response_model is None) or operation in NOT_CALLS:
        return None
    model = request_model or response_model
    assert model is not None
    trace_hex, span_hex = _ids(span)
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    started = _time(start)
    if not start or started < PLAUSIBLE_FROM or started > datetime.now(UTC) + timedelta(days=1):
        raise Rejected("no plausible start time")
    usage = _usage(attrs)
    provider = _text(attrs, PROVIDER)
    if provider is None:
        from costlens.analytics._import_litellm import infer_provider

        provider = infer_provider(model) or "unknown"
    error = _error(attrs, span)
    call_id = attrs.get(CALL_ID)
    record = CallRecord(
        provider=canonical_provider(provider),
        operation=operation,
        request_model=model,
        started_at=started,
        ended_at=_time(end) if end >= start else None,
        latency_ms=(end - start) / 1e6 if end >= start else None,
        response_model=response_model,
        status="error" if error is not None else "ok",
        error_type=error,
        http_status=_http_status(attrs),
        service_tier=_text(attrs, SERVICE_TIER),
        tags=merge_tags(layers[0], attribute_tags(attrs), layers[1]),
        trace_id=trace_hex,
        span_id=span_hex,
        content=content_of(attrs, content_chars) if content_chars else None,
        id=call_id
        if isinstance(call_id, str) and _CALL_ID.match(call_id)
        else derive_id("otlp", trace_hex, span_hex),
    )
    if usage is None:
        if error is not None:  # failed before answering: nothing billed, as the pipeline records it
            record.cost_nanousd, record.price_known = 0, True
        return record  # else the cost is unknown, not $0
    record.set_usage(usage)
    pricer.price(record, model, usage)
    return record


def spans_to_records(
    request: ExportTraceServiceRequest,
    base_tags: Mapping[str, str],
    *,
    pricer: Pricer,
    content_chars: int = 0,
) -> Ingested:
    """Every GenAI span of an export request as a record. `base_tags` (the request's own: the API
    key's id and `X-Costlens-*` headers) come first: no attribute overrides them."""
    out = Ingested()
    for resource_spans in request.resource_spans:
        resource_tags = attribute_tags(attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.spans += 1
                attrs = attributes(span.attributes)
                try:
                    record = span_record(span, attrs, (base_tags, resource_tags), pricer, content_chars)
                except Rejected as exc:
                    out.rejected += 1
                    out.reasons[str(exc)] += 1
                    continue
                if record is None:
                    out.ignored += 1
                else:
                    out.records.append(record)
    return out
