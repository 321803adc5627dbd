"""A learned router as a policy of a `Router`: it chooses among what the other policies leave, fills
`predicted_quality`, routes real SDK calls, and is named in a router file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import openai
import pytest

import costlens
from costlens._errors import ConfigError
from costlens.routing import Candidate, Learned, LearnedRouter, Router, Rule, load_router, train_router
from costlens.testing import FakeProvider
from tests.conftest import Recorded
from tests.test_routing_learned import COSTS, FAST, synthetic

EASY = "garden easy planet music river paper window silver orange"
HARD = "garden hard planet music river paper window silver orange"
NAMES = {"cheap": "nano", "strong": "big"}


@pytest.fixture(scope="module")
def learned() -> LearnedRouter:
    return train_router(synthetic(), COSTS, target=1.0, **FAST)


def _router(learned: LearnedRouter, **kw: object) -> Router:
    return Router(
        [Candidate(name="nano", model="gpt-4.1-nano"), Candidate(name="big", model="gpt-4o")],
        default="big",
        policies=[Learned(learned, names=NAMES)],
        **kw,  # type: ignore[arg-type]
    )


def test_the_learned_policy_picks_by_predicted_score(learned: LearnedRouter) -> None:
    router = _router(learned)
    easy = router.get_optimal_model(prompt=EASY)
    hard = router.get_optimal_model(prompt=HARD)
    assert (easy.name, hard.name) == ("nano", "big")
    assert easy.policy == hard.policy == "learned"
    assert "calibrated for 100%" in easy.reason and "predicted score" in easy.reason
    assert easy.predicted_quality is not None and easy.predicted_quality > 0.6
    assert hard.predicted_quality is not None and hard.predicted_quality > 0.6
    assert [(r.name, r.policy) for r in hard.rejected] == [("nano", "learned")]
    assert easy.estimate_usd is not None and easy.estimate_usd < hard.estimate_usd  # type: ignore[operator]
    assert easy.as_route()["predicted_quality"] == easy.predicted_quality


def test_filters_run_first_so_a_cost_ceiling_still_holds(learned: LearnedRouter) -> None:
    router = _router(learned)
    cheap_cap = router.get_optimal_model(prompt=HARD, cost_budget=Decimal("0.001"))
    assert cheap_cap.name == "nano" and cheap_cap.policy == "learned"
    assert any(r.name == "big" and r.policy == "cost" for r in cheap_cap.rejected)


def test_a_rule_preference_wins_over_the_learned_choice(learned: LearnedRouter) -> None:
    router = _router(learned, rules=[Rule(task="summarization", use=("nano",))])
    decision = router.get_optimal_model(task="summarization", prompt=HARD)
    assert decision.name == "nano" and decision.policy == "rules"


def test_candidates_are_matched_by_name_then_model(learned: LearnedRouter) -> None:
    router = Router(
        [
            Candidate(name="c", model="cheap", input_usd_per_1m=Decimal(1), output_usd_per_1m=Decimal(1)),
            Candidate(name="s", model="strong", input_usd_per_1m=Decimal(9), output_usd_per_1m=Decimal(9)),
            Candidate(name="other", model="gpt-4o-mini"),
        ],
        policies=[Learned(learned)],
    )
    decision = router.get_optimal_model(prompt=EASY)
    assert decision.name == "c"
    reasons = {r.name: r.reason for r in decision.rejected}
    assert reasons["other"] == "the learned router has no prediction for it"
    with pytest.raises(ValueError, match="does not know"):
        Learned(learned, names={"gpt-4o": "s"})


def test_a_router_file_names_the_learned_policy_and_routes_a_real_call(
    learned: LearnedRouter, tmp_path: Path, fake: FakeProvider, recorded: Recorded
) -> None:
    learned.save(tmp_path / "learned.npz")
    config = tmp_path / "router.toml"
    config.write_text(
        """
default = "big"
[[candidates]]
name = "nano"
model = "gpt-4.1-nano"
[[candidates]]
name = "big"
model = "gpt-4o"
[[policies]]
name = "learned"
path = "learned.npz"
names = { cheap = "nano", strong = "big" }
""",
        encoding="utf-8",
    )
    router = load_router(config)
    client = costlens.track(
        openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0), router=router
    )
    for prompt in (EASY, HARD):
        client.chat.completions.create(model="costlens/auto", messages=[{"role": "user", "content": prompt}])
    assert [r.json["model"] for r in fake.requests[-2:]] == ["gpt-4.1-nano", "gpt-4o"]
    routes = [r.route for r in recorded.all()[-2:]]
    assert all(r is not None and r["policy"] == "router:learned" for r in routes)
    assert all(r is not None and r["predicted_quality"] > 0.6 for r in routes)


def test_router_file_errors_name_the_file_and_the_policy(tmp_path: Path) -> None:
    config = tmp_path / "router.toml"
    config.write_text(
        '[[candidates]]\nname = "a"\nmodel = "gpt-4o"\n'
        '[[policies]]\nname = "learned"\npath = "missing.npz"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"router\.toml: policies\.0 \(learned\): .*missing\.npz"):
        load_router(config)
