"""Placeholder: API keys (hashed, scoped) are built by the server issue's auth part."""

from __future__ import annotations

from typing import Any

from costlens.server._context import ServerContext

__all__ = ["install"]


def install(app: Any, ctx: ServerContext) -> None:
    """Placeholder: no key checks yet."""
