"""The gateway's HTTP plumbing: which upstream a request goes to, the headers that cross in each
direction, the pooled upstream client, error bodies in each provider's shape, and the exceptions an
upstream failure is recorded as (named like the SDKs' own, so records read the same either way).

Credentials never cross: the client's `Authorization` / `x-api-key` is dropped, and the upstream's
key (`ServerContext.upstream_key`) is added on the way out. Nothing here logs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from costlens.server._gateway_client import Origin, UpstreamError, UpstreamPool, UpstreamResponse

if TYPE_CHECKING:
    import httpx

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Endpoint",
    "HttpPool",
    "HttpxResponse",
    "PlainResponse",
    "error_body",
    "error_response",
    "response_headers",
    "status_error",
    "upstream_headers",
]

#: Request headers passed on to the upstream (lower-case); every other one stays here.
_FORWARDED = frozenset(
    {b"content-type", b"accept", b"anthropic-version", b"anthropic-beta", b"openai-beta", b"idempotency-key"}
)
#: Response headers passed back to the client, by exact name or prefix (rate limits, request ids).
_RETURNED = frozenset(
    {b"content-type", b"x-request-id", b"request-id", b"retry-after", b"retry-after-ms", b"cache-control"}
)
_USER_AGENT = b"costlens-gateway"
_RETURNED_PREFIXES = (b"openai-", b"anthropic-", b"x-ratelimit-", b"x-should-retry")
_ANTHROPIC_VERSION = b"2023-06-01"  # sent when the client named none (curl); the SDK always names one


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One gateway route: the request shape (`openai` / `anthropic`), costlens' operation name (as the
    SDK adapters name it) and the path under the upstream's base URL."""

    shape: str
    operation: str
    path: str


def upstream_headers(
    raw: Iterable[tuple[bytes, bytes]], shape: str, key: str | None
) -> list[tuple[bytes, bytes]]:
    """The headers sent upstream: the forwarded ones, identity encoding (the bytes relayed are the
    bytes parsed) and the server's own credential for the upstream."""
    out = [(k, v) for k, v in raw if k in _FORWARDED]  # ASGI header names are lower-case
    out.append((b"accept-encoding", b"identity"))
    if not any(k == b"accept" for k, _ in out):
        out.append((b"accept", b"*/*"))
    out.append((b"user-agent", _USER_AGENT))
    if shape == "anthropic":
        if not any(k == b"anthropic-version" for k, _ in out):
            out.append((b"anthropic-version", _ANTHROPIC_VERSION))
        if key:
            out.append((b"x-api-key", key.encode("latin-1")))
    elif key:
        out.append((b"authorization", b"Bearer " + key.encode("latin-1")))
    return out


def response_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream response headers the client gets back, unchanged (names lower-cased)."""
    out = []
    for name, value in raw:
        low = name.lower()
        if low in _RETURNED or low.startswith(_RETURNED_PREFIXES):
            out.append((low, value))
    return out


class PlainResponse:
    """A complete response as an ASGI app: status, raw headers and body, with no re-encoding."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [*self.headers, (b"content-length", b"%d" % len(self.body))]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


# -- errors ------------------------------------------------------------------------------------


def error_body(shape: str, status: int, kind: str, message: str) -> dict[str, Any]:
    """An error in the provider's own shape, so each SDK raises its usual error with `message`."""
    if shape == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


#: The gateway's own error kinds, as Anthropic's error types (OpenAI's keep the gateway's names).
_ANTHROPIC_KINDS = {
    "budget_exceeded": "rate_limit_error",
    "budget_unavailable": "api_error",
    "upstream_not_configured": "api_error",
    "upstream_unreachable": "api_error",
    "upstream_timeout": "timeout_error",
}


