"""A routing candidate: a model the router may send a request to, and how to ask it.

Validated with pydantic, so a router defined in TOML fails with a message that names the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Candidate", "Deployment", "apply_transform", "prompt_text"]

CAPABILITIES = frozenset({"json", "tools", "vision"})


class Deployment(BaseModel):
    """One endpoint serving a candidate's model (several make a pool to balance and fail over)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    base_url: str | None = None
    weight: float = Field(default=1.0, gt=0)


class Candidate(BaseModel):
    """A model the router may choose.

    `transform` rewrites the prompt sent to this candidate: a template with `{prompt}` (for example
    `"Always respond concisely. {prompt}"`) replaces the last user message's text; any other text is
    a system prefix. `max_context` is the most prompt tokens it takes; `capabilities` what it can
    do (`json`, `tools`, `vision`); `tasks`, when set, the only tasks it serves. A model the price
    catalogue does not know (a fine-tuned one, say) can carry its own prices per 1M tokens.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    provider: str = "openai"
    transform: str | None = None
    max_context: int | None = Field(default=None, gt=0)
    capabilities: frozenset[str] = frozenset()
    tasks: frozenset[str] = frozenset()
    fine_tuned: bool = False
    deployments: tuple[Deployment, ...] = ()
    input_usd_per_1m: Decimal | None = Field(default=None, ge=0)
    output_usd_per_1m: Decimal | None = Field(default=None, ge=0)

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = sorted(value - CAPABILITIES)
        if unknown:
            raise ValueError(f"unknown capabilities {unknown}: use {sorted(CAPABILITIES)}")
        return value

    @property
    def own_prices(self) -> bool:
        return self.input_usd_per_1m is not None and self.output_usd_per_1m is not None


def apply_transform(
    transform: str | None, provider: str, operation: str, body: dict[str, Any]
) -> dict[str, Any]:
    """The body with the candidate's transform applied: a new dict, the caller's objects untouched."""
    if not transform:
        return body
    if "{prompt}" in transform:
        return _rewrite_last_user_text(transform, operation, body)
    return _add_system_prefix(transform, provider, operation, body)


def _rewrite_last_user_text(template: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    if operation == "responses" and isinstance(body.get("input"), str):
        return {**body, "input": template.replace("{prompt}", body["input"])}
    messages = list(body.get("messages") or ())
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                messages[i] = {**message, "content": template.replace("{prompt}", content)}
            elif isinstance(content, list):
                parts = [
                    {**p, "text": template.replace("{prompt}", p["text"])}
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                    else p
                    for p in content
                ]
                messages[i] = {**message, "content": parts}
            return {**body, "messages": messages}
    return body


def _add_system_prefix(prefix: str, provider: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    if operation == "responses":
        instructions = body.get("instructions")
        return {**body, "instructions": f"{prefix}\n\n{instructions}" if instructions else prefix}
    if provider == "anthropic":  # Anthropic takes the system prompt in `system`, not in `messages`
        system = body.get("system")
        if isinstance(system, str) and system:
            return {**body, "system": f"{prefix}\n\n{system}"}
        if isinstance(system, list):
            return {**body, "system": [{"type": "text", "text": prefix}, *system]}
        return {**body, "system": prefix}
    return {**body, "messages": [{"role": "system", "content": prefix}, *(body.get("messages") or ())]}


def prompt_text(body: Mapping[str, Any]) -> str:
    """The text of the request's prompt, for rules' regexes (the last user message, or `input`)."""
    raw = body.get("input")
    if isinstance(raw, str):
        return raw
    for message in reversed(list(body.get("messages") or ())):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ""
