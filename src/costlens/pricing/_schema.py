"""Validation of a parsed overrides file into `Overrides` (the schema is documented in `_overrides`).

Every problem raises `ConfigError` naming the file, the `[[models]]` table (with its line),
the key, what was expected and how to fix it: a typo in a price must never be silently ignored.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Any

from costlens._errors import ConfigError
from costlens.pricing._model import MONEY, LongContextTier, Rates, per_token
from costlens.pricing._override_model import HINT, OverrideModel, Overrides, PricePeriod
from costlens.pricing._providers import STANDARD, canonical_provider, normalize_tier

__all__ = ["parse_overrides"]

# Token prices (USD per 1M tokens) and the per-request fees (`per_request` in USD per call, the
# server-side tool fees in USD per 1,000 requests, as providers publish them).
_TOKEN_PRICES = (
    "input", "output", "cache_read", "cache_write", "reasoning", "cache_write_1h", "input_audio",
    "output_audio", "citation",
)  # fmt: skip
_PRICE = (*_TOKEN_PRICES, "per_request", "web_search_per_1k", "file_search_per_1k")
_FINE_TUNING = (
    "training_per_mtok",
    "training_per_hour",
    "hosting_per_hour",
    "storage_per_month",
    "min_training_charge",
)
_PERIOD = frozenset({*_PRICE, *_FINE_TUNING, "starts_at", "long_context", "tiers", "tier_multipliers"})
_IDENTITY = frozenset({"provider", "model", "aliases", "match_prefixes"})
_TIER_TABLE = frozenset({*_PRICE, "long_context"})
_LONG = frozenset({"threshold", *_TOKEN_PRICES})


class _SchemaError(Exception):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key, self.problem = key, problem


def parse_overrides(data: dict[str, Any], path: str, digest: str, text: str = "") -> Overrides:
    """Validate parsed TOML into `Overrides`; a `ConfigError` names the file, table, key and fix."""
    headers = [
        i + 1 for i, line in enumerate(text.splitlines()) if re.match(r"\s*\[\[\s*models\s*\]\]", line)
    ]
    unknown = sorted(set(data) - {"version", "models"})
    if unknown:
        raise ConfigError(
            f"price overrides file {path}: unknown top-level key {unknown[0]!r}; use [[models]] ({HINT})"
        )
    if data.get("version", 1) != 1:
        raise ConfigError(f"price overrides file {path}: unsupported version {data['version']!r}; use 1")
    tables = data.get("models", [])
    if not isinstance(tables, list):
        raise ConfigError(f"price overrides file {path}: 'models' must be an array of tables ([[models]])")
    models: list[OverrideModel] = []
    seen: set[tuple[str, str]] = set()
    for i, table in enumerate(tables):
        where = f"[[models]] #{i + 1}" + (f" (line {headers[i]})" if i < len(headers) else "")
        try:
            model = _model(table)
        except _SchemaError as exc:
            problem = f"key '{exc.key}': {exc.problem}; fix that key ({HINT})"
            raise ConfigError(f"price overrides file {path}, {where}, {problem}") from None
        where += f" {model.provider}/{model.model}"
        for name in (model.model.lower(), *model.aliases):
            if (model.provider, name) in seen:
                raise ConfigError(f"price overrides file {path}, {where}: '{name}' is priced twice; keep one")
            seen.add((model.provider, name))
        models.append(model)
    return Overrides(models, path, digest)


def _only(table: object, allowed: frozenset[str] | set[str], key: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _SchemaError(key or "(top level)", "expected a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        bad = f"{key}.{unknown[0]}" if key else unknown[0]
        raise _SchemaError(bad, f"unknown key; allowed here: {', '.join(sorted(allowed))}")
    return table


def _model(table: object) -> OverrideModel:
    has_periods = isinstance(table, dict) and "prices" in table
    t = _only(table, _IDENTITY | ({"prices"} if has_periods else _PERIOD), "")
    provider = _text(t.get("provider"), "provider")
    model = _text(t.get("model"), "model")
    raw_periods = t["prices"] if has_periods else [{k: v for k, v in t.items() if k in _PERIOD}]
    if not isinstance(raw_periods, list) or not raw_periods:
        raise _SchemaError("prices", "expected a non-empty array of tables ([[models.prices]])")
    periods = [_period(p, f"prices[{n}]" if has_periods else "") for n, p in enumerate(raw_periods)]
    for n, (prev, cur) in enumerate(pairwise(periods), start=1):
        if cur.starts_at is None or (prev.starts_at is not None and cur.starts_at <= prev.starts_at):
            raise _SchemaError(f"prices[{n}].starts_at", "each later period needs a later starts_at")
    return OverrideModel(
        provider="*" if provider.strip() == "*" else canonical_provider(provider),
        model=model.strip(),
        aliases=tuple(a.lower() for a in _texts(t.get("aliases", []), "aliases")),
        match_prefixes=tuple(p.lower() for p in _texts(t.get("match_prefixes", []), "match_prefixes")),
        periods=tuple(periods),
    )


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _period(raw: object, at: str) -> PricePeriod:
    t = _only(raw, _PERIOD, at)
    for required in ("input", "output"):
        if required not in t:
            raise _SchemaError(_join(at, required), "missing; every price needs input and output")
    base = _prices(t, at)
    long_context = _long_context(t.get("long_context"), base, _join(at, "long_context"))
    tier_prices: dict[str, tuple[Rates, tuple[LongContextTier, ...]]] = {}
    for name, raw_tier in _tier_table(t.get("tiers"), _join(at, "tiers")).items():
        key = _join(at, f"tiers.{name}")
        tier_table = _only(raw_tier, _TIER_TABLE, key)
        merged = {**base, **_prices(tier_table, key)}
        tiers = (
            long_context
            if "long_context" not in tier_table
            else _long_context(tier_table["long_context"], merged, _join(key, "long_context"))
        )
        tier_prices[name] = (_rates(merged), tiers)
    multipliers = _tier_table(t.get("tier_multipliers"), _join(at, "tier_multipliers"))
    return PricePeriod(
        starts_at=_when(t.get("starts_at"), _join(at, "starts_at")),
        rates=_rates(base),
        long_context=long_context,
        tier_prices=tier_prices,
        tier_multipliers={k: _money(v, _join(at, f"tier_multipliers.{k}")) for k, v in multipliers.items()},
        fine_tuning={k: _money(t[k], _join(at, k)) for k in _FINE_TUNING if k in t},
    )


def _tier_table(raw: object, key: str) -> dict[str, Any]:
    """A table keyed by service tier names, other than the standard tier."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _SchemaError(key, "expected a table keyed by service tier (batch, flex, priority, ...)")
    for name in raw:
        if normalize_tier(name) == STANDARD or not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
            raise _SchemaError(
                f"{key}.{name}",
                "not a service tier name (lower case, e.g. batch, flex, priority); "
                "standard prices go on the price table itself",
            )
    return raw


