"""`Learned`: a trained `LearnedRouter` as one policy of a `Router`.

The filters run first (task scope, capabilities, context, cost ceiling, rules' `avoid`, budgets); among
the candidates they leave, the learned router's calibrated rule picks one, and the others are turned
down with its reasons. So a cost ceiling or a missing capability still holds, and the learned choice
is the cheapest of what remains that is predicted to keep the quality target.

It steps aside (turns nothing down) when a rule prefers a candidate, when a budget near its limit
asks for the cheapest, or when no remaining candidate is one the learned router knows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from costlens.routing._calibrate import choose
from costlens.routing._candidate import Candidate
from costlens.routing._decision import Rejected
from costlens.routing._learned import LearnedRouter
from costlens.routing._policies import RouteContext, register_policy

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    F64 = npt.NDArray[np.float64]

__all__ = ["Learned"]


class Learned:
    """A learned router among a `Router`'s candidates.

    `router`: a `LearnedRouter` or the path of its file. `target`: the quality target (a share of the
    strongest learned candidate's mean score; default the one it was trained for). `names`: learned
    candidate (the score column it was trained on) -> router candidate name, for when they differ; by
    default a learned candidate matches the router candidate of that name, else of that model.
    """

    name = "learned"
    decides = True  # runs after every filter: it chooses among what they leave

    def __init__(
        self,
        router: LearnedRouter | str | Path,
        *,
        target: float | None = None,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.router = router if isinstance(router, LearnedRouter) else LearnedRouter.load(router)
        self.target = self.router.target if target is None else float(target)
        if not 0 < self.target <= 2:
            raise ValueError(f"target {self.target} is a share of the strongest model's quality, e.g. 0.95")
        self.names = dict(names or {})
        unknown = sorted(set(self.names) - set(self.router.candidates))
        if unknown:
            raise ValueError(
                f"names maps {unknown[0]!r}, which the learned router does not know; "
                f"its candidates: {list(self.router.candidates)}"
            )

    def _columns(self, candidates: Sequence[Candidate]) -> dict[str, int]:
        """Router candidate name -> the learned router's column, for the candidates it knows."""
        by_name = {c.name: c for c in candidates}
        by_model = {c.model: c for c in candidates}
        out = {}
        for col, learned in enumerate(self.router.candidates):
            target = self.names.get(learned, learned)
            found = by_name.get(target) or (None if learned in self.names else by_model.get(target))
            if found is not None and found.name not in out:
                out[found.name] = col
        return out

    def apply(self, ctx: RouteContext, candidates: Sequence[Candidate]) -> list[Rejected]:
        if ctx.prefer_cheapest is not None or any(c.name in ctx.preferred for c in candidates):
            return []  # a rule or a budget near its limit has the last word
        columns = self._columns(candidates)
        if not columns:
            return []
        import numpy as np

        pick = self.router.calibrated(self.target)
        scores = self.router.predict_matrix([ctx.prompt])[0]
        cost = self.router.cost_matrix([ctx.prompt])[0]
        names = list(columns)
        cols = np.array([columns[n] for n in names])
        if pick.rule is None:  # the target is out of reach: the strongest that is left
            best = names[int(np.argmax(scores[cols]))]
            reason = f"no calibrated setting reaches {self.target:.0%}: the best-predicted candidate left"
        else:
            idx = choose(scores[None, cols], cost[None, cols], pick.rule, pick.knob, self.router.cost_scale)
            best = names[int(idx[0])]
            reason = _reason(pick.rule, pick.knob, self.target, self.router.strongest)
        for n in names:
            ctx.predicted[n] = float(scores[columns[n]])
        ctx.decided = (self.name, f"{reason}; predicted score {ctx.predicted[best]:.3f}")
        out = []
        for c in candidates:
            if c.name == best:
                continue
            if c.name in columns:
                why = f"predicted score {ctx.predicted[c.name]:.3f}; the learned rule prefers {best}"
            else:
                why = "the learned router has no prediction for it"
            out.append(Rejected(c.name, self.name, why))
        return out


def _reason(rule: str, knob: float, target: float, strongest: str) -> str:
    how = (
        f"the cheapest within {knob:.3f} of the best prediction"
        if rule == "margin"
        else f"the best predicted score less {knob:.3f} x relative cost"
    )
    return f"learned router: {how}, calibrated for {target:.0%} of {strongest}'s quality"


def _from_file(path: str, *, target: float | None = None, names: Mapping[str, str] | None = None) -> Learned:
    """`[[policies]] name = "learned"` in a router file: `path` (relative to the file), `target`, `names`."""
    return Learned(path, target=target, names=names)


register_policy("learned", _from_file)