def error_response(shape: str, status: int, kind: str, message: str, *, retry: bool = True) -> PlainResponse:
    """An error the gateway itself answers. `retry=False` tells the SDKs not to retry it
    (`x-should-retry: false`, honoured by the OpenAI and Anthropic SDKs): a budget refusal stays
    refused however often it is asked."""
    if shape == "anthropic":
        kind = _ANTHROPIC_KINDS.get(kind, kind)
    data = json.dumps(error_body(shape, status, kind, message), separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json")]
    if not retry:
        headers.append((b"x-should-retry", b"false"))
    return PlainResponse(status, headers, data)


class APIStatusError(Exception):
    """The upstream answered with an error status; `response` is its `httpx.Response` (its headers
    give the fallbacks' `Retry-After`). Subclasses carry the SDKs' names for the common statuses."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"upstream answered HTTP {response.status_code}")
        self.response = response
        self.status_code = response.status_code


class BadRequestError(APIStatusError): ...


class AuthenticationError(APIStatusError): ...


class PermissionDeniedError(APIStatusError): ...


class NotFoundError(APIStatusError): ...


class ConflictError(APIStatusError): ...


class UnprocessableEntityError(APIStatusError): ...


class RateLimitError(APIStatusError): ...


class InternalServerError(APIStatusError): ...


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error(status: int, headers: list[tuple[bytes, bytes]], content: bytes) -> APIStatusError:
    """The error an upstream's error answer is recorded as; its `response` is an `httpx.Response`
    (made only on this path), whose headers give the fallbacks' `Retry-After`."""
    import httpx

    kind = InternalServerError if status >= 500 else _BY_STATUS.get(status, APIStatusError)
    return kind(httpx.Response(status, headers=headers, content=content))


class APIConnectionError(Exception):
    """The upstream could not be reached, or dropped the connection (answered 502 to the client)."""


class APITimeoutError(APIConnectionError):
    """The upstream did not answer within `upstream_timeout_s` (answered 504 to the client)."""


# -- the pooled client ------------------------------------------------------------------------


class HttpPool:
    """The upstream connections of one event loop (a uvicorn worker has one), made on first use and
    kept alive for every request: `_gateway_client`'s lean client, or httpx for an upstream that a
    proxy in the environment (`HTTPS_PROXY`, `ALL_PROXY`, less `NO_PROXY`) applies to."""

    __slots__ = ("_httpx", "_loop", "_origins", "_pool", "_timeout")

    def __init__(self, timeout_s: float) -> None:
        self._timeout = timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: UpstreamPool | None = None
        self._httpx: httpx.AsyncClient | None = None
        self._origins: dict[str, Origin | None] = {}  # base URL -> its origin, None: through httpx

    async def send(
        self, base: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse | HttpxResponse:
        """POST `body` to `base + path`; the response once its headers are in. `UpstreamError` when
        the upstream cannot be reached or does not answer in time."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._pool, self._httpx = loop, None, None  # a new loop: new connections
        origin = self._origins.get(base, _UNSEEN)
        if origin is _UNSEEN:
            origin = self._origins[base] = None if _proxied(base) else Origin(base)
        if isinstance(origin, Origin):
            pool = self._pool
            if pool is None:
                pool = self._pool = UpstreamPool(self._timeout)
            return await pool.send(origin, path.encode("latin-1"), headers, body)
        return await self._send_httpx(base + path, headers, body)

    async def _send_httpx(self, url: str, headers: list[tuple[bytes, bytes]], body: bytes) -> HttpxResponse:
        import httpx

        client = self._httpx
        if client is None:
            client = self._httpx = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                limits=httpx.Limits(max_connections=1024, max_keepalive_connections=256),
                follow_redirects=False,
            )
        try:
            request = client.build_request("POST", url, content=body, headers=headers)
            return HttpxResponse(await client.send(request, stream=True))
        except httpx.HTTPError as exc:
            raise _from_httpx(exc) from exc

    async def aclose(self) -> None:
        pool, client = self._pool, self._httpx
        self._pool = self._httpx = self._loop = None
        if pool is not None:
            await pool.aclose()
        if client is not None:
            await client.aclose()


_UNSEEN = Origin("http://unseen")  # a sentinel: the base URL was not looked at yet


def _proxied(base: str) -> bool:
    """Whether httpx (`trust_env`) would send a request for `base` through a proxy."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies_environment, proxy_bypass

    proxies = getproxies_environment()
    parts = urlsplit(base)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not proxy_bypass(parts.netloc)  # NO_PROXY


class HttpxResponse:
    """An httpx streamed response read through `UpstreamResponse`'s interface."""

    __slots__ = ("_response", "content", "headers", "status_code")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers = response.headers.raw
        self.content = b""

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        import httpx

        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise _from_httpx(exc) from exc

    async def aread(self) -> bytes:
        import httpx

        try:
            self.content = await self._response.aread()
        except httpx.HTTPError as exc:
            raise _from_httpx(exc) from exc
        finally:
            await self._response.aclose()
        return self.content

    async def aclose(self) -> None:
        await self._response.aclose()


def _from_httpx(exc: BaseException) -> UpstreamError:
    import httpx

    return UpstreamError(type(exc).__name__, str(exc), timeout=isinstance(exc, httpx.TimeoutException))
