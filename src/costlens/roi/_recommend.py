"""The decision policy, all in this file: which alternative to centre on, what "pays back" means, the verdict.

`plan(scenario)` computes the economics (`_plan.compute_plan`), picks the primary alternative
(`choose_primary`) and fires the rules (`recommend`). The recommendation is practitioners' rules of
thumb plus the computed economics, each shown with its numbers.

The playbook: prompt engineering first when volume is low, labelled data is scarce, or the task is
broad or still changing; fine-tune when the task is narrow and stable, volume is high, outputs must
be consistently structured or faster, and there are enough examples; a hybrid (tuned model plus a
prompt layer) when the case for tuning holds but part of the task is broad or changing. The
thresholds are `Scenario.thresholds` settings with the playbooks' defaults (100,000 requests/month,
1,000 examples).

How they combine: the computed payback is the evidence. A tuned path that does not pay back within
`max_payback_months` (default: the horizon) is never recommended; scarce data blocks tuning; the
low-volume rule blocks it too, unless the payback is within `fast_payback_months`. Every path is
compared, not only the tuned one with the baseline: when a prompt-side path (another prompt, e.g.
with caching or a shorter prompt, or a switched model) does at least as well over the horizon as the
tuned path, or the tuned path does not pay back against it within the limit, that blocks tuning
too (`prompt_path_better`) and the best prompt-side path is the one to take. With no blocker, a
broad or changing task gives a hybrid, otherwise a fine-tune. No accuracy figure is assumed: it
comes from the user or the evals harness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING

from costlens.roi._compare import Comparison
from costlens.roi._money import fmt_decimal, fmt_money
from costlens.roi._plan import Plan, compute_plan
from costlens.roi._scenario import Scenario
from costlens.roi._verdict import LABELS, Recommendation, Rule, Verdict

if TYPE_CHECKING:
    from costlens.pricing import PriceCatalogue

__all__ = [
    "LABELS",
    "TUNED_KINDS",
    "Recommendation",
    "Rule",
    "choose_primary",
    "payback_limit",
    "pays_back",
    "plan",
    "recommend",
]

#: The kinds of path that tune a model (and so need to pay back their training).
TUNED_KINDS = ("fine_tuned", "hybrid")
#: The kinds of path that keep prompting (a prompt, possibly cached or shorter, or a switched model).
PROMPT_KINDS = ("prompt", "switch")
THUMB = "rule of thumb (practitioner playbooks); threshold in [thresholds]"
COMPUTED = "computed from this scenario"
FACT = "task fact stated in [task]"


def plan(scenario: Scenario, *, catalogue: PriceCatalogue | None = None, recommend: bool = True) -> Plan:
    """Compute the plan of a scenario (prices it left out come from the catalogues) and decide.

    `primary` is always chosen; `recommend=False` skips the verdict (the sensitivity sweeps do).
    """
    computed = compute_plan(scenario, catalogue=catalogue)
    comparisons = computed.value_comparisons or computed.comparisons
    chosen = replace(computed, primary=choose_primary(computed.scenario, comparisons))
    return replace(chosen, recommendation=_recommend(chosen)) if recommend else chosen


def payback_limit(scenario: Scenario) -> Fraction:
    """The slowest payback that still counts as paying back: `max_payback_months`, else the horizon."""
    limit = scenario.thresholds.max_payback_months
    return Fraction(limit) if limit is not None else Fraction(scenario.horizon_months)


def pays_back(scenario: Scenario, c: Comparison | None) -> bool:
    """True when `c`'s payback exists and is within `payback_limit`."""
    return c is not None and c.payback.months is not None and c.payback.months <= payback_limit(scenario)


def choose_primary(scenario: Scenario, comparisons: Sequence[Comparison]) -> str | None:
    """The alternative the verdict and the sensitivity centre on.

    `compare` if set; else the tuned path with the largest advantage among those that pay back
    (for a broad or changing task, a hybrid one first); else the tuned path with the largest
    advantage; with no tuned path, the best alternative.
    """
    if scenario.compare is not None and scenario.compare != scenario.baseline_name:
        return scenario.compare
    tuned = [c for c in comparisons if scenario.path(c.path).kind in TUNED_KINDS]
    changing = scenario.task.scope == "broad" or scenario.task.stable is False
    order = (("hybrid",), ("fine_tuned",)) if changing else (TUNED_KINDS,)
    for kinds in order:
        paying = [c for c in tuned if scenario.path(c.path).kind in kinds and pays_back(scenario, c)]
        if paying:
            return max(paying, key=lambda c: c.advantage).path
    pool = tuned or list(comparisons)
    return max(pool, key=lambda c: c.advantage).path if pool else None


