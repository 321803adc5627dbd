"""What an experiment run feeds elsewhere: router training rows, and the measured quality of ROI paths.

A run measures strategies on the user's own items, which is exactly what two other parts of costlens
otherwise take on trust: a learned router (`costlens route train --data`) needs per-prompt scores per
model, and an ROI scenario (`costlens roi plan --quality-from RUN`) needs each path's accuracy.

Routing rows (`routing_export`), in the layout of `costlens.routing._data`:
- one row per item the run measured (in `run.json`'s order), with `prompt` (the item's text: the run
  does not keep prompts, so the dataset is read again and must still be the one the run measured, by
  its fingerprint), `prompt_id` (the item id), `dataset` (the run's name) and `split`;
- `split`: every item of a run comes from one split of the dataset (usually `test`, which routing would
  hold out whole), so the dataset's split names say nothing here. Rows are set aside instead with the
  routing package's own hash rule (`holdout_mask`, `holdout` percent, default 20): those are `test`
  (never trained or calibrated on; `route eval` scores them), the others `train`;
- one score column per strategy: the item's score averaged over the run's repeats (a failed call
  scores 0). The column is named after the strategy's model when no two strategies share a model
  (routing prices a candidate by its model name), else after the strategy's name. Router strategies
  are left out (a router is not a model another router can pick). A name that is also a metadata
  column of the layout (`prompt`, `split`, ...) gets `_score` appended;
- an item without every repeat of every strategy (an unfinished run) is left out, and counted.

ROI quality (`roi_quality`): see its docstring for the mapping rule. Measured token counts are not
carried onto paths: a path splits its input into cacheable parts (system, few-shot, RAG, user input)
that a run's total cannot fill honestly.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from costlens._errors import ConfigError
from costlens.evals._config import DatasetSpec
from costlens.evals._results import Outcome, RunResult, StrategyInfo, find_run
from costlens.evals._stats import wilson_interval

if TYPE_CHECKING:
    from costlens.evals._dataset import Dataset
    from costlens.roi import Scenario
    from costlens.routing._data import RoutingRows

__all__ = [
    "DEFAULT_HOLDOUT",
    "RoutingExport",
    "read_run_rows",
    "roi_quality",
    "routing_export",
    "routing_rows",
    "run_dataset",
    "score_columns",
    "write_routing_csv",
]

#: Percent of a run's rows marked `split=test` by prompt hash (see the module docstring).
DEFAULT_HOLDOUT = 20.0
_PLACES = Decimal("0.000001")  # accuracies are measurements: six places are far inside their interval


@dataclass(frozen=True, slots=True)
class RoutingExport:
    """Routing rows of a run. `columns` maps each exported strategy to its score column; `left_out`
    counts the items missing an outcome of some strategy (an unfinished run)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    left_out: int = 0

    @property
    def header(self) -> list[str]:
        return ["prompt_id", "dataset", "split", "prompt", *self.columns.values()]

    def write(self, path: str | Path) -> Path:
        """Write the rows as a routing data CSV (a real CSV writer: prompts may hold newlines)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.header)
            writer.writeheader()
            writer.writerows(self.rows)
        return path


def score_columns(strategies: Sequence[StrategyInfo]) -> dict[str, str]:
    """Strategy name -> score column: models when unique, else strategy names (module docstring)."""
    from costlens.routing._data import META_COLUMNS

    models = [s.model for s in strategies]
    by_model = all(models) and len(set(models)) == len(models)
    out: dict[str, str] = {}
    for s in strategies:
        name = s.model if by_model else s.name
        out[s.name] = f"{name}_score" if name.lower() in META_COLUMNS else name
    return out


def run_dataset(run: RunResult) -> Dataset:
    """The dataset a run measured, read again from its spec; it must be unchanged (same fingerprint)."""
    raw = dict(run.meta.spec.get("dataset") or {"path": run.meta.dataset})
    fix = (
        "restore the file the run measured (or pass that dataset as `dataset=`), or run the experiment again"
    )
    try:
        dataset = DatasetSpec(**raw).load()
    except ValidationError as exc:
        raise ConfigError(f"run {run.run_id}: its dataset settings do not load ({exc}); {fix}") from None
    except ConfigError as exc:
        raise ConfigError(f"run {run.run_id}: its dataset cannot be read ({exc}); {fix}") from None
    if dataset.fingerprint() != run.meta.dataset_fingerprint:  # the runner records the whole file's
        raise ConfigError(
            f"run {run.run_id}: the dataset {raw.get('path')} has changed since the run "
            f"(its fingerprint differs from the run's); {fix}"
        )
    return dataset


def _item_score(outcome: Outcome) -> float:
    return 0.0 if outcome.correct is None or outcome.error is not None else float(outcome.score)


def routing_export(
    run: RunResult, *, dataset: Dataset | None = None, holdout: float = DEFAULT_HOLDOUT
) -> RoutingExport:
    """A run as routing rows (see the module docstring for the layout and its rules)."""
    from costlens.routing._data import holdout_mask

    data = run_dataset(run) if dataset is None else dataset
    absent = [i for i in run.meta.item_ids if i not in data]
    if absent:
        raise ConfigError(
            f"run {run.run_id}: the dataset lacks {len(absent)} of its items (first: {absent[0]!r}); "
            "pass the dataset the run measured"
        )
    strategies = [s for s in run.meta.strategies if s.kind != "router"]
    columns = score_columns(strategies)
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for outcome in run.outcomes:
        if outcome.strategy in columns and outcome.repeat < run.meta.repeats:
            scores[(outcome.strategy, outcome.item_id)].append(_item_score(outcome))
    rows: list[dict[str, Any]] = []
    left_out = 0
    for item_id in run.meta.item_ids:
        per = [scores.get((s, item_id), []) for s in columns]
        if any(len(values) < run.meta.repeats for values in per):
            left_out += 1
            continue
        row: dict[str, Any] = {"prompt_id": item_id, "dataset": run.meta.name, "prompt": data[item_id].text}
        for column, values in zip(columns.values(), per, strict=True):
            row[column] = sum(values) / len(values)
        rows.append(row)
    for row, test in zip(rows, holdout_mask([r["prompt"] for r in rows], holdout), strict=True):
        row["split"] = "test" if test else "train"
    return RoutingExport(rows=rows, columns=columns, left_out=left_out)


def routing_rows(
    run: RunResult, *, dataset: Dataset | None = None, holdout: float = DEFAULT_HOLDOUT
) -> list[dict[str, Any]]:
    """The routing rows of a run (`routing_export(...).rows`)."""
    return routing_export(run, dataset=dataset, holdout=holdout).rows


def write_routing_csv(
    run: RunResult, path: str | Path, *, dataset: Dataset | None = None, holdout: float = DEFAULT_HOLDOUT
) -> Path:
    """Write a run's routing rows as a CSV `costlens route train --data` reads."""
    return routing_export(run, dataset=dataset, holdout=holdout).write(path)


