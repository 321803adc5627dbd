"""Eval statistics: Wilson intervals, percentiles, exact costs, McNemar, bootstrap, frontier, chart."""

from __future__ import annotations

import json
import math
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costlens._errors import ConfigError
from costlens.evals._plot import plot_frontier
from costlens.evals._results import Outcome, RunMeta, RunResult, StrategyInfo
from costlens.evals._stats import (
    StrategySummary,
    compare,
    comparison_row,
    frontier,
    mcnemar_exact,
    percentile,
    summarize,
    summarize_run,
    summary_rows,
    wilson_interval,
)

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def oc(
    item: str | int,
    correct: bool | None = True,
    *,
    strategy: str = "s",
    repeat: int = 0,
    cost: Decimal | None = Decimal("0.001"),
    latency: float = 100.0,
    cached: bool = False,
    tokens: tuple[int, int] = (10, 2),
) -> Outcome:
    return Outcome(
        strategy=strategy,
        item_id=str(item),
        repeat=repeat,
        correct=correct,
        model="m",
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost=cost,
        latency_ms=latency,
        calls=0 if cached else 1,
        cached=cached,
        error="boom" if correct is None else None,
    )


def paired(a_only: int, b_only: int, both: int = 0, neither: int = 0) -> tuple[list[Outcome], list[Outcome]]:
    """Outcomes for a and b with the given counts of each agreement pattern."""
    patterns = [(True, False)] * a_only + [(False, True)] * b_only
    patterns += [(True, True)] * both + [(False, False)] * neither
    a = [oc(i, x, strategy="a") for i, (x, _) in enumerate(patterns)]
    b = [oc(i, y, strategy="b") for i, (_, y) in enumerate(patterns)]
    return a, b


# --- Wilson ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
        (1, 1, 0.2065, 1.0),
    ],
)
def test_wilson_matches_known_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(k, n)
    assert round(lo, 4) == low
    assert round(hi, 4) == high


def test_wilson_ends_are_exact_and_empty_is_everything() -> None:
    assert wilson_interval(0, 7)[0] == 0.0
    assert wilson_interval(7, 7)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


# --- percentiles, summaries -----------------------------------------------------------------------


def test_percentile_linear_interpolation() -> None:
    values = [40.0, 10.0, 30.0, 20.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 95) == pytest.approx(38.5)  # h = 3 * 0.95 = 2.85: 30 + 0.85 * 10
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_summary_counts_errors_as_wrong_and_costs_exactly() -> None:
    outcomes = [
        oc(1, True, cost=Decimal("0.001"), latency=100, tokens=(10, 4)),
        oc(2, True, cost=Decimal("0.002"), latency=200, tokens=(20, 6)),
        oc(3, False, cost=Decimal("0.0035"), latency=400, tokens=(30, 8)),
        oc(4, None, cost=Decimal(0), latency=9999, tokens=(0, 0)),  # a failed call
        oc(5, True, cost=Decimal("0.0005"), latency=1.0, cached=True, tokens=(40, 2)),
    ]
    s = summarize(outcomes, StrategyInfo(name="nano", model="gpt-4.1-nano", kind="prompt"))
    assert (s.strategy, s.model, s.kind) == ("nano", "gpt-4.1-nano", "prompt")
    assert (s.n, s.answered, s.correct, s.errors, s.cached) == (5, 4, 3, 1, 1)
    assert s.accuracy == 3 / 5  # the failure is in the denominator
    assert (s.ci_low, s.ci_high) == wilson_interval(3, 5)
    assert s.mean_input_tokens == 25.0  # (10 + 20 + 30 + 40) / 4 answered
    assert s.mean_output_tokens == 5.0
    # latency over answered, non-cached only: 100, 200, 400
    assert s.latency_p50_ms == 200.0
    assert s.latency_p95_ms == pytest.approx(380.0)  # h = 1.9: 200 + 0.9 * 200
    assert s.total_cost == Decimal("0.0070")
    assert s.cost_per_call == Decimal("0.0014")
    assert s.cost_per_correct == Decimal("0.0070") / 3
    assert s.spent == Decimal("0.0065")  # the cached answer was paid for in an earlier run
    assert s.unpriced == 0


def test_cost_per_correct_is_exact_decimal() -> None:
    outcomes = [oc(1, True, cost=Decimal("0.001")), oc(2, False, cost=Decimal("0.002"))]
    outcomes.append(oc(3, True, cost=Decimal("0.0035")))
    s = summarize(outcomes, strategy="x")
    assert s.cost_per_correct == Decimal("0.00325")
    assert s.strategy == "x"
    assert s.model == "m"


