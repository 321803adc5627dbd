"""Answer checks: one set of classes for the router's cascade (verifiers) and experiments (scorers).

Every check is a `Scorer`. `verify(answer, response, prompt=)` judges an answer alone (the cascade);
`score(answer, expected, response, prompt=, choices=)` compares it with the expected value (an
experiment). Both return a `Verdict`: passed or not, why, a score where one exists, and what was read
from the answer. Checks that need an expected value (`needs_expected`) cannot verify.

    Regex(r"^\\d+$")                        JsonSchema({"type": "object", "required": ["city"]})
    Check(lambda text: len(text) < 500)     LogprobConfidence(min_mean_prob=0.8)
    Judge(tracked_client, model="gpt-4o-mini")   # a model grades the answer; its call is recorded
    ExactMatch()  Normalized()  Numeric(abs_tol=0.01)  MultipleChoice()   # scorers only

Experiment files name them: `make_scorer("numeric")`, `make_scorer({"name": "regex", "pattern": "..."})`;
`register_scorer` adds more.
"""

from __future__ import annotations

from costlens.scorers._scorers import (
    ExactMatch,
    MultipleChoice,
    Normalized,
    Numeric,
    extract_choice,
    extract_number,
    make_scorer,
    normalize_text,
    parse_number,
    register_scorer,
    scorer_names,
    scorer_options,
    scorer_runtime,
)
from costlens.scorers._verifiers import (
    Check,
    JsonSchema,
    Judge,
    LogprobConfidence,
    Regex,
    Scorer,
    Verdict,
    Verifier,
)

__all__ = [
    "Check",
    "ExactMatch",
    "JsonSchema",
    "Judge",
    "LogprobConfidence",
    "MultipleChoice",
    "Normalized",
    "Numeric",
    "Regex",
    "Scorer",
    "Verdict",
    "Verifier",
    "extract_choice",
    "extract_number",
    "make_scorer",
    "normalize_text",
    "parse_number",
    "register_scorer",
    "scorer_names",
    "scorer_options",
    "scorer_runtime",
]
