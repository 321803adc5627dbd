"""Which price list an OpenAI-compatible endpoint that no catalogue knows is priced from.

A client pointed at `http://127.0.0.1:4000/v1` (a local proxy, LiteLLM, vLLM) or any host costlens
does not recognise is recorded under that host, which names no price list. Chat models are still
found across providers, but genai-prices matches some models (OpenAI embeddings among them) only
within their provider, so such calls went unpriced. For a provider named by a host, a model with no
price of its own is priced as an OpenAI-compatible call (`openai`): the API the endpoint speaks.
A model OpenAI does not list stays unknown (loud), never $0.
"""

from __future__ import annotations

from typing import Protocol


class _Resolves(Protocol):
    """What `pricing_provider` asks of a price catalogue (`PriceCatalogue`, which asks this module
    in turn: a protocol, not an import)."""

    def resolve(self, provider: str | None, model: str) -> object | None: ...


__all__ = ["COMPATIBLE_PROVIDER", "is_host", "pricing_provider"]

#: The price list of the API an OpenAI-compatible endpoint speaks.
COMPATIBLE_PROVIDER = "openai"


def is_host(provider: str) -> bool:
    """Whether a provider id is a host name or address (how unknown endpoints are named)."""
    return "." in provider or ":" in provider or provider == "localhost"


def pricing_provider(catalogue: _Resolves, provider: str, model: str) -> str:
    """The provider to price `model` under: `provider` itself, or `openai` when `provider` is a
    host with no price for the model and OpenAI's list has one."""
    if not is_host(provider) or catalogue.resolve(provider, model) is not None:
        return provider
    if catalogue.resolve(COMPATIBLE_PROVIDER, model) is not None:
        return COMPATIBLE_PROVIDER
    return provider
