"""The normalised shapes every other module speaks: `Usage`, `Cost` and `CallRecord`.

Provider adapters fill `Usage`; pricing turns it into a `Cost`; the instrumentation wraps both
into one `CallRecord` per call. Nothing downstream ever sees provider JSON.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial
from typing import Any, Literal

__all__ = [
    "NANO",
    "USAGE_PARTS",
    "CallRecord",
    "Cost",
    "Status",
    "Usage",
    "record_from_dict",
    "record_to_dict",
    "to_nanousd",
]

#: One US dollar in nano-dollars: stores keep money as integer nano-USD.
NANO = 1_000_000_000
_NANO_QUANT = Decimal("1e-9")

Status = Literal["ok", "error", "blocked"]


def to_nanousd(amount: Decimal) -> int:
    """Round a dollar amount to integer nano-USD (banker's rounding, the only rounding on the money path)."""
    return int(amount.quantize(_NANO_QUANT, rounding=ROUND_HALF_EVEN) * NANO)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, normalised across providers.

    `input_tokens` includes cache reads and writes; `output_tokens` includes reasoning tokens.
    The cache and reasoning counts are parts of those totals, never extras. So are the finer parts:

    * `cache_write_1h_tokens`: the part of `cache_write_tokens` written with a 1-hour lifetime
      (Anthropic `cache_creation.ephemeral_1h_input_tokens`, billed 2x the input price instead of
      1.25x for 5-minute writes);
    * `input_audio_tokens`: uncached audio among the input (never part of the cache counts:
      `cache_read + cache_write + input_audio <= input`);
    * `output_audio_tokens` and `citation_tokens` (Perplexity): parts of the output, like
      reasoning and disjoint from it (`reasoning + output_audio + citation <= output`).

    `web_search_requests` and `file_search_requests` count server-side tool calls the provider
    bills per request (Anthropic `server_tool_use.web_search_requests`, OpenAI `web_search_call` /
    `file_search_call` output items); they are not tokens.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    citation_tokens: int = 0
    web_search_requests: int = 0
    file_search_requests: int = 0

    def __post_init__(self) -> None:
        i, o = self.input_tokens, self.output_tokens
        cr, cw, r = self.cache_read_tokens, self.cache_write_tokens, self.reasoning_tokens
        c1, ia, oa = self.cache_write_1h_tokens, self.input_audio_tokens, self.output_audio_tokens
        ct, ws, fs = self.citation_tokens, self.web_search_requests, self.file_search_requests
        # One cheap test on the hot path; the detailed checks run only when it fails.
        all_int = (
            type(i) is int and type(o) is int and type(cr) is int and type(cw) is int and type(r) is int
            and type(c1) is int and type(ia) is int and type(oa) is int and type(ct) is int
            and type(ws) is int and type(fs) is int
        )  # fmt: skip
        if not (
            all_int
            and min(i, o, cr, cw, r, c1, ia, oa, ct, ws, fs) >= 0
            and cr + cw + ia <= i
            and r + oa + ct <= o
            and c1 <= cw
        ):
            self._explain_invalid()

    def _explain_invalid(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Usage.{name} must be a non-negative int, got {value!r}")
        if self.cache_read_tokens + self.cache_write_tokens + self.input_audio_tokens > self.input_tokens:
            raise ValueError(
                "Usage.cache_read_tokens + cache_write_tokens + input_audio_tokens exceed input_tokens "
                f"({self.cache_read_tokens} + {self.cache_write_tokens} + {self.input_audio_tokens} > "
                f"{self.input_tokens}); input_tokens must include cached and audio tokens"
            )
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise ValueError(
                f"Usage.cache_write_1h_tokens ({self.cache_write_1h_tokens}) exceed cache_write_tokens "
                f"({self.cache_write_tokens}); cache_write_tokens must include 1-hour writes"
            )
        raise ValueError(
            "Usage.reasoning_tokens + output_audio_tokens + citation_tokens exceed output_tokens "
            f"({self.reasoning_tokens} + {self.output_audio_tokens} + {self.citation_tokens} > "
            f"{self.output_tokens}); output_tokens must include them"
        )

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens neither read from nor written to a cache (text and audio)."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def has_parts(self) -> bool:
        """Whether any of the finer parts (1-hour writes, audio, citations, tool requests) is set."""
        return bool(
            self.cache_write_1h_tokens
            or self.input_audio_tokens
            or self.output_audio_tokens
            or self.citation_tokens
            or self.web_search_requests
            or self.file_search_requests
        )

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            self.input_audio_tokens + other.input_audio_tokens,
            self.output_audio_tokens + other.output_audio_tokens,
            self.citation_tokens + other.citation_tokens,
            self.web_search_requests + other.web_search_requests,
            self.file_search_requests + other.file_search_requests,
        )


#: The fields of `Usage` after the first five: every one is also a `CallRecord` field and a store column.
USAGE_PARTS = (
    "cache_write_1h_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "citation_tokens",
    "web_search_requests",
    "file_search_requests",
)


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of one `Usage`. `total` is None, never zero, when the price is unknown.

    `parts` maps a token kind (`input`, `cache_read`, `cache_write`, `output`, ...) to dollars;
    the parts sum exactly to `total`. Finer parts appear only when the usage has them:
    `cache_write_1h`, `input_audio`, `output_audio`, `citation`, and the per-request tool fees
    `web_search` and `file_search`. `missing` names the parts that had no price (then `total` is
    None: a call is never priced without one of its parts).
    """

    total: Decimal | None
    known: bool
    parts: dict[str, Decimal] = field(default_factory=dict)
    price_version: str = ""
    currency: str = "USD"
    missing: tuple[str, ...] = ()

    @property
    def nanousd(self) -> int | None:
        return None if self.total is None else to_nanousd(self.total)

    @classmethod
    def unknown(cls, price_version: str = "", missing: tuple[str, ...] = ()) -> Cost:
        return cls(total=None, known=False, parts={}, price_version=price_version, missing=missing)


class _IdSource:
    """Time-ordered 32-hex-digit ids: microseconds, a per-process random tag, a counter.

    Cheaper than uuid4 (no urandom per call) and ordered by time, which keeps B-tree inserts into
    large SQLite/PostgreSQL tables local. The tag is drawn again in a forked child.
    """

    def __init__(self) -> None:
        self._tag = ""
        self._counter = itertools.count()

    def reset(self) -> None:
        self._tag = os.urandom(5).hex()
        self._counter = itertools.count()

    def __call__(self) -> str:
        if not self._tag:
            self.reset()
        return f"{time.time_ns() // 1000:014x}{self._tag}{next(self._counter) & 0xFFFFFFFF:08x}"


_new_id = _IdSource()
os.register_at_fork(after_in_child=_new_id.reset)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class CallRecord:
    """One LLM call: what was asked, what it used, what it cost, and who it is attributed to.

    Field names map one to one onto the OpenTelemetry GenAI conventions where one exists
    (`provider` -> `gen_ai.provider.name`, `request_model` -> `gen_ai.request.model`, ...).
    """

    provider: str
    operation: str
    request_model: str
    started_at: datetime = field(default_factory=partial(datetime.now, UTC))  # `_utcnow`, without a frame
    ended_at: datetime | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    response_model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanousd: int | None = None
    price_known: bool = False
    price_version: str = ""
    estimated: bool = False
    status: Status = "ok"
    error_type: str | None = None
    http_status: int | None = None
    stream: bool = False
    service_tier: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    route: dict[str, Any] | None = None
    budgets: list[dict[str, Any]] = field(default_factory=list)
    trace_id: str | None = None
    span_id: str | None = None
    content: dict[str, Any] | None = None
    cache_write_1h_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    citation_tokens: int = 0
    web_search_requests: int = 0
    file_search_requests: int = 0
    id: str = field(default_factory=_new_id)

    @property
    def usage(self) -> Usage:
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.cache_write_1h_tokens,
            self.input_audio_tokens,
            self.output_audio_tokens,
            self.citation_tokens,
            self.web_search_requests,
            self.file_search_requests,
        )

    def set_usage(self, usage: Usage) -> None:
        self.input_tokens = usage.input_tokens
        self.output_tokens = usage.output_tokens
        self.cache_read_tokens = usage.cache_read_tokens
        self.cache_write_tokens = usage.cache_write_tokens
        self.reasoning_tokens = usage.reasoning_tokens
        self.cache_write_1h_tokens = usage.cache_write_1h_tokens
        self.input_audio_tokens = usage.input_audio_tokens
        self.output_audio_tokens = usage.output_audio_tokens
        self.citation_tokens = usage.citation_tokens
        self.web_search_requests = usage.web_search_requests
        self.file_search_requests = usage.file_search_requests

    def set_cost(self, cost: Cost) -> None:
        self.cost_nanousd = cost.nanousd
        self.price_known = cost.known
        self.price_version = cost.price_version

    @property
    def cost_usd(self) -> Decimal | None:
        return None if self.cost_nanousd is None else Decimal(self.cost_nanousd) / NANO


_RECORD_TIMES = ("started_at", "ended_at")


def record_to_dict(record: CallRecord) -> dict[str, Any]:
    """Every field, JSON-friendly and lossless: datetimes as ISO-8601 text, everything else as is
    (money stays integer nano-USD). The spool, exports and experiment journals use it."""
    out: dict[str, Any] = {f.name: getattr(record, f.name) for f in fields(CallRecord)}
    for name in _RECORD_TIMES:
        when = out[name]
        out[name] = when.isoformat() if when is not None else None
    return out


def record_from_dict(data: dict[str, Any]) -> CallRecord:
    """The inverse of `record_to_dict`; unknown keys are ignored so old files stay readable."""
    kwargs = {f.name: data[f.name] for f in fields(CallRecord) if f.name in data}
    for name in _RECORD_TIMES:
        if kwargs.get(name) is not None:
            kwargs[name] = datetime.fromisoformat(kwargs[name])
    return CallRecord(**kwargs)
