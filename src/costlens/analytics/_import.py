"""Import of usage recorded outside costlens: the loop shared by every format.

A format parser turns a file into `CallRecord`s and `BadRow`s (with line numbers); this module
prices the records (`pricing`: `auto` keeps a cost the source carries and prices the rest with the
catalogue, `catalogue` prices everything, `none` prices nothing), writes them in batches inside one
all-or-nothing write, and counts. `on_error="reject"` imports nothing when any row is bad (every
bad row is still reported); `skip` imports the good rows and reports the bad ones.
Importing is idempotent: each record's id is derived from its source (a natural request id, or the
file's identity and the line number), so importing a file twice adds nothing.
Times must be plausible: a record dated before 2000 or more than a day in the future stops the
import (nothing is written) with an error saying to pass a start time (`start=`, `--start`), which
turns relative timestamps (seconds or milliseconds since the trace began) into real ones. Parsers
may also yield `ImportNote`s: warnings about the file as a whole (an incomplete paginated export).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO, Literal

from costlens.analytics._pricer import Pricer
from costlens.store import Store
from costlens.store._base import write_all
from costlens.store._time import get_zone
from costlens.usage import CallRecord, to_nanousd

__all__ = [
    "BadRow",
    "Counted",
    "ImplausibleTime",
    "ImportNote",
    "ImportOptions",
    "ImportResult",
    "Parsed",
    "check_plausible",
    "derive_id",
    "make_time_parser",
    "parse_money",
    "parse_time",
    "run_import",
]

Pricing = Literal["auto", "catalogue", "none"]
OnError = Literal["reject", "skip"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
#: Records dated before this are taken for relative timestamps read as Unix times.
PLAUSIBLE_FROM = datetime(2000, 1, 1, tzinfo=UTC)
_UNITS = {"s": 1, "ms": 1e-3, "us": 1e-6}


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that could not be imported: where it is (`line 12`, `data[3].results[0]`) and why."""

    where: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True, slots=True)
class ImportNote:
    """A warning about the file as a whole (not a row): shown after the import, kept in the result."""

    message: str


class ImplausibleTime(ValueError):
    """A record's time cannot be real (relative timestamps read as Unix times): nothing is imported."""


#: What a parser yields.
Parsed = CallRecord | BadRow | ImportNote


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What a file does not say: model, provider, operation, tags, time zone; and how to price."""

    provider: str | None = None
    model: str | None = None
    operation: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    timezone: str = "UTC"
    pricing: Pricing = "auto"
    source: str | None = None
    start: datetime | None = None
    time_unit: str = "s"


@dataclass(slots=True)
class ImportResult:
    """Counts of one import. Token and cost totals are over the good rows read (new or not)."""

    path: str
    format: str
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    bad: list[BadRow] = field(default_factory=list)
    rejected: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cost_nanousd: int = 0
    unpriced: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        from costlens.store import nanousd_to_usd

        return {
            "path": self.path,
            "format": self.format,
            "rows": self.rows,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "bad_rows": len(self.bad),
            "rejected": self.rejected,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": nanousd_to_usd(self.cost_nanousd),
            "unpriced": self.unpriced,
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
        }


class Counted:
    """A binary file read line by line, counting bytes (for the progress bar) and decoding UTF-8."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.done = 0

    def lines(self) -> Iterator[str]:
        first = True
        for chunk in self.raw:
            self.done += len(chunk)
            text = chunk.decode("utf-8", errors="replace")
            if first:
                text, first = text.removeprefix("\ufeff"), False
            yield text


