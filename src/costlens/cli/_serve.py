"""`costlens serve`: run the gateway, the OTLP receiver, the REST API and the dashboard (uvicorn)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from costlens.cli._output import STORE_HELP, friendly_errors, note, usage_error

__all__ = ["serve"]


def _upstreams(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not name or not url:
            usage_error(
                f"bad --upstream {value!r}: write NAME=BASE_URL, e.g. openai=http://127.0.0.1:8900/v1"
            )
        out[name.strip()] = url.strip()
    return out


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8787).")] = None,
    store: Annotated[str | None, typer.Option("--store", metavar="URL", help=STORE_HELP)] = None,
    ledger: Annotated[
        str | None, typer.Option(metavar="URL", help="Budget ledger URL shared by workers.")
    ] = None,
    budgets: Annotated[Path | None, typer.Option(help="Budgets file (default: $COSTLENS_BUDGETS).")] = None,
    config: Annotated[Path | None, typer.Option(help="Server config TOML ([server], [upstreams]).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (they share the ledger).")] = None,
    router: Annotated[
        Path | None, typer.Option(help="Router TOML: requests for costlens/auto are routed by it.")
    ] = None,
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=BASE_URL", help="An upstream provider, e.g. openai=https://api.openai.com/v1."
        ),
    ] = None,
) -> None:
    """Serve the OpenAI/Anthropic-compatible gateway, the OTLP receiver, the REST API and the dashboard."""
    from costlens.server import create_app, load_server_config
    from costlens.server._app import CONFIG_ENV

    settings = load_server_config(
        config,
        host=host,
        port=port,
        store=store,
        ledger=ledger,
        budgets=budgets,
        workers=workers,
        router=router,
        upstreams=_upstreams(upstream),
    )
    try:
        import uvicorn
    except ImportError:
        usage_error("costlens serve needs the server extra: pip install 'llm-costlens[server]'")
    where = f"http://{settings.host}:{settings.port}"
    note(f"costlens serving on {where} (gateway {where}/v1, dashboard {where}/, API {where}/api/docs)")
    if not settings.keys_required:
        note("no API key required: listening on loopback only")
    if settings.workers > 1:
        os.environ[CONFIG_ENV] = json.dumps(settings.model_dump(mode="json"))
        uvicorn.run(
            "costlens.server._app:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="warning",
        )
    else:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


friendly = friendly_errors(serve)
