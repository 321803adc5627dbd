"""User price overrides: a TOML file whose prices win over genai-prices.

Where it is read from (`costlens._paths.prices_file()` decides): `$COSTLENS_PRICES` if set (it
must then exist), else `prices.toml` in the config folder: `$COSTLENS_HOME`, else the platform's
user config folder (`~/.config/costlens` on Linux). A missing default file simply means no
overrides. This module finds and reads the file; `_schema` validates it into the data classes of
`_override_model`. All prices are USD; token prices are per
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

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from costlens._errors import ConfigError
from costlens._paths import prices_file
from costlens.pricing._override_model import HINT, Overrides
from costlens.pricing._schema import parse_overrides

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Overrides", "load_overrides", "prices_path"]  # Overrides: re-exported for `_catalogue`


def prices_path() -> Path:
    """Where the overrides file is read from (it may not exist)."""
    return prices_file()[0]


def load_overrides(path: Path | None = None) -> Overrides | None:
    """Read the overrides file (the configured one when `path` is None); None when there is none.

    A `.json` file holding the same structure (`{"models": [...]}`) is accepted too.
    """
    import hashlib

    explicit = path is not None
    if path is None:
        path, explicit = prices_file()
    if not path.is_file():
        if explicit:
            raise ConfigError(
                f"price overrides file {path} does not exist; create it or unset COSTLENS_PRICES"
            )
        return None
    raw = path.read_bytes()
    text, data = _decode(raw, path)
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
