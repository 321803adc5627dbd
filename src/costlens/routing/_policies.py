"""Routing policies: each turns candidates down (with a reason) or states a preference.

Policies are registered by name (`register_policy`), so a router file names them and new ones plug
in without an `if` chain. Each sees the same `RouteContext` and returns the candidates it rejects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from costlens.pipeline import Request
from costlens.routing._candidate import Candidate
from costlens.routing._decision import Rejected

if TYPE_CHECKING:
    from costlens.budgets import BudgetEngine

__all__ = [
    "BudgetAware",
    "Capabilities",
    "ContextFit",
    "CostCeiling",
    "LatencyTarget",
    "Policy",
    "RouteContext",
    "Rule",
    "Rules",
    "TaskScope",
    "make_policy",
    "register_policy",
]


@dataclass
class RouteContext:
    """One routing question: the request as it would be sent, and what the caller asked for."""

    request: Request
    prompt: str
    task: str | None
    cost_budget: Decimal | None
    max_latency_ms: float | None
    require: frozenset[str]
    tags: Mapping[str, str]
    at: datetime
    cost_of: Callable[[Candidate], tuple[int, Decimal | None]]  # (prompt tokens, worst-case USD)
    preferred: list[str] = field(default_factory=list)
    prefer_cheapest: str | None = None  # why cheaper candidates win over preferences (budget-aware)
    predicted: dict[str, float] = field(default_factory=dict)  # candidate -> score a learned policy predicted
    decided: tuple[str, str] | None = None  # (policy, reason) of a policy that chose one candidate


class Policy(Protocol):
    """Turns candidates down. A policy with a true `decides` attribute chooses among what the others
    leave, so it runs after every policy without one."""

    name: str

    def apply(self, ctx: RouteContext, candidates: Sequence[Candidate]) -> list[Rejected]: ...


def _reject(policy: Policy, candidate: Candidate, reason: str) -> Rejected:
    return Rejected(candidate.name, policy.name, reason)


class TaskScope:
    """A candidate with `tasks` serves only those tasks."""

    name = "task"

    def apply(self, ctx: RouteContext, candidates: Sequence[Candidate]) -> list[Rejected]:
        return [
            _reject(self, c, f"serves only {sorted(c.tasks)}, not task {ctx.task!r}")
            for c in candidates
            if c.tasks and ctx.task not in c.tasks
        ]


class Capabilities:
    """What the call needs (asked with `require=`, or seen in the request: tools, a JSON response
    format, image parts) must be among the candidate's capabilities."""

    name = "capabilities"

    def apply(self, ctx: RouteContext, candidates: Sequence[Candidate]) -> list[Rejected]:
        needed = ctx.require | _needs(ctx.request.body)
        return [
            _reject(self, c, f"lacks {sorted(needed - c.capabilities)}")
            for c in candidates
            if not needed <= c.capabilities
        ]


def _needs(body: Mapping[str, Any]) -> frozenset[str]:
    needs = set()
    if body.get("tools") or body.get("functions"):
        needs.add("tools")
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema"):
        needs.add("json")
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list) and any(
            isinstance(p, Mapping) and p.get("type") in ("image_url", "image", "input_image") for p in content
        ):
            needs.add("vision")
    return frozenset(needs)


class ContextFit:
    """The prompt (counted as the budgets count it) must fit the candidate's `max_context`."""

    name = "context"

    def apply(self, ctx: RouteContext, candidates: Sequence[Candidate]) -> list[Rejected]:
        out = []
        for c in candidates:
            if c.max_context is not None:
                tokens = ctx.cost_of(c)[0]
                if tokens > c.max_context:
                    out.append(_reject(self, c, f"prompt of {tokens:,} tokens exceeds its {c.max_context:,}"))
        return out


class CostCeiling:
    """The candidate's worst-case cost (the pipeline's pre-call estimate) must fit `cost_budget`."""

    name = "cost"

    def apply(self, ctx: RouteContext, candidates: Sequence[Candidate]) -> list[Rejected]:
        if ctx.cost_budget is None:
            return []
        out = []
        for c in candidates:
            usd = ctx.cost_of(c)[1]
            if usd is None:
                out.append(_reject(self, c, "its price is unknown, so the cost ceiling cannot be checked"))
            elif usd > ctx.cost_budget:
                out.append(_reject(self, c, f"worst case ${usd} exceeds the ceiling ${ctx.cost_budget}"))
        return out


