"""Router training data: rows of a prompt and one score per model, read from CSV or given as dicts.

Layout (that of `shared/data/routing/*.csv`): a `prompt` column; one column per model, named exactly
after it, holding the model's score on the prompt in [0, 1]; optionally `split` (rows whose split is
`test` are held out: never used to train or calibrate), `contaminated` (true rows are dropped), and any
of the metadata columns in `META_COLUMNS`. Without an explicit model list, every other column whose
values are all numbers in [0, 1] is a score column. A row missing a score for one of the models is
dropped (and counted).

`holdout_mask` sets rows aside deterministically for files without a test split: a row is held out when
`int(sha256(b"costlens-holdout:" + prompt_utf8).hexdigest(), 16) % 100 < percent`.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from costlens._errors import ConfigError

__all__ = [
    "META_COLUMNS",
    "RouterFileError",
    "RoutingDataError",
    "RoutingRows",
    "holdout_mask",
    "parse_rows",
    "read_routing_csv",
]

META_COLUMNS = frozenset(
    {
        "prompt",
        "prompt_id",
        "id",
        "dataset",
        "metric",
        "split",
        "subject",
        "contaminated",
        "category",
        "source",
        "task",
        "index",
    }
)
GROUP_COLUMN = "dataset"
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_HOLDOUT_SALT = b"costlens-holdout:"


class RoutingDataError(ConfigError):
    """A routing data or models file that cannot be used; the message names the file and the fix."""


class RouterFileError(ConfigError):
    """A file that is not a costlens learned-router file (or a damaged one)."""


@dataclass(frozen=True, slots=True)
class RoutingRows:
    """Parsed rows: `scores[i][j]` is model `models[j]`'s score on `prompts[i]`; `test[i]` is True for a
    `split=test` row; `groups[i]` is its `dataset` (the source of the prompt; "" when absent)."""

    source: str
    models: tuple[str, ...]
    prompts: list[str] = field(default_factory=list)
    scores: list[list[float]] = field(default_factory=list)
    test: list[bool] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    dropped_contaminated: int = 0
    dropped_missing: int = 0

    def __len__(self) -> int:
        return len(self.prompts)


def holdout_mask(prompts: Sequence[str], percent: float) -> list[bool]:
    """True for the rows set aside: sha256 of the salted prompt, modulo 100, below `percent`."""
    if percent <= 0:
        return [False] * len(prompts)
    return [
        int(hashlib.sha256(_HOLDOUT_SALT + p.encode("utf-8")).hexdigest(), 16) % 100 < percent
        for p in prompts
    ]


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN counts as missing


def _score_columns(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    found = []
    for col in columns:
        if col.lower() in META_COLUMNS:
            continue
        seen = False
        for row in rows:
            raw = row.get(col)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue
            value = _number(raw)
            if value is None or not 0.0 <= value <= 1.0:
                break
            seen = True
        else:
            if seen:
                found.append(col)
    return found


def parse_rows(
    rows: Iterable[Mapping[str, Any]], *, models: Sequence[str] | None = None, source: str = "rows"
) -> RoutingRows:
    """Validate and split rows into prompts, scores and the test flag (see the module docstring)."""
    data = list(rows)
    columns: list[str] = []
    for row in data:
        columns.extend(c for c in row if c not in columns)
    if "prompt" not in columns:
        raise RoutingDataError(f"{source} has no 'prompt' column: add one holding the text the models saw")
    if models is not None:
        missing = [m for m in models if m not in columns]
        if missing:
            raise RoutingDataError(
                f"{source} has no score column for model {missing[0]!r} named in the models file: "
                f"name models exactly as the data file's columns ({', '.join(_score_columns(columns, data))})"
            )
        chosen = list(models)
    else:
        chosen = _score_columns(columns, data)
    if len(chosen) < 2:
        raise RoutingDataError(
            f"{source} has {len(chosen)} score column(s): a router needs at least two models, one column "
            "per model named after it, holding its score in [0, 1] on each prompt"
        )
    out = RoutingRows(source=source, models=tuple(chosen))
    contaminated = missing_rows = 0
    for number, row in enumerate(data, start=2):
        if str(row.get("contaminated", "")).strip().lower() in _TRUE:
            contaminated += 1
            continue
        scores = [_number(row.get(m)) for m in chosen]
        if any(s is None for s in scores):
            missing_rows += 1
            continue
        bad = next(
            (m for m, s in zip(chosen, scores, strict=True) if s is not None and not 0 <= s <= 1), None
        )
        if bad is not None:
            raise RoutingDataError(f"{source} row {number}: the score of {bad!r} is not in [0, 1]")
        prompt = row.get("prompt")
        out.prompts.append("" if prompt is None else str(prompt))
        out.scores.append([float(s) for s in scores if s is not None])
        out.test.append(str(row.get("split", "")).strip().lower() == "test")
        out.groups.append(str(row.get(GROUP_COLUMN) or ""))
    return RoutingRows(
        source=source,
        models=out.models,
        prompts=out.prompts,
        scores=out.scores,
        test=out.test,
        groups=out.groups,
        dropped_contaminated=contaminated,
        dropped_missing=missing_rows,
    )


def read_routing_csv(path: str | Path, *, models: Sequence[str] | None = None) -> RoutingRows:
    """Read a routing data file (a real CSV parser: prompts may hold quoted newlines)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = [{k: v for k, v in row.items() if k is not None} for row in reader]
    except FileNotFoundError:
        raise RoutingDataError(f"{path}: no such file: pass the routing data CSV with --data") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise RoutingDataError(f"{path} is not a UTF-8 CSV file ({exc}): export the data as CSV") from None
    if not rows:
        raise RoutingDataError(f"{path} has no rows: it needs a header and one row per prompt")
    return parse_rows(rows, models=models, source=str(path))
