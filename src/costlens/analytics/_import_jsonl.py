"""costlens JSON lines: one `CallRecord` per line, as `costlens export --format jsonl` writes them
(the lossless `costlens.store._codec` shape). Ids are kept, so a round trip adds nothing twice."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

from costlens.analytics._import import BadRow, Counted, Parsed
from costlens.store._codec import record_from_dict
from costlens.usage import Usage

__all__ = ["costlens_jsonl_parser"]

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
