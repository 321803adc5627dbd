"""The learned router: training on synthetic data with a known answer and on real rows, the saved file
(round trip, refusal of pickles and foreign files), test rows that never reach training, featurisation."""

from __future__ import annotations

import csv
import json
import os
import pickle
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from costlens.routing._costs import ModelCost, read_models_csv
from costlens.routing._data import (
    RouterFileError,
    RoutingDataError,
    holdout_mask,
    parse_rows,
    read_routing_csv,
)
from costlens.routing._decision import RouteDecision
from costlens.routing._features import Featurizer, hash_prompt
from costlens.routing._learned import LearnedRouter
from costlens.routing._train import train_router

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing"
FILLER = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "river",
    "mountain",
    "paper",
    "window",
    "garden",
    "silver",
    "orange",
    "planet",
    "music",
    "table",
    "letter",
    "yellow",
    "market",
    "winter",
    "summer",
    "forest",
    "ocean",
    "pencil",
    "rocket",
    "castle",
]
COSTS = {
    "cheap": ModelCost("cheap", per_call_usd=Decimal("0.001")),
    "strong": ModelCost("strong", per_call_usd=Decimal("0.01")),
}
FAST: dict[str, Any] = {"folds": 3, "c_grid": (3.0,)}


def synthetic(n: int = 160, seed: int = 0, test_every: int = 0) -> list[dict[str, Any]]:
    """Prompts with the word 'hard' need the strong model; the cheap one solves the rest."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        hard = i % 2 == 0
        words = [*rng.sample(FILLER, 8), "hard" if hard else "easy"]
        rng.shuffle(words)
        split = "test" if test_every and i % test_every == 0 else "train"
        rows.append({"prompt": " ".join(words), "cheap": 0.0 if hard else 1.0, "strong": 1.0, "split": split})
    return rows


@pytest.fixture(scope="module")
def router() -> LearnedRouter:
    return train_router(synthetic(), COSTS, **FAST)


def test_decide_sends_hard_prompts_to_the_strong_model_and_easy_ones_to_the_cheap(
    router: LearnedRouter,
) -> None:
    easy = router.decide("garden easy planet music river paper window silver orange", target=1.0)
    hard = router.decide("garden hard planet music river paper window silver orange", target=1.0)
    assert isinstance(easy, RouteDecision)
    assert (easy.name, hard.name) == ("cheap", "strong")
    assert easy.policy == hard.policy == "learned" and easy.provider == ""
    assert easy.estimate_usd == Decimal("0.001") and hard.estimate_usd == Decimal("0.01")
    assert (
        easy.predicted_quality is not None
        and easy.predicted_quality > 0.6 > hard.details["predicted"]["cheap"]
    )
    assert [r.name for r in easy.rejected] == ["strong"] and [r.name for r in hard.rejected] == ["cheap"]
    assert "below the threshold" in hard.rejected[0].reason or "less cost penalty" in hard.rejected[0].reason
    assert easy.details["predicted"].keys() == {"cheap", "strong"} and easy.details["target"] == 1.0
    assert easy.as_route()["policy"] == "learned"


def test_at_the_default_target_most_new_hard_prompts_go_strong(router: LearnedRouter) -> None:
    fresh = synthetic(100, seed=7)
    names = [router.decide(r["prompt"]).name for r in fresh]
    hard = [n for r, n in zip(fresh, names, strict=True) if r["cheap"] == 0.0]
    easy = [n for r, n in zip(fresh, names, strict=True) if r["cheap"] == 1.0]
    assert hard.count("strong") >= 0.8 * len(hard)
    assert easy.count("cheap") >= 0.9 * len(easy)
    assert router.choose_many([r["prompt"] for r in fresh]) == names


def test_predict_gives_one_dict_per_prompt_with_scores_in_range(router: LearnedRouter) -> None:
    out = router.predict(["hard river", "easy river", "", "ünïcode ✓ 数学 hard"])
    assert len(out) == 4 and all(set(d) == {"cheap", "strong"} for d in out)
    assert all(0.0 <= v <= 1.0 for d in out for v in d.values())
    assert out[0]["cheap"] < 0.3 < 0.7 < out[1]["cheap"]
    assert router.candidates == ("cheap", "strong")
    with pytest.raises(TypeError):
        router.predict("one prompt")  # type: ignore[arg-type]


def test_the_calibrated_target_is_met_on_the_training_folds(router: LearnedRouter) -> None:
    chosen = router.calibrated(0.95)
    assert chosen.rule is not None and chosen.quality >= 0.95
    assert chosen.cost < 0.7  # half the prompts are easy: well under always-strong
    unreachable = router.decide("easy", target=1.5)
    assert unreachable.name == "strong" and "no calibrated setting" in unreachable.reason


def test_save_load_round_trip_predicts_exactly_the_same(router: LearnedRouter, tmp_path: Path) -> None:
    path = router.save(tmp_path / "router.npz")
    loaded = LearnedRouter.load(path)
    prompts = ["hard river", "easy garden", "never seen words at all", "", "x" * 5000, "数学 HARD 42"]
    assert loaded.predict(prompts) == router.predict(prompts)
    for p in prompts:
        assert loaded.decide(p) == router.decide(p)
    assert loaded.candidates == router.candidates and loaded.costs == router.costs
    assert loaded.meta() == router.meta()


def test_a_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(RouterFileError, match="not a costlens router"):
        LearnedRouter.load(path)
    assert not marker.exists()


def test_an_npz_holding_an_object_array_is_refused(router: LearnedRouter, tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    with path.open("wb") as handle:
        np.savez(handle, meta=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(RouterFileError):
        LearnedRouter.load(path)


def _rewrite(router: LearnedRouter, path: Path, **changes: Any) -> None:
    good = router.save(path)
    with np.load(good, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta.update(changes.pop("meta", {}))
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"meta": {"format": "something-else"}}, "format is not"),
        ({"meta": {"version": 99}}, "version 99"),
        ({"coef": None}, "no 'coef' array"),
        ({"coef": np.zeros((3, 2), dtype=np.float32)}, "float32"),
        ({"intercept": np.zeros(5)}, "do not match"),
    ],
)
def test_wrong_schema_is_refused_with_a_clear_error(
    router: LearnedRouter, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.npz"
    _rewrite(router, path, **changes)
    with pytest.raises(RouterFileError, match=message):
        LearnedRouter.load(path)


@pytest.mark.parametrize("content", [b"", b'{"format": "costlens.learned-router"}', b"prompt,a,b\nx,1,0\n"])
def test_files_that_are_not_routers_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not-a-router.npz"
    path.write_bytes(content)
    with pytest.raises(RouterFileError, match=r"not-a-router\.npz"):
        LearnedRouter.load(path)
    with pytest.raises(RouterFileError, match="no such router file"):
        LearnedRouter.load(tmp_path / "missing.npz")


def _contents(router: LearnedRouter, path: Path) -> dict[str, Any]:
    router.save(path)
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k].tobytes() for k in archive.files}


def test_test_rows_never_influence_training(tmp_path: Path) -> None:
    rows = synthetic(150, test_every=5)
    changed = [dict(r) for r in rows]
    for r in changed:
        if r["split"] == "test":  # flip their scores and give them new words
            r["cheap"], r["strong"] = 1.0 - r["cheap"], 0.0
            r["prompt"] = r["prompt"] + " zebra quartz"
    first = _contents(train_router(rows, COSTS, **FAST), tmp_path / "a.npz")
    second = _contents(train_router(changed, COSTS, **FAST), tmp_path / "b.npz")
    assert first == second
    assert json.loads(first["meta"])["info"]["test_rows"] == 30


def test_holdout_rows_and_contaminated_rows_are_left_out(tmp_path: Path) -> None:
    rows = synthetic(150)
    held = holdout_mask([r["prompt"] for r in rows], 20)
    assert 10 < sum(held) < 50
    changed = [dict(r, cheap=0.5) if h else dict(r) for r, h in zip(rows, held, strict=True)]
    first = _contents(train_router(rows, COSTS, holdout=20, **FAST), tmp_path / "a.npz")
    second = _contents(train_router(changed, COSTS, holdout=20, **FAST), tmp_path / "b.npz")
    assert first == second
    dirty = [*rows, {"prompt": "poison hard", "cheap": 1.0, "strong": 0.0, "contaminated": "True"}]
    assert parse_rows(dirty).dropped_contaminated == 1
    assert (
        _contents(train_router(dirty, COSTS, holdout=20, **FAST), tmp_path / "c.npz")["coef"] == first["coef"]
    )


def test_two_models_without_prices_are_costed_in_strong_calls() -> None:
    router = train_router(synthetic(), None, **FAST)
    assert not router.priced and router.strongest == "strong"
    assert router.costs["strong"].unit == 1.0 and router.costs["cheap"].unit == 0.0
    decision = router.decide("hard garden", target=1.0)
    assert decision.name == "strong" and decision.estimate_usd is None


def test_more_than_two_models_need_costs() -> None:
    rows = [dict(r, third=0.5) for r in synthetic()]
    with pytest.raises(RoutingDataError, match="give their costs"):
        train_router(rows, None, **FAST)


def test_bad_rows_are_refused_with_the_fix() -> None:
    with pytest.raises(RoutingDataError, match="no 'prompt' column"):
        parse_rows([{"text": "x", "a": 1, "b": 0}])
    with pytest.raises(RoutingDataError, match="1 score column"):
        parse_rows([{"prompt": "x", "a": 1, "name": "n"}])
    with pytest.raises(RoutingDataError, match="'gpt-x'"):
        parse_rows([{"prompt": "x", "a": 1, "b": 0}], models=["a", "gpt-x"])
    with pytest.raises(RoutingDataError, match="not in \\[0, 1\\]"):
        parse_rows([{"prompt": "x", "a": 1, "b": 3}], models=["a", "b"])
    with pytest.raises(RoutingDataError, match="training rows"):
        train_router(synthetic(10), COSTS, **FAST)


def test_models_file_prices_per_token_give_decimal_costs(tmp_path: Path) -> None:
    path = tmp_path / "models.csv"
    path.write_text(
        "model,input_price_usd_per_1M_tokens,output_price_usd_per_1M_tokens\ncheap,0.1,0.4\nstrong,2.5,10\n"
    )
    costs = read_models_csv(path)
    assert costs["strong"].call_usd(1000, 256) == Decimal("0.00506")
    router = train_router(synthetic(), costs, output_tokens=256, **FAST)
    prompt = "hard " + "river " * 99
    decision = router.decide(prompt)
    tokens = -(-len(prompt) // 4)
    assert decision.estimate_usd == (Decimal("2.5") * tokens + Decimal(10) * 256) / Decimal(1_000_000)
    bad = tmp_path / "bad.csv"
    bad.write_text("model,price\ncheap,1\n")
    with pytest.raises(RoutingDataError, match="cost_per_call_usd"):
        read_models_csv(bad)


needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared/data/routing is not beside the checkout")


def _head(name: str, n: int) -> list[dict[str, str]]:
    with (DATA / name).open(newline="", encoding="utf-8") as handle:
        return [row for _, row in zip(range(n), csv.DictReader(handle), strict=False)]


@needs_data
def test_trains_on_real_routellm_rows_and_round_trips(tmp_path: Path) -> None:
    rows = _head("routellm_gsm8k_train.csv", 300)
    router = train_router(rows, None, holdout=20, **FAST)
    assert router.candidates == ("gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert router.strongest == "gpt-4-1106-preview"
    info = router.info
    assert info["dropped_contaminated"] == sum(r["contaminated"] == "True" for r in rows) > 0
    assert info["train_rows"] + info["holdout_rows"] + info["dropped_contaminated"] == 300
    loaded = LearnedRouter.load(router.save(tmp_path / "gsm8k.npz"))
    prompts = [r["prompt"] for r in rows[:40]]
    assert loaded.predict(prompts) == router.predict(prompts)


@needs_data
def test_trains_on_real_llmrouter_rows_with_the_models_file() -> None:
    costs = read_models_csv(DATA / "llmrouter_9models_models.csv")
    data = read_routing_csv(DATA / "llmrouter_9models.csv", models=list(costs))
    assert len(data.models) == 9 and sum(data.test) == 381
    subset = parse_rows(
        [
            dict(zip(("prompt", *data.models), (p, *s), strict=True))
            for p, s in zip(data.prompts[::20], data.scores[::20], strict=True)
        ],
        models=list(costs),
    )
    router = train_router(subset, costs, **FAST)
    decision = router.decide(data.prompts[0])
    assert decision.name in costs and decision.estimate_usd is not None and decision.estimate_usd > 0
    assert len(decision.rejected) == 8


def test_hashes_do_not_depend_on_the_process_hash_seed() -> None:
    code = (
        "from costlens.routing._features import hash_prompt\n"
        "h = hash_prompt('Hello  wörld, 42 apples!\\nnext', word_ngrams=2, char_ngrams=(3, 4))\n"
        "print(h.words.tolist(), h.chars.tolist()[:5], h.dense.tolist())\n"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1


def test_featurisation_matches_a_plain_python_reference() -> None:
    texts = [
        "The cat sat on the mat.",
        "the  CAT\tsat, on   the mat!",
        "Dogs & cats: 12 and 3.5",
        "日本語 テキスト",
    ]
    hashed = [hash_prompt(t, word_ngrams=2, char_ngrams=(2, 3)) for t in texts]
    feats = Featurizer.fit(
        hashed, word_ngrams=2, char_ngrams=(2, 3), min_df=1, max_word_features=1000, max_char_features=1000
    )
    # whitespace and case do not matter: the first two prompts share every word n-gram
    assert set(hashed[0].words.tolist()) == set(hashed[1].words.tolist()) - set()
    assert len(hashed[0].words) == 6 + 5
    vocab = {int(h): i for i, h in enumerate(feats.word_vocab.tolist())}
    for h in hashed:
        cols, vals = feats.transform_hashed(h)
        words = sorted({vocab[int(x)] for x in h.words})
        assert cols[: len(words)].tolist() == words
        assert np.isclose(np.linalg.norm(vals[: len(words)]), 1.0)
        assert len(vals) == len(cols)
    unseen_cols, _ = feats.transform_one("qqq zzz")
    assert len(unseen_cols) == 5  # only the dense counts


def test_importing_the_router_modules_and_the_cli_loads_no_numpy_or_sklearn() -> None:
    code = (
        "import sys\n"
        "import costlens, costlens.routing\n"
        "import costlens.routing._learned, costlens.routing._train, costlens.routing._evaluate\n"
        "import costlens.routing._plot, costlens.cli._route\n"
        "print(sorted({'numpy', 'sklearn', 'scipy', 'matplotlib'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_calibration_holds_out_whole_datasets_when_the_rows_name_enough_of_them() -> None:
    rows = [dict(r, dataset=f"set{i % 4}") for i, r in enumerate(synthetic())]
    mixed = train_router(rows, COSTS, **FAST)
    assert mixed.info["calibrated_by"] == "dataset and row folds"
    assert mixed.calibrated(0.95).quality >= 0.95
    by_dataset = train_router(rows, COSTS, calibrate_by="dataset", **FAST)
    assert by_dataset.info["calibrated_by"] == "dataset folds"
    assert by_dataset.calibrated(0.95).quality >= 0.95
    assert train_router(rows, COSTS, calibrate_by="rows", **FAST).info["calibrated_by"] == "row folds"
    assert train_router(synthetic(), COSTS, **FAST).info["calibrated_by"] == "row folds"
    with pytest.raises(RoutingDataError, match="at least 3 distinct values"):
        train_router(synthetic(), COSTS, calibrate_by="dataset", **FAST)


def test_the_text_only_predictor_has_no_weight_on_the_length_counts() -> None:
    """One predictor option leaves the length counts out (they extrapolate badly to prompts of other
    kinds): its coefficients there are 0, so a router that keeps it needs no new field in the file."""
    from costlens.routing._train import TEXT_ONLY, _configs, _fit

    assert (TEXT_ONLY, 1.0) in _configs(True, (0.3, 1.0, 3.0))
    rows = synthetic()
    router = train_router(rows, COSTS, **FAST)
    x = router.featurizer.matrix([router.featurizer.hash(r["prompt"]) for r in rows])
    y = np.array([float(r["cheap"]) for r in rows])
    coef, _ = _fit(TEXT_ONLY, 3.0, x, y, 0)
    assert np.all(coef[-5:] == 0) and np.any(coef[:-5] != 0)
