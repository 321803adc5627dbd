"""API keys for `costlens serve`: created once, shown once, stored hashed, scoped, revocable.

A key is `clk_` followed by 32 URL-safe random characters. The keys database (SQLite: the server's
`keys_db`, else `keys.db` in the costlens data folder) keeps, per key, an id, a name, the first 8
characters (`prefix`, for display and lookup), the SHA-256 of the whole key, its scopes, when it was
created and revoked, and an optional budget. The key itself is never written anywhere.

Scopes: `read` (the REST API's GETs and the dashboard), `gateway` (the `/v1` gateway and the OTLP
receiver), `admin` (everything, including the REST API's writes). A key's budget is a costlens
`Budget` scoped `{"api_key": "<id>"}` (the gateway tags each call with `api_key=<id>`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from costlens._errors import ConfigError

if TYPE_CHECKING:
    from costlens.budgets import Budget

__all__ = [
    "KEY_PREFIX",
    "SCOPES",
    "ApiKey",
    "KeyStore",
    "allows",
    "default_keys_path",
    "ensure_key_budget",
    "hash_key",
    "key_budget",
    "looks_like_key",
]

KEY_PREFIX = "clk_"
SCOPES = ("read", "gateway", "admin")
#: Windows a key's budget may use (those of `costlens.Budget` that need no other setting).
BUDGET_WINDOWS = ("day", "week", "month", "lifetime")
_KEY = re.compile(r"^clk_[A-Za-z0-9_\-]{32}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_sha256 TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    budget_usd TEXT,
    budget_window TEXT
);
CREATE INDEX IF NOT EXISTS api_keys_prefix ON api_keys (prefix);
"""


def default_keys_path() -> Path:
    """`keys.db` in the costlens data folder."""
    from costlens._paths import data_dir

    return data_dir() / "keys.db"


def hash_key(key: str) -> str:
    """The SHA-256 of a key, hex: all that is stored of it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(text: str) -> bool:
    """Whether `text` is shaped like a costlens API key (`clk_` + 32 URL-safe characters)."""
    return bool(_KEY.match(text))


def allows(scopes: Sequence[str], needed: str) -> bool:
    """Whether a key with `scopes` may do what needs `needed`: admin implies every scope."""
    return "admin" in scopes or needed in scopes


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored (never the key itself). `budget`: (limit in USD, window) or None."""

    id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created: datetime
    revoked: datetime | None = None
    budget: tuple[Decimal, str] | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None

    @property
    def budget_name(self) -> str:
        return f"api-key-{self.id}"

    def as_row(self) -> dict[str, object]:
        """A flat row for `costlens keys list` (json, csv, table)."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": list(self.scopes),
            "created": self.created,
            "revoked": self.revoked,
            "budget_usd": None if self.budget is None else self.budget[0],
            "budget_window": None if self.budget is None else self.budget[1],
        }


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _of(row: sqlite3.Row) -> ApiKey:
    budget = None
    if row["budget_usd"] is not None:
        budget = (Decimal(row["budget_usd"]), str(row["budget_window"] or "month"))
    created = _when(row["created_at"])
    assert created is not None
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=tuple(s for s in str(row["scopes"]).split(",") if s),
        created=created,
        revoked=_when(row["revoked_at"]),
        budget=budget,
    )


def check_budget(limit: str | Decimal | None, window: str) -> tuple[Decimal, str] | None:
    """A key's budget from flag values; ConfigError when it is not one."""
    if limit is None:
        return None
    try:
        amount = limit if isinstance(limit, Decimal) else Decimal(str(limit).strip())
    except InvalidOperation:
        raise ConfigError(f"budget {limit!r} is not an amount in USD: give one such as 5 or 12.50") from None
    if not amount.is_finite() or amount <= 0:
        raise ConfigError(f"budget {limit!r} must be a positive amount in USD")
    if window not in BUDGET_WINDOWS:
        raise ConfigError(f"budget window {window!r}: use one of {', '.join(BUDGET_WINDOWS)}")
    return amount, window


