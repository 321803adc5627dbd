"""The built-in fine-tuning price catalogue (`data/finetune_prices.toml`), kept apart from code.

Each entry carries its `source` (the provider's pricing page), an `as_of` date and a confidence;
an absent figure is unknown, never zero. Users override it through the price overrides file or the
scenario itself (see `costlens.roi._resolve`), so a wrong or stale figure is one edit away.
"""

from __future__ import annotations

import functools
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, ValidationError

from costlens._errors import ConfigError
from costlens.roi._paths import NonNeg, _Model

__all__ = ["FineTunePrice", "catalogue_rows", "find_entry", "finetune_catalogue"]

_FILE = "finetune_prices.toml"


class FineTunePrice(_Model):
    """One catalogue entry: training, tuned inference, hosting, storage and minimum charge."""

    id: str
    provider: str
    base_model: str
    aliases: list[str] = Field(default_factory=list)
    method: Literal["supervised", "lora", "reinforcement", "preference"] = "supervised"
    training_per_mtok: NonNeg | None = None
    training_per_hour: NonNeg | None = None
    input_per_mtok: NonNeg | None = None
    cached_input_per_mtok: NonNeg | None = None
    output_per_mtok: NonNeg | None = None
    base_input_per_mtok: NonNeg | None = None
    base_output_per_mtok: NonNeg | None = None
    hosting_per_hour: NonNeg | None = None
    storage_per_month: NonNeg | None = None
    min_training_charge: NonNeg | None = None
    source: str = Field(min_length=1)
    as_of: date
    confidence: Literal["listed", "uncertain"] = "listed"
    note: str = ""

    @property
    def input_markup(self) -> Decimal | None:
        """Tuned input price ÷ base input price (exact when finite; None when unknown)."""
        if self.input_per_mtok is None or not self.base_input_per_mtok:
            return None
        return self.input_per_mtok / self.base_input_per_mtok

    def names(self) -> set[str]:
        return {self.base_model.lower(), *(a.lower() for a in self.aliases)}


@functools.cache
def finetune_catalogue() -> tuple[FineTunePrice, ...]:
    """Every built-in entry, validated (read once, on first use)."""
    import tomllib
    from importlib import resources

    text = resources.files("costlens.roi").joinpath("data", _FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = tomllib.loads(text, parse_float=Decimal)
    try:
        return tuple(FineTunePrice.model_validate(row) for row in data.get("models", []))
    except ValidationError as exc:  # a packaging bug, not a user error
        raise ConfigError(f"built-in fine-tuning catalogue {_FILE} is invalid: {exc}") from exc


def find_entry(provider: str | None, base_model: str, entry_id: str | None = None) -> FineTunePrice | None:
    """The entry named `entry_id`, else the one for (provider, base model or alias), else None.

    A dated snapshot id such as `gpt-4o-mini-2024-07-18` matches exactly; with no provider given,
    the first entry for the model wins (OpenAI before Azure, as listed).
    """
    entries = finetune_catalogue()
    if entry_id is not None:
        found = next((e for e in entries if e.id.lower() == entry_id.lower()), None)
        if found is None:
            raise ConfigError(
                f"price_entry {entry_id!r} is not in the fine-tuning catalogue; "
                "list the entries with `costlens roi catalogue`"
            )
        return found
    name = base_model.strip().lower()
    who = None if provider is None else provider.strip().lower()
    for entry in entries:
        if name in entry.names() and (who is None or entry.provider == who):
            return entry
    return None


def catalogue_rows() -> list[dict[str, object]]:
    """The catalogue as flat rows for `costlens roi catalogue` (prices as Decimals, None when unknown)."""
    rows: list[dict[str, object]] = []
    for e in finetune_catalogue():
        rows.append(
            {
                "id": e.id,
                "provider": e.provider,
                "base_model": e.base_model,
                "method": e.method,
                "training_per_mtok": e.training_per_mtok,
                "training_per_hour": e.training_per_hour,
                "input_per_mtok": e.input_per_mtok,
                "cached_input_per_mtok": e.cached_input_per_mtok,
                "output_per_mtok": e.output_per_mtok,
                "base_input_per_mtok": e.base_input_per_mtok,
                "base_output_per_mtok": e.base_output_per_mtok,
                "hosting_per_hour": e.hosting_per_hour,
                "storage_per_month": e.storage_per_month,
                "min_training_charge": e.min_training_charge,
                "as_of": e.as_of.isoformat(),
                "confidence": e.confidence,
                "source": e.source,
                "note": e.note,
            }
        )
    return rows
