"""CallRecord <-> JSON-friendly dict, lossless: used by the spool, `calls tail --format json`, exports."""

from __future__ import annotations

import json
from collections.abc import Mapping

from costlens.usage import record_from_dict, record_to_dict

__all__ = ["dumps", "record_from_dict", "record_to_dict", "tags_text"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(value: object) -> str:
    """Compact JSON; anything JSON cannot encode (a stray object in `content`) becomes its str()."""
    return _ENCODER.encode(value)


def tags_text(tags: Mapping[str, object]) -> str:
    """The JSON text of a tag set, values as text (how the SQLite and PostgreSQL stores keep tags)."""
    if all(type(v) is str for v in tags.values()):
        return dumps(tags)
    return dumps({k: str(v) for k, v in tags.items()})
