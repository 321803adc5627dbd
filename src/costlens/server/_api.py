"""Placeholder: built by the server issue's _api part."""

from __future__ import annotations

from typing import Any

from costlens.server._context import ServerContext

__all__ = ["router"]


def router(ctx: ServerContext) -> Any:
    from fastapi import APIRouter

    return APIRouter()
