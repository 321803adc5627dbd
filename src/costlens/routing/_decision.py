"""`RouteDecision`: what a router chose for one request, and why, with every candidate it turned down."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["Rejected", "RouteDecision"]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A candidate the router did not choose, and why (`policy`: the policy that turned it down)."""

    name: str
    policy: str
    reason: str


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The chosen candidate (`name`, its `provider` and `model`), its estimated worst-case cost
    (`estimate_usd`, None when its price is unknown), the quality a learned policy predicted for it
    (None when none ran), the `reason` in words, the `policy` that decided, and every rejected
    candidate with why."""

    name: str
    provider: str
    model: str
    policy: str
    reason: str
    estimate_usd: Decimal | None = None
    predicted_quality: float | None = None
    rejected: tuple[Rejected, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def as_route(self) -> dict[str, Any]:
        """The form kept on a call record's `route`."""
        out: dict[str, Any] = {
            "policy": self.policy,
            "chosen": self.name,
            "model": self.model,
            "reason": self.reason,
            "estimate_usd": None if self.estimate_usd is None else str(self.estimate_usd),
            "candidates": [{"name": r.name, "policy": r.policy, "reason": r.reason} for r in self.rejected],
        }
        if self.predicted_quality is not None:
            out["predicted_quality"] = self.predicted_quality
        return out
