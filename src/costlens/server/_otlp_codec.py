"""OTLP/HTTP wire formats for traces: decoding an export request, encoding the answers.

Two encodings, as the OTLP specification defines them (https://opentelemetry.io/docs/specs/otlp/):

* binary protobuf (`application/x-protobuf`): `ExportTraceServiceRequest` as is;
* JSON (`application/json`): the protobuf JSON mapping with OTLP's differences: trace and span ids
  are hex text, not base64 (converted here before `json_format.ParseDict`), enum values are
  integers (the parser takes names too), 64-bit integers may be strings or numbers, and unknown
  fields are ignored, as receivers must.

A body may be gzip-compressed (`Content-Encoding: gzip`); what it inflates to is bounded. Answers
use the request's encoding: an `ExportTraceServiceResponse` (with `partial_success` only when some
spans were rejected) on success, a `google.rpc.Status` on failure (encoded here by hand: the
googleapis protos are not a dependency of the server).
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = [
    "INVALID_ARGUMENT",
    "JSON",
    "PROTOBUF",
    "RESOURCE_EXHAUSTED",
    "BadBody",
    "TooLarge",
    "decode_request",
    "encode_response",
    "encode_status",
    "encoding_of",
    "inflate",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: google.rpc.Code values of the Status of a 400 or 415 (INVALID_ARGUMENT) and a 413 (RESOURCE_EXHAUSTED).
INVALID_ARGUMENT = 3
RESOURCE_EXHAUSTED = 8
#: The id fields OTLP/JSON writes as hex: span ids, and the ids inside span links.
_SPAN_IDS = (("traceId", "trace_id"), ("spanId", "span_id"), ("parentSpanId", "parent_span_id"))
_LINK_IDS = (("traceId", "trace_id"), ("spanId", "span_id"))


class BadBody(ValueError):
    """The body is not an export request in the declared encoding (a 400)."""


class TooLarge(ValueError):
    """The body inflates to more than the limit (a 413)."""


def encoding_of(content_type: str | None) -> str | None:
    """`PROTOBUF` or `JSON` for a request's content type (parameters such as charset ignored), else None."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind if kind in (PROTOBUF, JSON) else None


def inflate(body: bytes, limit: int) -> bytes:
    """A gzip body's bytes; `TooLarge` past `limit` bytes, `BadBody` when it is not gzip."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadBody(f"the body is not valid gzip ({exc})") from None
    if len(out) > limit:
        raise TooLarge(f"the body inflates to over {limit} bytes")
    if not inflater.eof:
        raise BadBody("the gzip body is truncated")
    return out


def _hex_to_base64(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BadBody(f"{where} must be hex text, got {type(value).__name__}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise BadBody(f"{where} {value[:40]!r} is not hex") from None
    return base64.b64encode(raw).decode("ascii")


def _fix_ids(item: dict[str, Any], names: tuple[tuple[str, str], ...], where: str) -> None:
    for camel, snake in names:
        for name in (camel, snake):
            if name in item and item[name] is not None:
                item[name] = _hex_to_base64(item[name], f"{where}.{camel}")


def _list(parent: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = parent.get(camel, parent.get(snake))
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadBody(f"{where}.{camel} must be a list")
    return value


def _hex_ids_to_base64(doc: Any) -> None:
    """Rewrite OTLP/JSON's hex ids in place to the base64 that protobuf's JSON parser expects."""
    if not isinstance(doc, dict):
        raise BadBody("the body must be a JSON object (an ExportTraceServiceRequest)")
    for i, resource_spans in enumerate(_list(doc, "resourceSpans", "resource_spans", "")):
        where = f"resourceSpans[{i}]"
        if not isinstance(resource_spans, dict):
            raise BadBody(f"{where} must be an object")
        for j, scope_spans in enumerate(_list(resource_spans, "scopeSpans", "scope_spans", where)):
            at = f"{where}.scopeSpans[{j}]"
            if not isinstance(scope_spans, dict):
                raise BadBody(f"{at} must be an object")
            for k, span in enumerate(_list(scope_spans, "spans", "spans", at)):
                if not isinstance(span, dict):
                    raise BadBody(f"{at}.spans[{k}] must be an object")
                _fix_ids(span, _SPAN_IDS, f"{at}.spans[{k}]")
                for n, link in enumerate(_list(span, "links", "links", f"{at}.spans[{k}]")):
                    if isinstance(link, dict):
                        _fix_ids(link, _LINK_IDS, f"{at}.spans[{k}].links[{n}]")


def decode_request(body: bytes, encoding: str) -> ExportTraceServiceRequest:
    """The export request in `body` (already inflated); `BadBody` when it cannot be read."""
    from google.protobuf import json_format  # type: ignore[import-untyped]
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

    message = ExportTraceServiceRequest()
    if encoding == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise BadBody(f"the body is not an OTLP protobuf ExportTraceServiceRequest ({exc})") from None
        return message
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadBody(f"the body is not JSON ({exc})") from None
    _hex_ids_to_base64(doc)
    try:
        json_format.ParseDict(doc, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise BadBody(f"the body is not an OTLP/JSON ExportTraceServiceRequest ({exc})") from None
    return message


def encode_response(encoding: str, rejected: int, message: str) -> bytes:
    """An `ExportTraceServiceResponse`: empty when every span was accepted, else with `partial_success`."""
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if encoding == PROTOBUF:
        return bytes(response.SerializeToString())
    out: dict[str, Any] = {}
    if rejected or message:
        # int64 as a JSON string, as the protobuf JSON mapping (and OTLP/JSON) writes it
        out["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
    return json.dumps(out, separators=(",", ":")).encode()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_status(encoding: str, code: int, message: str) -> bytes:
    """A `google.rpc.Status` (`code` = field 1, `message` = field 2) in `encoding`."""
    if encoding == PROTOBUF:
        text = message.encode("utf-8")
        return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
    return json.dumps({"code": code, "message": message}, separators=(",", ":")).encode()
