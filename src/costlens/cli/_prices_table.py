"""The readable `costlens prices show` table: one row per rate set, grouped, tiers and dates labelled.

`describe_price` gives the full detail (json and csv print it as is); the table condenses it:
the price in force, its long-context rates, each service tier with its own price (tiers that
just use the standard price share one row), then every dated price when there is more than one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from costlens.cli._output import cells, console, make_table, same_places
from costlens.usage import GEO_SEPARATOR

__all__ = ["COLUMNS", "price_rows", "print_price", "when"]

COLUMNS = ("group", "price", "from", "input", "cached input", "cache write", "output", "other", "source")
_RIGHT = ("input", "cached input", "cache write", "output")
_RULES = {
    "standard": "standard price",
    "explicit": "own price",
    "batch-50%": "50% batch discount",
    "multiplier": "override multiplier",
    "fallback-standard": "standard price",
}
# Rates shown in the `other` column: key in `per_mtok` -> label (token prices per 1M tokens).
_OTHER = (
    ("reasoning", "reasoning"),
    ("cache_write_1h", "1h cache write"),
    ("input_audio", "audio in"),
    ("output_audio", "audio out"),
    ("citation", "citations"),
)
_FEES = (
    ("per_request", "per call"),
    ("web_search_per_request", "web search"),
    ("file_search_per_request", "file search"),
)


def _rule_text(rule: str) -> str:
    """`batch-50%+us-110%` -> `50% batch discount, us inference at 110%`."""
    base, *geos = rule.split(GEO_SEPARATOR)
    parts = [_RULES.get(base, base)]
    parts += [f"{geo} inference at {pct}" for geo, _, pct in (g.partition("-") for g in geos)]
    return ", ".join(parts)


def _other(rates: Mapping[str, Any]) -> str:
    parts = [f"{label} {rates[key]}" for key, label in _OTHER if rates.get(key) is not None]
    fees = [(key, label) for key, label in _FEES if rates.get(key) not in (None, "0")]
    parts += [f"{label} ${rates[key]}/call" for key, label in fees]
    return "; ".join(parts)


def _source(data: Mapping[str, Any]) -> str:
    kind = str(data.get("source_kind") or data.get("source") or "")
    patch = data.get("patch")
    if isinstance(patch, Mapping):
        return f"{kind} {patch.get('id')}"
    return kind


def when(value: object) -> str:
    """A price's start for tables: `2025-08-12` at UTC midnight, else `2025-09-05 16:00 UTC`."""
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return ""
    utc = value.astimezone(UTC) if value.tzinfo else value
    if (utc.hour, utc.minute, utc.second) == (0, 0, 0):
        return utc.strftime("%Y-%m-%d")
    return utc.strftime("%Y-%m-%d %H:%M UTC")


def _rate_rows(group: str, label: str, start: str, data: Mapping[str, Any]) -> list[list[str]]:
    """The row of a price and one row per long-context tier below it."""
    rates: Mapping[str, Any] = data.get("per_mtok") or {}
    source = _source(data)
    rows = [[group, label, start, *_tokens(rates), _other(rates), source]]
    for tier in data.get("long_context") or []:
        above = f"{label}, input > {int(tier['above_input_tokens']):,}"
        tier_rates = tier.get("per_mtok") or {}
        rows.append([group, above, "", *_tokens(tier_rates), _other(tier_rates), ""])
    return rows


def _tokens(rates: Mapping[str, Any]) -> list[str]:
    return [str(rates.get(k) or "") for k in ("input", "cache_read", "cache_write", "output")]


def price_rows(price: Mapping[str, Any]) -> list[list[str]]:
    """The table's rows (strings) for a `describe_price` result of a known model; each rate column
    has one precision (`0.150`, `0.075`)."""
    rows = _price_rows(price)
    for index in range(3, 3 + len(_RIGHT)):  # input, cached input, cache write, output
        for row, text in zip(rows, same_places([row[index] for row in rows]), strict=True):
            row[index] = text
    return rows


def _price_rows(price: Mapping[str, Any]) -> list[list[str]]:
    rows = _rate_rows("in force", "standard", when(price.get("starts_at")), price)
    tiers: Mapping[str, Mapping[str, Any]] = price.get("service_tiers") or {}
    same = sorted(name for name, tier in tiers.items() if tier.get("rule") == "fallback-standard")
    for name, tier in sorted(tiers.items()):
        if tier.get("rule") != "fallback-standard":
            label = f"{name} ({_rule_text(str(tier.get('rule')))})"
            rows += _rate_rows("tiers", label, "", tier)
    if same:
        rows.append(
            ["tiers", f"{', '.join(same)}: standard price (no own price)", "", "", "", "", "", "", ""]
        )
    history: Sequence[Mapping[str, Any]] = price.get("history") or []
    if len({h.get("starts_at") for h in history}) > 1:
        for h in history:
            start = when(h.get("starts_at")) or "(earliest)"
            label = "standard" + (f", from {h['utc_from']} UTC" if h.get("utc_from") else "")
            if h.get("known") is False:
                rows.append(["history", label, start, "", "", "", "", "no price known", ""])
            else:
                rows += _rate_rows("history", label, start, h)
    return rows


def print_price(price: Mapping[str, Any], model: str) -> None:
    """The readable table, with a heading naming the matched model, its source and the version."""
    matched = f"{price.get('matched_provider')}/{price.get('matched_model')}"
    title = f"Price of {model} ({matched}), USD per 1M tokens"
    table = make_table(COLUMNS, title=title, right=_RIGHT)
    for row in price_rows(price):
        table.add_row(*cells(row))
    out = console()
    out.print(table)
    lines = [f"source: {price.get('source_kind')}"]
    patch = price.get("patch")
    if isinstance(patch, Mapping):
        lines[0] += f" (entry {patch.get('id')}: {patch.get('source_url')})"
    lines.append(f"price catalogue: {price.get('version')}")
    for line in lines:
        out.print(Text(line))
