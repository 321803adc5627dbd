"""What the ledger backends (SQLite, PostgreSQL, Redis) share beyond the protocol in `_ledger`:
argument checks, the once-per-key warning about differing limits, definitions as rows, and URLs
and failure messages without the password."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from costlens.budgets._errors import LedgerUnavailable
from costlens.budgets._ledger import BudgetDefinition, BudgetKey

__all__ = [
    "DefinitionRow",
    "check_settle",
    "definition_rows",
    "make_definition",
    "read_definitions",
    "redact_url",
    "unavailable",
    "warn_limits",
]

log = logging.getLogger("costlens")

#: (name, source, origin, definition as JSON, defined_us, removed_us): a definition as stored.
DefinitionRow = tuple[str, str, str, str, int, int | None]

# (ledger, key) pairs this process has warned about: the warning is given once per ledger and key.
_warned_limits: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def check_settle(actual_nanousd: int) -> None:
    if actual_nanousd < 0:
        raise ValueError(f"a settled cost cannot be negative ({actual_nanousd} nano-USD)")


def warn_limits(ledger: str, changed: Iterable[tuple[BudgetKey, int | None]]) -> None:
    """Warn (once per ledger and key in this process) about a limit that differs from the one last
    used on this ledger (`None`: none was recorded yet, no warning): two processes, or two budgets
    files, disagree on a budget."""
    for key, stored in changed:
        if stored is None:
            continue
        with _warned_lock:
            if (ledger, key.id) in _warned_limits:
                continue
            _warned_limits.add((ledger, key.id))
        log.warning(
            "costlens: budget key %r has limit %s nano-USD here, but %s nano-USD was last used with "
            "the ledger %s (another process or budgets file defines this budget differently, or its "
            "limit was changed); each reserve is checked against the limit of the process making it. "
            "The ledger now records %s.",
            key.id,
            key.limit_nanousd,
            stored,
            ledger,
            key.limit_nanousd,
        )


def definition_rows(definitions: Sequence[BudgetDefinition]) -> list[DefinitionRow]:
    """The rows to store, by name (so concurrent writers take row locks in one order)."""
    return [
        (d.name, d.source, d.origin, json.dumps(d.definition, sort_keys=True), d.defined_us, d.removed_us)
        for d in sorted(definitions, key=lambda d: d.name)
    ]


def make_definition(
    name: str, source: Any, origin: Any, definition: Any, defined_us: Any, removed_us: Any
) -> BudgetDefinition | None:
    """A stored definition, or None if costlens did not write it (it is then left out)."""
    if not isinstance(definition, dict) or source not in ("file", "code"):
        return None
    removed = None if removed_us is None else int(removed_us)
    return BudgetDefinition(name, source, str(origin), definition, int(defined_us), removed)


def read_definitions(rows: Iterable[Sequence[Any]]) -> list[BudgetDefinition]:
    """Definitions from stored rows (`DefinitionRow`s), leaving out any costlens did not write."""
    out = []
    for name, source, origin, text, defined_us, removed_us in rows:
        try:
            found = make_definition(name, source, origin, json.loads(text), defined_us, removed_us)
        except (ValueError, TypeError):
            continue
        if found is not None:
            out.append(found)
    return out


def redact_url(url: str) -> str:
    """The URL without its password (user and everything else kept)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def unavailable(what: str, password: str, exc: BaseException) -> LedgerUnavailable:
    """`LedgerUnavailable` for a failure of the server `what` names, never showing the password."""
    text = str(exc)
    if password:
        text = text.replace(password, "***")
    return LedgerUnavailable(f"{what}: {type(exc).__name__}: {text}")
