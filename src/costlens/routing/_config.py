"""A router defined in a TOML file, validated field by field.

name = "costlens/auto"            # the virtual model that routes a call (optional)
default = "gpt-4o"                # answers when no candidate fits (optional)
cost_budget = "0.01"              # per-request ceiling in USD (optional)
max_output_tokens = 1024          # the output bound estimated when a request sets none

[[candidates]]
name = "gpt-5-nano"
model = "gpt-5-nano"
transform = "Always respond concisely. {prompt}"

[[rules]]
task = "summarization"
use = ["my-fine-tuned-model"]

[[policies]]                      # more policies, by registered name, with their options
name = "latency"
p95_ms = { "gpt-4o" = 2500 }

[[policies]]                      # a learned router chooses among what the other policies leave
name = "learned"
path = "router.npz"               # relative to this file
target = 0.95
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from costlens._errors import ConfigError, CostlensError
from costlens.routing._candidate import Candidate
from costlens.routing._fallback import Fallbacks
from costlens.routing._policies import Rule, make_policy
from costlens.routing._router import Router

__all__ = ["load_router", "router_from_dict"]


class _RouterFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "costlens/auto"
    default: str | None = None
    cost_budget: Decimal | None = Field(default=None, ge=0)
    max_output_tokens: int = Field(default=1024, gt=0)
    candidates: list[Candidate] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)
    policies: list[dict[str, Any]] = Field(default_factory=list)
    fallbacks: Fallbacks = Field(default_factory=Fallbacks)
    balancing: Literal["weighted", "least-busy"] = "weighted"


def load_router(path: str | Path) -> Router:
    """Read a router file; errors name the file, the field and what is wrong."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"router file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"router file {path} is not valid TOML: {exc}") from None
    return router_from_dict(raw, source=str(path), base=path.parent)


def router_from_dict(
    raw: dict[str, Any], *, source: str = "router config", base: Path | None = None
) -> Router:
    """A router from a parsed file; a policy's relative `path` option is read from `base` (the
    router file's folder), so a router file and its learned router travel together."""
    try:
        spec = _RouterFile(**raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"{source}: {where}: {first['msg']} ({len(exc.errors())} problem(s) in all)"
        ) from None
    policies = []
    for i, entry in enumerate(spec.policies):
        options = dict(entry)
        name = options.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError(f'{source}: policies.{i}: give the policy\'s name, e.g. name = "latency"')
        if base is not None and isinstance(options.get("path"), str):
            options["path"] = str(base / options["path"])
        try:
            policies.append(make_policy(name, **options))
        except (TypeError, ValueError, CostlensError) as exc:
            raise ConfigError(f"{source}: policies.{i} ({name}): {exc}") from None
    return Router(
        spec.candidates,
        default=spec.default,
        rules=spec.rules,
        policies=policies,
        name=spec.name,
        max_output_tokens=spec.max_output_tokens,
        cost_budget=spec.cost_budget,
        fallbacks=spec.fallbacks,
        balancing=spec.balancing,
    )
