"""Build the ASGI app: configure costlens for the process, then mount each part's router."""

from __future__ import annotations

import json
import os
from typing import Any

from costlens.server._config import ServerConfig
from costlens.server._context import ServerContext

__all__ = ["CONFIG_ENV", "app_from_env", "create_app"]

#: How `costlens serve --workers N` hands the config to each worker process (JSON of ServerConfig).
CONFIG_ENV = "COSTLENS_SERVER_CONFIG"


def _configure_process(config: ServerConfig) -> None:
    """The process-wide store, ledger and budgets the gateway's pipeline uses."""
    import costlens
    from costlens.config import configure_budgets

    costlens.configure(store=config.store, ledger=config.ledger)
    if config.budgets is not None:
        configure_budgets(file=config.budgets)


def create_app(config: ServerConfig | None = None, *, configure: bool = True) -> Any:
    """The FastAPI app for `config` (defaults: loopback, costlens' default store and budgets).
    `configure=False` leaves the process's costlens settings alone (a test that set them already)."""
    from fastapi import FastAPI

    from costlens.server import _api, _auth, _dashboard, _gateway, _limits, _otlp
    from costlens.server._gateway_asgi import GatewayDispatch

    config = config or ServerConfig()
    if configure:
        _configure_process(config)
    ctx = ServerContext(config)
    if config.router is not None:
        from costlens.routing import load_router

        ctx.extras["router"] = load_router(config.router)
    app = FastAPI(
        title="costlens",
        summary="LLM cost tracking, budgets, routing and reports",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    gateway = _gateway.router(ctx)
    # Added first, so innermost: auth, limits and CORS (added after it) still wrap the gateway.
    app.add_middleware(GatewayDispatch, gateway=ctx.extras["gateway"], endpoints=_gateway.ENDPOINTS)
    _auth.install(app, ctx)
    _limits.install(app, ctx)
    app.include_router(gateway)
    app.include_router(_otlp.router(ctx))
    app.include_router(_api.router(ctx), prefix="/api")
    app.include_router(_dashboard.router(ctx))
    return app


def app_from_env() -> Any:
    """uvicorn's factory in each worker process: the config comes from `CONFIG_ENV`."""
    raw = os.environ.get(CONFIG_ENV)
    config = ServerConfig(**json.loads(raw)) if raw else ServerConfig()
    return create_app(config)
