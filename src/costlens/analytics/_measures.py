"""Measures of a spend report: exact sums, ratios derived from them, and latency percentiles.

Sums are integers (money in nano-USD) straight from the store, so they are exact whichever way the
store computed them (rollups or a raw scan). Ratios are computed from those sums with `Decimal` and
rounded once, half-even: money ratios to 1e-12 USD, fractions to 1e-6. Latency and TTFT
percentiles come from the raw calls (linear interpolation between the closest ranks, as numpy's
default) and are floats in milliseconds, rounded to 1 µs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_EVEN, Context, Decimal

from costlens.store import SpendRow, nanousd_to_usd
from costlens.usage import USAGE_PARTS

__all__ = [
    "DEFAULT_MEASURES",
    "MEASURES",
    "PERCENTILE_MEASURES",
    "Sums",
    "check_measures",
    "measure_values",
    "percentile",
]

SUM_MEASURES = (
    "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "total_tokens", "cost_usd", "error_calls", "unpriced_calls", "estimated_calls",
    *USAGE_PARTS,
)  # fmt: skip
RATIO_MEASURES = ("cost_per_call", "cost_per_1k_tokens", "share", "error_rate", "estimated_share")
PERCENTILE_MEASURES = ("latency_p50", "latency_p95", "latency_p99", "ttft_p50", "ttft_p95", "ttft_p99")
#: Every measure a report can show, in display order.
MEASURES = SUM_MEASURES + RATIO_MEASURES + PERCENTILE_MEASURES
#: What `costlens report` shows unless asked (the columns it has always had).
DEFAULT_MEASURES = (
    "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_usd", "unpriced_calls",
)  # fmt: skip
_CTX = Context(prec=50, rounding=ROUND_HALF_EVEN)
_PICO = Decimal("1e-12")
_MICRO = Decimal("1e-6")


@dataclass(slots=True)
class Sums:
    """Exact integer sums of one group (a mutable SpendRow without its keys)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanousd: int = 0
    unpriced_calls: int = 0
    error_calls: int = 0
    estimated_calls: int = 0
    cache_write_1h_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    citation_tokens: int = 0
    web_search_requests: int = 0
    file_search_requests: int = 0

    @classmethod
    def of(cls, row: SpendRow) -> Sums:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    def add(self, other: Sums) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def check_measures(names: Iterable[str]) -> tuple[str, ...]:
    """The measures, validated; ValueError naming the valid ones."""
    out = tuple(names)
    for name in out:
        if name not in MEASURES:
            raise ValueError(f"unknown measure {name!r}: use any of {', '.join(MEASURES)}")
    return out


def _ratio(num: int, den: int, quantum: Decimal, scale: int = 0) -> Decimal | None:
    if den == 0:
        return None
    value = _CTX.divide(Decimal(num), Decimal(den)).scaleb(scale, _CTX)
    return value.quantize(quantum, rounding=ROUND_HALF_EVEN, context=_CTX)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) of sorted `values`, linear between closest ranks; None if empty."""
    if not values:
        return None
    rank = (len(values) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    value = values[low] + (values[high] - values[low]) * (rank - low)
    return round(value, 3)


def measure_values(
    sums: Sums,
    measures: Sequence[str],
    total_cost_nanousd: int,
    samples: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, object]:
    """The requested measures of one group. `samples`: sorted `latency` and `ttft` values (ms)."""
    out: dict[str, object] = {}
    for name in measures:
        if name == "cost_usd":
            out[name] = nanousd_to_usd(sums.cost_nanousd)
        elif name == "total_tokens":
            out[name] = sums.total_tokens
        elif name == "cost_per_call":
            out[name] = _ratio(sums.cost_nanousd, sums.calls, _PICO, -9)
        elif name == "cost_per_1k_tokens":
            out[name] = _ratio(sums.cost_nanousd, sums.total_tokens, _PICO, -6)
        elif name == "share":
            out[name] = _ratio(sums.cost_nanousd, total_cost_nanousd, _MICRO)
        elif name == "error_rate":
            out[name] = _ratio(sums.error_calls, sums.calls, _MICRO)
        elif name == "estimated_share":
            out[name] = _ratio(sums.estimated_calls, sums.calls, _MICRO)
        elif name in PERCENTILE_MEASURES:
            kind, _, q = name.partition("_p")
            out[name] = percentile((samples or {}).get(kind, ()), float(q))
        else:
            out[name] = getattr(sums, name)
    return out
