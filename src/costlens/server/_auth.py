"""API keys on every request: who may call what (`costlens keys create|list|revoke` manage them).

When `ServerConfig.keys_required` (any bind address but loopback, unless `require_keys` says
otherwise) every request needs a key: `Authorization: Bearer clk_...`, or `x-api-key: clk_...` (the
Anthropic SDK's header); the dashboard also takes the `costlens_key` cookie that `GET /login?key=...`
sets. The scope a path needs:

- `/v1/traces` (OTLP ingest) and every other `/v1/*` path (the gateway): `gateway`;
- `/api/*`: `read` for GET and HEAD, `admin` for any other method;
- anything else (the dashboard pages, `/static`): `read`;
- `admin` allows everything.

Refusals: 401 (no key, an unknown or revoked key) or 403 (a key without the scope), as an error in
the provider's shape on `/v1/*` (so the SDKs raise their usual errors) and `{"detail": ...}` elsewhere.
On loopback without `keys_required` no key is needed, but a costlens key that is given is still
checked, and attached: `request.state.api_key` (`.id`, `.name`, `.scopes`, `.budget`) is what the
gateway tags calls with (`api_key=<id>`). A key with a budget has that budget in force in the process
budget engine (a `Budget` scoped `{"api_key": "<id>"}`) from the server's start, or from its first
use for a key created later. Keys are never logged: `/login` takes its key out of the request's
query string before anything else sees it.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any
from urllib.parse import parse_qs

from costlens.server._context import ServerContext
from costlens.server._keys import ApiKey, KeyStore, allows, ensure_key_budget

__all__ = ["COOKIE", "install", "key_store", "needed_scope"]

COOKIE = "costlens_key"
_log = logging.getLogger("costlens.server")
_COOKIE_AGE_S = 7 * 24 * 3600


def key_store(ctx: ServerContext) -> KeyStore:
    """The server's key store (`keys_db`, else `keys.db` in the data folder), made once per app."""
    store = ctx.extras.get("keys")
    if not isinstance(store, KeyStore):
        store = ctx.extras["keys"] = KeyStore(ctx.config.keys_db)
    return store


def needed_scope(path: str, method: str) -> str:
    """The scope a request needs (admin implies all)."""
    if path == "/v1" or path.startswith("/v1/"):
        return "gateway"
    if path == "/api" or path.startswith("/api/"):
        return "read" if method in ("GET", "HEAD") else "admin"
    return "read"


def _headers(scope: dict[str, Any]) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


def _presented(headers: dict[bytes, bytes], path: str) -> str | None:
    """The key the request carries: a bearer token, `x-api-key`, or (dashboard pages) the cookie."""
    auth = headers.get(b"authorization")
    if auth is not None:
        kind, _, token = auth.decode("latin-1").strip().partition(" ")
        if kind.lower() == "bearer" and token.strip():
            return token.strip()
    api_key = headers.get(b"x-api-key")
    if api_key is not None and api_key.strip():
        return api_key.decode("latin-1").strip()
    if path.startswith(("/v1", "/api")):
        return None
    cookie = headers.get(b"cookie")
    if cookie is not None:
        for part in cookie.decode("latin-1").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and value:
                return value
    return None


def _shape(path: str) -> str | None:
    """The error shape of a path: `openai`, `anthropic` (the gateway's) or None (`{"detail": ...}`)."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path == "/v1" or path.startswith("/v1/"):
        return "openai"
    return None


async def _refuse(send: Any, path: str, status: int, message: str) -> None:
    from costlens.server._gateway_http import error_body

    shape = _shape(path)
    kind = "authentication_error" if status == 401 else "permission_error"
    body = error_body(shape, status, kind, message) if shape is not None else {"detail": message}
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="costlens"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class _Budgets:
    """Keeps each key's budget in force in the process engine (checked again on each use, since the
    engine can be replaced by a reconfiguration)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def ensure(self, key: ApiKey) -> None:
        if key.budget is None:
            return
        from costlens._errors import ConfigError

        try:
            with self._lock:
                ensure_key_budget(key)
        except ConfigError as exc:  # a broken budgets file: the gateway refuses calls itself
            _log.warning("budget of API key %s not put in force: %s", key.id, exc)


class AuthMiddleware:
    """Pure ASGI middleware (streams pass through untouched)."""

    def __init__(self, app: Any, ctx: ServerContext) -> None:
        self.app = app
        self.ctx = ctx
        self.budgets = _Budgets()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path == "/login":
            await self._login(scope, send)
            return
        required = self.ctx.config.keys_required
        headers = _headers(scope)
        presented = _presented(headers, path)
        key: ApiKey | None = None
        if presented is not None and (required or presented.startswith("clk_")):
            key = await self._verify(presented)
            if key is None:
                await _refuse(send, path, 401, "invalid or revoked API key")
                return
        if key is None and required:
            await _refuse(
                send, path, 401, "an API key is required: send `Authorization: Bearer clk_...` "
                "(create one with `costlens keys create`)",
            )  # fmt: skip
            return
        if key is not None:
            needed = needed_scope(path, scope.get("method", "GET"))
            if not allows(key.scopes, needed):
                await _refuse(
                    send, path, 403, f"API key {key.id} ({', '.join(key.scopes)}) lacks the {needed} scope"
                )
                return
            self.budgets.ensure(key)
            scope.setdefault("state", {})["api_key"] = key
        await self.app(scope, receive, send)

    async def _verify(self, presented: str) -> ApiKey | None:
        from starlette.concurrency import run_in_threadpool

        key = await run_in_threadpool(key_store(self.ctx).verify, presented)
        return key if key is not None and key.active else None

    async def _login(self, scope: dict[str, Any], send: Any) -> None:
        """`GET /login?key=clk_...`: set the dashboard's cookie and go to `/`. The key is taken out of
        the query string first, so no access log shows it."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        scope["query_string"] = b"key=[redacted]" if "key" in query else b""
        presented = (query.get("key") or [""])[0].strip()
        key = await self._verify(presented) if presented else None
        if key is None:
            await _refuse(send, "/login", 401, "give a valid API key: /login?key=clk_...")
            return
        if not allows(key.scopes, "read"):
            await _refuse(send, "/login", 403, f"API key {key.id} lacks the read scope")
            return
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = f"{COOKIE}={presented}; Path=/; HttpOnly; SameSite=Strict; Max-Age={_COOKIE_AGE_S}{secure}"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", b"/"),
                    (b"set-cookie", cookie.encode("latin-1")),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def install(app: Any, ctx: ServerContext) -> None:
    """Check API keys on every request; put the budgets of the stored keys in force now."""
    store = key_store(ctx)
    app.add_middleware(AuthMiddleware, ctx=ctx)
    budgets = _Budgets()
    for key in store.list():
        if key.active and key.budget is not None:
            budgets.ensure(key)