def _months(value: Fraction | None) -> str:
    return "never" if value is None else f"{fmt_decimal(value, 2)} months"


def _volume_rules(plan: Plan) -> list[Rule]:
    limit = plan.scenario.thresholds.low_volume_requests_per_month
    average = Fraction(sum(plan.volumes), len(plan.volumes))
    numbers = {"average_requests_per_month": average, "threshold": limit, "month_1": plan.volumes[0]}
    said = f"average volume {fmt_decimal(average, 0)} requests/month over the horizon"
    return [
        Rule(
            "low_volume", "prompt_engineering", average < limit, f"{said} is under {limit:,}", THUMB, numbers
        ),
        Rule("high_volume", "fine_tune", average >= limit, f"{said} is at least {limit:,}", THUMB, numbers),
    ]


def _data_rules(plan: Plan) -> list[Rule]:
    task, need = plan.scenario.task, plan.scenario.thresholds.min_labelled_examples
    to_label = plan.scenario.path(plan.primary).one_off.examples_to_label if plan.primary else 0
    if task.labelled_examples is None and not to_label:
        missing = "set task.labelled_examples (good examples available) to assess the data rules"
        return [
            Rule("scarce_data", "prompt_engineering", None, missing, THUMB),
            Rule("enough_data", "fine_tune", None, missing, THUMB),
        ]
    have = (task.labelled_examples or 0) + to_label
    numbers = {"available": task.labelled_examples or 0, "to_label": to_label, "threshold": need}
    said = f"{have:,} labelled examples ({task.labelled_examples or 0:,} available + {to_label:,} to label)"
    return [
        Rule(
            "scarce_data", "prompt_engineering", have < need, f"{said}: fewer than {need:,}", THUMB, numbers
        ),
        Rule("enough_data", "fine_tune", have >= need, f"{said}: at least {need:,}", THUMB, numbers),
    ]


def _task_rules(plan: Plan) -> list[Rule]:
    task = plan.scenario.task
    changing = task.scope == "broad" or task.stable is False
    broad = None if task.scope is None and task.stable is None else changing
    narrow = False if changing else (None if task.scope is None or task.stable is None else True)
    stability = {True: "stable", False: "still changing", None: "of unknown stability"}[task.stable]
    facts = {"scope": task.scope, "stable": task.stable}
    return [
        Rule(
            "broad_or_changing",
            "hybrid",
            broad,
            f"the task is {task.scope or 'of unknown scope'} and {stability}",
            FACT,
            facts,
        ),
        Rule(
            "narrow_and_stable",
            "fine_tune",
            narrow,
            "the task is narrow and stable",
            FACT,
            facts,
        ),
        Rule(
            "structured_output",
            "fine_tune",
            task.structured_output,
            "it needs consistent structured output",
            FACT,
        ),
        _latency_rule(plan),
    ]


def _latency_rule(plan: Plan) -> Rule:
    text, numbers = "it is latency-sensitive", {}
    if plan.primary is not None:
        before, after = plan.baseline.path.tokens.input, plan.scenario.path(plan.primary).tokens.input
        numbers = {"input_tokens_before": before, "input_tokens_after": after}
        text += f" (input tokens per request: {fmt_decimal(before)} now, {fmt_decimal(after)} tuned)"
    return Rule("lower_latency", "fine_tune", plan.scenario.task.latency_sensitive, text, FACT, numbers)


def _economic_rules(plan: Plan, c: Comparison | None) -> list[Rule]:
    if c is None:
        return [Rule("pays_back", "fine_tune", None, "no alternative path to compare", COMPUTED)]
    limit = fmt_decimal(payback_limit(plan.scenario))
    numbers = {
        "payback_months": c.payback.months,
        "max_payback_months": payback_limit(plan.scenario),
        "extra_one_off": c.extra_one_off,
        "first_month_saving": c.first_month_saving,
        "advantage": c.advantage,
        "roi_first_year": c.roi_first_year,
    }
    good = pays_back(plan.scenario, c)
    if good:
        roi = (
            "" if c.roi_first_year is None else f", first-year ROI {fmt_decimal(c.roi_first_year * 100, 0)}%"
        )
        text = (
            f"{c.path!r} pays back in {_months(c.payback.months)} on {c.basis} "
            f"({fmt_money(c.extra_one_off)} up front, {fmt_money(c.first_month_saving)} saved in month 1"
            f"{roi}); limit {limit} months"
        )
    else:
        why = c.payback.reason or _months(c.payback.months)
        text = f"{c.path!r} does not pay back on {c.basis} within {limit} months: {why}"
    return [
        Rule("pays_back", "fine_tune", good, text, COMPUTED, numbers),
        Rule("no_payback", "prompt_engineering", not good, text, COMPUTED, numbers),
    ]


