"""`Request`: what costlens knows of one outgoing LLM request, in plain JSON, whatever sent it.

An SDK adapter builds it from the SDK's request options; the gateway builds it from the HTTP body.
No SDK type lives inside, so budgets, the router and the gateway all read the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Request"]


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
