"""The normalised shapes every other module speaks: `Usage`, `Cost` and `CallRecord`.

Provider adapters fill `Usage`; pricing turns it into a `Cost`; the instrumentation wraps both
into one `CallRecord` per call. Nothing downstream ever sees provider JSON.
"""

from __future__ import annotations

import itertools
import os
import struct
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial
from typing import Any, Literal, NoReturn, cast

__all__ = [
    "GEO_SEPARATOR",
    "NANO",
    "PLAIN_GEOS",
    "ROW_FIELDS",
    "USAGE_PARTS",
    "CallRecord",
    "Cost",
    "Status",
    "Usage",
    "micros_of",
    "new_ids",
    "record_from_dict",
    "record_of_row",
    "record_row",
    "record_to_dict",
    "to_nanousd",
    "usage_of_ints",
    "with_inference_geo",
]

#: One US dollar in nano-dollars: stores keep money as integer nano-USD.
NANO = 1_000_000_000
_NANO_QUANT = Decimal("1e-9")

Status = Literal["ok", "error", "blocked"]


#: Where inference ran, in a price tier's name: `<tier>+<geo>` (`standard+us`, `fast+us`).
GEO_SEPARATOR = "+"
#: Inference geographies billed at the plain list price: the default, and no answer at all.
PLAIN_GEOS = frozenset({"", "global"})


def with_inference_geo(tier: str | None, geo: object) -> str | None:
    """The price tier of a call that ran in inference geography `geo`.

    Anthropic bills US-only inference (`inference_geo: "us"`, in the request and in the response's
    usage) at 1.1x every token price, whatever the tier, so such a call's tier names both:
    `standard+us`, `fast+us`, `batch+us` (`costlens.pricing` applies the premium). `global`, an
    empty or absent geography leave `tier` as it is."""
    if not isinstance(geo, str) or (where := geo.strip().lower()) in PLAIN_GEOS:
        return tier
    return f"{tier or 'standard'}{GEO_SEPARATOR}{where}"


def to_nanousd(amount: Decimal) -> int:
    """Round a dollar amount to integer nano-USD (banker's rounding, the only rounding on the money path)."""
    return int(amount.quantize(_NANO_QUANT, rounding=ROUND_HALF_EVEN) * NANO)


# `__new__` builds it (see there): no generated `__init__`
@dataclass(frozen=True, slots=True, init=False)
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

    def __new__(
        cls,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        input_audio_tokens: int = 0,
        output_audio_tokens: int = 0,
        citation_tokens: int = 0,
        web_search_requests: int = 0,
        file_search_requests: int = 0,
    ) -> Usage:
        i, o, cr, cw, r = input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens
        c1, ia, oa = cache_write_1h_tokens, input_audio_tokens, output_audio_tokens
        ct, ws, fs = citation_tokens, web_search_requests, file_search_requests
        # One cheap test on the hot path (every count an exact int, their OR non-negative: none is
        # negative, and the parts fit their totals); the detailed checks run only when it fails.
        if not (
            int is type(i) is type(o) is type(cr) is type(cw) is type(r) is type(c1) is type(ia)
            is type(oa) is type(ct) is type(ws) is type(fs)
            and (i | o | cr | cw | r | c1 | ia | oa | ct | ws | fs) >= 0
            and cr + cw + ia <= i
            and r + oa + ct <= o
            and c1 <= cw
        ):  # fmt: skip
            _explain_invalid(i, o, cr, cw, r, c1, ia, oa, ct, ws, fs)
        if cls is not Usage:  # a subclass may add slots of its own: the frozen way, field by field
            made = object.__new__(cls)
            for name, value in zip(_USAGE_FIELDS, (i, o, cr, cw, r, c1, ia, oa, ct, ws, fs), strict=True):
                object.__setattr__(made, name, value)
            return made
        # Every call builds one. A frozen dataclass sets each field through `object.__setattr__`
        # (~0.15 µs each, ~3 µs in all); a plain object of the same slots is filled by plain stores
        # and then becomes a `Usage` (same layout, so CPython allows the class change): ~1 µs.
        blank: Any = object.__new__(_UsageSlots)
        blank.input_tokens, blank.output_tokens, blank.cache_read_tokens = i, o, cr
        blank.cache_write_tokens, blank.reasoning_tokens, blank.cache_write_1h_tokens = cw, r, c1
        blank.input_audio_tokens, blank.output_audio_tokens, blank.citation_tokens = ia, oa, ct
        blank.web_search_requests, blank.file_search_requests = ws, fs
        blank.__class__ = Usage
        return blank  # type: ignore[no-any-return]  # (no `cast`: it is a call, on every call)

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


