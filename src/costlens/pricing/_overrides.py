"""User price overrides: a TOML file whose prices win over genai-prices.

Where it is read from: `$COSTLENS_PRICES` if set (it must then exist), else
`$COSTLENS_HOME/prices.toml`, else `prices.toml` in `platformdirs.user_config_dir("costlens")`.
A missing default file simply means no overrides. All prices are USD; token prices are per
1,000,000 tokens. Numbers are read exactly (TOML floats are parsed as `Decimal`, never `float`);
a quoted decimal string such as `"2.50"` is accepted too. A file whose name ends in `.json` may
hold the same structure as JSON (`{"models": [{"provider": ..., ...}]}`; dates as ISO strings).

Full example::

    version = 1                       # optional; the schema version

    # A model with one price: the price keys sit on the model table itself.
    [[models]]
    provider = "openai"               # costlens provider id, or "*" for any provider
    model = "gpt-4o"                  # the id reported as the matched model
    aliases = ["gpt-4o-2024-08-06"]   # other exact ids (case-insensitive)
    match_prefixes = ["gpt-4o-2024-"] # ids starting with one of these also match
    input = 2.5                       # uncached input tokens
    output = 10                       # output tokens, reasoning included
    cache_read = 1.25                 # optional; default: the input price
    cache_write = 2.5                 # optional; default: the input price
    # reasoning = 12                  # optional; default: reasoning tokens bill as output
    # per_request = 0.005             # optional; USD per call, on top of tokens
    tier_multipliers = { flex = 0.5, priority = 1.7 }   # service tier -> factor on every token price
    [models.tiers.batch]              # explicit prices for one service tier
    input = 1.25                      # keys left out keep the standard price (long_context too)
    output = 5

    # A model whose price changed: one [[models.prices]] entry per period, oldest first.
    [[models]]
    provider = "anthropic"
    model = "claude-sonnet-4-5"
    match_prefixes = ["claude-sonnet-4-5"]
    [[models.prices]]
    starts_at = 2025-09-29            # TOML date (UTC midnight) or datetime; optional on the first
    input = 3
    output = 15
    cache_read = 0.3
    cache_write = 3.75
    [[models.prices.long_context]]    # above `threshold` input tokens (cached included), ALL tokens
    threshold = 200000                # of the call bill at these prices; keys left out keep the
    input = 6                         # price below the threshold
    output = 22.5
    cache_read = 0.6
    cache_write = 7.5
    [[models.prices]]
    starts_at = 2026-01-01T00:00:00Z
    input = 2.5
    output = 12.5

    # A self-hosted fine-tune behind an OpenAI-compatible endpoint.
    [[models]]
    provider = "vllm-local"
    model = "support-bot-ft"
    input = 0.2
    output = 0.2
    training_per_mtok = 8             # fine-tuning fields: parsed, validated and exposed on
    training_per_hour = 0             # ModelPrice for the ROI planner; nothing prices with them yet
    hosting_per_hour = 1.7
    storage_per_month = 0.1
    min_training_charge = 5

Rules: an exact id or alias beats a prefix, a longer prefix beats a shorter one, a named provider
beats `"*"`. Before the first `starts_at` the override does not apply and genai-prices (or
"unknown") does. For a service tier the order is: explicit `tiers.<name>` table, then
`tier_multipliers`, then the documented 50% batch discount (OpenAI, Anthropic, Azure), else the
standard price. Tier names are lower case; `default`, `auto` and `standard` mean the standard price.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from costlens._errors import ConfigError
from costlens.pricing._model import LongContextTier, ModelPrice, Rates
from costlens.pricing._providers import BATCH_DISCOUNT_PROVIDERS, STANDARD
from costlens.pricing._timeline import Timeline

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["HINT", "OverrideModel", "Overrides", "PricePeriod", "load_overrides", "prices_path"]

HINT = "the schema is documented in costlens.pricing._overrides; or set COSTLENS_PRICES to another file"


def prices_path() -> Path:
    """Where the overrides file is read from (it may not exist)."""
    return _configured_path()[0]


def _configured_path() -> tuple[Path, bool]:
    from pathlib import Path  # imported here: `import costlens.pricing` reads no file and stays cheap

    explicit = os.environ.get("COSTLENS_PRICES")
    if explicit:
        return Path(explicit).expanduser(), True
    home = os.environ.get("COSTLENS_HOME")
    if home:
        return Path(home).expanduser() / "prices.toml", False
    import platformdirs

    return Path(platformdirs.user_config_dir("costlens")) / "prices.toml", False


@dataclass(frozen=True, slots=True)
class PricePeriod:
    """One dated price of an override model (prices per token, already divided by 1e6)."""

    starts_at: datetime | None
    rates: Rates
    long_context: tuple[LongContextTier, ...]
    tier_prices: dict[str, tuple[Rates, tuple[LongContextTier, ...]]]
    tier_multipliers: dict[str, Decimal]
    fine_tuning: dict[str, Decimal]


@dataclass(frozen=True, slots=True)
class OverrideModel:
    """One `[[models]]` table: who it matches and its price periods, oldest first."""

    provider: str
    model: str
    aliases: tuple[str, ...]
    match_prefixes: tuple[str, ...]
    periods: tuple[PricePeriod, ...]

    def tiers(self) -> list[str]:
        names = {t for p in self.periods for t in (*p.tier_prices, *p.tier_multipliers)}
        return sorted(names)

    def timeline(self, provider: str | None, tier: str, source: str) -> Timeline:
        """The override's prices for `tier`, from its first `starts_at` on."""
        who = provider if self.provider == "*" and provider is not None else self.provider
        return [(p.starts_at, self._price(p, who, tier, source)) for p in self.periods]

    def _price(self, period: PricePeriod, provider: str, tier: str, source: str) -> ModelPrice:
        base = ModelPrice(
            provider=provider,
            model=self.model,
            source=source,
            rates=period.rates,
            long_context=period.long_context,
            starts_at=period.starts_at,
            training_per_mtok=period.fine_tuning.get("training_per_mtok"),
            training_per_hour=period.fine_tuning.get("training_per_hour"),
            hosting_per_hour=period.fine_tuning.get("hosting_per_hour"),
            storage_per_month=period.fine_tuning.get("storage_per_month"),
            min_training_charge=period.fine_tuning.get("min_training_charge"),
        )
        if tier == STANDARD:
            return base
        if tier in period.tier_prices:
            rates, long_context = period.tier_prices[tier]
            return replace(
                base, rates=rates, long_context=long_context, service_tier=tier, tier_rule="explicit"
            )
        factor = period.tier_multipliers.get(tier)
        if factor is not None:
            return base.for_tier(tier, "multiplier", lambda r: r.scaled(factor))
        if tier == "batch" and provider in BATCH_DISCOUNT_PROVIDERS:
            return base.for_tier(tier, "batch-50%", lambda r: r.scaled(Decimal("0.5")))
        return base.for_tier(tier, "fallback-standard", lambda r: r)


