"""Model costs for the learned router: the models file (MODELS.csv) and a call's estimated cost.

A models file has a `model` column (or `name`) naming each model exactly as the data file's score column,
and either `input_price_usd_per_1M_tokens` and `output_price_usd_per_1M_tokens` (a call then costs
input price x prompt tokens + output price x a fixed output length, default 256 tokens) or
`cost_per_call_usd`. Money is Decimal. Prompt tokens are estimated as ceil(characters / 4): the router
must decide in well under a millisecond, and only the order of the candidates' costs matters to it.

Without a models file, a two-model data set is costed in strong calls: the model with the higher mean
training score costs 1 per call, the other 0, so mean cost is the share of calls sent to the strong
model (as the RouteLLM paper reports it). No USD figure is made up.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from costlens.routing._data import RoutingDataError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    F64 = npt.NDArray[np.float64]

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "ModelCost",
    "cost_matrix",
    "cost_terms",
    "prompt_tokens",
    "read_models_csv",
]

DEFAULT_OUTPUT_TOKENS = 256
CHARS_PER_TOKEN = 4
_IN = "input_price_usd_per_1M_tokens"
_OUT = "output_price_usd_per_1M_tokens"
_CALL = "cost_per_call_usd"
_MILLION = Decimal(1_000_000)


def prompt_tokens(text: str) -> int:
    """The prompt-token estimate used for routing costs: ceil(characters / 4)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class ModelCost:
    """One model's cost: per-1M-token prices, a fixed cost per call, or (`unit`, no USD price) a relative
    cost in strong calls."""

    name: str
    input_usd_per_1m: Decimal | None = None
    output_usd_per_1m: Decimal | None = None
    per_call_usd: Decimal | None = None
    unit: float | None = None

    @property
    def priced(self) -> bool:
        return self.per_call_usd is not None or self.input_usd_per_1m is not None

    def call_usd(self, prompt_tokens: int, output_tokens: int) -> Decimal | None:
        """A call's estimated cost in USD; None when only a relative cost is known."""
        if self.per_call_usd is not None:
            return self.per_call_usd
        if self.input_usd_per_1m is None or self.output_usd_per_1m is None:
            return None
        return (self.input_usd_per_1m * prompt_tokens + self.output_usd_per_1m * output_tokens) / _MILLION

    def terms(self) -> tuple[float, float, float]:
        """(per prompt token, per output token, per call) as floats, for ranking candidates fast."""
        if self.per_call_usd is not None:
            return 0.0, 0.0, float(self.per_call_usd)
        if self.input_usd_per_1m is not None and self.output_usd_per_1m is not None:
            return float(self.input_usd_per_1m) / 1e6, float(self.output_usd_per_1m) / 1e6, 0.0
        return 0.0, 0.0, float(self.unit or 0.0)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for key, value in (
            ("input_usd_per_1m", self.input_usd_per_1m),
            ("output_usd_per_1m", self.output_usd_per_1m),
            ("per_call_usd", self.per_call_usd),
        ):
            if value is not None:
                out[key] = str(value)
        if self.unit is not None:
            out["unit"] = self.unit
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCost:
        def dec(key: str) -> Decimal | None:
            value = data.get(key)
            return None if value is None else Decimal(str(value))

        unit = data.get("unit")
        return cls(
            name=str(data["name"]),
            input_usd_per_1m=dec("input_usd_per_1m"),
            output_usd_per_1m=dec("output_usd_per_1m"),
            per_call_usd=dec("per_call_usd"),
            unit=None if unit is None else float(unit),
        )


def cost_terms(costs: Sequence[ModelCost]) -> F64:
    """Per candidate (rows): float cost per prompt token, per output token, per call."""
    import numpy as np

    return np.array([c.terms() for c in costs], dtype=np.float64).reshape(len(costs), 3)


def cost_matrix(prompts: Sequence[str], terms: F64, output_tokens: int) -> F64:
    """Estimated cost (float, for ranking and evaluation): prompts x candidates."""
    import numpy as np

    tokens = np.array([prompt_tokens(p) for p in prompts], dtype=np.float64)[:, None]
    return tokens * terms[:, 0] + float(output_tokens) * terms[:, 1] + terms[:, 2]


def _price(path: Path, number: int, column: str, raw: str | None) -> Decimal:
    try:
        value = Decimal((raw or "").strip())
    except InvalidOperation:
        raise RoutingDataError(f"{path} row {number}: {column} {raw!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise RoutingDataError(f"{path} row {number}: {column} must be a non-negative number")
    return value


def read_models_csv(path: str | Path) -> dict[str, ModelCost]:
    """Read a models file (see the module docstring): model name -> cost."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or ())
            rows = list(reader)
    except FileNotFoundError:
        raise RoutingDataError(f"{path}: no such file: pass the models CSV with --models") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise RoutingDataError(f"{path} is not a UTF-8 CSV file ({exc})") from None
    name_col = "model" if "model" in header else "name" if "name" in header else None
    per_token = _IN in header and _OUT in header
    if name_col is None or not (per_token or _CALL in header):
        raise RoutingDataError(
            f"{path} needs a 'model' column and either {_IN} and {_OUT} or {_CALL} "
            f"(it has: {', '.join(header) or 'no header'})"
        )
    out: dict[str, ModelCost] = {}
    for number, row in enumerate(rows, start=2):
        name = (row.get(name_col) or "").strip()
        if not name:
            raise RoutingDataError(f"{path} row {number}: the {name_col} column is empty")
        if name in out:
            raise RoutingDataError(f"{path} row {number}: model {name!r} is listed twice")
        if _CALL in header and (row.get(_CALL) or "").strip():
            out[name] = ModelCost(name, per_call_usd=_price(path, number, _CALL, row.get(_CALL)))
        elif per_token:
            out[name] = ModelCost(
                name,
                input_usd_per_1m=_price(path, number, _IN, row.get(_IN)),
                output_usd_per_1m=_price(path, number, _OUT, row.get(_OUT)),
            )
        else:
            raise RoutingDataError(f"{path} row {number}: no {_CALL} for {name!r}")
    if len(out) < 2:
        raise RoutingDataError(f"{path} lists {len(out)} model(s): a router needs at least two")
    return out
