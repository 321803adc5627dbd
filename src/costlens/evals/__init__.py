"""Experiments: measure prompt strategies, fine-tuned models and routers on the user's own labelled data.

    spec = load_spec("spec.toml")                    # dataset, strategies, scorer, limits
    result = run_experiment(spec)                    # resumable; capped by max_cost_usd
    for s in summarize_run(result):                  # accuracy (95% CI), tokens, latency, cost per correct
        print(s.strategy, s.accuracy, s.cost_per_correct)
    compare(result.of("nano"), result.of("mini"))    # paired: exact McNemar, bootstrap interval

The pieces: `Dataset.load` (JSONL/CSV, deterministic splits, errors naming line and field),
`Strategy` (a model plus a prompt recipe, a fine-tuned model, or a router), the scorers of
`costlens.scorers`, the runner, and the exports that feed `costlens roi plan --quality-from RUN` and
`costlens route train --data RUN`. Fine-tuning: `prepare_training_file`, `submit_job`, `follow_job`,
`job_record` (a job's real training cost as a call of operation `fine_tuning`).
"""

from __future__ import annotations

from costlens.evals._config import DatasetSpec, ExperimentSpec, load_spec, spec_from_dict
from costlens.evals._dataset import (
    DEFAULT_FRACTIONS,
    SPLITS,
    Dataset,
    DatasetError,
    Item,
    LineError,
    split_of,
)
from costlens.evals._export import (
    RoutingExport,
    read_run_rows,
    roi_quality,
    routing_export,
    routing_rows,
    write_routing_csv,
)
from costlens.evals._finetune_jobs import (
    NEW_JOBS_END,
    FineTuneJob,
    FineTuneRefused,
    JobEvent,
    check_new_jobs,
    fetch_job,
    finetune_client,
    follow_job,
    job_cost,
    job_record,
    submit_job,
)
from costlens.evals._finetune_prepare import (
    PROVIDERS,
    PreparedFile,
    TrainingPrice,
    example_tokens,
    prepare_training_file,
    training_price,
)
from costlens.evals._plot import plot_frontier
from costlens.evals._results import Outcome, RunMeta, RunResult, StrategyInfo, find_run, list_runs
from costlens.evals._runner import Progress, RunStopped, run_experiment, run_id_for
from costlens.evals._stats import Comparison, StrategySummary, compare, frontier, summarize, summarize_run
from costlens.evals._strategy import DEFAULT_COT_INSTRUCTION, Prompter, Rendered, Strategy, StrategyKind

__all__ = [
    "DEFAULT_COT_INSTRUCTION",
    "DEFAULT_FRACTIONS",
    "NEW_JOBS_END",
    "PROVIDERS",
    "SPLITS",
    "Comparison",
    "Dataset",
    "DatasetError",
    "DatasetSpec",
    "ExperimentSpec",
    "FineTuneJob",
    "FineTuneRefused",
    "Item",
    "JobEvent",
    "LineError",
    "Outcome",
    "PreparedFile",
    "Progress",
    "Prompter",
    "Rendered",
    "RoutingExport",
    "RunMeta",
    "RunResult",
    "RunStopped",
    "Strategy",
    "StrategyInfo",
    "StrategyKind",
    "StrategySummary",
    "TrainingPrice",
    "check_new_jobs",
    "compare",
    "example_tokens",
    "fetch_job",
    "find_run",
    "finetune_client",
    "follow_job",
    "frontier",
    "job_cost",
    "job_record",
    "list_runs",
    "load_spec",
    "plot_frontier",
    "prepare_training_file",
    "read_run_rows",
    "roi_quality",
    "routing_export",
    "routing_rows",
    "run_experiment",
    "run_id_for",
    "spec_from_dict",
    "split_of",
    "submit_job",
    "summarize",
    "summarize_run",
    "training_price",
    "write_routing_csv",
]
