"""Pricing a finished call: which model to price, asked of the catalogue once per model pair."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from costlens.usage import CallRecord, Usage

if TYPE_CHECKING:
    from costlens.pricing import PriceCatalogue

_NanousdCost = Callable[[Usage, str, str, datetime | None, str | None], tuple[int | None, str]]

__all__ = ["Pricer"]


class Pricer:
    """Prices records. Remembers (provider, answered model, sent model) -> the (provider, model) to
    price, and forgets it when the price catalogue is replaced (overrides reloaded).

    The record keeps the provider it was sent to; only the price list may differ: an endpoint named
    by its host (a local proxy) is priced as OpenAI-compatible (`costlens.pricing._compat`)."""

    __slots__ = ("_catalogue", "_get_catalogue", "_models", "_nanousd_cost")

    def __init__(self) -> None:
        self._models: dict[tuple[str, str | None, str], tuple[str, str]] = {}
        self._catalogue: PriceCatalogue | None = None
        # costlens.pricing is imported on the first call priced (not at import: it is heavier)
        self._get_catalogue: Callable[[], PriceCatalogue] | None = None
        self._nanousd_cost: _NanousdCost | None = None

    def price(self, record: CallRecord, sent_model: str, usage: Usage) -> None:
        get_catalogue = self._get_catalogue
        nanousd_cost = self._nanousd_cost
        if get_catalogue is None or nanousd_cost is None:
            from costlens.pricing import _catalogue

            get_catalogue = self._get_catalogue = _catalogue.get_catalogue
            nanousd_cost = self._nanousd_cost = _catalogue.nanousd_cost
        catalogue = get_catalogue()
        if self._catalogue is not catalogue:
            self._models = {}
            self._catalogue = catalogue
        key = (record.provider, record.response_model, sent_model)
        target = self._models.get(key)
        if target is None:
            from costlens.pricing._compat import pricing_provider

            model = _model_to_price(catalogue, *key)
            target = self._models[key] = (pricing_provider(catalogue, record.provider, model), model)
        # the integers `cost(...)` would give, `record.set_cost` keeps: no `Cost`, no `Decimal`
        nanousd, version = nanousd_cost(usage, *target, record.started_at, record.service_tier)
        record.cost_nanousd = nanousd
        record.price_known = nanousd is not None
        record.price_version = version


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
