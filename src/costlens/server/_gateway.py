"""The OpenAI/Anthropic-compatible gateway: `POST /v1/chat/completions`, `/v1/completions`,
`/v1/responses`, `/v1/embeddings` (OpenAI's shape) and `/v1/messages` (Anthropic's), forwarded to the
configured upstreams through the process's call pipeline (tracking, budgets, routing).

    client = openai.OpenAI(base_url="http://127.0.0.1:8787/v1", api_key="unused")
    client.chat.completions.create(model="gpt-4o-mini", messages=[...],
                                   extra_headers={"X-Costlens-Feature": "search"})

Each request becomes a `Request` (provider = the upstream's name, operation as the SDK adapters
name it, tags from `X-Costlens-User` / `-Feature` / `-Task` / `-Project` / `-Environment` /
`-Tag-<name>` and the API key's id), then `pipeline.start` (a budget may refuse: 429 in the
provider's error shape, not retried by the SDKs), then the pipeline's body (the router may have
rewritten `costlens/auto`, a budget the model) goes upstream with the server's own key, and the
response feeds the SDK adapters' own usage readers. Upstream answers come back unchanged, errors
included (recorded as failed calls); an unreachable upstream is a 502 (504 on timeout). Streams:
see `_gateway_sse`. Fallbacks a step asks for (`call.next_attempt`) are made as the SDK wrappers
make them.

Upstreams: the path names the provider (`/v1/messages` is Anthropic's); on OpenAI-shaped paths a
model written `<upstream>/<model>` goes to that configured upstream (`groq/llama-3.1-8b-instant`).

The router (a `costlens.routing.Router`) is `ctx.extras["router"]`, read at each request: whoever
builds the app sets it, e.g. `create_app(config).state.ctx.extras["router"] = load_router(path)`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from costlens._errors import CostlensError
from costlens.budgets._errors import BudgetExceeded, BudgetUnavailable
from costlens.instrument._adapter import Adapter, _complete_response, _observer
from costlens.instrument._core import _PipelineSource
from costlens.instrument.anthropic import AnthropicAdapter
from costlens.instrument.openai import OpenAIAdapter, _ask_for_stream_usage
from costlens.pipeline import Call, Pipeline, Request
from costlens.server._context import ServerContext
from costlens.server._gateway_asgi import read_body
from costlens.server._gateway_client import UpstreamError
from costlens.server._gateway_http import (
    APIConnectionError,
    APITimeoutError,
    Endpoint,
    HttpPool,
    PlainResponse,
    error_response,
    response_headers,
    status_error,
    upstream_headers,
)
from costlens.server._gateway_sse import StreamRelay

__all__ = ["ENDPOINTS", "VIRTUAL_MODEL", "Gateway", "router", "scope_tags"]

#: The model name that asks for routing when the router keeps its default name.
VIRTUAL_MODEL = "costlens/auto"

#: Gateway path -> what it is. OpenAI's paths sit under the upstream's base URL (which ends in /v1);
#: Anthropic's base URL has no /v1, its path is /v1/messages.
ENDPOINTS = {
    "/v1/chat/completions": Endpoint("openai", "chat", "/chat/completions"),
    "/v1/completions": Endpoint("openai", "text_completion", "/completions"),
    "/v1/responses": Endpoint("openai", "responses", "/responses"),
    "/v1/embeddings": Endpoint("openai", "embeddings", "/embeddings"),
    "/v1/messages": Endpoint("anthropic", "chat", "/v1/messages"),
}

_TAG_HEADERS = {
    b"x-costlens-user": "user",
    b"x-costlens-feature": "feature",
    b"x-costlens-task": "task",
    b"x-costlens-project": "project",
    b"x-costlens-environment": "environment",
}
_TAG_PREFIX = b"x-costlens-tag-"
_ADAPTERS: dict[str, Adapter] = {"openai": OpenAIAdapter(), "anthropic": AnthropicAdapter()}


def router(ctx: ServerContext) -> Any:
    """The gateway's routes; its lifespan closes the upstream connections at shutdown."""
    from fastapi import APIRouter

    gateway = Gateway(ctx)
    ctx.extras["gateway"] = gateway

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await gateway.aclose()

    # The routes stay for what the fast dispatch (`_gateway_asgi`) leaves to the router: another
    # method (405), a trailing slash (redirect). A POST to a gateway path never gets here.
    api = APIRouter(lifespan=lifespan)
    for path, endpoint in ENDPOINTS.items():
        api.add_route(path, gateway.endpoint(endpoint), methods=["POST"], include_in_schema=False)
    return api


