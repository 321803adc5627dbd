"""Router metrics on tiny hand-computed cases: hull, cost at a quality, APGR, CPT, calibration picks, and
`evaluate` end to end on synthetic rows with a known answer."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from costlens.routing._calibrate import Curve, Pick, choose, cost_at, curve_area, frontier, pick
from costlens.routing._costs import ModelCost
from costlens.routing._data import RoutingDataError, parse_rows
from costlens.routing._evaluate import apgr, apgr_interval, cpt, evaluate, pgr_curve
from costlens.routing._train import train_router


def test_frontier_drops_dominated_points_and_keeps_the_upper_convex_hull() -> None:
    points = [(0.0, 0.5), (0.5, 0.6), (0.4, 0.8), (1.0, 0.9), (0.9, 0.85), (0.2, 0.4), (1.2, 0.9)]
    # (0.5, 0.6), (0.2, 0.4) and (1.2, 0.9) are dominated; (0.9, 0.85) lies under the chord 0.4 -> 1.0
    assert frontier(points) == [(0.0, 0.5), (0.4, 0.8), (1.0, 0.9)]
    hull = frontier(points)
    assert all(q0 < q1 and c0 < c1 for (c0, q0), (c1, q1) in itertools.pairwise(hull))


def test_cost_at_interpolates_on_the_hull() -> None:
    hull = [(0.0, 0.5), (0.4, 0.8), (1.0, 0.9)]
    assert cost_at(hull, 0.4) == 0.0
    assert cost_at(hull, 0.65) == pytest.approx(0.2)
    assert cost_at(hull, 0.85) == pytest.approx(0.7)
    assert cost_at(hull, 0.9) == pytest.approx(1.0)
    assert cost_at(hull, 0.95) is None


def test_zero_router_of_two_models_is_the_chord() -> None:
    weak, strong = (0.0, 0.6), (1.0, 0.9)
    hull = frontier([weak, strong])
    assert cost_at(hull, 0.95 * 0.9) == pytest.approx((0.855 - 0.6) / 0.3)  # 0.85: a saving of 15%


def test_random_routing_has_apgr_one_half() -> None:
    rng = np.random.default_rng(0)
    strong = (rng.random(4000) < 0.8).astype(float)
    weak = (rng.random(4000) < 0.5).astype(float)
    tied = pgr_curve(np.zeros(4000), strong, weak)  # every prompt tied: the chord exactly
    assert tied is not None
    assert apgr(*tied) == pytest.approx(0.5)
    assert cpt(*tied, 0.5) == pytest.approx(0.5) and cpt(*tied, 0.8) == pytest.approx(0.8)
    shuffled = pgr_curve(rng.random(4000), strong, weak)
    assert shuffled is not None
    assert apgr(*shuffled) == pytest.approx(0.5, abs=0.03)
    gain = rng.random(4000)
    found = pgr_curve(gain, strong, weak)
    interval = apgr_interval(gain, strong, weak, resamples=100)
    assert found is not None and interval is not None
    assert interval[0] < apgr(*found) < interval[1] and 0.01 < interval[1] - interval[0] < 0.15
    assert apgr_interval(np.zeros(4000), strong, weak, resamples=20) == pytest.approx((0.5, 0.5))


def test_oracle_ranking_by_hand() -> None:
    strong, weak = np.array([1.0, 1, 0, 1]), np.array([0.0, 1, 1, 0])
    found = pgr_curve(strong - weak, strong, weak)  # q_weak 0.5, q_strong 0.75
    assert found is not None
    share, pgr = found
    assert share.tolist() == [0.0, 0.5, 0.75, 1.0]
    assert pgr.tolist() == [0.0, 2.0, 2.0, 1.0]
    assert apgr(share, pgr) == pytest.approx(0.5 + 0.5 + 0.375)
    assert cpt(share, pgr, 0.5) == pytest.approx(0.125)
    assert cpt(share, pgr, 0.8) == pytest.approx(0.2)
    assert pgr_curve(np.zeros(2), np.ones(2), np.ones(2)) is None  # no gap to recover


def test_choose_margin_and_lambda_by_hand() -> None:
    pred = np.array([[0.9, 0.95], [0.5, 0.9], [0.8, 0.8]])
    cost = np.array([[1.0, 10.0]] * 3)
    assert choose(pred, cost, "margin", 0.0).tolist() == [1, 1, 0]  # a tie in prediction: the cheaper
    assert choose(pred, cost, "margin", 0.1).tolist() == [0, 1, 0]
    assert choose(pred, cost, "margin", 1.0).tolist() == [0, 0, 0]
    assert choose(pred, cost, "lambda", 0.0, 10.0).tolist() == [1, 1, 0]
    # lambda 0.1: 0.9 - 0.01 = 0.89 vs 0.95 - 0.1 = 0.85 -> cheap; 0.49 vs 0.8 -> strong
    assert choose(pred, cost, "lambda", 0.1, 10.0).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="unknown routing rule"):
        choose(pred, cost, "nope", 0.0)


def test_pick_walks_to_the_first_drop_below_the_target_and_ignores_later_spikes() -> None:
    curve = Curve(
        "margin", (0.0, 0.1, 0.2, 0.3, 0.4), (1.02, 0.97, 0.96, 0.93, 0.99), (1.0, 0.6, 0.5, 0.4, 0.1)
    )
    assert pick([curve], 0.95) == Pick("margin", 0.2, 0.96, 0.5)
    cheaper = Curve("lambda", (0.0, 1.0), (1.0, 0.95), (1.0, 0.3))
    assert pick([curve, cheaper], 0.95) == Pick("lambda", 1.0, 0.95, 0.3)
    assert pick([curve], 1.1).rule is None
    assert 0.5 < curve_area([curve]) <= 1.02


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    words = ["red", "blue", "green", "cyan", "black", "white", "pink", "gold", "grey", "teal", "lime", "navy"]
    rows = []
    for i in range(n):
        hard = i % 3 == 0
        prompt = " ".join([*rng.sample(words, 6), "hard" if hard else "easy"])
        rows.append(
            {
                "prompt": prompt,
                "weak": 0.0 if hard else 1.0,
                "strong": 1.0 if hard else 0.9,
                "split": "test" if i % 4 == 0 else "train",
            }
        )
    return rows


def test_evaluate_reports_models_zero_router_oracle_and_the_deployable_router() -> None:
    costs = {
        "weak": ModelCost("weak", per_call_usd=Decimal("0.001")),
        "strong": ModelCost("strong", per_call_usd=Decimal("0.011")),
    }
    rows = _rows(240, 1)
    router = train_router(rows, costs, folds=3, c_grid=(3.0,))
    data = parse_rows(rows)
    ev = evaluate(router, data)
    assert ev.rows == 60 and ev.reference == "strong" and ev.cost_unit == "usd"
    kinds = [e.kind for e in ev.entries]
    assert kinds == ["model", "model", "zero-router", "oracle", "router-hull", "router-deployable"]
    weak, strong = ev.entries[0], ev.entries[1]
    assert weak.cost_usd == Decimal("0.001") and strong.cost_usd == Decimal("0.011")
    oracle = ev.entry("oracle")
    # oracle: hard prompts (1 in 3) to strong, the rest to weak, every prompt scores 1
    assert oracle.quality == 1.0
    n_hard = sum(1 for r in rows if r["split"] == "test" and r["weak"] == 0.0)
    assert oracle.cost_usd == (Decimal("0.011") * n_hard + Decimal("0.001") * (60 - n_hard)) / 60
    deploy = ev.entry("router-deployable")
    assert deploy.target_met and deploy.saving is not None and deploy.saving > ev.entry("zero-router").saving
    assert ev.two_model is not None and ev.two_model["apgr"] > 0.8
    assert ev.as_dict()["deployable"]["calls"].keys() == {"weak", "strong"}


def test_evaluate_needs_held_out_rows_and_the_router_s_models() -> None:
    rows = [dict(r, split="train") for r in _rows(60, 2)]
    router = train_router(rows, None, folds=3, c_grid=(3.0,))
    with pytest.raises(RoutingDataError, match="no held-out rows"):
        evaluate(router, parse_rows(rows))
    assert evaluate(router, parse_rows(rows), holdout=30).rows > 0
    other = [{"prompt": r["prompt"], "weak": r["weak"], "other": 1.0, "split": "test"} for r in rows]
    with pytest.raises(RoutingDataError, match="'strong'"):
        evaluate(router, parse_rows(other))