class KeyStore:
    """The keys database. Every method opens its own connection: safe from several threads and
    processes (the CLI creates and revokes keys while the server reads them)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser().absolute() if path is not None else default_keys_path()
        self._ready = False
        self._lock = threading.Lock()

    @contextmanager
    def _connect(self, *, create: bool) -> Iterator[sqlite3.Connection | None]:
        if not create and not self.path.is_file():
            yield None
            return
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10.0)
        try:
            connection.row_factory = sqlite3.Row
            with self._lock:
                if not self._ready:
                    connection.executescript(_SCHEMA)
                    self._ready = True
            with connection:
                yield connection
        finally:
            connection.close()

    def create(
        self,
        name: str,
        scopes: Sequence[str],
        *,
        budget_usd: str | Decimal | None = None,
        window: str = "month",
    ) -> tuple[str, ApiKey]:
        """A new key: (the key, to show once; what is stored). ConfigError on a bad name, scope or budget."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ConfigError("a key needs a name of 1 to 200 characters, e.g. --name ci-bot")
        chosen = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
        bad = [s for s in chosen if s not in SCOPES]
        if bad or not chosen:
            raise ConfigError(f"unknown scope {bad[0] if bad else ''!r}: use {', '.join(SCOPES)}")
        budget = check_budget(budget_usd, window)
        key = KEY_PREFIX + secrets.token_urlsafe(24)  # 24 bytes: 32 URL-safe characters
        made = ApiKey(
            id="key_" + secrets.token_hex(6),
            name=name,
            prefix=key[:8],
            scopes=chosen,
            created=datetime.now(UTC).replace(microsecond=0),
            budget=budget,
        )
        with self._connect(create=True) as db:
            assert db is not None
            db.execute(
                "INSERT INTO api_keys (id, name, prefix, key_sha256, scopes, created_at, budget_usd, "
                "budget_window) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    made.id, made.name, made.prefix, hash_key(key), ",".join(made.scopes),
                    made.created.isoformat(), None if budget is None else format(budget[0], "f"),
                    None if budget is None else budget[1],
                ),
            )  # fmt: skip
        return key, made

    def list(self) -> list[ApiKey]:
        """Every key, oldest first (revoked ones included)."""
        with self._connect(create=False) as db:
            if db is None:
                return []
            rows = db.execute("SELECT * FROM api_keys ORDER BY created_at, id").fetchall()
        return [_of(row) for row in rows]

    def get(self, key_id: str) -> ApiKey | None:
        with self._connect(create=False) as db:
            if db is None:
                return None
            row = db.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        return None if row is None else _of(row)

    def revoke(self, key_id: str) -> ApiKey | None:
        """Mark a key revoked (from now on it is refused); None if there is no such key."""
        now = datetime.now(UTC).replace(microsecond=0).isoformat()
        with self._connect(create=False) as db:
            if db is None:
                return None
            db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, key_id)
            )
        return self.get(key_id)

    def verify(self, key: str) -> ApiKey | None:
        """The stored key matching `key` (revoked or not), or None. Candidates are found by prefix;
        their hashes are compared in constant time."""
        if not looks_like_key(key):
            return None
        digest = hash_key(key)
        with self._connect(create=False) as db:
            if db is None:
                return None
            rows = db.execute("SELECT * FROM api_keys WHERE prefix = ?", (key[:8],)).fetchall()
        found = None
        for row in rows:
            if hmac.compare_digest(str(row["key_sha256"]), digest):
                found = row
        return None if found is None else _of(found)


def key_budget(key: ApiKey) -> Budget | None:
    """The costlens Budget of a key with a budget: scoped to the calls tagged `api_key=<id>`."""
    if key.budget is None:
        return None
    from costlens.budgets import Budget

    limit, window = key.budget
    return Budget(key.budget_name, limit_usd=limit, window=window, scope={"api_key": key.id}, mode="block")


def ensure_key_budget(key: ApiKey) -> Any:
    """Put a key's budget in force in the process budget engine (unless it already is, as defined);
    take it out for a revoked key. Returns the Budget in force, or None."""
    from costlens.config import budget, get_engine, remove_budget

    wanted = key_budget(key)
    engine = get_engine()
    current = engine.get(key.budget_name) if engine is not None else None
    if wanted is None or not key.active:
        if current is not None:
            remove_budget(key.budget_name)
        return None
    if current is not None and current == wanted:
        return current
    return budget(
        wanted.name,
        limit_usd=wanted.limit_usd,
        window=wanted.window.spec,
        scope={"api_key": key.id},
        mode="block",
    )
