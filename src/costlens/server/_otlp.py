"""The OpenTelemetry receiver: `POST /v1/traces` (OTLP/HTTP) turns GenAI spans into priced calls.

Point any OpenTelemetry SDK or collector's OTLP/HTTP trace exporter at the server
(`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:8787/v1/traces`): spans with the GenAI
semantic conventions become call records (`_otlp_spans` has the attribute mapping), priced exactly
and handed to the process recorder like every other call, so reports, budgets' views, the API and
the dashboard see them. Other spans are ignored.

It answers as an OTLP collector does (https://opentelemetry.io/docs/specs/otlp/#otlphttp):

* 200 with an `ExportTraceServiceResponse` in the request's encoding; `partial_success` carries the
  number of GenAI spans rejected and why (spans that are not GenAI calls are not rejected);
* 400 with a `google.rpc.Status` for a body that cannot be decoded (nothing is recorded);
* 413 for a body over `max_body_bytes` (or that inflates to over 16 times that);
* 415 for a content type other than `application/x-protobuf` / `application/json`, or a
  `Content-Encoding` other than gzip or identity.

Record ids derive from (trace id, span id), so an exporter's retry of a batch is recorded once
(stores skip ids they hold). The `X-Costlens-*` tag headers and the API key's id (the `gateway`
scope is needed where keys are required) tag every record of the request, as on the gateway. The
records are queued to the recorder before the answer (written at once with `durability="sync"`).
"""

from __future__ import annotations

from typing import Any

from costlens.server._context import ServerContext

__all__ = ["router"]

#: A gzip body may inflate to this many times `max_body_bytes`.
INFLATE_FACTOR = 16


class _Answer(Exception):
    def __init__(self, status: int, encoding: str, message: str) -> None:
        super().__init__(message)
        self.status, self.encoding, self.message = status, encoding, message


async def _read(request: Any, limit: int) -> bytes:
    """The body, counted as it arrives (a chunked body has no length for `_limits` to check)."""
    from costlens.server._otlp_codec import JSON

    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Answer(413, JSON, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class Receiver:
    """Decodes, maps and records one export request at a time per worker thread."""

    def __init__(self, ctx: ServerContext) -> None:
        from costlens.pipeline._price import Pricer

        self.ctx = ctx
        self.pricer = Pricer()

    def ingest(self, body: bytes, encoding: str, gzip: bool, tags: dict[str, str]) -> tuple[int, str]:
        """Record the GenAI spans of a request body; (rejected span count, message). Runs in a
        worker thread: decoding and pricing are CPU work."""
        from costlens.config import get_settings, record_sink
        from costlens.server._otlp_codec import BadBody, TooLarge, decode_request, inflate
        from costlens.server._otlp_spans import spans_to_records

        limit = self.ctx.config.max_body_bytes
        try:
            if gzip:
                body = inflate(body, limit * INFLATE_FACTOR)
            message = decode_request(body, encoding)
        except TooLarge as exc:
            raise _Answer(413, encoding, str(exc)) from None
        except BadBody as exc:
            raise _Answer(400, encoding, str(exc)) from None
        settings = get_settings()
        content_chars = settings.content_max_chars if settings.store_content else 0
        found = spans_to_records(message, tags, pricer=self.pricer, content_chars=content_chars)
        for record in found.records:
            record_sink(record)
        return found.rejected, found.message()


def _response(status: int, encoding: str, body: bytes) -> Any:
    from starlette.responses import Response

    return Response(body, status_code=status, media_type=encoding)


def router(ctx: ServerContext) -> Any:
    from fastapi import APIRouter
    from starlette.concurrency import run_in_threadpool

    from costlens.server._gateway import _tags
    from costlens.server._otlp_codec import (
        INVALID_ARGUMENT,
        JSON,
        RESOURCE_EXHAUSTED,
        encode_response,
        encode_status,
        encoding_of,
    )

    receiver = Receiver(ctx)
    ctx.extras["otlp"] = receiver
    api = APIRouter()

    async def traces(request: Any) -> Any:
        encoding = encoding_of(request.headers.get("content-type"))
        coding = request.headers.get("content-encoding", "").strip().lower()
        try:
            if encoding is None:
                raise _Answer(
                    415, JSON, "use Content-Type application/x-protobuf or application/json (OTLP/HTTP)"
                )
            if coding not in ("", "identity", "gzip"):
                raise _Answer(415, encoding, f"unsupported Content-Encoding {coding!r}: use gzip or none")
            body = await _read(request, ctx.config.max_body_bytes)
            rejected, message = await run_in_threadpool(
                receiver.ingest, body, encoding, coding == "gzip", _tags(request)
            )
        except _Answer as answer:
            code = RESOURCE_EXHAUSTED if answer.status == 413 else INVALID_ARGUMENT
            return _response(
                answer.status, answer.encoding, encode_status(answer.encoding, code, answer.message)
            )
        return _response(200, encoding, encode_response(encoding, rejected, message))

    api.add_route("/v1/traces", traces, methods=["POST"], include_in_schema=False)
    return api