def _prices(t: dict[str, Any], at: str) -> dict[str, Decimal]:
    return {k: _money(t[k], _join(at, k)) for k in _PRICE if k in t}


def _rates(prices: dict[str, Decimal]) -> Rates:
    """Per-1M prices -> per-token `Rates`; cache prices default to input, reasoning to output; the
    finer prices (1-hour cache writes, audio, citations, tool fees) stay None when absent."""
    input_price = per_token(prices["input"])
    return Rates(
        input=input_price,
        output=per_token(prices["output"]),
        cache_read=per_token(prices["cache_read"]) if "cache_read" in prices else input_price,
        cache_write=per_token(prices["cache_write"]) if "cache_write" in prices else input_price,
        reasoning=per_token(prices["reasoning"]) if "reasoning" in prices else None,
        request=prices.get("per_request", Decimal(0)),
        cache_write_1h=_optional(prices, "cache_write_1h"),
        input_audio=_optional(prices, "input_audio"),
        output_audio=_optional(prices, "output_audio"),
        citation=_optional(prices, "citation"),
        web_search=_per_request(prices, "web_search_per_1k"),
        file_search=_per_request(prices, "file_search_per_1k"),
    )


def _optional(prices: dict[str, Decimal], key: str) -> Decimal | None:
    """A finer token price, None when the table does not set it (then such tokens make the cost
    unknown: they are never priced as $0 nor as another kind)."""
    return per_token(prices[key]) if key in prices else None


def _per_request(prices: dict[str, Decimal], key: str) -> Decimal | None:
    return MONEY.scaleb(prices[key], -3) if key in prices else None


def _long_context(raw: object, base: dict[str, Decimal], at: str) -> tuple[LongContextTier, ...]:
    if raw is None:
        return ()
    tables = raw if isinstance(raw, list) else [raw]
    tiers: list[LongContextTier] = []
    for n, table in enumerate(tables):
        key = f"{at}[{n}]" if isinstance(raw, list) else at
        t = _only(table, _LONG, key)
        threshold = t.get("threshold")
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold <= 0:
            raise _SchemaError(
                _join(key, "threshold"), f"expected a positive whole number, got {threshold!r}"
            )
        if tiers and threshold <= tiers[-1].threshold:
            raise _SchemaError(_join(key, "threshold"), "thresholds must increase")
        tiers.append(LongContextTier(threshold, _rates({**base, **_prices(t, key)})))
    return tuple(tiers)


def _money(value: object, key: str) -> Decimal:
    """A non-negative exact amount: a TOML integer, a TOML number (read as Decimal) or a decimal string."""
    number: Decimal | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            number = None
    ok = number is not None and number.is_finite() and number >= 0
    if number is None or not ok or len(number.normalize().as_tuple().digits) > 20 or number.adjusted() > 8:
        raise _SchemaError(
            key, f'expected a non-negative number like 2.5 or "2.50" (at most 20 digits), got {value!r}'
        )
    return number


def _when(value: object, key: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _SchemaError(key, f"expected a date like 2025-06-10 or a datetime, got {value!r}") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise _SchemaError(key, f"expected a date like 2025-06-10 or a datetime, got {value!r}")


def _text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _SchemaError(key, f"expected a non-empty string, got {value!r}")
    return value


def _texts(value: object, key: str) -> list[str]:
    if not isinstance(value, list):
        raise _SchemaError(key, f"expected a list of strings, got {value!r}")
    return [_text(v, f"{key}[{n}]").strip() for n, v in enumerate(value)]
