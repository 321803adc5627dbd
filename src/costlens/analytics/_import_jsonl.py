"""JSON lines: costlens's own and any other, through a mapping.

costlens JSON lines: one `CallRecord` per line, as `costlens export --format jsonl` writes them
(the lossless `costlens.store._codec` shape). Ids are kept, so a round trip adds nothing twice.

Other JSON lines (`jsonl`: Mooncake's `conversation_trace.jsonl`, any log with one object per line)
are read with the same mapping as CSV (`timestamp=timestamp,input_tokens=input_length,...`, see
`_import_csv`); a key may be a dotted path into nested objects (`usage.prompt_tokens`). Record ids
come from the file's identity (its first line, or `--source`) and the line number, as for CSV.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from costlens.analytics._import import BadRow, Counted, ImportOptions, Parsed, derive_id
from costlens.analytics._import_csv import csv_parser, row_builder
from costlens.store._codec import record_from_dict
from costlens.usage import Usage

__all__ = ["costlens_jsonl_parser", "mapped_jsonl_parser"]

_REQUIRED = ("id", "provider", "operation", "request_model", "started_at")


def costlens_jsonl_parser() -> Callable[[Counted], Iterator[Parsed]]:
    def parse(counted: Counted) -> Iterator[Parsed]:
        for line, text in enumerate(counted.lines(), start=1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                missing = [name for name in _REQUIRED if not data.get(name)]
                if missing:
                    raise ValueError(f"missing {', '.join(missing)}")
                record = record_from_dict(data)
                Usage(
                    record.input_tokens, record.output_tokens, record.cache_read_tokens,
                    record.cache_write_tokens, record.reasoning_tokens,
                )  # fmt: skip
                if record.started_at.tzinfo is None:
                    raise ValueError("started_at has no time zone")
            except (ValueError, TypeError) as exc:
                yield BadRow(f"line {line}", str(exc), line)
                continue
            yield record

    return parse


def _lookup(data: Mapping[str, Any], key: str) -> Any:
    if key in data:
        return data[key]
    value: Any = data
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def mapped_jsonl_parser(
    mapping: Mapping[str, str], options: ImportOptions
) -> Callable[[Counted], Iterator[Parsed]]:
    """A parser of JSON lines through a CSV-style mapping; ValueError when the mapping misses what a
    record needs (the same checks as CSV)."""
    csv_parser(mapping, options)  # validates the mapping and the options
    header = list(dict.fromkeys(mapping.values()))

    def parse(counted: Counted) -> Iterator[Parsed]:
        build = row_builder(mapping, header, options)
        source = None if options.source is None else derive_id("jsonl-source", options.source)
        for line, text in enumerate(counted.lines(), start=1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                yield BadRow(f"line {line}", f"not JSON: {exc}", line)
                continue
            if not isinstance(data, dict):
                yield BadRow(f"line {line}", "not a JSON object", line)
                continue
            if source is None:
                source = derive_id("jsonl-source", text.strip())
            missing = [key for key in header if _lookup(data, key) is None]
            needed = {mapping["timestamp"], mapping["input_tokens"]}
            if needed & set(missing):
                keys = ", ".join(sorted(needed & set(missing)))
                yield BadRow(f"line {line}", f"no {keys} in the object (keys: {', '.join(data)})", line)
                continue
            yield build([_cell(_lookup(data, key)) for key in header], line, source)

    return parse