#: Every field of `Usage`, in order.
_USAGE_FIELDS = tuple(f.name for f in fields(Usage))


def _slots_twin(cls: type) -> type:
    """A plain class with the same slots as the slotted dataclass `cls`, without its `__init__` (or,
    frozen, its `__setattr__`): a hot path fills one and sets its `__class__` to `cls`, which skips
    the argument binding, the default factories and a frozen class's `object.__setattr__` per field
    (a third to half of the time). The slots must match in name and order for the class to be
    assignable; tests check the result equals, hashes, pickles and (frozen) stays frozen like an
    object built field by field."""
    return type(f"_{cls.__name__}Slots", (), {"__slots__": tuple(f.name for f in fields(cls))})


_UsageSlots = _slots_twin(Usage)  # (`Usage.__new__` and `usage_of_ints` fill one)


def usage_of_ints(
    i: int, o: int, cr: int = 0, cw: int = 0, r: int = 0, ia: int = 0, oa: int = 0, c1: int = 0, ws: int = 0
) -> Usage:
    """`Usage(i, o, cr, cw, r, c1, ia, oa, web_search_requests=ws)`, for an adapter that has checked
    already that every count is an exact `int` (`type(x) is int`): the same rules are checked, in a
    third of the time (every plain call builds one). Counts that break a rule raise the same
    ValueError as `Usage` does."""
    if (i | o | cr | cw | r | ia | oa | c1 | ws) < 0 or cr + cw + ia > i or r + oa > o or c1 > cw:
        return Usage(i, o, cr, cw, r, c1, ia, oa, web_search_requests=ws)  # raises, says which rule
    blank: Any = object.__new__(_UsageSlots)
    blank.input_tokens, blank.output_tokens, blank.cache_read_tokens = i, o, cr
    blank.cache_write_tokens, blank.reasoning_tokens, blank.cache_write_1h_tokens = cw, r, c1
    blank.input_audio_tokens, blank.output_audio_tokens, blank.citation_tokens = ia, oa, 0
    blank.web_search_requests, blank.file_search_requests = ws, 0
    blank.__class__ = Usage
    return blank  # type: ignore[no-any-return]


