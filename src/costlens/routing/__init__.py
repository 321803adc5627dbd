"""Routing: send each request to the cheapest model that will do the job.

`Router.get_optimal_model(task=, prompt=, cost_budget=)` returns a `RouteDecision`: the cheapest
candidate that fits, or the one a rule prefers, with every rejected candidate and why. Through a
tracked client (`costlens.track(client, router=router)`, then `model="costlens/auto"`) the router is
a pipeline step. `RouteDecision` is what every router returns. The learned router
(`LearnedRouter`) predicts each candidate's score on a prompt from its text alone and picks the
cheapest that clears a calibrated threshold.
"""

from __future__ import annotations

from costlens.routing._candidate import Candidate, Deployment
from costlens.routing._config import load_router, router_from_dict
from costlens.routing._costs import ModelCost, read_models_csv
from costlens.routing._data import RouterFileError, RoutingDataError, holdout_mask, read_routing_csv
from costlens.routing._decision import Rejected, RouteDecision
from costlens.routing._evaluate import RouterEvaluation, evaluate
from costlens.routing._fallback import Cascade, Cooldowns, Fallbacks
from costlens.routing._learned import LearnedRouter
from costlens.routing._learned_policy import Learned
from costlens.routing._plot import plot_evaluation
from costlens.routing._policies import (
    BudgetAware,
    Capabilities,
    ContextFit,
    CostCeiling,
    LatencyTarget,
    Policy,
    RouteContext,
    Rule,
    Rules,
    TaskScope,
    make_policy,
    register_policy,
)
from costlens.routing._router import NoRoute, Router
from costlens.routing._step import RouteStep
from costlens.routing._train import train_router

__all__ = [
    "BudgetAware",
    "Candidate",
    "Capabilities",
    "Cascade",
    "ContextFit",
    "Cooldowns",
    "CostCeiling",
    "Deployment",
    "Fallbacks",
    "LatencyTarget",
    "Learned",
    "LearnedRouter",
    "ModelCost",
    "NoRoute",
    "Policy",
    "Rejected",
    "RouteContext",
    "RouteDecision",
    "RouteStep",
    "Router",
    "RouterEvaluation",
    "RouterFileError",
    "RoutingDataError",
    "Rule",
    "Rules",
    "TaskScope",
    "evaluate",
    "holdout_mask",
    "load_router",
    "make_policy",
    "plot_evaluation",
    "read_models_csv",
    "read_routing_csv",
    "register_policy",
    "router_from_dict",
    "train_router",
]
