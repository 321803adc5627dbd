"""What the fake should answer: configured usage, faults, and the rules that fill in the rest.

Everything here is pure (no I/O) so the HTTP layer only routes and writes bytes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

__all__ = ["Behaviour", "Call", "FakeUsage", "Fault", "FaultKind", "Overrides", "Tokens", "parse_overrides"]

#: Output tokens when neither the configuration nor the request bounds them.
DEFAULT_OUTPUT_TOKENS = 16

FaultKind = Literal[
    "http", "timeout", "cut_stream", "malformed_json", "usage_missing", "usage_negative", "usage_no_output"
]


class ConfigError(ValueError):
    """A bad `x-fake-*` header or inconsistent configuration; the fake answers it with a 400."""


@dataclass(frozen=True, slots=True)
class FakeUsage:
    """Token counts the fake reports. None means "derive from the request".

    Counts use costlens conventions: `input_tokens` is the TOTAL input including cache reads
    (`cached_tokens`) and writes (`cache_write_tokens`); `output_tokens` includes `reasoning_tokens`.
    The fake converts to each provider's shape (e.g. Anthropic's `input_tokens` excludes cache).

    Derivation rules, deterministic so tests can predict them:
      * input = ceil(prompt_chars / 4) + prompt_token_ids + 1, where prompt_chars counts every string in the
        prompt fields (messages / input / instructions / system / prompt) except `role` and `type` markers,
        and never less than cached + cache_write;
      * output = word count of an enqueued `text` plus reasoning, else min(request bound, 16) where the bound
        is max_completion_tokens / max_tokens / max_output_tokens, and never less than reasoning;
      * the answer text is `output - reasoning` copies of "tok" (reasoning is billed, never shown),
        streamed one word per delta; hitting the request's bound reports finish "length" / "max_tokens".
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written for 1 hour (Anthropic)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in ("input_tokens", "output_tokens"):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"FakeUsage.{f.name} must be a non-negative int, got {value!r}")
        cache = self.cached_tokens + self.cache_write_tokens
        if self.input_tokens is not None and cache > self.input_tokens:
            raise ValueError(
                f"FakeUsage: cached + cache_write ({cache}) exceed input_tokens ({self.input_tokens})"
            )
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise ValueError(
                f"FakeUsage: cache_write_1h_tokens ({self.cache_write_1h_tokens}) "
                f"exceed cache_write_tokens ({self.cache_write_tokens})"
            )
        if self.output_tokens is not None and self.reasoning_tokens > self.output_tokens:
            raise ValueError(
                f"FakeUsage: reasoning_tokens ({self.reasoning_tokens}) "
                f"exceed output_tokens ({self.output_tokens})"
            )


@dataclass(frozen=True, slots=True)
class Fault:
    """One way for a request to go wrong. Build with the class methods; `name` is the header form.

    Header forms (`x-fake-fault`): `http-429`, `http-429-retry-0.5` (with retry-after), `http-500`,
    `timeout-2.0`, `cut-3`, `malformed`, `usage-missing`, `usage-negative`, `usage-no-output`.
    """

    kind: FaultKind
    status: int = 0
    retry_after: float | None = None
    body: Mapping[str, Any] | None = None
    message: str | None = None
    seconds: float = 0.0
    after_events: int = 0

    @classmethod
    def http(
        cls,
        status: int,
        retry_after: float | None = None,
        body: Mapping[str, Any] | None = None,
        *,
        message: str | None = None,
    ) -> Fault:
        """An error status with the provider's real error JSON (`body` replaces it verbatim)."""
        if not 400 <= status <= 599:
            raise ValueError(f"Fault.http needs a 4xx/5xx status, got {status}")
        return cls("http", status=status, retry_after=retry_after, body=body, message=message)

    @classmethod
    def timeout(cls, seconds: float) -> Fault:
        """Hold the response `seconds` before the headers, so the client's own timeout fires."""
        return cls("timeout", seconds=float(seconds))

    @classmethod
    def cut_stream(cls, after_events: int = 0) -> Fault:
        """Send `after_events` SSE events, then drop the connection with no terminating chunk."""
        return cls("cut_stream", after_events=after_events)

    @classmethod
    def malformed_json(cls) -> Fault:
        """200 with a truncated JSON body, or a truncated `data:` line as the second SSE event."""
        return cls("malformed_json")

    @classmethod
    def usage_missing(cls) -> Fault:
        """No usage object at all (and no usage-carrying chunk or fields in streams)."""
        return cls("usage_missing")

    @classmethod
    def usage_negative(cls) -> Fault:
        """Every non-zero count in the usage object is negated."""
        return cls("usage_negative")

    @classmethod
    def usage_no_output(cls) -> Fault:
        """A usage object without its output count (`completion_tokens` / `output_tokens`)."""
        return cls("usage_no_output")

    @classmethod
    def parse(cls, name: str) -> Fault:
        """Build a fault from its header form; raises ValueError on an unknown name."""
        return _parse_fault(name.strip().lower())

    @property
    def name(self) -> str:
        """The `x-fake-fault` header value that produces this fault."""
        if self.kind == "http":
            retry = "" if self.retry_after is None else f"-retry-{self.retry_after:g}"
            return f"http-{self.status}{retry}"
        if self.kind == "timeout":
            return f"timeout-{self.seconds:g}"
        if self.kind == "cut_stream":
            return f"cut-{self.after_events}"
        return {
            "malformed_json": "malformed",
            "usage_missing": "usage-missing",
            "usage_no_output": "usage-no-output",
        }.get(self.kind, "usage-negative")


