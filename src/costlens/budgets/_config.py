"""The budgets file (TOML): budgets, alert sinks and settings, validated with errors that name the line.

    [settings]                       # optional; every key optional
    ledger = "sqlite:///var/lib/app/budgets.db"
    fail_open = false
    default_max_output_tokens = 4096
    cap_output = true
    reservation_ttl_s = 3600
    lease_usd = "0.50"               # off by default: see "Budget leases" in the README
    lease_max_age_s = 1

    [[alerts]]                       # optional; type = "log" | "webhook" | "slack"
    type = "slack"
    name = "ops"
    url = "https://hooks.slack.com/services/..."

    [[budgets]]
    name = "conversation-daily"
    limit_usd = "5.00"
    window = "day"                   # day | week | month | "<N>h" | "<N>d" | lifetime
    timezone = "Europe/Berlin"
    scope = { feature = "conversation" }
    mode = "downgrade"               # block | downgrade | warn
    downgrade_to = "gpt-4o-mini"
    thresholds = [50, 80, 100]

Every problem raises `ConfigError` naming the file, the line and the key, and how to fix it.
`costlens budgets set/remove` edit one `[[budgets]]` block and leave the rest of the file as it was.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from costlens._errors import ConfigError
from costlens.budgets._alerts import AlertSink, LoggingSink, SlackSink, WebhookSink
from costlens.budgets._enforce import EngineSettings
from costlens.budgets._model import Budget

__all__ = [
    "BudgetConfig",
    "load_budgets",
    "parse_budgets",
    "remove_budget_text",
    "render_budget",
    "upsert_budget_text",
]

HINT = "see the Budgets section of the README for the file format"
_BUDGET_KEYS = {
    "name": True, "limit_usd": True, "window": False, "timezone": False, "scope": False, "mode": False,
    "downgrade_to": False, "thresholds": False, "forecast": False, "unknown_price": False, "notify": False,
}  # fmt: skip
_SETTINGS: dict[str, type | tuple[type, ...]] = {
    "ledger": str, "fail_open": bool, "default_max_output_tokens": int, "cap_output": bool,
    "reservation_ttl_s": (int, Decimal), "lease_usd": (str, int, Decimal), "lease_max_age_s": (int, Decimal),
}  # fmt: skip
_SINK_KEYS = {
    "log": {"type", "name", "logger", "level"},
    "webhook": {"type", "name", "url", "timeout_s", "retries", "backoff_s", "headers"},
    "slack": {"type", "name", "url", "timeout_s", "retries", "backoff_s", "headers"},
}
_HEADER = re.compile(r"^\s*\[")


@dataclass
class BudgetConfig:
    """What a budgets file holds."""

    budgets: list[Budget] = field(default_factory=list)
    sinks: list[AlertSink] = field(default_factory=list)
    settings: EngineSettings = field(default_factory=EngineSettings)
    ledger: str | None = None
    path: str = ""


def load_budgets(path: str | Path) -> BudgetConfig:
    """Read and validate a budgets file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read budgets file {path}: {exc}") from exc
    return parse_budgets(text, str(path))


def parse_budgets(text: str, path: str = "<budgets>") -> BudgetConfig:
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        where = f", line {found.group(1)}" if found else ""
        raise ConfigError(
            f"invalid TOML in budgets file {path}{where}: {exc}; fix the syntax there ({HINT})"
        ) from None
    lines = text.splitlines()
    unknown = sorted(set(data) - {"version", "settings", "alerts", "budgets"})
    if unknown:
        where = _where(lines, 0, len(lines), unknown[0])
        raise ConfigError(
            f"budgets file {path}{where}: unknown top-level key {unknown[0]!r}; "
            f"use [settings], [[alerts]] and [[budgets]] ({HINT})"
        )
    if data.get("version", 1) != 1:
        raise ConfigError(f"budgets file {path}: unsupported version {data['version']!r}; use 1")
    config = BudgetConfig(path=path)
    config.settings, config.ledger = _settings(data.get("settings", {}), lines, path)
    config.sinks = [_sink(t, i, lines, path) for i, t in enumerate(_tables(data, "alerts", path))]
    names: set[str] = set()
    for i, table in enumerate(_tables(data, "budgets", path)):
        budget = _budget(table, i, lines, path)
        if budget.name in names:
            start, _ = _block(lines, "budgets", i)
            raise ConfigError(
                f"budgets file {path}, line {start + 1}: budget {budget.name!r} is defined twice; keep one"
            )
        names.add(budget.name)
        config.budgets.append(budget)
    sink_names = {s.name for s in config.sinks if s.name}
    for i, budget in enumerate(config.budgets):
        missing = sorted(set(budget.notify or ()) - sink_names)
        if missing:
            raise _error(path, lines, "budgets", i, "notify", f"no [[alerts]] table is named {missing[0]!r}")
    return config


