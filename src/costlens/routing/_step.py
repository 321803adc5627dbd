"""The router as a pipeline step (the `route` slot): a call that names the router is sent to the
candidate it chooses, with the candidate's transform applied to a copy of the request."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Protocol

from costlens.pipeline import Call, Request
from costlens.routing._candidate import Candidate, apply_transform
from costlens.routing._decision import Rejected, RouteDecision
from costlens.routing._policies import Policy, RouteContext

__all__ = ["RouteStep"]


class _Router(Protocol):
    """What the step needs of a router (`Router` is one)."""

    candidates: tuple[Candidate, ...]

    def names(self) -> frozenset[str]: ...

    def decide(
        self, request: Request, *, extra: Sequence[Policy] = ..., tags: Mapping[str, str] | None = ...
    ) -> RouteDecision: ...


def _sdk(provider: str) -> str:
    """Which SDK speaks to a provider: Anthropic's own, or the OpenAI-compatible one."""
    return "anthropic" if provider == "anthropic" else "openai"


class SameProvider:
    """A call made through one SDK can only go to models that SDK speaks to."""

    name = "provider"

    def apply(self, ctx: RouteContext, candidates: Sequence[Candidate]) -> list[Rejected]:
        sdk = _sdk(ctx.request.provider)
        return [
            Rejected(c.name, self.name, f"needs an {_sdk(c.provider)} client; this call is made with {sdk}'s")
            for c in candidates
            if _sdk(c.provider) != sdk
        ]


class RouteStep:
    """Routes calls whose model is the router's name; other calls pass untouched."""

    def __init__(self, router: _Router, extra: Sequence[Policy] = ()) -> None:
        self.router = router
        self.extra = (SameProvider(), *extra)

    def flow(self, call: Call) -> Generator[None, None, None]:
        request = call.request
        if request.model not in self.router.names():
            return
        decision = self.router.decide(request, extra=self.extra, tags=call.record.tags)
        chosen = next(c for c in self.router.candidates if c.name == decision.name)
        body = apply_transform(chosen.transform, request.provider, request.operation, request.body)
        if body is not request.body:
            call.rewrite({k: v for k, v in body.items() if request.body.get(k) is not v})
        call.reroute(chosen.model, f"router:{decision.policy}", decision.reason, **_details(decision))
        yield


def _details(decision: RouteDecision) -> dict[str, object]:
    route = decision.as_route()
    return {k: v for k, v in route.items() if k not in ("policy", "reason", "model")}
