"""CallRecord <-> JSON-friendly dict, lossless: used by the spool, `calls tail --format json`, exports."""

from __future__ import annotations

import json
from collections.abc import Mapping

from costlens.usage import record_from_dict, record_to_dict

__all__ = ["budgets_text", "dumps", "record_from_dict", "record_to_dict", "tags_text"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(value: object) -> str:
    """Compact JSON; anything JSON cannot encode (a stray object in `content`) becomes its str()."""
    return _ENCODER.encode(value)


def tags_text(tags: Mapping[str, object]) -> str:
    """The JSON text of a tag set, values as text (how the SQLite and PostgreSQL stores keep tags)."""
    if all(type(v) is str for v in tags.values()):
        return dumps(tags)
    return dumps({k: str(v) for k, v in tags.items()})


# The keys of a settled budget entry (`Ticket.entries`: most calls' entries), in their order.
_SETTLED = (
    *("budget", "key", "mode", "window_start"),
    *("reservation", "reserved_nanousd", "outcome", "charged_nanousd"),
)
_OUTCOMES = {o: f'"{o}"' for o in ("settled", "released", "unsettled", "reserved")}
_MAX_HEADS = 10_000
# (budget, key, mode, window_start) -> the JSON of an entry's first four items: the same for every
# call a budget key admits in one window
_heads: dict[tuple[str, str, str, str], str] = {}


def budgets_text(entries: object) -> str:
    """`dumps(entries)` of a record's `budgets` ('[]' when None or empty), the same text. Every
    budgeted call stores one or more entries, and encoding them was most of what budgets cost the
    recorder's thread: a settled entry's first four items (budget, key, mode, window start) are
    encoded once per budget key and window, its last four (reservation id, amounts, outcome) here.
    Any other entry is encoded by `dumps`."""
    if not entries:
        return "[]"
    if type(entries) is not list:
        return dumps(entries)
    texts = []
    for entry in entries:
        text = _settled_text(entry) if type(entry) is dict and len(entry) == 8 else None
        if text is None:
            return dumps(entries)
        texts.append(text)
    return f"[{','.join(texts)}]"


def _settled_text(entry: dict[str, object]) -> str | None:
    """The JSON of a settled entry whose values need no escaping beyond its head's; else None."""
    if tuple(entry) != _SETTLED:
        return None
    budget, key, mode, start, rid, reserved, outcome, charged = entry.values()
    if not (type(budget) is str and type(key) is str and type(mode) is str and type(start) is str):
        return None  # (only text is cached: as dict keys, 1 and True are one)
    head_key = (budget, key, mode, start)
    head = _heads.get(head_key)
    if head is None:
        if len(_heads) >= _MAX_HEADS:
            _heads.clear()
        head = _heads[head_key] = dumps(dict(zip(_SETTLED[:4], head_key, strict=True)))[:-1]
    if not (type(rid) is str and rid.isascii() and rid.isalnum() and type(reserved) is int):
        return None
    quoted = _OUTCOMES.get(outcome) if type(outcome) is str else None
    if quoted is None or not (charged is None or type(charged) is int):
        return None
    return (
        f'{head},"reservation":"{rid}","reserved_nanousd":{reserved},"outcome":{quoted},'
        f'"charged_nanousd":{"null" if charged is None else charged}}}'
    )
