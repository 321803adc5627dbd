"""CSV traces with a column mapping (`timestamp=TIMESTAMP,input_tokens=ContextTokens,...`) or a preset.

Targets: `timestamp` (required), `ended_at`, `latency_ms`, `ttft_ms`, `input_tokens` (required),
`output_tokens`, `cache_read_tokens`, `cache_write_tokens`, `reasoning_tokens`, `model`, `provider`,
`operation`, `status`, `service_tier`, `id` (a natural request id), `cost_usd`, and `tag.NAME` for
any tag. What the file lacks comes from the options (`--model`, `--provider`, `--tag`...).
Without an `id` column, record ids come from the file's identity (a digest of its header and first
data line, or `--source`) and the line number, so a file that grew since is imported again adding
only its new lines. Prompt or response text columns are never read.
Relative timestamps (BurstGPT's seconds since the trace began) need the trace's real start
(`--start`, in `ImportOptions.start`; `--time-unit ms` for milliseconds): without it such times
read as 1970 and the import is refused. JSON lines use the same mapping (`_import_jsonl`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from costlens.analytics._import import (
    BadRow,
    Counted,
    ImportOptions,
    Parsed,
    derive_id,
    make_time_parser,
    parse_money,
)
from costlens.usage import CallRecord, Usage

__all__ = ["PRESETS", "TARGETS", "Preset", "csv_parser", "parse_mapping", "row_builder"]

_NUMBERS = ("latency_ms", "ttft_ms")
_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
_TEXT = ("model", "provider", "operation", "service_tier", "id")
TARGETS = ("timestamp", "ended_at", "status", "cost_usd", *_NUMBERS, *_TOKENS, *_TEXT)
_STATUS = {
    "ok": "ok", "success": "ok", "succeeded": "ok", "200": "ok",
    "error": "error", "failure": "error", "failed": "error", "blocked": "blocked",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Preset:
    """A named mapping for a known trace, with defaults for what the trace does not record."""

    mapping: Mapping[str, str]
    provider: str | None = None
    operation: str = "chat"
    note: str = ""
    time_unit: str = "s"


PRESETS: dict[str, Preset] = {
    "azure-llm-2023": Preset(
        {"timestamp": "TIMESTAMP", "input_tokens": "ContextTokens", "output_tokens": "GeneratedTokens"},
        provider="azure",
        note="Azure LLM inference trace 2023 (Splitwise): no model is recorded, so give --model",
    ),
    "burstgpt": Preset(
        {
            "timestamp": "Timestamp",
            "model": "Model",
            "input_tokens": "Request tokens",
            "output_tokens": "Response tokens",
            "tag.log_type": "Log Type",
        },
        provider="azure",
        note="BurstGPT (Azure OpenAI GPT-3.5/GPT-4 traffic): Timestamp is seconds since the trace "
        "began, so give --start; Model is ChatGPT or GPT-4 (give --model to price a real model name)",
    ),
    "mooncake": Preset(
        {"timestamp": "timestamp", "input_tokens": "input_length", "output_tokens": "output_length"},
        note="Mooncake (Kimi) JSON-lines traces: timestamp is milliseconds since the trace began, so "
        "give --start; no model or provider is recorded, so give --model and --provider",
        time_unit="ms",
    ),
}


def parse_mapping(text: str) -> dict[str, str]:
    """`target=Column,target=Column` -> {target: column}; ValueError naming the valid targets."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        target, sep, column = part.partition("=")
        target = target.strip()
        if not sep or not column.strip():
            raise ValueError(f"bad mapping {part.strip()!r}: write target=Column, e.g. timestamp=TIMESTAMP")
        if target not in TARGETS and not target.startswith(("tag.", "tag:")):
            raise ValueError(f"unknown mapping target {target!r}: use {', '.join(TARGETS)} or tag.NAME")
        out[target.replace("tag:", "tag.", 1)] = column.strip()
    return out


def csv_parser(mapping: Mapping[str, str], options: ImportOptions) -> Callable[[Counted], Iterator[Parsed]]:
    """A parser for `run_import`; ValueError when the mapping misses what a record needs."""
    for needed in ("timestamp", "input_tokens"):
        if needed not in mapping:
            raise ValueError(f"the CSV mapping needs {needed}=<column>")
    if "model" not in mapping and options.model is None:
        raise ValueError("the file names no model: give the model (--model) or map a model column")
    if "provider" not in mapping and options.provider is None:
        raise ValueError(
            "the file names no provider: give the provider (--provider) or map a provider column"
        )
    make_time_parser(options)  # a bad --start / --time-unit is an error before anything is read

    def parse(counted: Counted) -> Iterator[Parsed]:
        reader = csv.reader(counted.lines())
        header = next(reader, None)
        if header is None:
            return
        missing = [column for column in mapping.values() if column not in header]
        if missing:
            yield BadRow("line 1", f"no column {', '.join(missing)} in the header ({', '.join(header)})", 1)
            return
        build = row_builder(mapping, header, options)
        source = None if options.source is None else derive_id("csv-source", options.source)
        start = reader.line_num + 1
        for row in reader:
            if source is None:
                source = derive_id("csv-source", ",".join(header), ",".join(row))
            yield build(row, start, source)
            start = reader.line_num + 1

    return parse


