"""The costlens price patch: dated corrections to genai-prices' bundled data, each with its source.

genai-prices' data is good but not always current (a missing long-context tier, a price change it
has not caught up with, a service tier dated too late). costlens ships a small data file,
`costlens/pricing/data/patch.toml`, whose entries are applied over genai-prices' prices and under
the user's overrides (which still win). Each entry names:

* `id`: a short unique name (lower case, digits, `-`), shown wherever a patched price is;
* `provider`, `model`: the genai-prices provider and model ids the entry corrects (the ids
  `costlens prices show` reports as `matched_provider` / `matched_model`);
* `tier` (optional): the service tier corrected (`flex`, `batch`, ...; default the standard price);
* `starts_at`: when the corrected price applies (TOML date = UTC midnight, or a datetime); calls
  before it keep genai-prices' price, and an entry applies until the next entry for the same
  provider, model and tier;
* `source`: the http(s) URL that documents the price; `note` (optional): why the entry exists;
* the price keys it replaces, named and measured as in the overrides file: `input`, `output`,
  `cache_read`, `cache_write`, `cache_write_1h`, `reasoning`, `input_audio`, `output_audio`,
  `citation` (USD per 1M tokens), `per_request` (USD per call), `web_search_per_1k`,
  `file_search_per_1k` (USD per 1,000 requests). Keys left out keep genai-prices' value, except
  that a cache price genai-prices bills as input follows a new `input`;
* `[[patch.long_context]]` tables (optional): `threshold` plus price keys; they replace the
  long-context tiers (above `threshold` input tokens every token of the call bills at the tier's
  prices, keys left out keep the patched price below the threshold). `long_context = []` removes them.

Where genai-prices has a daily schedule (DeepSeek's off-peak discount), an entry applies at every
hour of the day; once every differing key is replaced the schedule becomes one price.

Loading is lazy: `load_patch()` runs when the price catalogue is first built, never at import.
A malformed entry is a `ConfigError` naming the file, the entry (number, id, line) and the key.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from costlens._errors import ConfigError
from costlens.pricing._model import MONEY, LongContextTier, ModelPrice, Rates
from costlens.pricing._providers import STANDARD, canonical_provider, normalize_tier

__all__ = ["PATCH_SOURCE", "PatchEntry", "PricePatch", "load_patch", "parse_patch"]

#: `ModelPrice.source` of a patched price is `costlens-patch:<entry id>`.
PATCH_SOURCE = "costlens-patch"
_FILE = "patch.toml"
# Patch key -> (`Rates` field, power of ten from the file's unit to the field's): token prices are
# USD per 1M tokens, `per_request` USD per call, the tool fees USD per 1,000 requests (the keys
# and units of the overrides file).
_KEYS: dict[str, tuple[str, int]] = {
    "input": ("input", -6),
    "output": ("output", -6),
    "cache_read": ("cache_read", -6),
    "cache_write": ("cache_write", -6),
    "reasoning": ("reasoning", -6),
    "cache_write_1h": ("cache_write_1h", -6),
    "input_audio": ("input_audio", -6),
    "output_audio": ("output_audio", -6),
    "citation": ("citation", -6),
    "per_request": ("request", 0),
    "web_search_per_1k": ("web_search", -3),
    "file_search_per_1k": ("file_search", -3),
}
_ENTRY = frozenset({"id", "provider", "model", "tier", "starts_at", "source", "note", "long_context", *_KEYS})
_LONG = frozenset({"threshold", *_KEYS})
_FOLLOW_INPUT = ("cache_read", "cache_write")
_HINT = "the patch format is documented in costlens.pricing._patch"


class _EntryError(Exception):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key, self.problem = key, problem


@dataclass(frozen=True, slots=True)
class PatchEntry:
    """One `[[patch]]` table: what it corrects, from when, and the replaced prices (per token)."""

    id: str
    provider: str
    model: str
    tier: str
    starts_at: datetime
    source: str
    note: str
    rates: dict[str, Decimal]
    long_context: tuple[tuple[int, dict[str, Decimal]], ...] | None
    line: int | None = None

    @property
    def price_source(self) -> str:
        return f"{PATCH_SOURCE}:{self.id}"

    def apply(self, price: ModelPrice | None, starts_at: datetime | None) -> ModelPrice | None:
        """`price` with this entry's keys replaced; None when there is no price to correct.

        With no price underneath, an entry that gives both `input` and `output` is a whole price.
        """
        if price is None:
            if "input" not in self.rates or "output" not in self.rates:
                return None
            zero = Decimal(0)
            price = ModelPrice(
                provider=self.provider,
                model=self.model,
                source=self.price_source,
                rates=Rates(zero, zero, zero, zero),
            )
        rates = _replaced(price.rates, self.rates)
        tiers = price.long_context
        if self.long_context is not None:
            tiers = tuple(LongContextTier(th, _replaced(rates, keys)) for th, keys in self.long_context)
        source = self.price_source
        patched = replace(price, rates=rates, long_context=tiers, source=source, starts_at=starts_at)
        if self.tier != STANDARD:
            patched = replace(patched, service_tier=self.tier, tier_rule="explicit")
        return patched

    def per_mtok(self) -> dict[str, object]:
        """The entry's replaced prices per 1M tokens (per call for `per_request`), for display."""
        out: dict[str, object] = _display(self.rates)
        if self.long_context is not None:
            tiers = self.long_context
            out["long_context"] = [{"above_input_tokens": th, **_display(keys)} for th, keys in tiers]
        return out