def _tables(data: Mapping[str, Any], name: str, path: str) -> list[dict[str, Any]]:
    tables = data.get(name, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"budgets file {path}: '{name}' must be an array of tables ([[{name}]]) ({HINT})")
    return tables


def _block(lines: list[str], name: str, index: int) -> tuple[int, int]:
    """Line range [start, end) of the index-th `[[name]]` table (with its sub-tables)."""
    header = re.compile(rf"^\s*\[\[\s*{name}\s*\]\]")
    starts = [i for i, line in enumerate(lines) if header.match(line)]
    if index >= len(starts):
        return len(lines), len(lines)
    start = starts[index]
    sub = re.compile(rf"^\s*\[\s*{name}\s*\.")
    end = next(
        (i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i]) and not sub.match(lines[i])),
        len(lines),
    )
    return start, end


def _where(lines: list[str], start: int, end: int, key: str | None) -> str:
    """', line N' of `key = ` (or of `[... .key]`) within lines [start, end); else of the table header."""
    if key is not None:
        pattern = re.compile(rf"^\s*(?:{re.escape(key)}\s*=|\[[^\]]*\.\s*{re.escape(key)}\s*\])")
        for i in range(start, min(end, len(lines))):
            if pattern.match(lines[i]):
                return f", line {i + 1}"
    return f", line {start + 1}" if start < len(lines) else ""


def _error(path: str, lines: list[str], table: str, index: int, key: str | None, problem: str) -> ConfigError:
    start, end = _block(lines, table, index)
    where = _where(lines, start, end, key)
    what = f"[[{table}]] #{index + 1}" + (f", key '{key}'" if key else "")
    return ConfigError(f"budgets file {path}{where} ({what}): {problem}; fix it there ({HINT})")


def _budget(table: dict[str, Any], index: int, lines: list[str], path: str) -> Budget:
    unknown = sorted(set(table) - set(_BUDGET_KEYS))
    if unknown:
        allowed = ", ".join(_BUDGET_KEYS)
        raise _error(path, lines, "budgets", index, unknown[0], f"unknown key; allowed keys: {allowed}")
    for key, required in _BUDGET_KEYS.items():
        if required and key not in table:
            raise _error(path, lines, "budgets", index, None, f"missing required key '{key}'")
    # Validate key by key, so the error names the key that is wrong.
    checks: list[tuple[str, Callable[[], object]]] = [
        ("name", lambda: Budget(table["name"], limit_usd=1)),
        ("limit_usd", lambda: Budget("x", limit_usd=table["limit_usd"])),
        ("timezone", lambda: Budget("x", limit_usd=1, timezone=table.get("timezone", "UTC"))),
        ("window", lambda: Budget("x", limit_usd=1, window=table.get("window", "month"))),
        ("scope", lambda: Budget("x", limit_usd=1, scope=table.get("scope"))),
        ("mode", lambda: _mode_only(table.get("mode", "block"))),
        ("thresholds", lambda: Budget("x", limit_usd=1, thresholds=table.get("thresholds", (50, 80, 100)))),
        ("forecast", lambda: Budget("x", limit_usd=1, forecast=table.get("forecast", True))),
        ("unknown_price", lambda: Budget("x", limit_usd=1, unknown_price=table.get("unknown_price"))),
        ("notify", lambda: Budget("x", limit_usd=1, notify=table.get("notify"))),
        ("downgrade_to", lambda: Budget("x", limit_usd=1, **_kwargs(table, "mode", "downgrade_to"))),
    ]
    for key, check in checks:
        try:
            check()
        except (ConfigError, TypeError, ValueError) as exc:
            raise _error(path, lines, "budgets", index, key if key in table else None, str(exc)) from None
    return Budget(table.pop("name"), **table)


