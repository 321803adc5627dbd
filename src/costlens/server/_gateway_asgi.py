"""The gateway's fast dispatch: a `POST` to a gateway path is answered here, as plain ASGI, and never
reaches FastAPI's exception middleware, router, or `Request` objects.

Why: profiled, that machinery cost more per call than the gateway's own work on it, and a gateway
route uses none of it (no dependencies, no validation, no path parameters). `GatewayDispatch` is
the innermost user middleware, so everything outside it still runs for the gateway as for any other
path, in the same order and with the same effect: FastAPI's error middleware, the body size limit,
CORS when configured, API keys and scopes (`_auth`). Anything else (another method, another path,
a trailing slash) goes on to the router, which answers it as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["GatewayDispatch", "read_body"]


class GatewayDispatch:
    """Pure ASGI middleware: gateway requests to `Gateway.handle`, the rest to `app`."""

    def __init__(self, app: Any, gateway: Any, endpoints: Mapping[str, Any]) -> None:
        """`gateway`: the `_gateway.Gateway`; `endpoints`: its paths (passed in, not imported: the
        gateway module imports `read_body` from here)."""
        self.app = app
        self.gateway = gateway
        self.endpoints = endpoints

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.endpoints.get(_route_path(scope))
            if endpoint is not None:
                response = await self.gateway.handle(scope, receive, endpoint)
                if response is not None:  # None: the client left while sending its body
                    await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _route_path(scope: dict[str, Any]) -> str:
    """The path the router would match: `path` less the `root_path` a proxy mounted the app at
    (Starlette's `get_route_path`, inlined for the common case of no root path)."""
    root = scope.get("root_path")
    if not root:
        return str(scope["path"])
    from starlette._utils import get_route_path

    return get_route_path(scope)


async def read_body(scope: dict[str, Any], receive: Any, limit: int) -> bytes | Literal[False] | None:
    """The request body; None when it is over `limit` bytes (by its `content-length`, or counted as
    it arrives when it has none); False when the client disconnected before sending all of it."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return None
    message = await receive()
    if message["type"] != "http.request":
        return False
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body if len(body) <= limit else None  # the common case: one message, no copy
    chunks, size = [body], len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
