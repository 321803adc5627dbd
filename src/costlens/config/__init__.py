"""The composition root: builds the process's pipeline (steps, sinks), recorder, store and ledger
from settings, the environment and the config files. Nothing below it imports it.

Environment: `COSTLENS_HOME` (one folder for everything), `COSTLENS_STORE` (store URL),
`COSTLENS_DURABILITY` (async|sync), `COSTLENS_STORE_CONTENT` and `COSTLENS_HASH_USER_IDS` (1/0),
`COSTLENS_BATCH_SIZE` and `COSTLENS_FLUSH_INTERVAL_S` (when the async writer wakes),
`COSTLENS_BUDGETS` (budgets file), `COSTLENS_LEDGER` (ledger URL), `COSTLENS_PRICES` (price overrides).
"""

from __future__ import annotations

from costlens._paths import config_dir, data_dir
from costlens.config._budgets import (
    budget,
    budget_step_from_env,
    budgets_path,
    configure_budgets,
    default_ledger_url,
    flush_alerts,
    get_engine,
    remove_budget,
    reset_budgets,
)
from costlens.config._root import current_pipeline, get_pipeline, set_builder, set_pipeline, update_pipeline
from costlens.config._settings import (
    Settings,
    configure,
    content_chars_from_env,
    default_store_url,
    emit,
    flush,
    get_recorder,
    get_settings,
    hash_user_id,
    record_sink,
    replay_spool,
    shutdown,
)
from costlens.pipeline import Pipeline


def default_pipeline() -> Pipeline:
    """The pipeline the environment asks for: the budgets file's budgets (when there is one) in the
    `budget` slot, and the recorder as the sink."""
    return Pipeline(
        {"budget": budget_step_from_env()}, sinks=[record_sink], content_chars=content_chars_from_env()
    )


set_builder(default_pipeline)

__all__ = [
    "Settings",
    "budget",
    "budget_step_from_env",
    "budgets_path",
    "config_dir",
    "configure",
    "configure_budgets",
    "current_pipeline",
    "data_dir",
    "default_ledger_url",
    "default_pipeline",
    "default_store_url",
    "emit",
    "flush",
    "flush_alerts",
    "get_engine",
    "get_pipeline",
    "get_recorder",
    "get_settings",
    "hash_user_id",
    "record_sink",
    "remove_budget",
    "replay_spool",
    "reset_budgets",
    "set_pipeline",
    "shutdown",
    "update_pipeline",
]