_FAULT_PATTERNS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (
        re.compile(r"http-(\d{3})(?:-retry-(\d+(?:\.\d+)?))?"),
        lambda m: Fault.http(int(m[1]), None if m[2] is None else float(m[2])),
    ),
    (re.compile(r"timeout-(\d+(?:\.\d+)?)"), lambda m: Fault.timeout(float(m[1]))),
    (re.compile(r"cut-(\d+)"), lambda m: Fault.cut_stream(int(m[1]))),
    (re.compile(r"malformed"), lambda m: Fault.malformed_json()),
    (re.compile(r"usage-missing"), lambda m: Fault.usage_missing()),
    (re.compile(r"usage-negative"), lambda m: Fault.usage_negative()),
    (re.compile(r"usage-no-output"), lambda m: Fault.usage_no_output()),
)


def _parse_fault(name: str) -> Fault:
    for pattern, build in _FAULT_PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            fault: Fault = build(match)
            return fault
    raise ValueError(f"unknown fault {name!r}")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One queued, one-shot answer (see `FakeProvider.enqueue`)."""

    usage: FakeUsage | None = None
    fault: Fault | None = None
    text: str | None = None
    latency_s: float | None = None
    stream_deltas: int | None = None  # at most this many text deltas per stream (None: one per word)
    raw: Any = None  # a verbatim JSON body (dict) or SSE events (list), see FakeProvider.enqueue


_USAGE_HEADERS = {
    "x-fake-input-tokens": "input_tokens",
    "x-fake-output-tokens": "output_tokens",
    "x-fake-cached-tokens": "cached_tokens",
    "x-fake-cache-write-tokens": "cache_write_tokens",
    "x-fake-reasoning-tokens": "reasoning_tokens",
    "x-fake-cache-write-1h-tokens": "cache_write_1h_tokens",
}


@dataclass(frozen=True, slots=True)
class Overrides:
    """Per-request `x-fake-*` headers: they win over the queue, which wins over the defaults."""

    usage: dict[str, int]
    fault: Fault | None = None
    latency_s: float | None = None
    stream_deltas: int | None = None

    def apply(self, base: Behaviour) -> Behaviour:
        usage = base.usage or FakeUsage()
        try:
            usage = replace(usage, **self.usage) if self.usage else usage
        except ValueError as err:
            raise ConfigError(f"x-fake-* token headers: {err}") from err
        return Behaviour(
            usage=usage,
            fault=self.fault or base.fault,
            text=base.text,
            latency_s=base.latency_s if self.latency_s is None else self.latency_s,
            stream_deltas=self.stream_deltas or base.stream_deltas,
            raw=base.raw,
        )


def parse_overrides(headers: Mapping[str, str]) -> Overrides:
    """Read the `x-fake-*` headers (keys lower-cased); raises ConfigError on a bad value."""
    usage: dict[str, int] = {}
    for header, field_name in _USAGE_HEADERS.items():
        if header in headers:
            usage[field_name] = _header_number(headers, header, int)
    latency = None
    if "x-fake-latency-ms" in headers:
        latency = _header_number(headers, "x-fake-latency-ms", float) / 1000
    fault = None
    if "x-fake-fault" in headers:
        try:
            fault = Fault.parse(headers["x-fake-fault"])
        except ValueError as err:
            raise ConfigError(f"x-fake-fault: {err}") from err
    deltas = None
    if "x-fake-stream-deltas" in headers:
        deltas = max(1, _header_number(headers, "x-fake-stream-deltas", int))
    return Overrides(usage=usage, fault=fault, latency_s=latency, stream_deltas=deltas)


def _header_number(headers: Mapping[str, str], name: str, kind: type[int] | type[float]) -> Any:
    raw = headers[name]
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value < 0 or (isinstance(value, float) and not math.isfinite(value)):
        raise ConfigError(f"{name}: expected a non-negative number, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class Tokens:
    """Resolved counts for one answer, in costlens conventions (input includes cache)."""

    input: int
    output: int
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0
    cache_write_1h: int = 0

    @property
    def uncached_input(self) -> int:
        return self.input - self.cached - self.cache_write

    @property
    def visible_output(self) -> int:
        return max(self.output - self.reasoning, 0)


def resolve_tokens(usage: FakeUsage, *, derived_input: int, bound: int | None, text: str | None) -> Tokens:
    """Fill the None counts of `usage` with the documented derivation rules."""
    cache = usage.cached_tokens + usage.cache_write_tokens
    input_tokens = usage.input_tokens if usage.input_tokens is not None else max(derived_input, cache)
    if usage.output_tokens is not None:
        output = usage.output_tokens
    elif text is not None:
        output = len(text.split()) + usage.reasoning_tokens
    else:
        output = max(min(bound, DEFAULT_OUTPUT_TOKENS) if bound is not None else DEFAULT_OUTPUT_TOKENS, 0)
        output = max(output, usage.reasoning_tokens)
    return Tokens(
        input_tokens,
        output,
        usage.cached_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
        usage.cache_write_1h_tokens,
    )


_SKIPPED_KEYS = frozenset({"role", "type"})


def _measure(value: Any) -> tuple[int, int]:
    """(characters, integer token ids) in a prompt value, walking lists and dicts."""
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, bool):
        return 0, 0
    if isinstance(value, int):
        return 0, 1
    parts: list[Any]
    if isinstance(value, Mapping):
        parts = [v for k, v in value.items() if k not in _SKIPPED_KEYS]
    elif isinstance(value, list):
        parts = value
    else:
        return 0, 0
    chars = ids = 0
    for part in parts:
        c, i = _measure(part)
        chars += c
        ids += i
    return chars, ids


def derive_input_tokens(body: Mapping[str, Any], keys: tuple[str, ...]) -> int:
    """ceil(chars / 4) + token ids + 1 over the prompt fields `keys` of a request body."""
    chars, ids = _measure([body.get(key) for key in keys])
    return math.ceil(chars / 4) + ids + 1


def word_pieces(text: str) -> list[str]:
    """Split text into stream deltas, one per word, that concatenate back to `text` exactly."""
    return re.findall(r"\s*\S+\s*$|\s*\S+", text) or ([text] if text else [])


def default_text(words: int) -> str:
    """The deterministic answer: `words` copies of "tok"."""
    return " ".join(["tok"] * words)


UsageMode = Literal["normal", "missing", "negative", "no_output"]
#: The output counts of each provider's usage shape, dropped by the `usage_no_output` fault.
_OUTPUT_KEYS = ("completion_tokens", "output_tokens")

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class Call:
    """Everything a response builder needs for one answer; ids derive from `seed` so runs are repeatable."""

    model: str
    tokens: Tokens
    text: str
    created: int
    seed: str
    body: Mapping[str, Any]
    usage_mode: UsageMode = "normal"
    truncated: bool = False
    max_deltas: int | None = None

    @property
    def pieces(self) -> list[str]:
        pieces = word_pieces(self.text)
        if self.max_deltas is None or len(pieces) <= self.max_deltas:
            return pieces
        size = math.ceil(len(pieces) / self.max_deltas)  # fewer, larger deltas: same text
        return ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]

    def make_id(self, kind: str, length: int, *, hex_only: bool = False) -> str:
        """A realistic-looking id, stable for a given request number and kind."""
        digest = hashlib.sha256(f"{self.seed}:{kind}".encode()).digest()
        while len(digest) < length:
            digest += hashlib.sha256(digest).digest()
        if hex_only:
            return digest.hex()[:length]
        return "".join(_ALNUM[b % len(_ALNUM)] for b in digest[:length])

    def render_usage(self, usage: dict[str, Any]) -> dict[str, Any] | None:
        """Apply the usage fault mode to a provider-shaped usage dict."""
        if self.usage_mode == "missing":
            return None
        if self.usage_mode == "negative":
            negated: dict[str, Any] = _negate(usage)
            return negated
        if self.usage_mode == "no_output":
            return {k: v for k, v in usage.items() if k not in _OUTPUT_KEYS}
        return usage


def _negate(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _negate(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return -value
    return value
