"""The prices page: every model the price catalogue knows, with its price in force now.

Names come from the catalogue's sources (genai-prices' data snapshot, then the user's overrides
file); every price is `get_catalogue().resolve(provider, model)`, the lookup `cost()` and
`costlens prices show` use, so overrides and the costlens patch apply. Prices are USD per 1M tokens.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["PriceRow", "price_rows", "providers"]


@dataclass(frozen=True, slots=True)
class PriceRow:
    provider: str
    provider_name: str
    model: str
    name: str
    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    source: str
    long_context: int | None  # input tokens above which higher rates apply


_lock = threading.Lock()
_cached: dict[str, list[PriceRow]] = {}  # by catalogue version: resolved once per catalogue


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _names() -> list[tuple[str, str, str, str]]:
    """(provider id, provider name, model id, model name) of every model in the catalogue's sources."""
    from genai_prices import data_snapshot

    from costlens.pricing import get_catalogue

    out: list[tuple[str, str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    overrides = get_catalogue().overrides
    for m in overrides.models if overrides is not None else ():
        out.append((m.provider, m.provider, m.model, m.model))
        seen.add((m.provider, m.model.lower()))
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            if (provider.id, str(model.id).lower()) not in seen:
                out.append((provider.id, provider.name, model.id, model.name or model.id))
    return out


def _all_rows() -> list[PriceRow]:
    from costlens.pricing import get_catalogue

    catalogue = get_catalogue()
    with _lock:
        found = _cached.get(catalogue.version)
        if found is not None:
            return found
        rows = []
        for provider, provider_name, model, name in _names():
            price = catalogue.resolve(None if provider == "*" else provider, model)
            if price is None:
                continue
            rates = price.rates.per_mtok()
            rows.append(
                PriceRow(
                    provider=provider,
                    provider_name=provider_name,
                    model=model,
                    name=name,
                    input=_dec(rates["input"]),
                    output=_dec(rates["output"]),
                    cache_read=_dec(rates["cache_read"]),
                    cache_write=_dec(rates["cache_write"]),
                    source=price.source.split(":", 1)[0],
                    long_context=price.long_context[0].threshold if price.long_context else None,
                )
            )
        rows.sort(key=lambda r: (r.provider, r.model.lower()))
        _cached.clear()
        _cached[catalogue.version] = rows
        return rows


def providers() -> list[tuple[str, str, int]]:
    """(id, name, models priced) of every provider, by id."""
    counts: dict[str, tuple[str, int]] = {}
    for row in _all_rows():
        name, n = counts.get(row.provider, (row.provider_name, 0))
        counts[row.provider] = (name, n + 1)
    return [(pid, name, n) for pid, (name, n) in sorted(counts.items())]


def price_rows(provider: str | None, search: str | None) -> dict[str, Any]:
    """The rows for one provider (or all), whose model id or name contains `search` (any case)."""
    from costlens.pricing import get_catalogue

    rows = _all_rows()
    if provider:
        rows = [r for r in rows if r.provider == provider]
    if search:
        needle = search.lower()
        rows = [r for r in rows if needle in r.model.lower() or needle in r.name.lower()]
    return {"rows": rows, "version": get_catalogue().version}
