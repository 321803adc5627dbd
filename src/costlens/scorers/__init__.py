"""Answer checks shared by the router's cascade (as verifiers) and, later, experiments (as scorers).

Each takes the answer's text (and the provider's response object, for checks that need more, such
as log-probabilities) and returns a `Verdict`: passed or not, a score where one exists, and why.

    Regex(r"^\\d+$")                        JsonSchema({"type": "object", "required": ["city"]})
    Check(lambda text: len(text) < 500)     LogprobConfidence(min_mean_prob=0.8)
    Judge(tracked_client, model="gpt-4o-mini")   # a model grades the answer; its call is recorded
"""

from __future__ import annotations

from costlens.scorers._verifiers import (
    Check,
    JsonSchema,
    Judge,
    LogprobConfidence,
    Regex,
    Verdict,
    Verifier,
)

__all__ = ["Check", "JsonSchema", "Judge", "LogprobConfidence", "Regex", "Verdict", "Verifier"]
