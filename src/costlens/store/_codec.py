"""CallRecord <-> JSON-friendly dict, lossless: used by the spool, `calls tail --format json`, exports."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Any

from costlens.usage import CallRecord

__all__ = ["dumps", "record_from_dict", "record_to_dict"]

_FIELDS = tuple(f.name for f in fields(CallRecord))
_TIMES = ("started_at", "ended_at")


def record_to_dict(record: CallRecord) -> dict[str, Any]:
    """Every field; datetimes as ISO-8601 text, everything else as is (money stays integer nano-USD)."""
    out: dict[str, Any] = {name: getattr(record, name) for name in _FIELDS}
    for name in _TIMES:
        when = out[name]
        out[name] = when.isoformat() if when is not None else None
    return out


def record_from_dict(data: dict[str, Any]) -> CallRecord:
    """The inverse of `record_to_dict`; unknown keys are ignored so old spool files stay readable."""
    kwargs = {name: data[name] for name in _FIELDS if name in data}
    for name in _TIMES:
        if kwargs.get(name) is not None:
            kwargs[name] = datetime.fromisoformat(kwargs[name])
    return CallRecord(**kwargs)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(value: object) -> str:
    """Compact JSON; anything JSON cannot encode (a stray object in `content`) becomes its str()."""
    return _ENCODER.encode(value)
