"""The ROI planner: prompt engineering vs fine-tuning, with crossover, payback and a reasoned verdict.

    from costlens.roi import load_scenario, plan
    result = plan(load_scenario("examples/roi/published_a.toml"))
    result.comparison("fine-tuned").payback.months      # Fraction(2, 3)
    result.recommendation.headline

A `Scenario` (pydantic, from TOML/YAML/JSON) describes the paths (prompt engineering, a switched
model, a fine-tune, a hybrid), traffic, horizon and conventions; `plan()` computes exact monthly
costs, payback, break-even, ROI, total cost of ownership and net value; `tornado()` and
`break_even_grid()` say which inputs move the decision; `usage_profile()` and
`scenario_from_usage()` build the prompt-engineering path from recorded traffic, and
`scenario_from_traffic()` does all of `costlens roi from-usage` (a store or a trace, plus
assumptions). Charts (`plot_plan()`, matplotlib imported on first use) and Markdown/HTML reports
(`render_report()`).

Money is `Decimal`, exact; ratios are `Fraction`, rounded only for display.
"""

from __future__ import annotations

from costlens.roi._catalogue import FineTunePrice, catalogue_rows, find_entry, finetune_catalogue
from costlens.roi._compare import Comparison, CrossOver, Payback
from costlens.roi._export import plan_month_rows, plan_to_dict
from costlens.roi._from_usage import FromUsage, MissingTunedPath, TunedAssumptions, scenario_from_traffic
from costlens.roi._load import ScenarioError, load_scenario, parse_scenario
from costlens.roi._paths import (
    Accuracy,
    Lifecycle,
    OneOff,
    PromptPath,
    PromptTokens,
    TokenPrices,
    Training,
    TunedPath,
)
from costlens.roi._plan import PathPlan, PathQuality, Plan, VolumeRange
from costlens.roi._plot import plot_plan
from costlens.roi._recommend import Recommendation, Rule, plan, recommend
from costlens.roi._report import render_report
from costlens.roi._resolve import PriceSource, resolve_prices
from costlens.roi._scenario import (
    Conventions,
    Quality,
    Scenario,
    SensitivitySettings,
    Task,
    Thresholds,
    Volume,
)
from costlens.roi._sensitivity import GridCell, TornadoBar, break_even_grid, levers, tornado
from costlens.roi._series import Month, TrainingCost, training_cost
from costlens.roi._usage import (
    UsageProfile,
    profile_from_records,
    read_trace,
    scenario_from_usage,
    usage_profile,
)

__all__ = [
    "Accuracy",
    "Comparison",
    "Conventions",
    "CrossOver",
    "FineTunePrice",
    "FromUsage",
    "GridCell",
    "Lifecycle",
    "MissingTunedPath",
    "Month",
    "OneOff",
    "PathPlan",
    "PathQuality",
    "Payback",
    "Plan",
    "PriceSource",
    "PromptPath",
    "PromptTokens",
    "Quality",
    "Recommendation",
    "Rule",
    "Scenario",
    "ScenarioError",
    "SensitivitySettings",
    "Task",
    "Thresholds",
    "TokenPrices",
    "TornadoBar",
    "Training",
    "TrainingCost",
    "TunedAssumptions",
    "TunedPath",
    "UsageProfile",
    "Volume",
    "VolumeRange",
    "break_even_grid",
    "catalogue_rows",
    "find_entry",
    "finetune_catalogue",
    "levers",
    "load_scenario",
    "parse_scenario",
    "plan",
    "plan_month_rows",
    "plan_to_dict",
    "plot_plan",
    "profile_from_records",
    "read_trace",
    "recommend",
    "render_report",
    "resolve_prices",
    "scenario_from_traffic",
    "scenario_from_usage",
    "tornado",
    "training_cost",
    "usage_profile",
]
