"""Experiments: measure prompt strategies, fine-tuned models and routers on the user's own labelled data.

    data = Dataset.load("tickets.jsonl", input_field="text", expected_field="label")
    strategy = Strategy(name="nano-5nn", model="gpt-4.1-nano", few_shot=5, selection="nearest")
    prompter = strategy.prompter(data)
    for item in data.split("test"):
        body = prompter.render(item).openai_body()
        ...                                         # the runner calls the model
        verdict = scorer.score(strategy.extract(text), item.expected, choices=item.choices)

An experiment file (`load_spec("spec.toml")`) names the dataset, the strategies, the scorer
(`costlens.scorers`) and the run's limits.
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
from costlens.evals._strategy import DEFAULT_COT_INSTRUCTION, Prompter, Rendered, Strategy, StrategyKind

__all__ = [
    "DEFAULT_COT_INSTRUCTION",
    "DEFAULT_FRACTIONS",
    "SPLITS",
    "Dataset",
    "DatasetError",
    "DatasetSpec",
    "ExperimentSpec",
    "Item",
    "LineError",
    "Prompter",
    "Rendered",
    "Strategy",
    "StrategyKind",
    "load_spec",
    "spec_from_dict",
    "split_of",
]
