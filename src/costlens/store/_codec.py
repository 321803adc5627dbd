"""CallRecord <-> JSON-friendly dict, lossless: used by the spool, `calls tail --format json`, exports."""

from __future__ import annotations

import json

from costlens.usage import record_from_dict, record_to_dict

__all__ = ["dumps", "record_from_dict", "record_to_dict"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(value: object) -> str:
    """Compact JSON; anything JSON cannot encode (a stray object in `content`) becomes its str()."""
    return _ENCODER.encode(value)
