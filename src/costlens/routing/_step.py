"""The router as a pipeline step (the `route` slot): a call that names the router is sent to the
candidate it chooses, with the candidate's transform applied to a copy of the request; when that
attempt fails with a transient error, the step asks for another (retry or fall back, see
`_fallback`), and every attempt is a call of its own, recorded with its `attempt` number."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Protocol

from costlens.pipeline import Call, Request
from costlens.routing._balance import Balancer
from costlens.routing._candidate import Candidate, Deployment, apply_transform, prompt_text
from costlens.routing._decision import Rejected, RouteDecision
from costlens.routing._fallback import AttemptState, Cascade, Cooldowns, Fallbacks, retry_after_s, transient
from costlens.routing._policies import Policy, RouteContext

__all__ = ["RouteStep"]


class _Router(Protocol):
    """What the step needs of a router (`Router` is one)."""

    candidates: tuple[Candidate, ...]
    name: str
    fallbacks: Fallbacks
    cooldowns: Cooldowns
    cascade: Cascade | None
    balancer: Balancer

    def names(self) -> frozenset[str]: ...

    def decide(
        self,
        request: Request,
        *,
        extra: Sequence[Policy] = ...,
        tags: Mapping[str, str] | None = ...,
        strongest: bool = ...,
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


class SetAside:
    """Candidates that failed earlier in this request, or are cooling down after failing in any
    call; a pinned candidate (a retry) is the only one left in."""

    name = "fallback"

    def __init__(self, state: AttemptState, cooldowns: Cooldowns) -> None:
        self.state = state
        self.cooldowns = cooldowns

    def usable(self, key: str) -> bool:
        """A deployment (`candidate/deployment`) that neither failed in this call nor is cooling down."""
        return key not in self.state.excluded and self.cooldowns.remaining(key) == 0

    def apply(self, ctx: RouteContext, candidates: Sequence[Candidate]) -> list[Rejected]:
        out = []
        for c in candidates:
            if self.state.pinned is not None:
                if c.name != self.state.pinned:
                    out.append(Rejected(c.name, self.name, f"retrying {self.state.pinned}"))
                continue
            if c.name in self.state.excluded:
                out.append(Rejected(c.name, self.name, "failed earlier in this call"))
            elif (left := self.cooldowns.remaining(c.name)) > 0:
                out.append(Rejected(c.name, self.name, f"cooling down for {left:.1f}s after a failure"))
            elif c.deployments and not any(self.usable(f"{c.name}/{d.name}") for d in c.deployments):
                out.append(Rejected(c.name, self.name, "every deployment failed or is cooling down"))
        return out


class RouteStep:
    """Routes calls whose model is the router's name; other calls pass untouched."""

    def __init__(self, router: _Router, extra: Sequence[Policy] = ()) -> None:
        self.router = router
        self.extra = (SameProvider(), *extra)

    def flow(self, call: Call) -> Generator[None, None, None]:
        request = call.request
        state = request.state.get("route")
        if not isinstance(state, AttemptState):
            if request.model not in self.router.names():
                return
            state = request.state["route"] = AttemptState(body=request.body)
        router = self.router
        cascade = router.cascade
        aside = SetAside(state, router.cooldowns)
        decision = router.decide(
            request,
            extra=(*self.extra, aside),
            tags=call.record.tags,
            strongest=cascade is not None and request.stream,
        )
        if cascade is not None and not request.stream:
            call.keep_response = True
        chosen = next(c for c in router.candidates if c.name == decision.name)
        body = apply_transform(chosen.transform, request.provider, request.operation, state.body)
        if body is not request.body:
            call.rewrite({k: v for k, v in body.items() if request.body.get(k) is not v})
        details = _details(decision)
        details["attempt"] = len(state.attempts) + 1
        if state.attempts:
            details["after"] = list(state.attempts)
        deployment = router.balancer.pick(chosen, aside.usable)
        sent = chosen.model
        if deployment is not None:
            sent, details["deployment"] = deployment.name, deployment.name
            request.state["priced_as"] = chosen.model
        call.reroute(sent, f"router:{decision.policy}", decision.reason, **details)
        try:
            yield
        except BaseException as exc:
            self._plan_next(call, chosen, deployment, state, exc)
            raise
        finally:
            if deployment is not None:
                router.balancer.done(chosen, deployment)
        if cascade is not None and not request.stream:
            self._verify(call, chosen, state, cascade)

    def _verify(self, call: Call, chosen: Candidate, state: AttemptState, cascade: Cascade) -> None:
        """A cascade: keep an answer the verifier passes; otherwise try the next-cheapest candidate."""
        prompt = prompt_text(state.body)
        verdict = cascade.verifier.verify("".join(call.text), call.response, prompt=prompt)
        cost = call.record.cost_nanousd or 0
        before = sum(int(a.get("cost_nanousd") or 0) for a in state.attempts)
        call.note_route(verified=verdict.passed, verdict=verdict.reason, total_cost_nanousd=before + cost)
        if verdict.passed:
            return
        state.attempts.append(
            {"name": chosen.name, "model": chosen.model, "rejected": verdict.reason, "cost_nanousd": cost}
        )
        state.excluded.add(chosen.name)
        state.pinned = None
        if not self._others_left(call.request.provider, state):
            call.note_route(accepted="the last candidate: no stronger one is left")
            return
        call.retry(self._next_request(call, state))

    def _next_request(self, call: Call, state: AttemptState) -> Request:
        request = call.request
        nxt = Request(
            request.provider, request.operation, self.router.name, state.body, request.stream, request.tags
        )
        nxt.state["route"] = state
        # the body may carry the usage request costlens added: the next attempt hides that chunk too
        nxt.usage_added = request.usage_added
        return nxt

    def _plan_next(
        self,
        call: Call,
        chosen: Candidate,
        deployment: Deployment | None,
        state: AttemptState,
        error: BaseException,
    ) -> None:
        """After a failed attempt: ask for a retry of the same candidate (on the same deployment, or
        another one of it), a fallback to the next-best candidate, or nothing."""
        fb, cooldowns = self.router.fallbacks, self.router.cooldowns
        state.attempts.append(
            {
                "name": chosen.name,
                "model": chosen.model,
                "error": type(error).__name__,
                "status": _status(error),
            }
        )
        if not fb.enabled or not transient(error) or len(state.attempts) >= fb.max_attempts:
            return
        wait = retry_after_s(error)
        tries = sum(1 for a in state.attempts if a["name"] == chosen.name)
        state.pinned, delay = None, 0.0
        if wait is None and tries <= fb.retries:
            state.pinned, delay = chosen.name, fb.backoff_s * 2 ** (tries - 1)
        elif deployment is not None and self._other_deployment(chosen, deployment, state, fb, wait):
            state.pinned = chosen.name  # the same model on another deployment
        else:
            cooldowns.set(chosen.name, max(fb.cooldown_s, wait or 0.0))
            state.excluded.add(chosen.name)
            if not self._others_left(call.request.provider, state):
                if wait is None or wait > fb.max_wait_s:
                    return
                state.pinned, delay = chosen.name, wait  # the only one left asked us to wait
        call.retry(self._next_request(call, state), delay)

    def _other_deployment(
        self, chosen: Candidate, failed: Deployment, state: AttemptState, fb: Fallbacks, wait: float | None
    ) -> bool:
        """Cool the failed deployment down; True when another deployment of the candidate is usable."""
        key = Balancer.key(chosen, failed)
        self.router.cooldowns.set(key, max(fb.cooldown_s, wait or 0.0))
        state.excluded.add(key)
        aside = SetAside(state, self.router.cooldowns)
        return any(aside.usable(Balancer.key(chosen, d)) for d in chosen.deployments)

    def _others_left(self, provider: str, state: AttemptState) -> bool:
        sdk = _sdk(provider)
        return any(
            _sdk(c.provider) == sdk
            and c.name not in state.excluded
            and self.router.cooldowns.remaining(c.name) == 0
            for c in self.router.candidates
        )


def _status(error: BaseException) -> int | None:
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) else None


def _details(decision: RouteDecision) -> dict[str, object]:
    route = decision.as_route()
    return {k: v for k, v in route.items() if k not in ("policy", "reason", "model")}