def row_builder(
    mapping: Mapping[str, str], header: list[str], options: ImportOptions
) -> Callable[[list[str], int, str], Parsed]:
    """Turns one row (text cells in `header`'s order), its line and the file's identity into a record
    or a BadRow; ValueError for a bad time option."""
    index = {target: header.index(column) for target, column in mapping.items()}
    when = make_time_parser(options)
    tags_at = {target[4:]: i for target, i in index.items() if target.startswith("tag.")}
    fast = _fast_builder(index, options, when) if set(index) <= {"timestamp", *_TOKENS} else None
    width = len(header)

    def build(row: list[str], line: int, source: str) -> Parsed:
        if len(row) != width:
            return BadRow(f"line {line}", f"{len(row)} fields where the header has {width}", line)
        if fast is not None:
            try:
                return fast(row, f"{source[:14]}{line:018x}")
            except (ValueError, TypeError):
                pass  # the slow path below says what is wrong
        try:
            return _record(row, index, tags_at, options, line, source, when)
        except (ValueError, KeyError) as exc:
            return BadRow(f"line {line}", str(exc), line)

    return build


def _fast_builder(
    index: Mapping[str, int], options: ImportOptions, when: Callable[[str], datetime]
) -> Callable[[list[str], str], CallRecord]:
    """The common trace shape (a time and token counts, everything else from the options), built
    without per-field checks; any failure falls back to the checked path, which explains it."""
    at = index["timestamp"]
    slots = [index.get(name) for name in _TOKENS]
    tags = dict(options.tags)  # shared by every record of the file: encoded once when stored
    provider, model = str(options.provider), str(options.model)
    operation = options.operation or "chat"

    def fast(row: list[str], record_id: str) -> CallRecord:
        n_in, n_out, cache_read, cache_write, reasoning = (0 if i is None else int(row[i]) for i in slots)
        if min(n_in, n_out, cache_read, cache_write, reasoning) < 0 or cache_read + cache_write > n_in:
            raise ValueError("inconsistent token counts")
        if reasoning > n_out:
            raise ValueError("inconsistent token counts")
        return CallRecord(
            provider=provider,
            operation=operation,
            request_model=model,
            started_at=when(row[at]),
            input_tokens=n_in,
            output_tokens=n_out,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=reasoning,
            tags=tags,
            id=record_id,
        )

    return fast


def _record(
    row: list[str],
    index: Mapping[str, int],
    tags_at: Mapping[str, int],
    options: ImportOptions,
    line: int,
    source: str,
    when: Callable[[str], datetime],
) -> CallRecord:
    def get(target: str) -> str | None:
        i = index.get(target)
        return None if i is None or row[i].strip() == "" else row[i].strip()

    started = when(row[index["timestamp"]])
    tokens = [_count(get(name), name) for name in _TOKENS]
    Usage(*tokens)  # raises ValueError with a clear message when the counts disagree
    tags = dict(options.tags)
    tags.update({name: row[i] for name, i in tags_at.items() if row[i] != ""})
    ended = get("ended_at")
    cost = get("cost_usd")
    status = _STATUS.get((get("status") or "ok").lower())
    if status is None:
        raise ValueError(f"unknown status {get('status')!r}: use ok, error or blocked")
    return CallRecord(
        provider=get("provider") or str(options.provider),
        operation=get("operation") or options.operation or "chat",
        request_model=get("model") or str(options.model),
        started_at=started,
        ended_at=None if ended is None else when(ended),
        latency_ms=_number(get("latency_ms"), "latency_ms"),
        ttft_ms=_number(get("ttft_ms"), "ttft_ms"),
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cache_read_tokens=tokens[2],
        cache_write_tokens=tokens[3],
        reasoning_tokens=tokens[4],
        cost_nanousd=None if cost is None else parse_money(cost),
        price_known=cost is not None,
        price_version="" if cost is None else "source",
        status=status,  # type: ignore[arg-type]
        service_tier=get("service_tier"),
        tags=tags,
        id=derive_id("csv-id", get("id")) if "id" in index else f"{source[:14]}{line:018x}",
    )


def _count(text: str | None, name: str) -> int:
    if text is None:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} is not a whole number: {text!r}") from None
    if value < 0:
        raise ValueError(f"{name} is negative: {value}")
    return value


def _number(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} is not a number: {text!r}") from None