def best_prompt_side(plan: Plan) -> str:
    """The prompt-side path (baseline included) that does best over the horizon on the decision basis."""
    base = plan.scenario.baseline_name
    sides = [p for p in plan.paths if p.kind in PROMPT_KINDS]
    return min(sides, key=lambda p: (p.horizon_total(plan.decision_basis), p.name != base)).name


def _rival_rules(plan: Plan, primary: Comparison | None) -> list[Rule]:
    """The tuned path against the best prompt-side path: it must do better and pay back against it."""
    if primary is None or plan.scenario.path(primary.path).kind not in TUNED_KINDS:
        return []
    rival = best_prompt_side(plan)
    if rival == plan.scenario.baseline_name and not pays_back(plan.scenario, primary):
        return []  # `no_payback` already says it
    basis = plan.decision_basis
    tuned_total, rival_total = (
        plan.path(primary.path).horizon_total(basis),
        plan.path(rival).horizon_total(basis),
    )
    gap = rival_total - tuned_total
    head = plan.versus(primary.path, rival, basis)
    numbers = {
        "rival": rival,
        "rival_horizon_total": rival_total,
        "tuned_horizon_total": tuned_total,
        "advantage_over_rival": gap,
        "rival_payback_months": head.payback.months,
    }
    measure = "TCO" if basis == "cost" else "net cost (cost − answer value)"
    horizon = plan.scenario.horizon_months
    totals = f"{fmt_money(rival_total)} vs {fmt_money(tuned_total)} {measure} over {horizon} months"
    pays = pays_back(plan.scenario, head) or rival == plan.scenario.baseline_name
    better = gap > 0 and pays
    if better:
        text = (
            f"{primary.path!r} is {fmt_money(gap)} better on {basis} than the best prompt-side path "
            f"{rival!r} ({totals})"
        )
        if rival != plan.scenario.baseline_name:
            text += f", paying back against it in {_months(head.payback.months)}"
    elif gap <= 0:
        text = (
            f"the prompt-side path {rival!r} is {fmt_money(-gap)} better on {basis} than {primary.path!r} "
            f"over the horizon ({totals})"
        )
    else:
        why = head.payback.reason or _months(head.payback.months)
        text = (
            f"{primary.path!r} does not pay back against the prompt-side path {rival!r} within "
            f"{fmt_decimal(payback_limit(plan.scenario))} months: {why} ({totals})"
        )
    return [
        Rule("beats_prompt_paths", "fine_tune", better, text, COMPUTED, numbers),
        Rule("prompt_path_better", "prompt_engineering", not better, text, COMPUTED, numbers),
    ]


def _switch_rules(plan: Plan) -> list[Rule]:
    rules = []
    for c in plan.value_comparisons or plan.comparisons:
        if plan.scenario.path(c.path).kind == "switch":
            text = f"switching to {c.path!r} is {fmt_money(c.advantage)} better on {c.basis} over the horizon"
            numbers = {"path": c.path, "advantage": c.advantage}
            rules.append(Rule("cheaper_model", "switch", c.advantage > 0, text, COMPUTED, numbers))
    return rules


def recommend(plan: Plan) -> Recommendation:
    """Fire every rule on the plan, then decide: prompt engineering first, fine-tune, or hybrid."""
    return _recommend(plan)