def test_unpriced_propagates_to_every_total() -> None:
    outcomes = [
        oc(1, True, cost=Decimal("0.004")),
        oc(2, True, cost=None),
        oc(3, False, cost=Decimal("0.002"), cached=True),
    ]
    s = summarize(outcomes)
    assert s.strategy == "s"
    assert s.unpriced == 1
    assert s.total_cost is None
    assert s.cost_per_call is None
    assert s.cost_per_correct is None
    assert s.spent == Decimal("0.004")  # known and paid this run
    row = summary_rows([s])[0]
    assert row["total_cost_usd"] is None
    assert row["cost_per_call_usd"] is None
    assert row["unpriced"] == 1


def test_no_correct_answers_has_no_cost_per_correct() -> None:
    s = summarize([oc(1, False), oc(2, None)])
    assert s.correct == 0
    assert s.cost_per_correct is None
    assert s.latency_p50_ms == 100.0
    assert summarize([oc(1, None)]).latency_p50_ms is None


def test_empty_summary() -> None:
    s = summarize([], strategy="none")
    assert (s.n, s.accuracy, s.ci_low, s.ci_high) == (0, 0.0, 0.0, 1.0)
    assert s.total_cost == Decimal(0)
    assert s.cost_per_call is None
    assert s.latency_p50_ms is None


def test_summary_rows_are_json_ready_with_stable_keys() -> None:
    s = summarize([oc(1, True, cost=Decimal("1E-7")), oc(2, False, cost=Decimal("2E-7"))], strategy="t")
    (row,) = summary_rows([s])
    assert list(row) == [
        "strategy",
        "model",
        "kind",
        "n",
        "correct",
        "errors",
        "cached",
        "accuracy",
        "ci_low",
        "ci_high",
        "mean_input_tokens",
        "mean_output_tokens",
        "latency_p50_ms",
        "latency_p95_ms",
        "total_cost_usd",
        "cost_per_call_usd",
        "cost_per_correct_usd",
        "unpriced",
        "on_frontier",
    ]
    assert row["total_cost_usd"] == "0.0000003"  # never scientific notation
    assert row["cost_per_call_usd"] == "0.00000015"
    assert row["ci_low"] == round(wilson_interval(1, 2)[0], 4)
    json.dumps(row)


# --- frontier -------------------------------------------------------------------------------------


def fake_summary(name: str, cost: str | None, accuracy: float) -> StrategySummary:
    per = None if cost is None else Decimal(cost)
    return StrategySummary(
        strategy=name,
        model="m",
        kind="prompt",
        n=100,
        answered=100,
        correct=round(accuracy * 100),
        errors=0,
        cached=0,
        accuracy=accuracy,
        ci_low=accuracy - 0.05,
        ci_high=min(1.0, accuracy + 0.05),
        mean_input_tokens=10.0,
        mean_output_tokens=2.0,
        latency_p50_ms=100.0,
        latency_p95_ms=200.0,
        total_cost=None if per is None else per * 100,
        unpriced=1 if per is None else 0,
        cost_per_call=per,
        cost_per_correct=None,
        spent=Decimal(0),
    )


FRONTIER_SET = [
    fake_summary("cheap", "0.0001", 0.60),
    fake_summary("cheap-twin", "0.0001", 0.60),  # an exact tie: both stay
    fake_summary("mid", "0.001", 0.80),
    fake_summary("dominated", "0.002", 0.70),  # dearer and worse than mid
    fake_summary("same-cost-worse", "0.001", 0.75),  # as cheap as mid but worse
    fake_summary("best", "0.01", 0.90),
    fake_summary("unknown", None, 0.99),  # could cost anything
]


def test_frontier_excludes_dominated_and_unknown_cost() -> None:
    assert frontier(FRONTIER_SET) == ["cheap", "cheap-twin", "mid", "best"]
    assert frontier([]) == []