def _display(rates: dict[str, Decimal]) -> dict[str, object]:
    """Per-token rates back in the file's units, as decimal strings."""
    from costlens.pricing._model import MONEY, fmt

    return {k: fmt(MONEY.scaleb(rates[f], -e)) for k, (f, e) in _KEYS.items() if f in rates}


def _replaced(rates: Rates, keys: dict[str, Decimal]) -> Rates:
    """`rates` with `keys` replaced; a cache price billed as input follows a new input price."""
    changes: dict[str, Any] = dict(keys)
    if "input" in keys:
        for name in _FOLLOW_INPUT:
            if name not in keys and getattr(rates, name) == rates.input:
                changes[name] = keys["input"]
    return replace(rates, **changes)


class PricePatch:
    """A parsed patch file, indexed by (genai-prices provider id, model id)."""

    def __init__(self, entries: list[PatchEntry], path: str, digest: str) -> None:
        self.entries = entries
        self.path = path
        self.digest = digest
        self.version = f"patch-{digest}"
        self._by_model: dict[tuple[str, str], list[PatchEntry]] = {}
        for entry in sorted(entries, key=lambda e: e.starts_at):
            self._by_model.setdefault((entry.provider, entry.model.lower()), []).append(entry)
        self._by_id = {e.id: e for e in entries}

    def for_model(self, provider: str, model: str) -> list[PatchEntry]:
        """Every entry for a genai-prices (provider, model), oldest first (all tiers)."""
        return self._by_model.get((provider, model.lower()), [])

    def for_tier(self, provider: str, model: str, tier: str) -> list[PatchEntry]:
        return [e for e in self.for_model(provider, model) if e.tier == tier]

    def get(self, entry_id: str) -> PatchEntry | None:
        return self._by_id.get(entry_id)


def entry_of(source: str, patch: PricePatch | None) -> PatchEntry | None:
    """The patch entry a `ModelPrice.source` names, if it is a patched price."""
    prefix = f"{PATCH_SOURCE}:"
    if patch is None or not source.startswith(prefix):
        return None
    return patch.get(source[len(prefix) :])


@functools.cache
def load_patch() -> PricePatch:
    """The patch shipped with costlens (read and validated once, on first use)."""
    from importlib import resources

    resource = resources.files("costlens.pricing").joinpath("data", _FILE)
    return parse_patch(resource.read_text(encoding="utf-8"), str(resource))


