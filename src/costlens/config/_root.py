"""The process's pipeline: one swappable object, built from the environment on first use.

Everything process-wide about a call's life is in it (the steps in their slots, the sinks), so a
test or an application can build its own `Pipeline` and `set_pipeline()` it, or leave the process's
alone and drive a pipeline of its own. A change builds a new pipeline and swaps it in one assignment:
calls in flight end on the pipeline they started on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from costlens.pipeline import Pipeline

__all__ = ["current_pipeline", "get_pipeline", "set_pipeline", "update_pipeline"]

_lock = threading.RLock()
_pipeline: Pipeline | None = None


def get_pipeline() -> Pipeline:
    """The process's pipeline; on first use built from the environment: the budgets file (when
    there is one) in the `budget` slot, and the recorder as the sink."""
    pipeline = _pipeline
    return pipeline if pipeline is not None else _build()


def current_pipeline() -> Pipeline | None:
    """The process's pipeline if one was built (builds nothing)."""
    return _pipeline


def set_pipeline(pipeline: Pipeline | None) -> Pipeline | None:
    """Use `pipeline` for every tracked call from now on (None: build afresh from the environment
    on next use); returns the one it replaces."""
    global _pipeline
    with _lock:
        old, _pipeline = _pipeline, pipeline
    return old


def update_pipeline(change: Callable[[Pipeline], Pipeline]) -> Pipeline:
    """Swap in `change(current pipeline)`, atomically with respect to other updates."""
    global _pipeline
    with _lock:
        new = _pipeline = change(get_pipeline())
    return new


def _empty() -> Pipeline:
    return Pipeline()


# How the process's pipeline is built on first use; `costlens.config` installs the real one.
_builder: list[Callable[[], Pipeline]] = [_empty]


def set_builder(build: Callable[[], Pipeline]) -> None:
    """How `get_pipeline()` builds the process's pipeline when there is none."""
    _builder[0] = build


def _build() -> Pipeline:
    global _pipeline
    with _lock:
        if _pipeline is None:
            _pipeline = _builder[0]()
        return _pipeline