def _mode_only(mode: object) -> None:
    if mode not in ("block", "downgrade", "warn"):
        raise ConfigError(f"mode {mode!r} is not known: use 'block', 'downgrade' or 'warn'")


def _kwargs(table: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: table[k] for k in keys if k in table}


def _settings(raw: object, lines: list[str], path: str) -> tuple[EngineSettings, str | None]:
    start = next((i for i, line in enumerate(lines) if re.match(r"^\s*\[\s*settings\s*\]", line)), 0)
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
    if not isinstance(raw, dict):
        raise ConfigError(f"budgets file {path}: 'settings' must be a table ([settings]) ({HINT})")
    for key, value in raw.items():
        kind = _SETTINGS.get(key)
        if kind is None:
            problem = f"unknown key {key!r}; allowed keys: {', '.join(_SETTINGS)}"
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problem = f"key {key!r} has the wrong type ({value!r})"
        else:
            continue
        raise ConfigError(
            f"budgets file {path}{_where(lines, start, end, key)} ([settings]): {problem} ({HINT})"
        )
    values = {k: v for k, v in raw.items() if k != "ledger"}
    for key in ("reservation_ttl_s", "lease_max_age_s"):
        if key in values:
            values[key] = float(values[key])
    try:
        settings = EngineSettings(**values)
    except ConfigError as exc:
        raise ConfigError(
            f"budgets file {path}{_where(lines, start, end, None)} ([settings]): {exc}"
        ) from None
    return settings, raw.get("ledger")


def _sink(table: dict[str, Any], index: int, lines: list[str], path: str) -> AlertSink:
    kind = table.get("type")
    if kind not in _SINK_KEYS:
        raise _error(
            path,
            lines,
            "alerts",
            index,
            "type" if "type" in table else None,
            "type must be log, webhook or slack",
        )
    unknown = sorted(set(table) - _SINK_KEYS[kind])
    if unknown:
        allowed = ", ".join(sorted(_SINK_KEYS[kind]))
        raise _error(
            path, lines, "alerts", index, unknown[0], f"unknown key for a {kind} sink; allowed: {allowed}"
        )
    options = {k: v for k, v in table.items() if k != "type"}
    try:
        if kind == "log":
            level = logging.getLevelName(str(options.pop("level", "WARNING")).upper())
            if not isinstance(level, int):
                raise ConfigError("level must be debug, info, warning, error or critical")
            return LoggingSink(options.pop("logger", "costlens.budgets"), level, **options)
        if "url" not in options:
            raise ConfigError('a webhook needs url = "https://..."')
        for key in ("timeout_s", "backoff_s"):
            if key in options:
                options[key] = float(options[key])
        return (SlackSink if kind == "slack" else WebhookSink)(options.pop("url"), **options)
    except (ConfigError, TypeError, ValueError) as exc:
        raise _error(path, lines, "alerts", index, None, str(exc)) from None


# -- editing the file in place (costlens budgets set / remove) --------------------------------------------


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def render_budget(budget: Budget) -> str:
    """One `[[budgets]]` table, as `costlens budgets set` writes it."""
    fields = budget.as_dict()
    return "[[budgets]]\n" + "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in fields.items())


def _budget_index(text: str, name: str) -> int | None:
    data = tomllib.loads(text, parse_float=Decimal) if text.strip() else {}
    for i, table in enumerate(data.get("budgets", [])):
        if isinstance(table, dict) and table.get("name") == name:
            return i
    return None


def upsert_budget_text(text: str, budget: Budget) -> str:
    """The file with `budget`'s block replaced (or appended); the rest stays byte for byte."""
    block = render_budget(budget)
    index = _budget_index(text, budget.name)
    lines = text.splitlines(keepends=True)
    if index is None:
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return text + sep + block
    start, end = _block([line.rstrip("\r\n") for line in lines], "budgets", index)
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + block + ("\n" if tail and not tail.startswith("\n") else "") + tail


def remove_budget_text(text: str, name: str) -> str | None:
    """The file without the budget's block; None when no budget has that name."""
    index = _budget_index(text, name)
    if index is None:
        return None
    lines = text.splitlines(keepends=True)
    start, end = _block([line.rstrip("\r\n") for line in lines], "budgets", index)
    return "".join(lines[:start] + lines[end:])
