"""Exact prices for LLM calls: genai-prices' bundled data, overridden by a user TOML file.

`cost(usage, provider=, model=)` returns a `Cost` in `Decimal` USD whose parts (`input`,
`cache_read`, `cache_write`, `output`, and `reasoning` / `request` where a model prices them
separately) sum exactly to the total; an unknown model gives `Cost(total=None, known=False)`,
never $0, and one log warning naming the model and the overrides file.

Importing this package is cheap: genai-prices' data is loaded on the first price lookup. The
overrides schema is documented in `costlens.pricing._overrides`; `prices_path()` says where the
file is read from: `$COSTLENS_PRICES`, else `prices.toml` in the config folder (`$COSTLENS_HOME`,
else the platform's user config folder), as `costlens._paths.prices_file()` decides.
"""

from __future__ import annotations

from costlens.pricing._catalogue import (
    PriceCatalogue,
    cost,
    estimate_max_cost,
    get_catalogue,
    reload_catalogue,
    set_catalogue,
    update_prices,
)
from costlens.pricing._describe import describe_price
from costlens.pricing._model import LongContextTier, ModelPrice, Rates
from costlens.pricing._overrides import prices_path

__all__ = [
    "LongContextTier",
    "ModelPrice",
    "PriceCatalogue",
    "Rates",
    "cost",
    "describe_price",
    "estimate_max_cost",
    "get_catalogue",
    "prices_path",
    "reload_catalogue",
    "set_catalogue",
    "update_prices",
]
