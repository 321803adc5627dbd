"""Process-wide settings and the recorder: the pipeline's sink for every tracked call.

Environment (read when `configure()` leaves a value as None, or on first use without `configure()`):
`COSTLENS_STORE` (store URL), `COSTLENS_DURABILITY` (async|sync), `COSTLENS_STORE_CONTENT` and
`COSTLENS_HASH_USER_IDS` (1/0, true/false, yes/no, on/off), `COSTLENS_CONTENT_MAX_CHARS` (how much
text of each side a record keeps when content is stored; default 16384), `COSTLENS_BATCH_SIZE` and
`COSTLENS_FLUSH_INTERVAL_S` (when the async writer wakes: default 500 records, 0.5 s),
`COSTLENS_HOME` (data folder; default the platform's user data dir). The default store is
`sqlite:///<data dir>/costlens.db`; the folder is created on the first write, never at import or
configure time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

from costlens._errors import ConfigError, internal_error
from costlens._paths import data_dir, spool_dir
from costlens.pipeline._content import DEFAULT_MAX_CHARS
from costlens.recorder import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL_S,
    Durability,
    Recorder,
    spool_records,
)
from costlens.store import Store, check_store_url, open_store
from costlens.usage import CallRecord

__all__ = [
    "Settings",
    "configure",
    "configured_ledger_url",
    "data_dir",
    "default_store_url",
    "emit",
    "flush",
    "get_recorder",
    "get_settings",
    "hash_user_id",
    "record_sink",
    "replay_spool",
    "shutdown",
]

log = logging.getLogger("costlens")
_T = TypeVar("_T")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True, slots=True)
class Settings:
    """What `configure()` settled on. `store_url` is None when a Store object was passed."""

    store_url: str | None
    durability: Durability
    store_content: bool
    hash_user_ids: bool
    content_max_chars: int = DEFAULT_MAX_CHARS
    ledger_url: str | None = None  # the process's default budget ledger; None: $COSTLENS_LEDGER or SQLite
    # When the async writer wakes: this many records waiting, or this long after its last wake.
    batch_size: int = DEFAULT_BATCH_SIZE
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S

    @property
    def content_chars(self) -> int:
        """What the pipeline keeps of each side's text: 0 unless content is stored."""
        return self.content_max_chars if self.store_content else 0


_lock = threading.RLock()
_state: tuple[Settings, Recorder] | None = None
# Why the environment's settings could not be used (records then go to the spool); None when fine.
_env_error: ConfigError | None = None


def configured_ledger_url() -> str | None:
    """The ledger URL given to `configure(ledger=...)`, if any (builds nothing)."""
    state = _state
    return None if state is None else state[0].ledger_url


def default_store_url() -> str:
    """`COSTLENS_STORE`, else the SQLite file in the data folder."""
    return os.environ.get("COSTLENS_STORE") or f"sqlite://{data_dir() / 'costlens.db'}"


