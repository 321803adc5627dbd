"""An experiment defined in a TOML file, validated field by field; what the runner reads.

name = "support-intents"
split = "test"                    # the split evaluated (few-shot examples come from train)
limit = 200                       # at most this many items of it (optional)
scorer = "normalized"             # or { name = "numeric", abs_tol = 0.01 }, { name = "judge", model = "..." }
max_cost_usd = "5.00"             # a hard cap on the whole run (enforced by a budget)
concurrency = 8
requests_per_minute = 600         # optional
max_retries = 5                   # on 429 and 5xx, honouring Retry-After

[dataset]
path = "tickets.jsonl"            # relative to this file
input_field = "text"
expected_field = "label"
seed = 0
fractions = { train = 0.6, dev = 0.2, test = 0.2 }

[defaults]                        # merged into every strategy (a strategy's own settings win;
params = { temperature = 0, max_tokens = 256 }   # params are merged key by key)

[[strategies]]
name = "nano"
model = "gpt-4.1-nano"

[[strategies]]
name = "nano-5nn-cot"
model = "gpt-4.1-nano"
few_shot = 5
selection = "nearest"
chain_of_thought = true

[[strategies]]
name = "routed"
router = "router.toml"            # a router file, relative to this file

[[strategies]]
name = "tuned-hybrid"
model = "ft:gpt-4o-mini-2024-07-18:acme::abc123"
system = "You label support tickets."
retrieval = "myapp.search:context_for"   # item -> context text
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from costlens._errors import ConfigError
from costlens.evals._dataset import DEFAULT_FRACTIONS, Dataset
from costlens.evals._strategy import Strategy
from costlens.scorers import Scorer, make_scorer, scorer_options, scorer_runtime

__all__ = ["DatasetSpec", "ExperimentSpec", "load_spec", "spec_from_dict"]

_MAX_SHOWN = 10


class DatasetSpec(BaseModel):
    """Where the dataset is and how to read it (the arguments of `Dataset.load`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    format: Literal["jsonl", "csv"] | None = None
    id_field: str | None = "id"
    input_field: str | None = None
    expected_field: str | None = None
    choices_field: str | list[str] | None = "choices"
    split_field: str | None = "split"
    metadata_fields: list[str] | None = None
    require_expected: bool = True
    seed: int = 0
    fractions: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_FRACTIONS))
    split_by: Literal["id", "input"] = "id"

    def load(self) -> Dataset:
        return Dataset.load(
            self.path,
            format=self.format,
            id_field=self.id_field,
            input_field=self.input_field,
            expected_field=self.expected_field,
            choices_field=self.choices_field,
            split_field=self.split_field,
            metadata_fields=self.metadata_fields,
            require_expected=self.require_expected,
            seed=self.seed,
            fractions=self.fractions,
            split_by=self.split_by,
        )


class ExperimentSpec(BaseModel):
    """An experiment: a dataset, the strategies to compare on one of its splits, a scorer, and the
    run's limits. `load_dataset()` and `build_scorer(client=...)` give the runner what it needs."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(min_length=1)
    dataset: DatasetSpec
    split: Literal["train", "dev", "test"] = "test"
    limit: int | None = Field(default=None, ge=1)
    strategies: list[Strategy] = Field(min_length=1)
    scorer: str | dict[str, Any] = "exact"
    max_cost_usd: Decimal | None = Field(default=None, gt=0)
    concurrency: int = Field(default=4, ge=1, le=256)
    requests_per_minute: float | None = Field(default=None, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    timeout_s: float = Field(default=120.0, gt=0)
    cache: bool = True
    repeats: int = Field(default=1, ge=1, le=100)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("scorer")
    @classmethod
    def _scorer(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        try:
            name, _ = scorer_options(value)
            if not scorer_runtime(name):  # build it now, so a bad option value is reported here
                make_scorer(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("max_cost_usd", mode="before")
    @classmethod
    def _money(cls, value: Any) -> Any:
        if isinstance(value, float):  # TOML floats are binary; keep what was written
            return Decimal(repr(value))
        return value

    @model_validator(mode="after")
    def _unique(self) -> ExperimentSpec:
        names = [s.name for s in self.strategies]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"strategy names must be unique; repeated: {dupes}")
        return self

    @property
    def scorer_name(self) -> str:
        return scorer_options(self.scorer)[0]

    def load_dataset(self) -> Dataset:
        return self.dataset.load()

    def build_scorer(self, **runtime: Any) -> Scorer:
        """The scorer; `runtime` supplies what a file cannot (`client=` a tracked client for a judge)."""
        return make_scorer(self.scorer, **runtime)

    def strategy(self, name: str) -> Strategy:
        for s in self.strategies:
            if s.name == name:
                return s
        raise KeyError(f"experiment {self.name!r} has no strategy {name!r}")


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read an experiment file; errors name the file, the field and what is wrong."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"experiment file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"experiment file {path} is not valid TOML: {exc}") from None
    return spec_from_dict(raw, source=str(path), base=path.parent)


def spec_from_dict(
    raw: Mapping[str, Any], *, source: str = "experiment spec", base: Path | None = None
) -> ExperimentSpec:
    """An experiment from a parsed file. Relative paths (the dataset, a strategy's router file) are
    read from `base`, the file's folder. `defaults` are merged into each strategy."""
    data = dict(raw)
    defaults = data.pop("defaults", {})
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"{source}: defaults: must be a table")
    dataset = data.get("dataset")
    if isinstance(dataset, str):
        dataset = {"path": dataset}
    if isinstance(dataset, Mapping):
        dataset = dict(dataset)
        if base is not None and isinstance(dataset.get("path"), str):
            dataset["path"] = str(base / dataset["path"])
        data["dataset"] = dataset
    strategies = data.get("strategies")
    if isinstance(strategies, list):
        merged: list[Any] = []
        for entry in strategies:
            if isinstance(entry, Mapping):
                entry = {**defaults, **entry}
                if isinstance(defaults.get("params"), Mapping) and isinstance(entry.get("params"), Mapping):
                    entry["params"] = {**defaults["params"], **entry["params"]}
                router = entry.get("router")
                if base is not None and isinstance(router, str) and not Path(router).is_absolute():
                    entry["router"] = str(base / router)
            merged.append(entry)
        data["strategies"] = merged
    try:
        return ExperimentSpec(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, data)) from None


def _is_tag(part: str) -> bool:
    """pydantic's own steps in an error location (union members, validators), not field names."""
    return part in ("str", "int", "float", "bool", "none") or "[" in part or part.startswith("function-")


def _describe(exc: ValidationError, source: str, data: Mapping[str, Any]) -> str:
    entries = data.get("strategies")
    problems: list[str] = []
    for error in exc.errors()[:_MAX_SHOWN]:
        loc = list(error["loc"])
        parts: list[str] = []
        for i, part in enumerate(loc):
            if isinstance(part, int) and i > 0 and loc[i - 1] == "strategies" and parts:
                entry = entries[part] if isinstance(entries, list) and part < len(entries) else None
                name = entry.get("name") if isinstance(entry, Mapping) else None
                parts[-1] = f"strategies[{part}]" + (f" ({name})" if name else "")
            elif isinstance(part, int):
                parts.append(f"[{part}]")
            elif not _is_tag(str(part)):
                parts.append(str(part))
        where = ".".join(parts) or "(file)"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    more = len(exc.errors()) - _MAX_SHOWN
    tail = f"\n  ... and {more} more" if more > 0 else ""
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return f"{source}: {len(exc.errors())} problems:\n  " + "\n  ".join(problems) + tail