def test_summarize_run_keeps_order_and_marks_frontier(tmp_path: Path) -> None:
    infos = (
        StrategyInfo(name="big", model="gpt-4.1"),
        StrategyInfo(name="small", model="gpt-4.1-nano"),
        StrategyInfo(name="worse", model="gpt-4.1-mini", kind="fine-tuned"),
    )
    meta = RunMeta(
        run_id="r1",
        name="t",
        created="2025-01-01T00:00:00Z",
        split="test",
        scorer="exact",
        dataset="d.jsonl",
        dataset_fingerprint="f",
        item_ids=("1", "2", "3", "4"),
        strategies=infos,
    )
    outcomes = []
    for i in range(4):
        outcomes.append(oc(i, True, strategy="big", cost=Decimal("0.01")))
        outcomes.append(oc(i, i < 2, strategy="small", cost=Decimal("0.001")))
        outcomes.append(oc(i, i < 1, strategy="worse", cost=Decimal("0.002")))
    run = RunResult(folder=tmp_path, meta=meta, outcomes=outcomes)
    summaries = summarize_run(run)
    assert [s.strategy for s in summaries] == ["big", "small", "worse"]
    assert [s.on_frontier for s in summaries] == [True, True, False]
    assert summaries[2].kind == "fine-tuned"
    assert [r["on_frontier"] for r in summary_rows(summaries)] == [True, True, False]


# --- McNemar and the bootstrap --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_only", "b_only", "p"),
    [
        (1, 9, 2 * (1 + 10) / 1024),  # 0.021484375
        (9, 1, 0.021484375),
        (2, 8, 2 * (1 + 10 + 45) / 1024),
        (0, 5, 2 / 32),
        (0, 1, 1.0),
        (5, 5, 1.0),  # the doubled tail passes 1
        (0, 0, 1.0),
    ],
)
def test_mcnemar_exact_against_hand_computed(a_only: int, b_only: int, p: float) -> None:
    assert mcnemar_exact(a_only, b_only) == p


def test_mcnemar_large_n_without_overflow() -> None:
    p = mcnemar_exact(1450, 1550)
    assert 0 < p <= 1
    # the normal approximation is close at this size: z = (1550 - 1450) / sqrt(3000)
    z = 100 / math.sqrt(3000)
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)), rel=0.1)
    assert 0 < mcnemar_exact(0, 3000) <= 1  # far below float range, still not 0


def test_compare_counts_and_verdict() -> None:
    a, b = paired(a_only=1, b_only=9, both=30, neither=10)
    a.append(oc(99, True, strategy="a"))  # only in a: not paired
    c = compare(a, b, name_a="nano", name_b="mini")
    assert (c.pairs, c.both_correct, c.a_only, c.b_only, c.neither) == (50, 30, 1, 9, 10)
    assert c.accuracy_a == 31 / 50
    assert c.accuracy_b == 39 / 50
    assert c.diff == pytest.approx(8 / 50)
    assert c.mcnemar_p == 0.021484375
    assert c.significant
    assert c.verdict == "mini is better (+16.0 points, p=0.021)"
    assert c.cost_a == Decimal("0.050")
    assert c.cost_b == Decimal("0.050")
    row = comparison_row(c)
    assert row["cost_a_usd"] == "0.050"
    assert row["verdict"] == c.verdict
    json.dumps(row)


def test_compare_failures_count_as_wrong_and_not_significant() -> None:
    a = [oc(1, None, strategy="a"), oc(2, True, strategy="a"), oc(3, False, strategy="a")]
    b = [oc(1, True, strategy="b"), oc(2, True, strategy="b"), oc(3, True, strategy="b", cost=None)]
    c = compare(a, b)
    assert (c.a_only, c.b_only, c.both_correct) == (0, 2, 1)
    assert c.mcnemar_p == 0.5
    assert not c.significant
    assert c.verdict == "no significant difference (p=0.5)"
    assert c.cost_b is None


def test_compare_pairs_by_repeat() -> None:
    a = [oc(1, True, strategy="a", repeat=0), oc(1, False, strategy="a", repeat=1)]
    b = [oc(1, True, strategy="b", repeat=1)]
    c = compare(a, b)
    assert (c.pairs, c.b_only) == (1, 1)
    empty = compare(a, [])
    assert empty.pairs == 0
    assert empty.mcnemar_p == 1.0
    assert "nothing to compare" in empty.verdict


def test_bootstrap_is_deterministic_and_contains_the_observed_diff() -> None:
    a, b = paired(a_only=12, b_only=25, both=40, neither=23)
    first = compare(a, b, seed=7)
    again = compare(a, b, seed=7)
    other = compare(a, b, seed=8)
    assert (first.bootstrap_low, first.bootstrap_high) == (again.bootstrap_low, again.bootstrap_high)
    assert (first.bootstrap_low, first.bootstrap_high) != (other.bootstrap_low, other.bootstrap_high)
    assert first.bootstrap_low < first.diff < first.bootstrap_high
    assert first.diff == pytest.approx(13 / 100)
    # about +-1.96 standard errors of the paired difference
    se = math.sqrt(((12 + 25) / 100 - first.diff**2) / 100)
    assert first.bootstrap_high - first.bootstrap_low == pytest.approx(2 * 1.96 * se, rel=0.2)


