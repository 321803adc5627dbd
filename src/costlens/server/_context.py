"""What every part of the server shares: the config, the store, the API keys. Built once per app."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from costlens.server._config import ServerConfig

if TYPE_CHECKING:
    from costlens.store import Store

__all__ = ["ServerContext"]


@dataclass
class ServerContext:
    """The server's shared state. `store` is the recorder's own store object, so what the gateway and
    the OTLP receiver record is what the API and the dashboard read (a `memory://` store included)."""

    config: ServerConfig
    extras: dict[str, Any] = field(default_factory=dict)  # per-part state (the key store, clients...)

    @property
    def store(self) -> Store:
        from costlens.config import get_recorder

        return get_recorder().store

    def upstream_key(self, upstream: str) -> str | None:
        """The API key to send to `upstream`, read from its environment variable at each use."""
        variable = self.config.key_variable(upstream)
        return os.environ.get(variable) if variable else None