def _env_bool(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: set it to 1 or 0 (or true/false)")


def _durability(value: str | None) -> Durability:
    value = value if value is not None else os.environ.get("COSTLENS_DURABILITY", "async").strip().lower()
    if value not in ("async", "sync"):
        raise ConfigError(
            f"durability {value!r} is not known: use 'async' (batched in the background, the default) "
            "or 'sync' (written before the call returns), in configure() or COSTLENS_DURABILITY"
        )
    return cast(Durability, value)


def configure(
    store: str | Store | None = None,
    *,
    durability: str | None = None,
    store_content: bool | None = None,
    hash_user_ids: bool | None = None,
    content_max_chars: int | None = None,
    ledger: str | None = None,
    batch_size: int | None = None,
    flush_interval_s: float | None = None,
) -> Settings:
    """Replace the process-wide settings and recorder; the old recorder is flushed and closed.

    Every argument left as None comes from the environment (see the module docstring), not from
    an earlier `configure()` call. A store given by URL is owned (closed) by the recorder; a Store
    object stays the caller's to close. `ledger` (a URL: `postgresql://...`, `redis://...`,
    `sqlite:///...`) is the budget ledger used by budgets configured from now on without a ledger
    of their own (`configure_budgets()`, `costlens.budget()`, a budgets file without
    `[settings] ledger`); call it before defining budgets.

    `batch_size` and `flush_interval_s` say when the async writer wakes (as many records waiting,
    or that long since its last wake; 500 and 0.5 s by default): larger values write fewer, larger
    transactions, which costs each call less CPU, at the price of a longer wait before other
    processes see a call and of more calls lost if the process is killed (SIGKILL; a SIGTERM or a
    normal exit flushes).
    """
    settings, backend = _resolve(store, durability, store_content, hash_user_ids, content_max_chars)
    settings = replace(
        settings, batch_size=_batch_size(batch_size), flush_interval_s=_flush_interval(flush_interval_s)
    )
    if ledger is not None:
        from costlens.budgets import check_ledger_url

        check_ledger_url(ledger)
        settings = replace(settings, ledger_url=ledger)
    recorder = Recorder(
        backend,
        durability=settings.durability,
        batch_size=settings.batch_size,
        flush_interval_s=settings.flush_interval_s,
        spool_dir=spool_dir(),
        owns_store=settings.store_url is not None,
    )
    global _state, _env_error
    with _lock:
        old, _state, _env_error = _state, (settings, recorder), None
    if old is not None:
        old[1].close()
    _sync_pipeline(settings)
    return settings


def _sync_pipeline(settings: Settings) -> None:
    """The process's pipeline keeps text only when content is stored: extracting it costs time."""
    from costlens.config._root import current_pipeline, update_pipeline

    pipeline = current_pipeline()
    if pipeline is not None and pipeline.content_chars != settings.content_chars:
        update_pipeline(lambda p: p.with_content(settings.content_chars))


def content_chars_from_env() -> int:
    """The text the pipeline keeps per side, from the settings in force or else the environment
    (0 when the environment's values are invalid: the record sink reports that error)."""
    state = _state
    if state is not None:
        return state[0].content_chars
    try:
        return _content_max(None) if _env_bool("COSTLENS_STORE_CONTENT") else 0
    except ConfigError:
        return 0


def _from_env(name: str, parse: Callable[[str], _T], default: _T, what: str) -> _T:
    """The environment variable `name`, parsed; `default` when it is unset or blank."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {what}") from None


def _content_max(value: int | None) -> int:
    if value is None:
        value = _from_env(
            "COSTLENS_CONTENT_MAX_CHARS", int, DEFAULT_MAX_CHARS, "a whole number of characters, e.g. 16384"
        )
    if isinstance(value, bool) or value <= 0:
        raise ConfigError(f"content_max_chars must be a positive number of characters, got {value!r}")
    return value


def _batch_size(value: int | None) -> int:
    if value is None:
        what = f"a whole number (default {DEFAULT_BATCH_SIZE})"
        value = _from_env("COSTLENS_BATCH_SIZE", int, DEFAULT_BATCH_SIZE, what)
    if type(value) is not int or not 1 <= value <= MAX_BATCH_SIZE:
        raise ConfigError(
            f"batch_size must be a whole number of records from 1 to {MAX_BATCH_SIZE:,}, got {value!r} "
            "(in configure() or COSTLENS_BATCH_SIZE)"
        )
    return value


def _flush_interval(value: float | None) -> float:
    if value is None:
        what = f"a number of seconds (default {DEFAULT_FLUSH_INTERVAL_S:g})"
        value = _from_env("COSTLENS_FLUSH_INTERVAL_S", float, DEFAULT_FLUSH_INTERVAL_S, what)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_FLUSH_INTERVAL_S:
        raise ConfigError(
            f"flush_interval_s must be a number of seconds above 0 and at most {MAX_FLUSH_INTERVAL_S:g}, "
            f"got {value!r} (in configure() or COSTLENS_FLUSH_INTERVAL_S)"
        )
    return float(value)


#: Bounds of the writer's wake settings. The queue holds 10,000 records and callers start writing
#: batches themselves once four batches wait (a starved writer, `costlens.recorder`): that must
#: come before the queue is full. An interval of minutes would leave that much unwritten, unseen by
#: other processes and lost to a kill.
MAX_BATCH_SIZE = 2_500
MAX_FLUSH_INTERVAL_S = 60.0


def _resolve(
    store: str | Store | None,
    durability: str | None,
    content: bool | None,
    hash_ids: bool | None,
    content_max: int | None,
) -> tuple[Settings, Store]:
    if store is None or isinstance(store, str):
        url = store if store is not None else default_store_url()
        try:
            check_store_url(url)
        except ConfigError as exc:
            if store is None and os.environ.get("COSTLENS_STORE"):
                raise ConfigError(f"COSTLENS_STORE: {exc}") from None
            raise
        backend = None
    elif isinstance(store, Store):
        url, backend = None, store
    else:
        raise ConfigError(f"configure(store=...) takes a store URL or a Store, got {type(store).__name__}")
    settings = Settings(
        store_url=url,
        durability=_durability(durability),
        store_content=_env_bool("COSTLENS_STORE_CONTENT") if content is None else bool(content),
        hash_user_ids=_env_bool("COSTLENS_HASH_USER_IDS") if hash_ids is None else bool(hash_ids),
        content_max_chars=_content_max(content_max),
    )
    return settings, backend if backend is not None else open_store(cast(str, url))


def _current() -> tuple[Settings, Recorder]:
    state = _state
    if state is None:
        with _lock:
            if _state is None:
                configure()
            state = _state
    assert state is not None
    return state


def get_recorder() -> Recorder:
    """The process-wide recorder, configured from the environment on first use."""
    return _current()[1]


def get_settings() -> Settings:
    return _current()[0]


def flush(timeout: float | None = None) -> bool:
    """Wait until every call recorded so far is in the store. False if `timeout` ran out, if records
    were lost, or if the environment's settings are invalid (records then wait in the spool)."""
    state = _state
    if state is None:
        return _env_error is None
    return state[1].flush(timeout) and _env_error is None


def replay_spool() -> int:
    """Re-append records spooled while the store was failing; returns how many were read."""
    return get_recorder().replay_spool()


def shutdown() -> None:
    """Flush and close the process-wide recorder; the next use configures afresh from the environment."""
    global _state
    with _lock:
        old, _state = _state, None
    if old is not None:
        old[1].close()


def hash_user_id(user: str) -> str:
    """A stable pseudonym: the first 16 hex digits of sha256 (unsalted, so it joins across installs)."""
    return hashlib.sha256(user.encode()).hexdigest()[:16]


class _RecordSink:
    """The pipeline's sink (`record_sink`): applies the privacy settings, then hands the record to the
    recorder. Never raises (outside strict mode).

    When the environment's settings are invalid (a bad `COSTLENS_STORE` or `COSTLENS_DURABILITY`),
    the record goes to the spool and the error is logged once: a record never goes nowhere.
    """

    __slots__ = ()

    def __call__(self, record: CallRecord) -> None:
        try:
            state = _state or _current()
        except ConfigError as exc:
            _spool_unconfigured(record, exc)
            return
        try:
            settings = state[0]
            if record.content is not None and not settings.store_content:
                record.content = None
            if settings.hash_user_ids and "user" in record.tags:
                record.tags = {**record.tags, "user": hash_user_id(record.tags["user"])}
            state[1].submit(record)
        except Exception as exc:
            internal_error("recording an LLM call", exc)

    def defer(self, ended: tuple[Any, ...]) -> None:
        """A call's facts whose record the recorder's writer thread builds (see
        `costlens.pipeline`); built here at once when user ids are hashed or settings are invalid."""
        state = _state
        if state is None or state[0].hash_user_ids:
            self(ended[0](ended))
            return
        state[1].defer(ended)


#: The pipeline's sink: every tracked call's record goes through it to the recorder.
record_sink = _RecordSink()

#: The name used before the pipeline existed.
emit = record_sink


def _spool_unconfigured(record: CallRecord, error: ConfigError) -> None:
    global _env_error
    first = _env_error is None
    _env_error = error
    record.content = None  # privacy settings are unknown: keep no text
    try:
        path = spool_records([record], spool_dir())
    except Exception as exc:
        internal_error(f"spooling a call record while costlens is misconfigured ({error})", exc)
        return
    if first:
        log.error(
            "costlens: cannot record calls: %s. Records are kept in %s until it is fixed "
            "(then call costlens.config.replay_spool())",
            error,
            path.parent,
        )
