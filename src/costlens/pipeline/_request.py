"""`Request`: what costlens knows of one outgoing LLM request, in plain JSON, whatever sent it.

An SDK adapter builds it from the SDK's request options; the gateway builds it from the HTTP body.
No SDK type lives inside, so budgets, the router and the gateway all read the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from costlens.usage import with_inference_geo

__all__ = ["Request", "requested_tier"]


def requested_tier(body: Mapping[str, Any]) -> str | None:
    """The price tier a request asks for: `service_tier` (OpenAI, Anthropic), `fast` for Anthropic's
    fast mode (`speed: "fast"`), with `+us` for US-only inference (`inference_geo: "us"`); None
    when it names none. What budgets reserve for, and what a call that never answers is priced at
    (an answer's own tier replaces it)."""
    tier = body.get("service_tier")
    if "speed" in body or "inference_geo" in body:  # Anthropic's, rare: one test for the usual call
        tier = "fast" if body.get("speed") == "fast" else tier
        return with_inference_geo(tier if isinstance(tier, str) and tier else None, body.get("inference_geo"))
    return tier if isinstance(tier, str) and tier else None


@dataclass(slots=True)
class Request:
    """One request as it will be sent.

    `body` is the JSON the provider receives (for SDK calls: the body with `extra_body` merged in).
    `model` is the model it names. Only `Call.rewrite` / `Call.reroute` change either, always by
    building a new dict: the caller's own objects are never mutated. `usage_added` is True when
    costlens asked a stream for usage the caller did not request (the extra chunk is then hidden).
    `state` belongs to the steps and is never sent: a step that asks for another attempt (a
    fallback) passes what it needs to the next attempt's request there; `state["priced_as"]` names
    the model to price when the name sent is an alias of it (a deployment name).
    """

    provider: str
    operation: str
    model: str
    body: dict[str, Any]
    stream: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    usage_added: bool = False
    state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        provider: str,
        operation: str,
        body: dict[str, Any],
        *,
        stream: bool = False,
        tags: dict[str, str] | None = None,
    ) -> Request:
        """A request whose model is the body's `model` field."""
        return cls(provider, operation, str(body.get("model") or ""), body, stream, tags or {})
