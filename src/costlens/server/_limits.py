"""Request size limits and CORS (off unless origins are configured)."""

from __future__ import annotations

from typing import Any

from costlens.server._context import ServerContext

__all__ = ["install"]


def install(app: Any, ctx: ServerContext) -> None:
    """Refuse bodies declared over `max_body_bytes` (413, before reading them; a body sent without a
    length is bounded where it is read) and add CORS when origins are configured."""
    from starlette.middleware.cors import CORSMiddleware

    limit = ctx.config.max_body_bytes
    if ctx.config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=ctx.config.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
        )

    async def _size_limit(request: Any, call_next: Any) -> Any:
        from starlette.responses import JSONResponse

        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return JSONResponse(
                {"error": {"message": f"request body over {limit} bytes", "type": "request_too_large"}},
                status_code=413,
            )
        return await call_next(request)

    app.middleware("http")(_size_limit)
