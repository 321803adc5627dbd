"""`import_file`: pick the format (or recognise it), build its parser, run the shared import loop."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path

from costlens.analytics._import import (
    Counted,
    ImportOptions,
    ImportResult,
    OnError,
    Parsed,
    Pricing,
    Progress,
    run_import,
)
from costlens.analytics._import_csv import PRESETS, csv_parser, parse_mapping
from costlens.analytics._import_jsonl import costlens_jsonl_parser, mapped_jsonl_parser
from costlens.analytics._import_litellm import DAILY_ENTITIES, litellm_daily_parser, litellm_parser
from costlens.analytics._import_openai import openai_costs_parser, openai_usage_parser
from costlens.store import Store
from costlens.store._time import get_zone

__all__ = ["FORMATS", "detect_format", "import_file"]

#: Formats `import_file` reads (`auto` recognises them from the file's first bytes).
FORMATS = ("csv", "jsonl", "openai-usage", "openai-costs", "litellm", "litellm-daily", "costlens-jsonl")
_DAILY = {"date", "spend", "prompt_tokens"}
_HEAD = 65536


def _head(path: Path) -> str:
    with path.open("rb") as f:
        return f.read(_HEAD).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")


def detect_format(path: Path) -> tuple[str, str | None]:
    """(format, preset) recognised from the file's start; ValueError when it cannot tell."""
    head = _head(path)
    if head.startswith(("{", "[")):
        if "organization.usage." in head:
            return "openai-usage", None
        if "organization.costs.result" in head:
            return "openai-costs", None
        first = head.splitlines()[0] if head else ""
        try:
            doc = json.loads(first)
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and {"request_model", "provider", "started_at"} <= set(doc):
            return "costlens-jsonl", None
        if '"request_id"' in head:
            return "litellm", None
        first_row = _first_object(head)
        if first_row is not None and set(first_row) >= _DAILY and set(DAILY_ENTITIES) & set(first_row):
            return "litellm-daily", None
        if isinstance(doc, dict) and {"timestamp", "input_length", "output_length"} <= set(doc):
            return "jsonl", "mooncake"
    else:
        header = next(csv.reader(io.StringIO(head)), [])
        if {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} <= set(header):
            return "csv", "azure-llm-2023"
        if {"Timestamp", "Request tokens", "Response tokens"} <= set(header):
            return "csv", "burstgpt"
        if {"request_id", "startTime"} <= set(header):
            return "litellm", None
        if set(header) >= _DAILY and set(DAILY_ENTITIES) & set(header):
            return "litellm-daily", None
        if header:
            return "csv", None
    raise ValueError(
        f"cannot tell the format of {path}: give it ({', '.join(FORMATS)}; csv and jsonl with a mapping "
        "or a preset)"
    )


def _first_object(head: str) -> dict[str, object] | None:
    """The first row of a JSON list, a `{"data": [...]}` page or JSON lines, when the head shows it."""
    text = head.lstrip("[ \t\r\n")
    if text.startswith("{") and head.startswith("{"):
        try:
            doc = json.loads(head.splitlines()[0])
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("data"), list) and doc["data"]:
            first = doc["data"][0]
            return first if isinstance(first, dict) else None
        if isinstance(doc, dict):
            return doc
    try:
        first, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError:
        return None
    return first if isinstance(first, dict) else None


def _parser(
    fmt: str, path: Path, preset: str | None, mapping: Mapping[str, str] | str | None, options: ImportOptions
) -> Callable[[Counted], Iterator[Parsed]]:
    if fmt in ("csv", "jsonl"):
        columns: dict[str, str] = {}
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r}: use {', '.join(PRESETS)}")
            columns.update(PRESETS[preset].mapping)
        if mapping is not None:
            columns.update(parse_mapping(mapping) if isinstance(mapping, str) else mapping)
        if not columns:
            kind = "a CSV file" if fmt == "csv" else "a JSON-lines file"
            raise ValueError(f"{kind} needs a column mapping (timestamp=...,input_tokens=...) or a preset")
        return csv_parser(columns, options) if fmt == "csv" else mapped_jsonl_parser(columns, options)
    if fmt == "openai-usage":
        return openai_usage_parser(options)
    if fmt == "openai-costs":
        return openai_costs_parser(options)
    if fmt == "litellm":
        return litellm_parser(options, as_csv=not _head(path).startswith(("{", "[")))
    if fmt == "litellm-daily":
        return litellm_daily_parser(options, as_csv=not _head(path).startswith(("{", "[")))
    if fmt == "costlens-jsonl":
        return costlens_jsonl_parser()
    raise ValueError(f"unknown import format {fmt!r}: use auto or one of {', '.join(FORMATS)}")


def import_file(
    store: Store,
    path: str | Path,
    format: str = "auto",
    *,
    preset: str | None = None,
    mapping: Mapping[str, str] | str | None = None,
    provider: str | None = None,
    model: str | None = None,
    operation: str | None = None,
    tags: Mapping[str, str] | None = None,
    timezone: str = "UTC",
    pricing: Pricing = "auto",
    on_error: OnError = "reject",
    source: str | None = None,
    start: datetime | None = None,
    time_unit: str | None = None,
    batch_size: int = 2000,
    progress: Progress | None = None,
) -> ImportResult:
    """Import one file into `store`; see `costlens.analytics` for the formats and the rules.

    `pricing`: `auto` keeps a cost the source records and prices the rest with the current price
    catalogue (costlens JSONL records are kept exactly as they are); `catalogue` prices everything
    with it; `none` leaves unpriced what the source does not price. `start` turns relative
    timestamps (numbers since the trace began, in `time_unit`: s, ms or us) into real times.
    ValueError for a bad option, an unreadable format or implausible times (`ImplausibleTime`:
    relative timestamps without `start`); nothing is imported then.
    """
    file = Path(path)
    if format != "auto":
        fmt, found_preset = format, None
    elif mapping is not None and _head(file).startswith("{"):
        fmt, found_preset = "jsonl", None  # JSON lines read through the given mapping
    else:
        fmt, found_preset = detect_format(file)
    preset = preset or (found_preset if mapping is None else None)
    unit = time_unit
    if preset is not None and preset in PRESETS:
        defaults = PRESETS[preset]
        provider = provider or defaults.provider
        operation = operation or defaults.operation
        unit = unit or (defaults.time_unit if start is not None else None)
    get_zone(timezone)
    if pricing not in ("auto", "catalogue", "none"):
        raise ValueError(f"unknown pricing {pricing!r}: use auto, catalogue or none")
    options = ImportOptions(
        provider, model, operation, dict(tags or {}), timezone, pricing, source, start, unit or "s"
    )
    parse = _parser(fmt, file, preset, mapping, options)
    if fmt == "openai-costs" or (fmt == "costlens-jsonl" and pricing == "auto"):
        pricing = "none"  # money already, no tokens to price / costlens records are kept as they are
    return run_import(
        store, file, fmt, parse, pricing=pricing, on_error=on_error, batch_size=batch_size, progress=progress
    )
