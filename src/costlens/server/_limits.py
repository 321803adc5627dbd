"""Request size limits and CORS (off unless origins are configured).

The size check is plain ASGI middleware, not Starlette's `BaseHTTPMiddleware`: that one costs a task
and a memory stream per request and per streamed chunk, and it ends a response cleanly when the
upstream cut a stream, so a client could not tell the stream was truncated.
"""

from __future__ import annotations

import json
from typing import Any

from costlens.server._context import ServerContext

__all__ = ["BodySizeLimit", "install"]

Scope = dict[str, Any]
Receive = Any
Send = Any


class BodySizeLimit:
    """Answer 413 to a request whose declared `content-length` is over `limit`, before reading it.
    A body sent without a length is bounded where it is read (the gateway counts as it reads)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    await _too_large(send, self.limit)
                    return
        await self.app(scope, receive, send)


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {"error": {"message": f"request body over {limit} bytes", "type": "request_too_large"}}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install(app: Any, ctx: ServerContext) -> None:
    """Add the size limit and, when origins are configured, CORS."""
    from starlette.middleware.cors import CORSMiddleware

    if ctx.config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=ctx.config.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
        )
    app.add_middleware(BodySizeLimit, limit=ctx.config.max_body_bytes)
