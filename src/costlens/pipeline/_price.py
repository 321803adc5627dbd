"""Pricing a finished call: which model to price, asked of the catalogue once per model pair."""

from __future__ import annotations

from typing import TYPE_CHECKING

from costlens.usage import CallRecord, Usage

if TYPE_CHECKING:
    from costlens.pricing import PriceCatalogue

__all__ = ["Pricer"]


class Pricer:
    """Prices records. Remembers (provider, answered model, sent model) -> the (provider, model) to
    price, and forgets it when the price catalogue is replaced (overrides reloaded).

    The record keeps the provider it was sent to; only the price list may differ: an endpoint named
    by its host (a local proxy) is priced as OpenAI-compatible (`costlens.pricing._compat`)."""

    __slots__ = ("_catalogue", "_models")

    def __init__(self) -> None:
        self._models: dict[tuple[str, str | None, str], tuple[str, str]] = {}
        self._catalogue: PriceCatalogue | None = None

    def price(self, record: CallRecord, sent_model: str, usage: Usage) -> None:
        from costlens.pricing import cost, get_catalogue
        from costlens.pricing._compat import pricing_provider

        catalogue = get_catalogue()
        if self._catalogue is not catalogue:
            self._models = {}
            self._catalogue = catalogue
        key = (record.provider, record.response_model, sent_model)
        target = self._models.get(key)
        if target is None:
            model = _model_to_price(catalogue, *key)
            target = self._models[key] = (pricing_provider(catalogue, record.provider, model), model)
        provider, model = target
        priced = cost(
            usage,
            provider=provider,
            model=model,
            at=record.started_at,
            service_tier=record.service_tier,
        )
        record.set_cost(priced)


def _model_to_price(
    catalogue: PriceCatalogue, provider: str, response_model: str | None, sent_model: str
) -> str:
    """Azure answers with the real model name, while an OpenAI-compatible server may answer with a
    name no catalogue knows although the requested one is priced: use the one that is known."""
    if not response_model or response_model == sent_model:
        return sent_model
    if catalogue.resolve(provider, response_model) is None:
        return sent_model
    return response_model
