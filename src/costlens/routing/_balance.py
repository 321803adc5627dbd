"""Load balancing across a candidate's deployments (several endpoints or deployment names of one
model): smooth weighted round-robin (nginx's: exact shares, no bursts, no randomness), or the
deployment with the fewest calls in flight. Cooling-down deployments are skipped. Thread-safe; the
state is the router's, shared by every call routed through it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Literal

from costlens.routing._candidate import Candidate, Deployment

__all__ = ["Balancer", "Strategy"]

Strategy = Literal["weighted", "least-busy"]


class Balancer:
    def __init__(self, strategy: Strategy = "weighted") -> None:
        if strategy not in ("weighted", "least-busy"):
            from costlens._errors import ConfigError

            raise ConfigError(f"unknown balancing strategy {strategy!r}: use 'weighted' or 'least-busy'")
        self.strategy = strategy
        self._lock = threading.Lock()
        self._current: dict[str, float] = {}  # smooth WRR state per deployment key
        self._in_flight: dict[str, int] = {}

    @staticmethod
    def key(candidate: Candidate, deployment: Deployment) -> str:
        return f"{candidate.name}/{deployment.name}"

    def pick(self, candidate: Candidate, usable: Callable[[str], bool]) -> Deployment | None:
        """A deployment of `candidate` (None when it has none, or none is usable)."""
        pool = [d for d in candidate.deployments if usable(self.key(candidate, d))]
        if not pool:
            return None
        with self._lock:
            chosen = (
                self._least_busy(candidate, pool)
                if self.strategy == "least-busy"
                else self._wrr(candidate, pool)
            )
            key = self.key(candidate, chosen)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
        return chosen

    def done(self, candidate: Candidate, deployment: Deployment) -> None:
        key = self.key(candidate, deployment)
        with self._lock:
            self._in_flight[key] = max(0, self._in_flight.get(key, 0) - 1)

    def in_flight(self, candidate: Candidate, deployment: Deployment) -> int:
        with self._lock:
            return self._in_flight.get(self.key(candidate, deployment), 0)

    def _wrr(self, candidate: Candidate, pool: Sequence[Deployment]) -> Deployment:
        total = sum(d.weight for d in pool)
        best = pool[0]
        for d in pool:
            key = self.key(candidate, d)
            self._current[key] = self._current.get(key, 0.0) + d.weight
            if self._current[key] > self._current[self.key(candidate, best)]:
                best = d
        self._current[self.key(candidate, best)] -= total
        return best

    def _least_busy(self, candidate: Candidate, pool: Sequence[Deployment]) -> Deployment:
        # fewest in flight relative to weight; ties go to the first listed
        return min(pool, key=lambda d: self._in_flight.get(self.key(candidate, d), 0) / d.weight)