def _explain_invalid(*values: object) -> NoReturn:
    """Raise the ValueError that says which rule of `Usage` the counts (in field order) break."""
    for name, value in zip(_USAGE_FIELDS, values, strict=True):
        if type(value) is not int or value < 0:  # (bool and other int subclasses are refused)
            raise ValueError(f"Usage.{name} must be a non-negative int, got {value!r}")
    i, o, cr, cw, r, c1, ia, oa, ct, _, _ = cast(tuple[int, ...], values)
    if cr + cw + ia > i:
        raise ValueError(
            "Usage.cache_read_tokens + cache_write_tokens + input_audio_tokens exceed input_tokens "
            f"({cr} + {cw} + {ia} > {i}); input_tokens must include cached and audio tokens"
        )
    if c1 > cw:
        raise ValueError(
            f"Usage.cache_write_1h_tokens ({c1}) exceed cache_write_tokens "
            f"({cw}); cache_write_tokens must include 1-hour writes"
        )
    raise ValueError(
        "Usage.reasoning_tokens + output_audio_tokens + citation_tokens exceed output_tokens "
        f"({r} + {oa} + {ct} > {o}); output_tokens must include them"
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


# Record ids: time-ordered, 32 hex digits: microseconds, a per-process random tag, a counter.
# Cheaper than uuid4 (no urandom per call) and ordered by time, which keeps B-tree inserts into
# large SQLite/PostgreSQL tables local. The tag is drawn again in a forked child.
_id_tag = b""
_id_counter = itertools.count()
_pack_id = struct.Struct(">Q5sI").pack


def _reset_ids() -> bytes:
    global _id_tag, _id_counter
    _id_tag = os.urandom(5)
    _id_counter = itertools.count()
    return _id_tag


def _new_id() -> str:
    # 7 bytes of microseconds (the 8-byte pack's first byte is 0 until the year 4254), 5 of tag and
    # 4 of counter, as hex: the text of `f"{micros:014x}{tag}{n:08x}"`, at half its cost
    tag = _id_tag or _reset_ids()
    return _pack_id(time.time_ns() // 1000, tag, next(_id_counter) & 0xFFFFFFFF).hex()[2:]


def new_ids(count: int) -> list[str]:
    """`count` record ids at once (a batch's): one clock read, each id after the one before."""
    tag = _id_tag or _reset_ids()
    micros, counter, pack = time.time_ns() // 1000, _id_counter, _pack_id
    return [pack(micros, tag, next(counter) & 0xFFFFFFFF).hex()[2:] for _ in range(count)]


os.register_at_fork(after_in_child=_reset_ids)


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


#: A record as one flat tuple (`record_row`): its fields in this order, the times as integer
#: microseconds since the epoch (UTC), `estimated` as 0 or 1, no budget entries as None: what a store
#: that writes many records at once binds as it is (SQL binds an int or a str directly, a bool or a
#: datetime through an adapter), and slices into its parts in C. A deferred call's record is made
#: as a row on the recorder's thread for such a store (`costlens.pipeline`): a `CallRecord` made
#: there was only read back, field by field, into the same values.
ROW_FIELDS = (
    "provider", "operation", "request_model", "response_model", "price_known", "price_version", "status",
    "error_type", "http_status", "stream", "service_tier", "tags",
    "id", "started_at_us", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_nanousd", "estimated", *USAGE_PARTS,
    "ended_at_us", "latency_ms", "ttft_ms", "trace_id", "span_id", "route", "budgets", "content",
)  # fmt: skip
_ROW_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ROW_MICRO = timedelta(microseconds=1)


def micros_of(when: datetime) -> int:
    """Microseconds since the epoch, UTC; a naive datetime is taken as UTC (the stores' reading)."""
    if when.tzinfo is None:  # taken as UTC, as the stores take it
        when = when.replace(tzinfo=UTC)
    return (when - _ROW_EPOCH) // _ROW_MICRO


def record_row(r: CallRecord) -> tuple[Any, ...]:
    """The record as a row (`ROW_FIELDS`)."""
    ended = r.ended_at
    return (
        r.provider, r.operation, r.request_model, r.response_model, r.price_known, r.price_version, r.status,
        r.error_type, r.http_status, r.stream, r.service_tier, r.tags,
        r.id, micros_of(r.started_at), r.input_tokens, r.output_tokens, r.cache_read_tokens,
        r.cache_write_tokens, r.reasoning_tokens, r.cost_nanousd, 1 if r.estimated else 0,
        r.cache_write_1h_tokens, r.input_audio_tokens, r.output_audio_tokens, r.citation_tokens,
        r.web_search_requests, r.file_search_requests,
        None if ended is None else micros_of(ended), r.latency_ms, r.ttft_ms, r.trace_id, r.span_id, r.route,
        r.budgets or None, r.content,
    )  # fmt: skip


def record_of_row(row: tuple[Any, ...]) -> CallRecord:
    """The record a row holds (`record_row`'s inverse; times come back as UTC datetimes). Made
    where a row cannot be written: the spool, a store that takes records."""
    values = dict(zip(ROW_FIELDS, row, strict=True))
    started_us, ended_us = values.pop("started_at_us"), values.pop("ended_at_us")
    values.update(
        started_at=_ROW_EPOCH + _ROW_MICRO * started_us,
        ended_at=None if ended_us is None else _ROW_EPOCH + _ROW_MICRO * ended_us,
        price_known=bool(values["price_known"]),
        estimated=bool(values["estimated"]),
        stream=bool(values["stream"]),
        tags=dict(values["tags"]),  # (a row's tags may be a client's own mapping)
        budgets=values["budgets"] or [],
    )
    return CallRecord(**values)