def _recommend(plan: Plan) -> Recommendation:
    primary = plan.comparison(plan.primary, plan.decision_basis) if plan.primary else None
    tuned = primary is not None and plan.scenario.path(primary.path).kind in TUNED_KINDS
    economics = _economic_rules(plan, primary)
    rival = _rival_rules(plan, primary)
    rules = [
        *_volume_rules(plan),
        *_data_rules(plan),
        *_task_rules(plan),
        *economics,
        *rival,
        *_switch_rules(plan),
    ]
    fired = {r.id for r in rules if r.fired}
    limit = plan.scenario.thresholds.fast_payback_months
    fast = primary is not None and primary.payback.months is not None and primary.payback.months <= limit
    blockers: list[str] = [b for b in ("no_payback", "prompt_path_better", "scarce_data") if b in fired]
    if "low_volume" in fired and not fast:
        blockers.append("low_volume")
    caveats = _caveats(plan, rules, outweighed=fast and "low_volume" in fired)
    if primary is None or not tuned or blockers:
        return _prompt_first(plan, rules, blockers, caveats)
    kind = plan.scenario.path(primary.path).kind
    verdict: Verdict = "hybrid" if "broad_or_changing" in fired or kind == "hybrid" else "fine_tune"
    caveats = (*caveats, *_kind_caveats(plan, primary, fired))
    support = [
        r.id
        for r in rules
        if r.fired
        and r.favours in ("fine_tune", "hybrid")
        and r.id not in ("pays_back", "beats_prompt_paths")
    ]
    title = "Hybrid" if verdict == "hybrid" else "Fine-tune"
    also = f" Also in favour: {', '.join(support)}." if support else ""
    headline = f"{title}: take {primary.path!r}. {economics[0].text}; {rival[0].text}.{also}"
    return Recommendation(verdict, primary.path, headline, tuple(rules), (), caveats)


def _prompt_first(
    plan: Plan, rules: list[Rule], blockers: list[str], caveats: tuple[str, ...]
) -> Recommendation:
    """Keep prompting: the prompt-side path (baseline, another prompt or a switched model) that does best."""
    path = best_prompt_side(plan)
    why = "; ".join(r.text for r in rules if r.id in blockers) or "there is no tuned path to compare"
    kind = plan.scenario.path(path).kind
    if path == plan.baseline.name:
        where = f"keep {path!r}"
    else:
        where = f"switch to {path!r}" if kind == "switch" else f"move to {path!r}"
    headline = f"Prompt engineering first: {where}. {why[0].upper()}{why[1:]}."
    return Recommendation("prompt_engineering", path, headline, tuple(rules), tuple(blockers), caveats)


def _kind_caveats(plan: Plan, primary: Comparison, fired: set[str]) -> list[str]:
    """Where the task facts and the numbers point to different kinds of tuned path, say so."""
    kind = plan.scenario.path(primary.path).kind
    if "broad_or_changing" in fired and kind != "hybrid":
        return [
            f"the task is broad or changing, so the playbook suggests a hybrid (tuned model plus a prompt "
            f"layer); no hybrid path pays back in this scenario, so {primary.path!r} is shown: add or fix one"
        ]
    pure = [
        c
        for c in plan.value_comparisons or plan.comparisons
        if plan.scenario.path(c.path).kind == "fine_tuned" and pays_back(plan.scenario, c)
    ]
    if "narrow_and_stable" in fired and kind == "hybrid" and pure:
        best = max(pure, key=lambda c: c.advantage)
        gap = fmt_money(primary.advantage - best.advantage)
        return [
            f"the task is narrow and stable, which favours a pure fine-tune, but {primary.path!r} does "
            f"{gap} better on {primary.basis} over the horizon than {best.path!r}"
        ]
    return []


_NEEDS = {
    "scarce_data": "task.labelled_examples",
    "broad_or_changing": "task.scope, task.stable",
    "narrow_and_stable": "task.scope, task.stable",
    "structured_output": "task.structured_output",
    "lower_latency": "task.latency_sensitive",
}


def _caveats(plan: Plan, rules: list[Rule], *, outweighed: bool) -> tuple[str, ...]:
    out = []
    missing = [f"{r.id} ({_NEEDS[r.id]})" for r in rules if r.fired is None and r.id in _NEEDS]
    if missing:
        out.append("not assessed, set the task facts to include them: " + "; ".join(missing))
    if outweighed:
        limit = fmt_decimal(plan.scenario.thresholds.fast_payback_months)
        out.append(f"the low-volume rule of thumb fired but is outweighed by a payback within {limit} months")
    if not plan.value_comparisons:
        out.append("compared on cost alone: set accuracy per path and [quality] values to compare net value")
    out += [
        f"{s.path}: {s.field} = {fmt_decimal(s.value)} is an uncertain catalogue figure; verify it"
        for s in plan.sources
        if "(uncertain," in s.source
    ]
    return tuple(out)
