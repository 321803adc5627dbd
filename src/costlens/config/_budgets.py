"""The process's budgets: `configure_budgets`, `costlens.budget(...)`, and the budgets file.

The engine in force is the one in the process pipeline's `budget` slot; nothing else holds it.
Budgets come from, in order: `configure_budgets(...)`; else, when the pipeline is first built (the
first tracked call, or the first `costlens.budget(...)`), the budgets file: `$COSTLENS_BUDGETS`
(which must exist when set), else `budgets.toml` in the config folder when it exists (where
`costlens budgets set` writes). A file that cannot be read puts `BrokenBudgets` in the slot: calls
are refused with `BudgetUnavailable` naming the file, the line and the key. The ledger is the file's
`[settings] ledger`, else `$COSTLENS_LEDGER`, else `sqlite:///<data dir>/budgets.db`, so every
process on the machine shares it.

Each engine records the definitions of its budgets in the ledger when it is configured (and marks one
taken out by `remove_budget`), so `costlens budgets status` in another process shows the budgets
defined in code too. A ledger that is down then is warned about; configuring goes on.
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
from typing import TYPE_CHECKING, Any

from costlens._errors import ConfigError
from costlens._paths import budgets_file, data_dir
from costlens.config._root import current_pipeline, get_pipeline, set_pipeline, update_pipeline
from costlens.config._settings import configured_ledger_url
from costlens.pipeline import Step

if TYPE_CHECKING:  # imported where used: a process without budgets never loads costlens.budgets
    from costlens.budgets import (
        Alert,
        AlertSink,
        BrokenBudgets,
        Budget,
        BudgetEngine,
        BudgetStep,
        Ledger,
        Scope,
        Window,
    )

__all__ = [
    "budget",
    "budget_step_from_env",
    "budgets_path",
    "configure_budgets",
    "default_ledger_url",
    "flush_alerts",
    "get_engine",
    "remove_budget",
    "reset_budgets",
]

_lock = threading.RLock()
_atexit_registered = False


def budgets_path() -> Path:
    """`$COSTLENS_BUDGETS`, else `budgets.toml` in the costlens config folder."""
    return budgets_file()[0]


def default_ledger_url() -> str:
    """`configure(ledger=...)`, else `$COSTLENS_LEDGER`, else the SQLite ledger in the data folder."""
    return (
        configured_ledger_url()
        or os.environ.get("COSTLENS_LEDGER")
        or f"sqlite://{data_dir() / 'budgets.db'}"
    )


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
    lease_usd: Decimal | str | int | float | None = None,
    lease_max_age_s: float | None = None,
) -> BudgetEngine:
    """Replace the budgets in force for every tracked client of this process.

    `file` reads a budgets file (budgets, `[[alerts]]` sinks, `[settings]`); `budgets` and `sinks`
    add to it and the other arguments override its settings. `ledger` is a URL (`sqlite:///path`,
    `memory://`) or a `Ledger`. `clock` returns the current UTC time (tests). `lease_usd` turns
    budget leases on (this process admits its calls against slices of each budget of up to that
    much, settled into the ledger every `lease_max_age_s`; see the README). Returns the engine.
    `configure_budgets([])` turns budgets off.
    """
    engine = _build_engine(
        budgets,
        file=file,
        ledger=ledger,
        sinks=sinks,
        clock=clock,
        fail_open=fail_open,
        default_max_output_tokens=default_max_output_tokens,
        cap_output=cap_output,
        reservation_ttl_s=reservation_ttl_s,
        lease_usd=lease_usd,
        lease_max_age_s=lease_max_age_s,
    )
    _install(engine)
    return engine


def _build_engine(
    budgets: Iterable[Budget] | None,
    *,
    file: str | Path | None,
    ledger: Ledger | str | None,
    sinks: Sequence[AlertSink | Callable[[Alert], object]] | None,
    clock: Callable[[], datetime] | None,
    **overrides: Any,
) -> BudgetEngine:
    from costlens.budgets import BudgetConfig, BudgetEngine, load_budgets

    config = load_budgets(file) if file is not None else BudgetConfig()
    settings = replace(config.settings, **{k: v for k, v in overrides.items() if v is not None})
    return BudgetEngine(
        budgets or (),
        ledger=ledger if ledger is not None else config.ledger or default_ledger_url(),
        sinks=[*config.sinks, *(sinks or ())],
        settings=settings,
        clock=clock,
        file_budgets=config.budgets,
        file=str(Path(config.path).expanduser().absolute()) if config.path else None,
    )


def _install(engine: BudgetEngine | None) -> None:
    """Put `engine` in the process pipeline's `budget` slot. A replaced engine is not closed: the
    calls it admitted settle through it when they end."""
    from costlens.budgets import BudgetStep

    with _lock:
        update_pipeline(lambda p: p.with_step("budget", None if engine is None else BudgetStep(engine)))
    _flush_alerts_at_exit()


def _flush_alerts_at_exit() -> None:
    global _atexit_registered
    with _lock:
        if not _atexit_registered:
            atexit.register(flush_alerts, 5.0)
            _atexit_registered = True


def budget_step_from_env() -> BudgetStep | BrokenBudgets | None:
    """The `budget` step the budgets file asks for: None without a file; `BrokenBudgets` (calls
    refused, naming the file, the line and the key) when it cannot be read."""
    path, explicit = budgets_file()
    if not explicit and not path.is_file():
        return None
    from costlens.budgets import BrokenBudgets, BudgetStep

    try:
        if not path.is_file():
            raise ConfigError(f"COSTLENS_BUDGETS names {path}, which does not exist; create it or unset it")
        engine = _build_engine(None, file=path, ledger=None, sinks=None, clock=None)
    except ConfigError as exc:
        return BrokenBudgets(str(path), exc)
    _flush_alerts_at_exit()
    return BudgetStep(engine)


def _engine_in_force() -> BudgetEngine | None:
    return _engine_of(get_pipeline().step("budget"), raise_broken=True)


def _engine_of(step: Step | None, *, raise_broken: bool = False) -> BudgetEngine | None:
    if step is None:
        return None
    from costlens.budgets import BrokenBudgets, BudgetStep

    if isinstance(step, BrokenBudgets) and raise_broken:
        raise step.error
    return step.engine if isinstance(step, BudgetStep) else None


def get_engine() -> BudgetEngine | None:
    """The engine in force, or None when no budgets were configured (and no budgets file exists).
    Raises `ConfigError` when the budgets file cannot be read."""
    return _engine_in_force()


def budget(
    name: str,
    *,
    limit_usd: Decimal | str | int | float,
    window: str | Window = "month",
    timezone: str = "UTC",
    scope: Mapping[str, str | Sequence[str]] | Scope | None = None,
    mode: str = "block",
    downgrade_to: str | None = None,
    thresholds: Sequence[Decimal | int | str] | None = None,
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
    from costlens.budgets import DEFAULT_THRESHOLDS, Budget

    made = Budget(
        name,
        limit_usd=limit_usd,
        window=window,
        timezone=timezone,
        scope=scope,
        mode=mode,
        downgrade_to=downgrade_to,
        thresholds=DEFAULT_THRESHOLDS if thresholds is None else thresholds,
        forecast=forecast,
        unknown_price=unknown_price,
        notify=notify,
    )
    with _lock:
        engine = _engine_in_force() or configure_budgets()
        engine.add(made)
    return made


def remove_budget(name: str) -> bool:
    """Take a budget out of force in this process (its ledger history stays; its definition there is
    marked removed, so `costlens budgets status` stops showing it); False if unknown."""
    engine = _current_engine()
    return engine.remove(name) if engine is not None else False


def flush_alerts(timeout: float | None = None) -> bool:
    """Wait until every alert raised so far is delivered to its sinks; False if `timeout` ran out."""
    engine = _current_engine()
    return True if engine is None else engine.dispatcher.flush(timeout)


def reset_budgets() -> None:
    """Close the engine in force (delivering its queued alerts) and let the process pipeline be built
    afresh from the environment on next use, reading the budgets file again. Calls in flight then
    settle nothing: their reservations expire (tests use this)."""
    engine = _current_engine()
    set_pipeline(None)
    if engine is not None:
        engine.close()


def _current_engine() -> BudgetEngine | None:
    pipeline = current_pipeline()
    return None if pipeline is None else _engine_of(pipeline.step("budget"))