def test_compare_large_n_is_quick_and_bounded() -> None:
    a, b = paired(a_only=1400, b_only=1600, both=500, neither=500)
    c = compare(a, b, resamples=500)
    assert c.pairs == 4000
    assert 0 < c.mcnemar_p < 0.05
    assert c.bootstrap_low <= c.diff <= c.bootstrap_high


def test_compare_rejects_no_resamples() -> None:
    with pytest.raises(ValueError, match="resamples"):
        compare([], [], resamples=0)


# --- exact money, as a property -------------------------------------------------------------------

costs = st.decimals(min_value=Decimal(0), max_value=Decimal(5), places=9, allow_nan=False)


@SETTINGS
@given(st.lists(st.tuples(costs, st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_totals_are_exact_sums(parts: list[tuple[Decimal, bool, bool]]) -> None:
    outcomes = [oc(i, ok, cost=c, cached=cached) for i, (c, ok, cached) in enumerate(parts)]
    s = summarize(outcomes)
    assert s.total_cost is not None
    assert s.cost_per_call is not None
    exact = sum((Fraction(c) for c, _, _ in parts), Fraction(0))
    assert Fraction(s.total_cost) == exact
    assert Fraction(s.spent) == sum((Fraction(c) for c, _, cached in parts if not cached), Fraction(0))
    quotient = exact / s.n
    per = Fraction(s.cost_per_call)
    if all(p in (2, 5) for p in _prime_factors(s.n)):
        # the quotient has a finite decimal expansion: cost per call times n is the total, exactly
        assert s.cost_per_call * s.n == s.total_cost
        assert per == quotient
    else:
        # otherwise it is the quotient correctly rounded to 28 significant digits
        assert abs(per - quotient) <= quotient * Fraction(5, 10**28)
    if s.correct:
        assert s.cost_per_correct is not None
        assert abs(Fraction(s.cost_per_correct) - exact / s.correct) <= exact * Fraction(5, 10**28)


def _prime_factors(n: int) -> set[int]:
    found, p = set(), 2
    while p * p <= n:
        while n % p == 0:
            found.add(p)
            n //= p
        p += 1
    if n > 1:
        found.add(n)
    return found


@SETTINGS
@given(st.lists(st.sampled_from([(True, True), (True, False), (False, True), (False, False)]), max_size=60))
def test_comparison_counts_partition_the_pairs(patterns: list[tuple[bool, bool]]) -> None:
    a = [oc(i, x, strategy="a") for i, (x, _) in enumerate(patterns)]
    b = [oc(i, y, strategy="b") for i, (_, y) in enumerate(patterns)]
    c = compare(a, b, resamples=50)
    assert c.both_correct + c.a_only + c.b_only + c.neither == c.pairs == len(patterns)
    assert 0 < c.mcnemar_p <= 1
    assert c.mcnemar_p == compare(b, a, resamples=50).mcnemar_p  # symmetric
    assert c.bootstrap_low <= c.bootstrap_high


# --- the chart ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_writes_png_and_svg(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / "out" / f"frontier{suffix}"
    written = plot_frontier(FRONTIER_SET, target, title="Costs $ and accuracy")
    assert written == target
    data = target.read_bytes()
    assert len(data) > 1000
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert b"<svg" in data[:2000]


def test_plot_linear_scale_and_nothing_priced(tmp_path: Path) -> None:
    close = [fake_summary("a", "0.001", 0.5), fake_summary("b", "0.002", 0.7)]
    assert plot_frontier(close, tmp_path / "lin.png").stat().st_size > 0
    only_unknown = [fake_summary("u", None, 0.5)]
    assert plot_frontier(only_unknown, tmp_path / "none.svg").stat().st_size > 0


def test_plot_rejects_other_suffixes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.png or \.svg"):
        plot_frontier(FRONTIER_SET, tmp_path / "chart.pdf")


def test_plot_without_matplotlib_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"llm-costlens\[plot\]"):
        plot_frontier(FRONTIER_SET, tmp_path / "chart.png")
