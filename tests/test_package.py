"""The package surface: `__all__` pinned, and `import costlens` does no work."""

from __future__ import annotations

import subprocess
import sys

import pytest

import costlens

EXPECTED_ALL = {
    "Budget",
    "BudgetExceeded",
    "BudgetUnavailable",
    "budget",
    "CallRecord",
    "ConfigError",
    "CostlensError",
    "Cost",
    "Usage",
    "__version__",
    "configure",
    "configure_budgets",
    "cost",
    "current_tags",
    "flush",
    "get_recorder",
    "tags",
    "track",
    "untrack",
}


def test_all_is_pinned_and_resolvable() -> None:
    assert set(costlens.__all__) == EXPECTED_ALL
    for name in costlens.__all__:
        assert getattr(costlens, name) is not None


def test_import_loads_no_sdk_no_prices_no_cli() -> None:
    code = (
        "import sys, costlens\n"
        "heavy = {'openai', 'anthropic', 'genai_prices', 'typer', 'rich', 'sqlite3', 'bpe_openai'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_is_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        costlens.no_such_thing  # noqa: B018