def read_run_rows(
    ref: str | Path, *, models: Sequence[str] | None = None, runs_dir: str | Path | None = None
) -> RoutingRows:
    """A run (folder, id or id prefix) read as validated routing rows, as `read_routing_csv` reads a file;
    its unfinished items count as rows dropped for a missing score."""
    from costlens.routing._data import parse_rows

    run = RunResult.load(find_run(ref, runs_dir))
    export = routing_export(run)
    rows = parse_rows(export.rows, models=models, source=f"run {run.run_id}")
    return replace(rows, dropped_missing=rows.dropped_missing + export.left_out)


def _share(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(_PLACES).normalize()


def _matches(scenario: Scenario, strategies: Sequence[StrategyInfo]) -> tuple[dict[str, str], list[str]]:
    """Path name -> strategy name by the mapping rule, and notes on the paths left unmapped."""
    names = {s.name for s in strategies}
    mapped: dict[str, str] = {}
    notes: list[str] = []
    for path in scenario.paths:
        if path.name in names:
            mapped[path.name] = path.name
            continue
        same = [s.name for s in strategies if s.model and s.model == path.model]
        if len(same) == 1:
            mapped[path.name] = same[0]
            continue
        kept = (
            f"keeps its accuracy {path.accuracy.value} ({path.accuracy.source})"
            if path.accuracy is not None
            else "keeps no accuracy"
        )
        why = (
            f"model {path.model!r} was measured by {len(same)} strategies ({', '.join(same)}): "
            "name the path after one of them"
            if same
            else "no strategy of the run has its name or its model"
        )
        notes.append(f"path {path.name!r} not measured: {why}; it {kept}")
    return mapped, notes


def roi_quality(run: RunResult, scenario: Scenario) -> tuple[Scenario, list[str]]:
    """The scenario with each measured path's accuracy replaced by the run's, and notes for people.

    Mapping rule: a path whose name is a strategy's name takes that strategy's accuracy; else a path
    whose model is the model of exactly one strategy takes that one's; other paths keep the accuracy
    the scenario gives them (listed in the notes). The accuracy is correct / outcomes, where a failed
    call counts as wrong and each repeat is one outcome, with its Wilson 95% interval as (low, high)
    (the sensitivity analysis moves the accuracy to the interval's ends) and `samples` = outcomes.
    Raises ConfigError when no path is measured at all.
    """
    from costlens.roi import Accuracy

    mapped, notes = _matches(scenario, run.meta.strategies)
    if not mapped:
        strategies = ", ".join(f"{s.name} ({s.model})" for s in run.meta.strategies)
        paths = ", ".join(f"{p.name} ({p.model})" for p in scenario.paths)
        raise ConfigError(
            f"run {run.run_id} measured no path of the scenario: its strategies are {strategies}, the "
            f"paths {paths}; name a path after a strategy, or give it the strategy's model"
        )
    lines: list[str] = []
    for path_name, strategy in mapped.items():
        outcomes = run.of(strategy)
        if not outcomes:
            notes.append(f"path {path_name!r}: strategy {strategy!r} has no outcomes yet; accuracy kept")
            continue
        n = len(outcomes)
        correct = sum(1 for o in outcomes if o.correct is True)
        low, high = wilson_interval(correct, n)
        value = _share(Decimal(correct) / Decimal(n))
        accuracy = Accuracy(
            value=value,
            low=min(_share(low), value),
            high=max(_share(high), value),
            samples=n,
            source=f"run {run.run_id} ({strategy})",
        )
        scenario = scenario.with_accuracy(path_name, accuracy)
        failed = sum(1 for o in outcomes if o.correct is None)
        tail = f", {failed} failed counted wrong" if failed else ""
        lines.append(
            f"path {path_name!r} <- strategy {strategy!r}: accuracy {float(value):.3f} "
            f"({low:.2f}-{high:.2f}), n={n}{tail}"
        )
    if not run.complete:
        done = len(run.outcomes)
        lines.append(f"run {run.run_id} is unfinished ({done} of {run.expected_count} outcomes)")
    return scenario, lines + notes
