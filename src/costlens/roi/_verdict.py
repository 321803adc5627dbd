"""What a recommendation is, as plain data: the verdict, the path to take and the rules behind it.

The policy that produces it lives in `_recommend`; this module holds only the shapes, so that
`Plan` (in `_plan`) can carry a `Recommendation` without `_plan` importing the policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["LABELS", "Recommendation", "Rule", "Side", "Verdict"]

Verdict = Literal["prompt_engineering", "fine_tune", "hybrid"]
Side = Literal["prompt_engineering", "fine_tune", "hybrid", "switch"]
#: How each side reads in reports.
LABELS = {
    "prompt_engineering": "prompt engineering",
    "fine_tune": "fine-tuning",
    "hybrid": "hybrid",
    "switch": "switch model",
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: whom it favours, whether it fired (None = not assessed, a fact is missing), and why."""

    id: str
    favours: Side
    fired: bool | None
    text: str
    source: str
    numbers: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The verdict, the path to take (a path of the scenario), and every rule behind it."""

    verdict: Verdict
    path: str | None
    headline: str
    rules: tuple[Rule, ...]
    blockers: tuple[str, ...]
    caveats: tuple[str, ...]

    def fired(self) -> list[Rule]:
        return [r for r in self.rules if r.fired]