def derive_id(kind: str, *parts: object) -> str:
    """A 32-hex-digit record id from the source's identity (same source, same id: idempotence)."""
    text = "\0".join([kind, *(str(p) for p in parts)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def parse_time(text: str, timezone: str = "UTC") -> datetime:
    """An ISO date-time (naive ones are in `timezone`; extra fraction digits are cut to µs) or a Unix
    time in seconds, milliseconds or microseconds. ValueError otherwise."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"cannot read {text!r} as a time: use ISO 8601 or Unix seconds") from None
        scale = 1 if abs(number) < 1e11 else 1e3 if abs(number) < 1e14 else 1e6
        return _EPOCH + timedelta(seconds=number / scale)
    if when.tzinfo is None:
        zone = get_zone(timezone)
        return when.replace(tzinfo=UTC) if zone is UTC else when.replace(tzinfo=zone).astimezone(UTC)
    return when.astimezone(UTC)


def make_time_parser(options: ImportOptions) -> Callable[[str], datetime]:
    """How a trace's timestamps are read: `parse_time` in the options' zone, or, with a `start`,
    numbers counted from it in the options' `time_unit` (s, ms, us)."""
    if options.time_unit not in _UNITS:
        raise ValueError(f"unknown time unit {options.time_unit!r}: use s, ms or us")
    start, scale, zone = options.start, _UNITS[options.time_unit], options.timezone
    if start is None:
        if options.time_unit != "s":
            raise ValueError("a time unit is for relative timestamps: give the start time too (--start)")
        return lambda text: parse_time(text, zone)
    base = start if start.tzinfo is not None else start.replace(tzinfo=get_zone(zone)).astimezone(UTC)

    def relative(text: str) -> datetime:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(
                f"cannot read {text!r} as a relative time: with --start, timestamps are numbers "
                f"({options.time_unit} since the start)"
            ) from None
        return base + timedelta(seconds=number * scale)

    return relative


def check_plausible(when: datetime, where: str = "") -> None:
    """ImplausibleTime when `when` cannot be a real call time (before 2000, or in the future)."""
    late = datetime.now(UTC) + timedelta(days=1)
    if PLAUSIBLE_FROM <= when <= late:
        return
    at = f"{where}: " if where else ""
    if when < PLAUSIBLE_FROM:
        raise ImplausibleTime(
            f"{at}the time reads as {when.isoformat()}, before 2000: the file's timestamps look relative "
            "(seconds since the trace began); give the trace's real start time with --start "
            "(e.g. --start 2023-11-16T18:00:00Z, and --time-unit ms for milliseconds)"
        )
    raise ImplausibleTime(
        f"{at}the time reads as {when.isoformat()}, in the future: check the timestamp column and its "
        "unit (--time-unit), or give the trace's real start time with --start"
    )


def parse_money(value: object) -> int:
    """USD (a JSON number parsed as Decimal, or text) -> integer nano-USD; ValueError if not a number."""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not an amount of money: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not an amount of money: {value!r}")
    return to_nanousd(amount)


def _micros(when: datetime) -> int:
    return (when - _EPOCH) // _MICRO


class _Tally:
    """Prices records and adds them up."""

    def __init__(self, result: ImportResult, pricing: Pricing, pricer: Pricer | None) -> None:
        self.result, self.pricing, self.pricer = result, pricing, pricer

    def __call__(self, record: CallRecord) -> None:
        if self.pricer is not None and (self.pricing == "catalogue" or record.cost_nanousd is None):
            model = record.response_model or record.request_model
            tokens = (
                record.input_tokens, record.output_tokens, record.cache_read_tokens,
                record.cache_write_tokens, record.reasoning_tokens,
            )  # fmt: skip
            nano = self.pricer(
                record.provider, model, record.service_tier, _micros(record.started_at), tokens
            )
            record.cost_nanousd, record.price_known = nano, nano is not None
            record.price_version = self.pricer.version
        r = self.result
        r.input_tokens += record.input_tokens
        r.output_tokens += record.output_tokens
        if record.cost_nanousd is None:
            r.unpriced += 1
        else:
            r.cost_nanousd += record.cost_nanousd


class _Rejected(Exception):
    """Raised inside the write block to roll it back."""


Progress = Callable[[int, int], None]


def run_import(
    store: Store,
    path: Path,
    fmt: str,
    parse: Callable[[Counted], Iterator[Parsed]],
    *,
    pricing: Pricing,
    on_error: OnError,
    batch_size: int = 2000,
    progress: Progress | None = None,
) -> ImportResult:
    """Parse `path` with `parse`, price, write; see the module docstring for the rules."""
    if on_error not in ("reject", "skip"):
        raise ValueError(f"unknown on_error {on_error!r}: use reject or skip")
    started = time.perf_counter()
    result = ImportResult(str(path), fmt)
    tally = _Tally(result, pricing, None if pricing == "none" else Pricer())
    total = path.stat().st_size
    with path.open("rb") as raw:
        counted = Counted(raw)
        try:
            with write_all(store) as write:
                batch: list[CallRecord] = []
                late = datetime.now(UTC) + timedelta(days=1)
                for item in parse(counted):
                    if isinstance(item, ImportNote):
                        result.warnings.append(item.message)
                        continue
                    result.rows += 1
                    if isinstance(item, BadRow):
                        result.bad.append(item)
                        continue
                    if not PLAUSIBLE_FROM <= item.started_at <= late:
                        check_plausible(item.started_at, f"record {result.rows}")
                    tally(item)
                    batch.append(item)
                    if len(batch) >= batch_size:
                        result.imported += 0 if result.bad and on_error == "reject" else write(batch)
                        batch = []
                        if progress is not None:
                            progress(counted.done, total)
                if result.bad and on_error == "reject":
                    raise _Rejected
                result.imported += write(batch)
        except _Rejected:
            result.rejected, result.imported = True, 0
    if progress is not None:
        progress(total, total)
    result.duplicates = result.rows - len(result.bad) - result.imported if not result.rejected else 0
    result.seconds = time.perf_counter() - started
    return result
