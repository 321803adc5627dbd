"""What a run leaves behind: one `Outcome` per (strategy, item, repeat), the run's metadata, and the
folder they live in.

A run folder (`<runs>/<run_id>/`) holds:
- `run.json`: the run's identity and what it measured (name, spec, dataset fingerprint, split, item
  ids, strategies, scorer); written once, before the first call;
- `results.jsonl`: one line per finished (strategy, item, repeat), appended and fsynced as each
  finishes, carrying the outcome and the call records it paid for. The runner resumes from it: a
  line present is never called again; a torn last line (a kill mid-write) is ignored.

`RunResult.load(folder)` reads both; summaries and comparisons are computed from the outcomes
(`costlens.evals._stats`), never stored apart from them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from costlens._errors import ConfigError

__all__ = [
    "RESULTS_FILE",
    "RUN_FILE",
    "Outcome",
    "RunMeta",
    "RunResult",
    "StrategyInfo",
    "default_runs_dir",
    "find_run",
    "list_runs",
    "read_outcomes",
]

RUN_FILE = "run.json"
RESULTS_FILE = "results.jsonl"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One answered (or failed) item for one strategy.

    `correct` is None when the call failed (`error` says why): such an item counts against accuracy
    (it was not answered correctly) and is listed apart. `cost` is the sum over every call made for
    it (retries that were charged, routing attempts, a judge), None when any part had no price.
    `cached`: the answer came from an identical earlier request, so this run paid nothing for it;
    `cost` is then what it cost when it was paid (the cost of answering it, for cost per correct).
    `eval_cost` is what scoring cost (a judge model's calls): the experiment's overhead, kept apart
    so that cost per correct answer is what the strategy would cost in production."""

    strategy: str
    item_id: str
    repeat: int = 0
    correct: bool | None = None
    score: float = 0.0
    answer: str | None = None  # kept only with keep_answers (response text is private by default)
    model: str = ""  # the model that answered (a router's choice varies by item)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal | None = Decimal(0)
    latency_ms: float = 0.0
    eval_cost: Decimal | None = Decimal(0)
    calls: int = 0  # calls made (charged attempts included), 0 when cached
    cached: bool = False
    error: str | None = None
    reason: str = ""  # the scorer's explanation
    record_ids: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.strategy, self.item_id, self.repeat)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cost"] = None if self.cost is None else str(self.cost)
        data["eval_cost"] = None if self.eval_cost is None else str(self.eval_cost)
        data["record_ids"] = list(self.record_ids)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        for money in ("cost", "eval_cost"):
            if money in values:
                amount = values[money]
                values[money] = None if amount is None else Decimal(str(amount))
        values["record_ids"] = tuple(values.get("record_ids") or ())
        return cls(**values)


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    """What a strategy was, as the run recorded it (enough to report on it without the spec)."""

    name: str
    model: str
    kind: str = "prompt"  # prompt | fine-tuned | hybrid | router
    recipe: str = ""
    provider: str | None = None
    fine_tuned_from: str | None = None


@dataclass(frozen=True, slots=True)
class RunMeta:
    run_id: str
    name: str
    created: str  # ISO 8601, UTC
    split: str
    scorer: str
    dataset: str  # the dataset's path as given
    dataset_fingerprint: str
    item_ids: tuple[str, ...]
    strategies: tuple[StrategyInfo, ...]
    repeats: int = 1
    max_cost_usd: str | None = None
    spec: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["item_ids"] = list(self.item_ids)
        data["strategies"] = [asdict(s) for s in self.strategies]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunMeta:
        values = dict(data)
        values["item_ids"] = tuple(values.get("item_ids") or ())
        values["strategies"] = tuple(StrategyInfo(**s) for s in values.get("strategies") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})

    def strategy(self, name: str) -> StrategyInfo:
        for s in self.strategies:
            if s.name == name:
                return s
        raise KeyError(name)


def read_outcomes(path: Path) -> Iterator[tuple[Outcome, list[dict[str, Any]]]]:
    """Each complete line of a results file: the outcome and the call records (as JSON) it carries.
    A line that does not parse is the torn tail of a killed run and is skipped."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # torn by a kill mid-write: never acknowledged, so it is called again
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and isinstance(data.get("outcome"), dict):
                yield Outcome.from_json(data["outcome"]), list(data.get("records") or [])


@dataclass
class RunResult:
    """A run read back: its metadata and one outcome per (strategy, item, repeat) it finished."""

    folder: Path
    meta: RunMeta
    outcomes: list[Outcome]

    @classmethod
    def load(cls, folder: str | Path) -> RunResult:
        folder = Path(folder)
        meta_path = folder / RUN_FILE
        try:
            meta = RunMeta.from_json(json.loads(meta_path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(
                f"{folder} is not an experiment run (no {RUN_FILE}); `costlens eval list` shows the runs"
            ) from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise ConfigError(f"{meta_path} is damaged: {exc}") from None
        latest: dict[tuple[str, str, int], Outcome] = {}
        for outcome, _ in read_outcomes(folder / RESULTS_FILE):
            latest[outcome.key] = outcome  # a retried failure's later line wins
        return cls(folder=folder, meta=meta, outcomes=list(latest.values()))

    @property
    def run_id(self) -> str:
        return self.meta.run_id

    @property
    def strategy_names(self) -> list[str]:
        return [s.name for s in self.meta.strategies]

    def of(self, strategy: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.strategy == strategy]

    @property
    def expected_count(self) -> int:
        return len(self.meta.item_ids) * len(self.meta.strategies) * self.meta.repeats

    @property
    def complete(self) -> bool:
        done = {o.key for o in self.outcomes if o.error is None}
        return len(done) >= self.expected_count

    def overview(self) -> dict[str, Any]:
        """One line about the run (`costlens eval list`, `GET /api/evals`): name, when, how far it got."""
        finished = sum(o.error is None for o in self.outcomes)
        return {
            "run": self.run_id,
            "name": self.meta.name,
            "created": self.meta.created,
            "split": self.meta.split,
            "items": len(self.meta.item_ids),
            "strategies": len(self.meta.strategies),
            "done": finished,
            "expected": self.expected_count,
            "complete": finished >= self.expected_count,
        }

    def by_item(self, strategy: str) -> dict[tuple[str, int], Outcome]:
        return {(o.item_id, o.repeat): o for o in self.outcomes if o.strategy == strategy}


def default_runs_dir() -> Path:
    """Where runs are kept unless told otherwise: `runs/` in costlens's data folder."""
    from costlens._paths import data_dir

    return data_dir() / "runs"


def find_run(ref: str | Path, runs_dir: str | Path | None = None) -> Path:
    """The folder of run `ref`: a run folder's path, a run id in `runs_dir`, or a unique prefix of one."""
    path = Path(ref)
    if (path / RUN_FILE).is_file():
        return path
    base = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if (base / str(ref) / RUN_FILE).is_file():
        return base / str(ref)
    matches = sorted(p for p in base.glob(f"{ref}*") if (p / RUN_FILE).is_file()) if base.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(p.name for p in matches[:5])
        raise ConfigError(f"run {str(ref)!r} is ambiguous: {shown}; give more of the id")
    raise ConfigError(
        f"no experiment run {str(ref)!r} (looked for a folder and in {base}); "
        "`costlens eval list` shows the runs"
    )


def list_runs(runs_dir: str | Path | None = None) -> list[Path]:
    """Run folders in `runs_dir`, oldest first."""
    base = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if (p / RUN_FILE).is_file()), key=lambda p: p.name)
