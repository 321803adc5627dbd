"""The process-wide budget engine: `configure_budgets`, `costlens.budget(...)`, and the budgets file.

Budgets come from, in order: `configure_budgets(...)`; else, on the first tracked call or the first
`costlens.budget(...)`, the budgets file: `$COSTLENS_BUDGETS` (which must exist when set), else
`<data dir>/budgets.toml` when it exists (where `costlens budgets set` writes). The ledger is the
file's `[settings] ledger`, else `$COSTLENS_LEDGER`, else `sqlite:///<data dir>/budgets.db`, so every
process on the machine shares it.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from costlens._errors import ConfigError
from costlens.budgets._alerts import Alert, AlertSink
from costlens.budgets._config import BudgetConfig, load_budgets
from costlens.budgets._enforce import BudgetEngine
from costlens.budgets._ledger import Ledger
from costlens.budgets._model import DEFAULT_THRESHOLDS, Budget, Scope
from costlens.budgets._window import Window
from costlens.instrument._core import set_budget_gate

__all__ = [
    "budget",
    "budgets_path",
    "configure_budgets",
    "default_ledger_url",
    "flush_alerts",
    "get_engine",
    "load_env_budgets",
    "remove_budget",
    "reset_budgets",
]

_lock = threading.RLock()
_engine: BudgetEngine | None = None
_atexit_registered = False


def budgets_path() -> Path:
    """`$COSTLENS_BUDGETS`, else `budgets.toml` in the costlens data folder."""
    from costlens.config import data_dir

    explicit = os.environ.get("COSTLENS_BUDGETS")
    return Path(explicit).expanduser().absolute() if explicit else data_dir() / "budgets.toml"


def default_ledger_url() -> str:
    """`$COSTLENS_LEDGER`, else the SQLite ledger in the costlens data folder."""
    from costlens.config import data_dir

    return os.environ.get("COSTLENS_LEDGER") or f"sqlite://{data_dir() / 'budgets.db'}"


def configure_budgets(
    budgets: Iterable[Budget] | None = None,
    *,
    file: str | Path | None = None,
    ledger: Ledger | str | None = None,
    sinks: Sequence[AlertSink | Callable[[Alert], object]] | None = None,
    fail_open: bool | None = None,
    default_max_output_tokens: int | None = None,
    cap_output: bool | None = None,
    reservation_ttl_s: float | None = None,
    clock: Callable[[], datetime] | None = None,
) -> BudgetEngine:
    """Replace the budgets in force for every tracked client of this process.

    `file` reads a budgets file (budgets, `[[alerts]]` sinks, `[settings]`); `budgets` and `sinks`
    add to it and the other arguments override its settings. `ledger` is a URL (`sqlite:///path`,
    `memory://`) or a `Ledger`. `clock` returns the current UTC time (tests). Returns the engine.
    `configure_budgets([])` turns budgets off.
    """
    config = load_budgets(file) if file is not None else BudgetConfig()
    overrides: dict[str, Any] = {
        "fail_open": fail_open,
        "default_max_output_tokens": default_max_output_tokens,
        "cap_output": cap_output,
        "reservation_ttl_s": reservation_ttl_s,
    }
    settings = replace(config.settings, **{k: v for k, v in overrides.items() if v is not None})
    engine = BudgetEngine(
        [*config.budgets, *(budgets or ())],
        ledger=ledger if ledger is not None else config.ledger or default_ledger_url(),
        sinks=[*config.sinks, *(sinks or ())],
        settings=settings,
        clock=clock,
    )
    _install(engine)
    return engine


def _install(engine: BudgetEngine | None, *, env_read: bool = True) -> None:
    global _engine, _atexit_registered
    with _lock:
        old, _engine = _engine, engine
        set_budget_gate(engine, env_read=env_read)
        if not _atexit_registered:
            atexit.register(flush_alerts, 5.0)
            _atexit_registered = True
    if old is not None and old is not engine and engine is None:
        old.close()  # reset_budgets(): release its files and deliver its alerts
    # A replaced engine is not closed: calls it admitted settle through it when they end.


def load_env_budgets() -> BudgetEngine | None:
    """Load the budgets file, unless budgets were configured already (the first tracked call does this)."""
    with _lock:
        if _engine is not None:
            return _engine
        path = budgets_path()
        if os.environ.get("COSTLENS_BUDGETS") and not path.is_file():
            raise ConfigError(f"COSTLENS_BUDGETS names {path}, which does not exist; create it or unset it")
        if path.is_file():
            return configure_budgets(file=path)
        set_budget_gate(None)
        return None


def get_engine() -> BudgetEngine | None:
    """The engine in force, or None when no budgets were configured (and no budgets file exists)."""
    return _engine if _engine is not None else load_env_budgets()


def budget(
    name: str,
    *,
    limit_usd: Decimal | str | int | float,
    window: str | Window = "month",
    timezone: str = "UTC",
    scope: Mapping[str, str | Sequence[str]] | Scope | None = None,
    mode: str = "block",
    downgrade_to: str | None = None,
    thresholds: Sequence[Decimal | int | str] = DEFAULT_THRESHOLDS,
    forecast: bool = True,
    unknown_price: str | None = None,
    notify: Sequence[str] | None = None,
) -> Budget:
    """Define a budget and put it in force now (replacing one of the same name); returns it.

        costlens.budget("chat-daily", limit_usd="5.00", window="day", timezone="Europe/Berlin",
                        scope={"feature": "chat"}, mode="downgrade", downgrade_to="gpt-4o-mini")

    See `costlens.Budget` for the arguments. Uses the engine in force, or starts one from the
    budgets file / defaults (ledger: `sqlite:///<data dir>/budgets.db`).
    """
    made = Budget(
        name,
        limit_usd=limit_usd,
        window=window,
        timezone=timezone,
        scope=scope,
        mode=mode,
        downgrade_to=downgrade_to,
        thresholds=thresholds,
        forecast=forecast,
        unknown_price=unknown_price,
        notify=notify,
    )
    with _lock:
        engine = get_engine() or configure_budgets()
        engine.add(made)
    return made


def remove_budget(name: str) -> bool:
    """Take a budget out of force in this process (its ledger history stays); False if unknown."""
    engine = _engine
    return engine.remove(name) if engine is not None else False


def flush_alerts(timeout: float | None = None) -> bool:
    """Wait until every alert raised so far is delivered to its sinks; False if `timeout` ran out."""
    engine = _engine
    return True if engine is None else engine.dispatcher.flush(timeout)


def reset_budgets() -> None:
    """Close the engine (delivering its queued alerts); the next tracked call reads the budgets file
    again. Calls in flight then settle nothing: their reservations expire (tests use this)."""
    _install(None, env_read=False)