def _header_text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _tags(request: Any) -> dict[str, str]:
    """Tags of a Starlette request (the OTLP receiver's)."""
    return scope_tags(request.scope)


def scope_tags(scope: dict[str, Any]) -> dict[str, str]:
    """Tags from `X-Costlens-*` headers (ASGI names are lower-case) and the API key's id (which the
    auth middleware put in `scope["state"]`, Starlette's `request.state`)."""
    tags: dict[str, str] = {}
    for name, value in scope["headers"]:
        if not name.startswith(b"x-costlens-"):
            continue
        known = _TAG_HEADERS.get(name)
        if known is not None:
            tags[known] = _header_text(value)
        elif name.startswith(_TAG_PREFIX) and len(name) > len(_TAG_PREFIX):
            tags[_header_text(name[len(_TAG_PREFIX) :])] = _header_text(value)
    state = scope.get("state")
    key = state.get("api_key") if state else None
    key_id = getattr(key, "id", None) if key is not None else None
    if key_id is not None:
        tags["api_key"] = str(key_id)
    return tags


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class Gateway:
    """The gateway's shared state: the upstream connection pool, and the pipeline source (the
    process's pipeline, plus the router's step when `ctx.extras["router"]` is set)."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.pool = HttpPool(ctx.config.upstream_timeout_s)
        self._limit = ctx.config.max_body_bytes
        self._router: Any = None
        self._source = _PipelineSource(None)

    async def aclose(self) -> None:
        await self.pool.aclose()

    def endpoint(self, endpoint: Endpoint) -> Callable[[Any], Awaitable[Any]]:
        """A Starlette endpoint for `endpoint` (the router's; the fast dispatch calls `handle`)."""

        async def handle(request: Any) -> Any:
            response = await self.handle(request.scope, request.receive, endpoint)
            return response if response is not None else PlainResponse(400, [], b"")

        return handle

    def _pipelines(self) -> tuple[Callable[[], Pipeline], Any]:
        router = self.ctx.extras.get("router")
        if router is not self._router:
            self._source, self._router = _PipelineSource(router), router
        return self._source, router

    def _upstream(self, endpoint: Endpoint, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The upstream's name, and the body to send it (a `<upstream>/` model prefix removed)."""
        if endpoint.shape == "anthropic":
            return "anthropic", body
        model = body.get("model")
        if isinstance(model, str) and "/" in model:
            prefix, _, rest = model.partition("/")
            if rest and prefix != "anthropic" and prefix in self.ctx.config.upstreams:
                return prefix, {**body, "model": rest}
        return "openai", body

    async def handle(self, scope: dict[str, Any], receive: Any, endpoint: Endpoint) -> Any:
        """The ASGI response (`PlainResponse` or `StreamRelay`) to one gateway request, or None when
        the client left before its body was in (there is no one to answer)."""
        shape = endpoint.shape
        raw = await read_body(scope, receive, self._limit)
        if raw is None:
            message = f"request body over {self._limit} bytes"
            return error_response(shape, 413, "request_too_large", message)
        if raw is False:
            return None
        try:
            sent: Any = json.loads(raw)
        except ValueError:
            sent = None
        if not isinstance(sent, dict):
            message = "the request body is not a JSON object"
            return error_response(shape, 400, "invalid_request_error", message)
        name, body = self._upstream(endpoint, sent)
        base = self.ctx.config.upstreams.get(name)
        if base is None:
            message = (
                f"costlens gateway: no {name!r} upstream is configured; "
                f"start it with `costlens serve --upstream {name}=BASE_URL`"
            )
            return error_response(shape, 502, "upstream_not_configured", message)
        pipelines, route = self._pipelines()
        model = body.get("model")
        if model == VIRTUAL_MODEL and route is None:
            message = f"model {VIRTUAL_MODEL!r} needs a router, and this costlens server has none configured"
            return error_response(shape, 400, "invalid_request_error", message)
        stream = body.get("stream") is True
        call_request = Request(name, endpoint.operation, str(model or ""), body, stream, scope_tags(scope))
        if stream and shape == "openai" and endpoint.operation in ("chat", "text_completion"):
            _ask_for_stream_usage(call_request)
        started = _start(pipelines(), call_request, shape)
        if isinstance(started, PlainResponse):
            return started
        path = endpoint.path
        query = scope.get("query_string")
        if query:
            path += "?" + query.decode("latin-1")
        headers = upstream_headers(scope["headers"], shape, self.ctx.upstream_key(name))
        # the client's own bytes go upstream unless the pipeline (or a model prefix) changed the body
        as_sent = raw if body is sent else None
        return await self._forward(pipelines, started, endpoint, (base, path), headers, body, as_sent)

    async def _forward(
        self,
        pipelines: Callable[[], Pipeline],
        call: Call,
        endpoint: Endpoint,
        where: tuple[str, str],
        headers: list[tuple[bytes, bytes]],
        body: dict[str, Any],
        raw: bytes | None,
    ) -> Any:
        shape = endpoint.shape
        adapter = _ADAPTERS[shape]
        while True:  # one pass per attempt: a step (fallbacks, a cascade) may ask for another
            request = call.request
            content = raw if raw is not None and request.body is body else _dumps(request.body)
            error: BaseException | None = None
            try:
                upstream = await self.pool.send(*where, headers, content)
                if upstream.status_code < 400 and request.stream:
                    watch = _observer(adapter, call)
                    headers_back = response_headers(upstream.headers)
                    return StreamRelay(upstream, headers_back, call, watch, _transport_error)
                data = await upstream.aread()  # an error body of a stream is short: read it whole
            except UpstreamError as exc:
                error = _transport_error(exc)
                answer = _unreachable(shape, request.provider, error)
            else:
                status = upstream.status_code
                answer = PlainResponse(status, response_headers(upstream.headers), data)
                if status < 400:
                    _complete(adapter, call, data)
                else:
                    error = status_error(status, upstream.headers, data)
            call.finish(error)  # idempotent; a step's after-half may ask for another attempt here
            if call.next_attempt is None:
                return answer
            following, after_s = call.next_attempt
            following.usage_added = request.usage_added  # the body it carries asks for usage as ours did
            if after_s:
                await asyncio.sleep(after_s)
            started = _start(pipelines(), following, shape)
            if isinstance(started, PlainResponse):
                return started
            call = started


def _start(pipeline: Pipeline, request: Request, shape: str) -> Call | PlainResponse:
    """`pipeline.start`, or the refusal in the provider's error shape (the call is recorded blocked)."""
    try:
        return pipeline.start(request)
    except BudgetExceeded as exc:
        return error_response(shape, 429, "budget_exceeded", str(exc), retry=False)
    except BudgetUnavailable as exc:
        return error_response(shape, 503, "budget_unavailable", str(exc), retry=False)
    except CostlensError as exc:  # no routing candidate fits, a bad request for a step
        return error_response(shape, 400, "invalid_request_error", str(exc))
    except Exception as exc:
        message = f"costlens could not start the call ({type(exc).__name__}: {exc})"
        return error_response(shape, 500, "api_error", message)


def _complete(adapter: Adapter, call: Call, content: bytes) -> None:
    """Usage and facts of a complete response, read by the SDK adapter from the parsed JSON."""
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        _complete_response(adapter, call, parsed)
    else:
        call.finish()  # not JSON: the tokens are counted and the record flagged estimated


def _transport_error(exc: BaseException) -> BaseException:
    """The exception a transport failure is recorded as (`APITimeoutError` for a timeout), with the
    client's kind of failure in its message (`ConnectError: ...`, as httpx named them)."""
    timeout = isinstance(exc, UpstreamError) and exc.timeout
    kind = APITimeoutError if timeout else APIConnectionError
    name = exc.kind if isinstance(exc, UpstreamError) else type(exc).__name__
    error = kind(f"{name}: {exc}" if str(exc) else name)
    error.__cause__ = exc
    return error


def _unreachable(shape: str, upstream: str, error: BaseException) -> PlainResponse:
    if isinstance(error, APITimeoutError):
        message = f"costlens gateway: the {upstream} upstream did not answer in time ({error})"
        return error_response(shape, 504, "upstream_timeout", message)
    message = f"costlens gateway: could not reach the {upstream} upstream ({error})"
    return error_response(shape, 502, "upstream_unreachable", message)
