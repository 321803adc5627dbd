"""costlens: exact cost tracking, budgets, routing and ROI analysis for LLM calls.

`import costlens` is cheap: it loads no price data, opens no file and imports no SDK.
Everything below is resolved on first attribute access.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from costlens._errors import ConfigError, CostlensError

if TYPE_CHECKING:
    from costlens.budgets import Budget, BudgetExceeded, BudgetUnavailable
    from costlens.config import budget, configure, configure_budgets, flush, get_recorder
    from costlens.context import current_tags, tags
    from costlens.instrument import track, untrack
    from costlens.pricing import cost
    from costlens.usage import CallRecord, Cost, Usage

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "BudgetExceeded",
    "BudgetUnavailable",
    "CallRecord",
    "ConfigError",
    "Cost",
    "CostlensError",
    "Usage",
    "__version__",
    "budget",
    "configure",
    "configure_budgets",
    "cost",
    "current_tags",
    "flush",
    "get_recorder",
    "tags",
    "track",
    "untrack",
]

_LAZY = {
    "CallRecord": "costlens.usage",
    "Cost": "costlens.usage",
    "Usage": "costlens.usage",
    "Budget": "costlens.budgets",
    "BudgetExceeded": "costlens.budgets",
    "BudgetUnavailable": "costlens.budgets",
    "budget": "costlens.config",
    "configure": "costlens.config",
    "configure_budgets": "costlens.config",
    "flush": "costlens.config",
    "get_recorder": "costlens.config",
    "tags": "costlens.context",
    "current_tags": "costlens.context",
    "track": "costlens.instrument",
    "untrack": "costlens.instrument",
    "cost": "costlens.pricing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'costlens' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