class LatencyTarget:
    """The candidate's recorded p95 latency (ms, from `p95_ms`, e.g. read from the call store) must
    meet `max_latency_ms`. A candidate with no recorded latency passes."""

    name = "latency"

    def __init__(self, p95_ms: Mapping[str, float] | Callable[[Candidate], float | None]) -> None:
        self._p95 = p95_ms

    def p95(self, c: Candidate) -> float | None:
        if callable(self._p95):
            return self._p95(c)
        return self._p95.get(c.name, self._p95.get(c.model))

    def apply(self, ctx: RouteContext, candidates: Sequence[Candidate]) -> list[Rejected]:
        if ctx.max_latency_ms is None:
            return []
        out = []
        for c in candidates:
            p95 = self.p95(c)
            if p95 is not None and p95 > ctx.max_latency_ms:
                out.append(_reject(self, c, f"p95 latency {p95:.0f} ms exceeds {ctx.max_latency_ms:.0f} ms"))
        return out


class BudgetAware:
    """Near a budget's limit, prefer cheaper candidates before the budget has to refuse the call:
    a candidate whose worst case no longer fits a budget covering it is turned down, and once any
    budget is past `near` (a share of its limit) rule preferences give way to the cheapest."""

    name = "budget"

    def __init__(self, engine: BudgetEngine, near: Decimal | float = Decimal("0.8")) -> None:
        self.engine = engine
        self.near = Decimal(str(near))

    def apply(self, ctx: RouteContext, candidates: Sequence[Candidate]) -> list[Rejected]:
        out = []
        for c in candidates:
            usd = ctx.cost_of(c)[1]
            worst = 0 if usd is None else int(usd * 1_000_000_000)
            for applied in self.engine.applicable(ctx.tags, c.model, c.provider, ctx.at):
                key = applied.key
                if not key.enforce:
                    continue
                used = self.engine.ledger.usage(key, at=ctx.at).total_nanousd
                if used + worst > key.limit_nanousd:
                    out.append(_reject(self, c, f"would pass budget {applied.budget.name!r}"))
                    break
                if used >= self.near * key.limit_nanousd and ctx.prefer_cheapest is None:
                    share = Decimal(used) / key.limit_nanousd
                    ctx.prefer_cheapest = f"budget {applied.budget.name!r} is {share:.0%} spent"
        return out


class Rule(BaseModel):
    """When the task, a tag, or a regex on the prompt matches: prefer `use` (in order), turn down `avoid`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str | None = None
    tag: dict[str, str] = Field(default_factory=dict)
    match: str | None = None
    use: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()

    def matches(self, ctx: RouteContext) -> bool:
        if self.task is not None and ctx.task != self.task:
            return False
        if any(ctx.tags.get(k) != v for k, v in self.tag.items()):
            return False
        return self.match is None or re.search(self.match, ctx.prompt) is not None

    def describe(self) -> str:
        parts = [f"task={self.task}"] if self.task else []
        parts += [f"{k}={v}" for k, v in self.tag.items()]
        parts += [f"prompt~/{self.match}/"] if self.match else []
        return " ".join(parts) or "always"


class Rules:
    """Rules in order; every matching rule adds its preferences and turns down its `avoid` list."""

    name = "rules"

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)

    def apply(self, ctx: RouteContext, candidates: Sequence[Candidate]) -> list[Rejected]:
        out: list[Rejected] = []
        names = {c.name for c in candidates}
        for rule in self.rules:
            if not rule.matches(ctx):
                continue
            ctx.preferred.extend(n for n in rule.use if n in names and n not in ctx.preferred)
            out.extend(
                _reject(self, c, f"rule ({rule.describe()}) avoids it")
                for c in candidates
                if c.name in rule.avoid
            )
        return out


PolicyFactory = Callable[..., Policy]
_POLICIES: dict[str, PolicyFactory] = {}


def register_policy(name: str, factory: PolicyFactory) -> None:
    """Let routers (and router files) name a policy: `factory(**options)` builds it."""
    _POLICIES[name] = factory


def make_policy(name: str, **options: Any) -> Policy:
    factory = _POLICIES.get(name)
    if factory is None:
        from costlens._errors import ConfigError

        raise ConfigError(f"unknown routing policy {name!r}: known are {sorted(_POLICIES)}")
    return factory(**options)


register_policy("task", TaskScope)
register_policy("capabilities", Capabilities)
register_policy("context", ContextFit)
register_policy("cost", CostCeiling)
register_policy("latency", LatencyTarget)
register_policy("budget", BudgetAware)
register_policy("rules", lambda rules=(): Rules([r if isinstance(r, Rule) else Rule(**r) for r in rules]))
