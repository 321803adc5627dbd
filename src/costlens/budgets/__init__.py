"""Budgets and alerts: spending limits that hold exactly under concurrency, and warnings before the overrun.

    import costlens
    costlens.budget("chat-daily", limit_usd="5.00", window="day", timezone="Europe/Berlin",
                    scope={"feature": "chat"}, mode="block")
    client = costlens.track(openai.OpenAI())
    try:
        client.chat.completions.create(...)          # reserved before, settled after
    except costlens.BudgetExceeded as exc:
        ...                                          # refused before any money was spent

Before each tracked call its worst-case cost (prompt tokens + the output bound, at the model's
price) is reserved atomically on every budget it falls in; after the call the real cost is settled.
See `Budget` (definitions), `BudgetEngine` and `BudgetStep` (enforcement, a pipeline step), `Ledger`
(the storage interface: SQLite and memory here), the alert sinks, and `budget_status` (the CLI's
`status`). The process-wide budgets (`configure_budgets`, `costlens.budget`, the budgets file) are
set up by the composition root, `costlens.config`.
"""

from __future__ import annotations

from costlens.budgets._alerts import (
    Alert,
    AlertDispatcher,
    AlertKind,
    AlertSink,
    CallbackSink,
    LoggingSink,
    SlackSink,
    WebhookSink,
)
from costlens.budgets._config import BudgetConfig, load_budgets, parse_budgets
from costlens.budgets._enforce import BudgetEngine, EngineSettings
from costlens.budgets._errors import (
    BudgetExceeded,
    BudgetUnavailable,
    LedgerUnavailable,
    LimitReached,
    UnknownPriceBlocked,
)
from costlens.budgets._lease import LeasedLedger
from costlens.budgets._ledger import (
    BudgetDefinition,
    BudgetKey,
    Ledger,
    MemoryLedger,
    Reservation,
    Spent,
    check_ledger_url,
    open_ledger,
    register_ledger,
)
from costlens.budgets._model import DEFAULT_THRESHOLDS, Budget, Mode, Scope, UnknownPricePolicy
from costlens.budgets._status import BudgetStatus, RecordedBudgets, budget_status, recorded_budgets
from costlens.budgets._step import BrokenBudgets, BudgetStep
from costlens.budgets._window import Window, parse_window, window_bounds

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Alert",
    "AlertDispatcher",
    "AlertKind",
    "AlertSink",
    "BrokenBudgets",
    "Budget",
    "BudgetConfig",
    "BudgetDefinition",
    "BudgetEngine",
    "BudgetExceeded",
    "BudgetKey",
    "BudgetStatus",
    "BudgetStep",
    "BudgetUnavailable",
    "CallbackSink",
    "EngineSettings",
    "LeasedLedger",
    "Ledger",
    "LedgerUnavailable",
    "LimitReached",
    "LoggingSink",
    "MemoryLedger",
    "Mode",
    "RecordedBudgets",
    "Reservation",
    "Scope",
    "SlackSink",
    "Spent",
    "UnknownPriceBlocked",
    "UnknownPricePolicy",
    "WebhookSink",
    "Window",
    "budget_status",
    "check_ledger_url",
    "load_budgets",
    "open_ledger",
    "parse_budgets",
    "parse_window",
    "recorded_budgets",
    "register_ledger",
    "window_bounds",
]
