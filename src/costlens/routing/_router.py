"""`Router`: the cheapest candidate that will do the job, with the reasons.

    router = Router([Candidate(name="gpt-5-nano", model="gpt-5-nano",
                               transform="Always respond concisely. {prompt}"), ...], default="gpt-4o")
    decision = router.get_optimal_model(task="summarization", prompt=text, cost_budget=Decimal("0.01"))

Policies turn candidates down; rules state preferences; of those left, a preferred one wins, else
the cheapest by the pipeline's pre-call estimate. When every candidate is turned down, the router's
`default` answers (the fallback), or `NoRoute` is raised. No network call is made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from costlens._errors import ConfigError, CostlensError
from costlens.pipeline import Pipeline, Request, Step
from costlens.routing._balance import Balancer, Strategy
from costlens.routing._candidate import Candidate, apply_transform, prompt_text
from costlens.routing._decision import Rejected, RouteDecision
from costlens.routing._fallback import Cascade, Cooldowns, Fallbacks
from costlens.routing._policies import (
    BudgetAware,
    Capabilities,
    ContextFit,
    CostCeiling,
    Policy,
    RouteContext,
    Rule,
    Rules,
    TaskScope,
)

__all__ = ["NoRoute", "Router"]

_NANO = Decimal(1_000_000_000)
_PER_M = Decimal(1_000_000)


class NoRoute(CostlensError):
    """Every candidate was turned down and the router has no default; `rejected` says why."""

    def __init__(self, rejected: Sequence[Rejected]) -> None:
        why = "; ".join(f"{r.name}: {r.reason}" for r in rejected)
        super().__init__(f"no routing candidate fits this request ({why}); set a default candidate")
        self.rejected = tuple(rejected)


class Router:
    """Candidates, the policies that choose among them, and a `default` for when none fits.

        `name` is the virtual model that routes a tracked call (`model="costlens/auto"`).
        `max_output_tokens` bounds the answer when the request sets no bound (for the estimate).
        The policies always include task scope, capabilities, context fit and the cost ceiling; `rules`
        and `policies` add to them. `fallbacks` says how routed calls that fail are retried or sent to
        the next-best candidate (`Fallbacks`; on by default). `balancing` spreads a candidate's calls over
    its deployments: `weighted` (smooth weighted round-robin) or `least-busy`.
    """

    def __init__(
        self,
        candidates: Iterable[Candidate | Mapping[str, Any]],
        *,
        default: str | None = None,
        rules: Iterable[Rule | Mapping[str, Any]] = (),
        policies: Iterable[Policy] = (),
        name: str = "costlens/auto",
        max_output_tokens: int = 1024,
        cost_budget: Decimal | str | None = None,
        fallbacks: Fallbacks | Mapping[str, Any] | None = None,
        cascade: Cascade | None = None,
        balancing: Strategy = "weighted",
    ) -> None:
        self.candidates = tuple(c if isinstance(c, Candidate) else Candidate(**c) for c in candidates)
        names = [c.name for c in self.candidates]
        if not names:
            raise ConfigError("a Router needs at least one candidate")
        if len(set(names)) != len(names):
            raise ConfigError(f"candidate names must be unique, got {names}")
        if default is not None and default not in names:
            raise ConfigError(f"default {default!r} is not a candidate; candidates: {names}")
        built_rules = [r if isinstance(r, Rule) else Rule(**r) for r in rules]
        for rule in built_rules:
            unknown = sorted((set(rule.use) | set(rule.avoid)) - set(names))
            if unknown:
                raise ConfigError(f"rule ({rule.describe()}) names unknown candidates {unknown}")
        self.default = default
        self.name = name
        self.max_output_tokens = max_output_tokens
        self.cost_budget = None if cost_budget is None else Decimal(str(cost_budget))
        if fallbacks is None:
            fallbacks = Fallbacks()
        self.fallbacks = fallbacks if isinstance(fallbacks, Fallbacks) else Fallbacks(**fallbacks)
        self.cooldowns = Cooldowns()  # shared by every call routed through this router
        self.cascade = cascade
        self.balancer = Balancer(balancing)  # across each candidate's deployments
        self.policies: tuple[Policy, ...] = (
            Rules(built_rules),
            TaskScope(),
            Capabilities(),
            ContextFit(),
            CostCeiling(),
            *policies,
        )

    # -- deciding --------------------------------------------------------------------------------

    def get_optimal_model(
        self,
        *,
        task: str | None = None,
        prompt: str = "",
        cost_budget: Decimal | str | float | None = None,
        max_latency_ms: float | None = None,
        require: Iterable[str] = (),
        tags: Mapping[str, str] | None = None,
    ) -> RouteDecision:
        """The candidate for a prompt (sent as one user message), with every rejection and why."""
        body: dict[str, Any] = {"model": self.name, "messages": [{"role": "user", "content": prompt}]}
        request = Request("openai", "chat", self.name, body, tags=dict(tags or {}))
        return self.decide(
            request,
            task=task,
            cost_budget=cost_budget,
            max_latency_ms=max_latency_ms,
            require=require,
        )

    async def aget_optimal_model(self, **kwargs: Any) -> RouteDecision:
        """`get_optimal_model` for async code (it is CPU-only; run in a thread for long prompts)."""
        await asyncio.sleep(0)
        return self.get_optimal_model(**kwargs)

    def decide(
        self,
        request: Request,
        *,
        task: str | None = None,
        cost_budget: Decimal | str | float | None = None,
        max_latency_ms: float | None = None,
        require: Iterable[str] = (),
        extra: Sequence[Policy] = (),
        at: datetime | None = None,
        tags: Mapping[str, str] | None = None,
        strongest: bool = False,
    ) -> RouteDecision:
        """Choose for a request as it would be sent (its `model` is ignored); `tags` are the call's
        (default: the request's). `strongest` picks the dearest candidate that fits instead of the
        cheapest (a cascade's streamed calls)."""
        tags = request.tags if tags is None else tags
        costs: dict[str, tuple[int, Decimal | None]] = {}
        budget = self.cost_budget if cost_budget is None else Decimal(str(cost_budget))
        ctx = RouteContext(
            request=request,
            prompt=prompt_text(request.body),
            task=task if task is not None else tags.get("task"),
            cost_budget=budget,
            max_latency_ms=max_latency_ms,
            require=frozenset(require),
            tags=tags,
            at=at or datetime.now(UTC),
            cost_of=lambda c: costs.get(c.name) or costs.setdefault(c.name, self._cost(request, c, at)),
        )
        rejected: list[Rejected] = []
        alive = list(self.candidates)
        every = (*self.policies, *extra)
        ordered = sorted(every, key=lambda p: bool(getattr(p, "decides", False)))  # stable: filters first
        for policy in ordered:
            turned_down = policy.apply(ctx, alive)
            rejected.extend(turned_down)
            out = {r.name for r in turned_down}
            alive = [c for c in alive if c.name not in out]
        return self._choose(ctx, alive, rejected, strongest=strongest)

    def _choose(
        self, ctx: RouteContext, alive: list[Candidate], rejected: list[Rejected], *, strongest: bool = False
    ) -> RouteDecision:
        by_name = {c.name: c for c in self.candidates}
        if not alive:
            if self.default is None:
                raise NoRoute(rejected)
            return self._decision(
                ctx, by_name[self.default], "fallback", "no candidate fits; the default", rejected
            )
        if ctx.decided is not None and len(alive) == 1:
            return self._decision(ctx, alive[0], *ctx.decided, rejected)
        preferred = [by_name[n] for n in ctx.preferred if by_name[n] in alive]
        if preferred and ctx.prefer_cheapest is None:
            chosen = preferred[0]
            others = [
                Rejected(c.name, "rules", f"a rule prefers {chosen.name}") for c in alive if c is not chosen
            ]
            return self._decision(ctx, chosen, "rules", "preferred by a matching rule", [*rejected, *others])
        ranked = sorted(alive, key=lambda c: _sort_cost(ctx.cost_of(c)[1]))
        if strongest:
            known = [c for c in ranked if ctx.cost_of(c)[1] is not None] or ranked
            ranked = [known[-1], *(c for c in ranked if c is not known[-1])]
        chosen = ranked[0]
        why = (
            "the strongest candidate (a streamed cascade)"
            if strongest
            else "the cheapest candidate that fits"
        )
        if ctx.prefer_cheapest is not None:
            why += f" ({ctx.prefer_cheapest}: preferences set aside)"
        verb = "costs less than" if strongest else "costs more than"
        others = [Rejected(c.name, "cheapest", f"{verb} {chosen.name}") for c in ranked[1:]]
        return self._decision(ctx, chosen, "cheapest", why, [*rejected, *others])

    def _decision(
        self, ctx: RouteContext, chosen: Candidate, policy: str, reason: str, rejected: list[Rejected]
    ) -> RouteDecision:
        tokens, usd = ctx.cost_of(chosen)
        return RouteDecision(
            name=chosen.name,
            provider=chosen.provider,
            model=chosen.model,
            policy=policy,
            reason=reason,
            estimate_usd=usd,
            predicted_quality=ctx.predicted.get(chosen.name),
            rejected=tuple(rejected),
            details={"prompt_tokens": tokens, "fine_tuned": chosen.fine_tuned, "transform": chosen.transform},
        )

    def _cost(self, request: Request, c: Candidate, at: datetime | None) -> tuple[int, Decimal | None]:
        """(prompt tokens, worst-case USD) of sending the request to `c`, transform applied."""
        from costlens.pipeline import estimate

        body = apply_transform(c.transform, c.provider, request.operation, {**request.body, "model": c.model})
        sent = Request(c.provider, request.operation, c.model, body, request.stream, request.tags)
        est = estimate(sent, default_max_output=self.max_output_tokens, at=at)
        if c.own_prices:
            assert c.input_usd_per_1m is not None and c.output_usd_per_1m is not None
            usd = (c.input_usd_per_1m * est.input_tokens + c.output_usd_per_1m * est.output_tokens) / _PER_M
            return est.input_tokens, usd
        return est.input_tokens, None if est.cost_nanousd is None else Decimal(est.cost_nanousd) / _NANO

    # -- routing real calls ------------------------------------------------------------------------

    def names(self) -> frozenset[str]:
        """The model names that route through this router."""
        return frozenset({self.name})

    def step(self, pipeline: Pipeline | None = None) -> Step:
        """The pipeline step that routes calls naming this router (in the `route` slot). With the
        pipeline's budget step at hand, budgets near their limit steer to cheaper candidates."""
        from costlens.routing._step import RouteStep

        engine = getattr(pipeline.step("budget"), "engine", None) if pipeline is not None else None
        return RouteStep(self, extra=(BudgetAware(engine),) if engine is not None else ())

    def create(self, client: Any, **request: Any) -> Any:
        """Route one call explicitly through a tracked client (`costlens.track(client)` first)."""
        from costlens.context import routing_with

        _check_tracked(client)
        with routing_with(self):
            return _create_method(client)(**{**request, "model": self.name})

    async def acreate(self, client: Any, **request: Any) -> Any:
        """`create` for async clients."""
        from costlens.context import routing_with

        _check_tracked(client)
        with routing_with(self):
            return await _create_method(client)(**{**request, "model": self.name})


def _check_tracked(client: Any) -> None:
    if "_costlens_tracking" not in getattr(client, "__dict__", {}):
        raise ConfigError(
            "router.create() routes through a tracked client: call costlens.track(client) first"
        )


def _create_method(client: Any) -> Any:
    chat = getattr(client, "chat", None)
    if chat is not None:
        return chat.completions.create
    return client.messages.create


def _sort_cost(usd: Decimal | None) -> tuple[bool, Decimal]:
    return (usd is None, usd if usd is not None else Decimal(0))
