"""`costlens serve`: the same tracking, budgets, routing and reports for any language and any person.

One ASGI app (FastAPI) on one port:
- an OpenAI/Anthropic-compatible **gateway** (`/v1/chat/completions`, `/v1/responses`,
  `/v1/embeddings`, `/v1/messages`) that forwards to the configured upstreams through the call
  pipeline (tracking, budgets, routing; `costlens._gateway`);
- an **OpenTelemetry receiver** (`/v1/traces`, OTLP/HTTP protobuf and JSON) that turns GenAI spans
  into priced call records (`_otlp`);
- a **REST API** under `/api` with its OpenAPI schema at `/api/openapi.json` (`_api`);
- a server-rendered **dashboard** at `/` (`_dashboard`);
- API keys, hashed and scoped, required on any bind address but loopback (`_auth`).

`create_app(config)` builds it; `costlens serve` runs it with uvicorn.
"""

from __future__ import annotations

from costlens.server._app import create_app
from costlens.server._config import ServerConfig, load_server_config

__all__ = ["ServerConfig", "create_app", "load_server_config"]
