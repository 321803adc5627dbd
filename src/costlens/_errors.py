"""Errors costlens raises on purpose, and the one place internal failures are reported.

Tracking must never break the user's call: an internal failure is logged, not raised.
Under pytest (or with COSTLENS_STRICT=1) it is raised, so tests see every bug.
"""

from __future__ import annotations

import os

__all__ = [
    "ConfigError",
    "CostlensError",
    "internal_error",
    "late_error",
    "raise_late_error",
    "strict_mode",
]


class CostlensError(Exception):
    """Base class of the errors costlens raises on purpose."""


class ConfigError(CostlensError, ValueError):
    """Bad configuration: the message says what is wrong and how to fix it."""


def strict_mode() -> bool:
    flag = os.environ.get("COSTLENS_STRICT")
    if flag is not None:
        return flag not in ("", "0", "false", "no")
    return "PYTEST_CURRENT_TEST" in os.environ


def internal_error(what: str, exc: BaseException) -> None:
    """Report a failure inside costlens itself; re-raise it in strict mode."""
    if strict_mode():
        raise exc
    _log_failure(what, exc)


def _log_failure(what: str, exc: BaseException) -> None:
    import logging  # here: `import costlens` stays free of the logging package

    logging.getLogger("costlens").error(
        "costlens: %s failed; the call itself was not affected", what, exc_info=exc
    )


#: Failures `late_error` kept in strict mode, for the next flush to raise (a few: the first matters).
_late: list[BaseException] = []


def late_error(what: str, exc: BaseException) -> None:
    """Report a failure inside costlens on a background thread (where raising would stop the thread,
    and no caller would see it): logged; in strict mode also kept, and the next flush raises it."""
    if strict_mode() and len(_late) < 8:
        _late.append(exc)
    _log_failure(what, exc)


def raise_late_error() -> None:
    """In strict mode, raise the first failure `late_error` kept since the last time (then forget them)."""
    if _late and strict_mode():
        first = _late[0]
        _late.clear()
        raise first
