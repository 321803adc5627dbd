"""The server's settings: one pydantic model, filled from a TOML file, the environment and flags.

The file is TOML with a `[server]` table (every field below) and an optional `[upstreams]` table of
name = base URL (`openai = "https://api.openai.com/v1"`). Upstream API keys are never written in
the file by default: `upstream_keys` names the environment variable holding each upstream's key
(`openai = "OPENAI_API_KEY"`), read when a request is forwarded, never logged.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from costlens._errors import ConfigError

__all__ = ["DEFAULT_UPSTREAM_KEYS", "ServerConfig", "load_server_config"]

#: The environment variable that holds each known upstream's key, unless the config names another.
DEFAULT_UPSTREAM_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


class ServerConfig(BaseModel):
    """Everything `costlens serve` needs. Paths and URLs left as None use costlens' defaults
    (the store and ledger of `costlens.configure`, the budgets file of `COSTLENS_BUDGETS`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    store: str | None = None
    ledger: str | None = None
    budgets: Path | None = None
    upstreams: dict[str, str] = Field(default_factory=dict)
    upstream_keys: dict[str, str] = Field(default_factory=dict)
    keys_db: Path | None = None  # API keys (hashed); default: keys.db in the data folder
    require_keys: bool | None = None  # None: required unless the server listens on loopback only
    cors_origins: list[str] = Field(default_factory=list)  # CORS is off unless origins are listed
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    upstream_timeout_s: float = Field(default=600.0, gt=0)
    router: Path | None = None  # a router TOML: requests naming `costlens/auto` (or its name) are routed

    @field_validator("upstreams")
    @classmethod
    def _urls(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"upstream {name!r}: {url!r} is not an http(s) base URL")
        return {name: url.rstrip("/") for name, url in value.items()}

    @property
    def loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def keys_required(self) -> bool:
        """On loopback no key is needed by default; any other bind address requires API keys."""
        return self.require_keys if self.require_keys is not None else not self.loopback_only

    def key_variable(self, upstream: str) -> str | None:
        """The environment variable holding `upstream`'s API key."""
        return self.upstream_keys.get(upstream) or DEFAULT_UPSTREAM_KEYS.get(upstream)


def load_server_config(path: str | Path | None = None, **overrides: Any) -> ServerConfig:
    """Read `path` (TOML: `[server]` and `[upstreams]`), then apply `overrides` (flags) that are not None."""
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path).expanduser()
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"server config {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"server config {file}: {exc}") from None
        unknown = sorted(set(raw) - {"server", "upstreams", "upstream_keys"})
        if unknown:
            raise ConfigError(
                f"server config {file}: unknown table(s) {unknown}; use [server] and [upstreams]"
            )
        data = dict(raw.get("server", {}))
        data["upstreams"] = {**data.get("upstreams", {}), **raw.get("upstreams", {})}
        data["upstream_keys"] = {**data.get("upstream_keys", {}), **raw.get("upstream_keys", {})}
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "upstreams":
            data["upstreams"] = {**data.get("upstreams", {}), **value}
        else:
            data[key] = value
    try:
        return ServerConfig(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"bad server config: {problems}") from None
