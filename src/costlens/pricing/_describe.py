"""A JSON-friendly description of a model's price, for `costlens prices show` and the API."""

from __future__ import annotations

from datetime import datetime

from costlens.pricing._catalogue import get_catalogue
from costlens.pricing._model import ModelPrice, fmt
from costlens.pricing._overrides import prices_path
from costlens.pricing._patch import PATCH_SOURCE, PricePatch, entry_of
from costlens.pricing._timeline import DaySchedule, Segment, as_utc

__all__ = ["describe_price", "source_kind"]


def source_kind(source: str) -> str:
    """Which layer a `ModelPrice.source` is: `genai-prices`, `costlens patch` or `user override`."""
    if source.startswith(f"{PATCH_SOURCE}:"):
        return "costlens patch"
    if source.startswith("override:"):
        return "user override"
    return source


def _provenance(price: ModelPrice, patch: PricePatch | None) -> dict[str, object]:
    """`source`, `source_kind` and, for a patched price, the patch entry (id, URL, note)."""
    out: dict[str, object] = {"source": price.source, "source_kind": source_kind(price.source)}
    entry = entry_of(price.source, patch)
    if entry is not None:
        out["patch"] = {
            "id": entry.id,
            "source_url": entry.source,
            "note": entry.note,
            "starts_at": _iso(entry.starts_at),
        }
    return out


def _iso(at: datetime | None) -> str | None:
    return None if at is None else as_utc(at).isoformat()


def _prices(price: ModelPrice) -> dict[str, object]:
    """Per-1M prices of one ModelPrice, with its long-context tiers."""
    return {
        "per_mtok": price.rates.per_mtok(),
        "long_context": [
            {"above_input_tokens": tier.threshold, "per_mtok": tier.rates.per_mtok()}
            for tier in price.long_context
        ],
    }


def _fine_tuning(price: ModelPrice) -> dict[str, str]:
    fields = {
        "training_per_mtok": price.training_per_mtok,
        "training_per_hour": price.training_per_hour,
        "hosting_per_hour": price.hosting_per_hour,
        "storage_per_month": price.storage_per_month,
        "min_training_charge": price.min_training_charge,
    }
    return {k: fmt(v) for k, v in fields.items() if v is not None}


def _history(start: datetime | None, segment: Segment, patch: PricePatch | None) -> list[dict[str, object]]:
    """One row per dated price; a daily schedule gives one row per UTC time window."""
    if segment is None:
        return [{"starts_at": _iso(start), "known": False}]
    if isinstance(segment, DaySchedule):
        rows: list[dict[str, object]] = []
        for n, price in enumerate(segment.prices):
            micros = 0 if n == 0 else segment.bounds[n - 1]
            row: dict[str, object] = {
                "starts_at": _iso(start),
                "utc_from": f"{micros // 3_600_000_000:02d}:{micros // 60_000_000 % 60:02d}",
                "known": price is not None,
            }
            if price is not None:
                row.update(**_provenance(price, patch), **_prices(price))
            rows.append(row)
        return rows
    return [{"starts_at": _iso(start), "known": True, **_provenance(segment, patch), **_prices(segment)}]


def describe_price(model: str, provider: str | None = None, at: datetime | None = None) -> dict[str, object]:
    """Everything costlens knows about a model's price, as JSON-friendly values.

    Prices are decimal strings in USD per 1M tokens (`per_request` in USD per call). Keys:
    `known`, `matched_model`, `matched_provider`, `source`, `source_kind` (`genai-prices`,
    `costlens patch` or `user override`), `patch` (for a patched price: the entry's `id`,
    `source_url`, `note`, `starts_at`), `version`, `starts_at`, `per_mtok`,
    `long_context`, `service_tiers` (tier -> rule and prices), `history` (every dated price of
    the standard tier) and `fine_tuning` (override fields, when set). An unknown model gives
    `known: false` and a `hint` naming the overrides file.
    """
    catalogue = get_catalogue()
    price = catalogue.resolve(provider, model, at)
    out: dict[str, object] = {
        "model": model,
        "provider": provider,
        "at": _iso(at),
        "known": price is not None,
        "version": catalogue.version,
        "currency": "USD",
    }
    if price is None:
        path = prices_path() if catalogue.overrides is None else catalogue.overrides.path
        out["hint"] = f"add a [[models]] table for {model!r} to {path} (USD per 1M tokens)"
        return out
    tiers: dict[str, object] = {}
    for tier in catalogue.tiers(provider, model):
        tier_price = catalogue.resolve(provider, model, at, tier)
        if tier_price is not None:
            tiers[tier] = {
                "rule": tier_price.tier_rule,
                **_provenance(tier_price, catalogue.patch),
                **_prices(tier_price),
            }
    out.update(
        matched_model=price.model,
        matched_provider=price.provider,
        **_provenance(price, catalogue.patch),
        starts_at=_iso(price.starts_at),
        **_prices(price),
        service_tiers=tiers,
        history=[
            row
            for start, seg in catalogue.entry(provider, model).timeline
            for row in _history(start, seg, catalogue.patch)
        ],
        fine_tuning=_fine_tuning(price),
    )
    return out
