"""Pricing a finished call: which model to price, asked of the catalogue once per model pair."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from costlens.usage import CallRecord, Usage

if TYPE_CHECKING:
    from costlens.pricing import PriceCatalogue
    from costlens.pricing._model import AttoRates, ModelPrice

#: (provider to price, model to price, its price when it does not change with time, that price's
#: integer rates when they do not depend on the usage either: `nanousd_at` prices with them)
_Target = tuple[str, str, "ModelPrice | None", "AttoRates | None"]
_MAX_TARGETS = 4096

_NanousdCost = Callable[[Usage, str, str, datetime | None, str | None], tuple[int | None, str]]

#: (nano-USD, or None when no price is known; whether one is known; the price list's version)
Priced = tuple[int | None, bool, str]

__all__ = ["Priced", "Pricer"]


class Pricer:
    """Prices records. Remembers (provider, answered model, sent model, service tier) -> the
    (provider, model) to price and, when that price does not change with time, the price itself;
    forgets both when the price catalogue is replaced (overrides reloaded).

    The record keeps the provider it was sent to; only the price list may differ: an endpoint named
    by its host (a local proxy) is priced as OpenAI-compatible (`costlens.pricing._compat`)."""

    __slots__ = ("_catalogue", "_get_catalogue", "_models", "_nanousd_at", "_nanousd_cost", "_nanousd_of")

    def __init__(self) -> None:
        self._models: dict[tuple[str, str | None, str, str | None], _Target] = {}
        self._catalogue: PriceCatalogue | None = None
        # costlens.pricing is imported on the first call priced (not at import: it is heavier)
        self._get_catalogue: Callable[[], PriceCatalogue] | None = None
        self._nanousd_cost: _NanousdCost | None = None
        self._nanousd_of: Callable[[Usage, ModelPrice], int | None] | None = None
        self._nanousd_at: Callable[[Usage, AttoRates], int | None] | None = None

    def price(self, record: CallRecord, sent_model: str, usage: Usage) -> None:
        """Set the record's price (`cost_nanousd`, `price_known`, `price_version`)."""
        record.cost_nanousd, record.price_known, record.price_version = self.price_of(
            record.provider, record.response_model, sent_model, record.service_tier, record.started_at, usage
        )

    def price_of(
        self,
        provider: str,
        response_model: str | None,
        sent_model: str,
        tier: str | None,
        started_at: datetime,
        usage: Usage,
    ) -> Priced:
        """(nano-USD or None when no price is known, whether one is known, the price list's version)
        of a call to `provider` that sent `sent_model` and was answered by `response_model`."""
        get_catalogue = self._get_catalogue
        if get_catalogue is None:
            get_catalogue = self._load()
        catalogue = get_catalogue()
        if self._catalogue is not catalogue:
            self._models = {}
            self._catalogue = catalogue
        key = (provider, response_model, sent_model, tier)
        target = self._models.get(key)
        if target is None:
            target = self._target(catalogue, key)
        priced_as, model, fixed, atto = target
        # the integers `cost(...)` would give: no `Cost`, no `Decimal`
        if atto is not None and self._nanousd_at is not None:  # the common call: a few integer products
            nanousd: int | None = self._nanousd_at(usage, atto)
            if nanousd is not None:
                return nanousd, True, catalogue.version
        if fixed is not None and self._nanousd_of is not None:  # a price that does not change with time
            nanousd = self._nanousd_of(usage, fixed)
            version = catalogue.version
        else:  # dated prices, or none known (`nanousd_cost` warns about that once)
            assert self._nanousd_cost is not None
            nanousd, version = self._nanousd_cost(usage, priced_as, model, started_at, tier)
        return nanousd, nanousd is not None, version

    def _load(self) -> Callable[[], PriceCatalogue]:
        from costlens.pricing import _catalogue, _model

        self._nanousd_cost = _catalogue.nanousd_cost
        self._nanousd_of = _model.nanousd_of
        self._nanousd_at = _model.nanousd_at
        self._get_catalogue = _catalogue.get_catalogue
        return _catalogue.get_catalogue

    def _target(self, catalogue: PriceCatalogue, key: tuple[str, str | None, str, str | None]) -> _Target:
        from costlens.pricing._compat import pricing_provider

        provider, response_model, sent_model, tier = key
        model = _model_to_price(catalogue, provider, response_model, sent_model)
        priced_as = pricing_provider(catalogue, provider, model)
        from costlens.pricing._model import plain_atto

        fixed = catalogue.entry(priced_as, model, tier).fixed
        target = (priced_as, model, fixed, None if fixed is None else plain_atto(fixed))
        if len(self._models) >= _MAX_TARGETS:  # model names invented without end must not grow it so
            self._models.clear()
        self._models[key] = target
        return target


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