def parse_patch(text: str, path: str) -> PricePatch:
    """Validate a patch file's text; a `ConfigError` names the file, the entry, its line and the key."""
    import hashlib
    import tomllib

    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"costlens price patch {path}: invalid TOML: {exc} ({_HINT})") from exc
    unknown = sorted(set(data) - {"version", "patch"})
    if unknown:
        raise ConfigError(f"costlens price patch {path}: unknown top-level key {unknown[0]!r}; use [[patch]]")
    if data.get("version", 1) != 1:
        raise ConfigError(f"costlens price patch {path}: unsupported version {data['version']!r}; use 1")
    tables = data.get("patch", [])
    if not isinstance(tables, list):
        raise ConfigError(f"costlens price patch {path}: 'patch' must be an array of tables ([[patch]])")
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if re.match(r"\s*\[\[\s*patch\s*\]\]", line)]
    entries: list[PatchEntry] = []
    seen: dict[str, int] = {}
    starts: set[tuple[str, str, str, datetime]] = set()
    for n, table in enumerate(tables):
        line = lines[n] if n < len(lines) else None
        name = table.get("id") if isinstance(table, dict) else None
        where = f"[[patch]] #{n + 1}" + (f" {name!r}" if isinstance(name, str) else "")
        where += f" (line {line})" if line else ""
        try:
            entry = _entry(table, line)
        except _EntryError as exc:
            raise ConfigError(
                f"costlens price patch {path}, {where}: key '{exc.key}': {exc.problem} ({_HINT})"
            ) from None
        if entry.id in seen:
            raise ConfigError(
                f"costlens price patch {path}, {where}: id {entry.id!r} is already used by "
                f"entry #{seen[entry.id]}; give each entry its own id"
            )
        key = (entry.provider, entry.model.lower(), entry.tier, entry.starts_at)
        if key in starts:
            raise ConfigError(
                f"costlens price patch {path}, {where}: another entry for {entry.provider}/{entry.model} "
                f"({entry.tier}) starts at the same time; merge them"
            )
        seen[entry.id] = n + 1
        starts.add(key)
        entries.append(entry)
    return PricePatch(entries, path, hashlib.sha256(text.encode()).hexdigest()[:10])


def _entry(table: object, line: int | None) -> PatchEntry:
    t = _table(table, _ENTRY, "")
    entry_id = _text(t.get("id"), "id")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", entry_id):
        raise _EntryError("id", f"use lower case letters, digits, '.' and '-', got {entry_id!r}")
    source = _text(t.get("source"), "source")
    if not re.fullmatch(r"https?://\S+", source):
        raise _EntryError("source", f"expected the http(s) URL that documents the price, got {source!r}")
    note = t.get("note", "")
    if not isinstance(note, str):
        raise _EntryError("note", f"expected a string, got {note!r}")
    tier = normalize_tier(_text(t.get("tier", STANDARD), "tier"))
    rates = _rates(t, "")
    long_context = None
    if "long_context" in t:
        long_context = _long_context(t["long_context"])
    if not rates and long_context is None:
        raise _EntryError("input", "an entry must replace at least one price (or give long_context)")
    return PatchEntry(
        id=entry_id,
        provider=canonical_provider(_text(t.get("provider"), "provider")),
        model=_text(t.get("model"), "model").strip(),
        tier=tier,
        starts_at=_when(t.get("starts_at")),
        source=source,
        note=note.strip(),
        rates=rates,
        long_context=long_context,
        line=line,
    )


def _table(value: object, allowed: frozenset[str], key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _EntryError(key or "(entry)", "expected a table")
    unknown = sorted(set(value) - allowed)
    if unknown:
        bad = f"{key}.{unknown[0]}" if key else unknown[0]
        raise _EntryError(bad, f"unknown key; allowed here: {', '.join(sorted(allowed))}")
    return value


def _rates(t: dict[str, Any], at: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for key, (field, exponent) in _KEYS.items():
        if key in t:
            out[field] = MONEY.scaleb(_money(t[key], f"{at}{key}"), exponent)
    return out


def _long_context(raw: object) -> tuple[tuple[int, dict[str, Decimal]], ...]:
    if not isinstance(raw, list):
        raise _EntryError("long_context", "expected an array of tables ([[patch.long_context]])")
    tiers: list[tuple[int, dict[str, Decimal]]] = []
    for n, table in enumerate(raw):
        key = f"long_context[{n}]"
        t = _table(table, _LONG, key)
        threshold = t.get("threshold")
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold <= 0:
            raise _EntryError(f"{key}.threshold", f"expected a positive whole number, got {threshold!r}")
        if tiers and threshold <= tiers[-1][0]:
            raise _EntryError(f"{key}.threshold", "thresholds must increase")
        tiers.append((threshold, _rates(t, f"{key}.")))
    return tuple(tiers)


def _money(value: object, key: str) -> Decimal:
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
    if number is None or not ok or len(number.as_tuple().digits) > 20 or number.adjusted() > 8:
        raise _EntryError(key, f'expected a non-negative number like 2.5 or "2.50", got {value!r}')
    return number


def _when(value: object) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise _EntryError("starts_at", f"expected a date like 2025-09-05 or a datetime, got {value!r}")


def _text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _EntryError(key, f"expected a non-empty string, got {value!r}")
    return value.strip()