class Overrides:
    """A parsed overrides file, indexed for matching."""

    def __init__(self, models: list[OverrideModel], path: str, digest: str) -> None:
        self.models = models
        self.path = path
        self.digest = digest
        self.source = f"override:{path}"
        self._exact: dict[tuple[str, str], OverrideModel] = {}
        self._prefixes: list[tuple[str, OverrideModel]] = []
        for m in models:
            for name in (m.model.lower(), *m.aliases):
                self._exact.setdefault((m.provider, name), m)
            self._prefixes += [(prefix, m) for prefix in m.match_prefixes]
        self._prefixes.sort(key=lambda pm: (-len(pm[0]), pm[1].provider == "*"))

    def match(self, provider: str | None, model: str) -> OverrideModel | None:
        """The override for a (canonical provider, model id); provider None matches any provider."""
        name = model.strip().lower()
        if provider is None:
            exact = next((m for (_, n), m in self._exact.items() if n == name), None)
        else:
            exact = self._exact.get((provider, name)) or self._exact.get(("*", name))
        if exact is not None:
            return exact
        for prefix, m in self._prefixes:
            if name.startswith(prefix) and (provider is None or m.provider in (provider, "*")):
                return m
        return None


def load_overrides(path: Path | None = None) -> Overrides | None:
    """Read the overrides file (the configured one when `path` is None); None when there is none.

    A `.json` file holding the same structure (`{"models": [...]}`) is accepted too.
    """
    import hashlib

    explicit = path is not None
    if path is None:
        path, explicit = _configured_path()
    if not path.is_file():
        if explicit:
            raise ConfigError(
                f"price overrides file {path} does not exist; create it or unset COSTLENS_PRICES"
            )
        return None
    raw = path.read_bytes()
    text, data = _decode(raw, path)
    from costlens.pricing._schema import parse_overrides

    return parse_overrides(data, str(path), hashlib.sha256(raw).hexdigest()[:12], text)


def _decode(raw: bytes, path: Path) -> tuple[str, dict[str, Any]]:
    """TOML (or JSON by suffix) with every number read as an exact Decimal."""
    import json
    import tomllib

    kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
    try:
        text = raw.decode("utf-8")
        data = (
            json.loads(text, parse_float=Decimal)
            if kind == "JSON"
            else tomllib.loads(text, parse_float=Decimal)
        )
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        found = re.search(r"line (\d+)", str(exc))
        where = f", line {found.group(1)}" if found else ""
        raise ConfigError(
            f"invalid {kind} in price overrides file {path}{where}: {exc}; fix the syntax there ({HINT})"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"price overrides file {path}: expected a table/object with a 'models' list ({HINT})"
        )
    return text, data
