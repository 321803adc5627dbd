"""`train_router`: fit a `LearnedRouter` on rows of prompts and per-model scores (scikit-learn, numpy).

1. Only training rows are used: rows with `split=test`, rows set aside by `holdout` and contaminated rows
   never reach the vocabulary, the models or the calibration.
2. Features: TF-IDF over hashed word uni- and bigrams (character n-grams optional: on the RouteLLM and
   LLMRouter data they did not help under cross-validation and cost decision time), plus length counts.
3. Predictors: K-fold cross-validation on the training rows gives out-of-fold predictions of logistic
   regression (fractional scores are fitted as soft labels: each row once as 1 with weight s and once as
   0 with weight 1 - s), for fractional scores ridge regression, at a few regularisation strengths, and
   logistic regression on the n-grams alone (no length counts). Kept: each candidate's lowest-error
   predictor, or one logistic option for all, whichever routes best out of fold (largest area under the
   cost-quality hull). The folds are those that calibrate: with dataset folds, the options are judged on
   datasets the model never saw, where the length counts extrapolate badly.
4. Calibration (cross-fitting): out-of-fold predictions of the kept predictors calibrate the routing
   rules (`_calibrate`) against the quality target, in realised scores of the training rows.
   `calibrate_by`: "rows" (shuffled row folds), "dataset" (folds that hold out whole datasets: the
   threshold is set by how the router does on kinds of prompts it never saw) or "mixed" (both sets of
   predictions pooled). "auto" (the default) is "mixed" when the rows have a `dataset` column with at
   least `folds` values, else "rows". Row folds alone promise more quality than shifted traffic
   delivers (LLMRouter test split: 95% promised, 88% realised); dataset folds alone are so conservative
   that the router can cost more than mixing two single models.
5. The kept predictors are refitted on all training rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from costlens.routing._calibrate import RULES, Curve, calibrate, curve_area
from costlens.routing._costs import DEFAULT_OUTPUT_TOKENS, ModelCost, cost_matrix, cost_terms
from costlens.routing._data import RoutingDataError, RoutingRows, holdout_mask, parse_rows
from costlens.routing._features import DENSE_FEATURES, Featurizer, hash_prompt
from costlens.routing._learned import LearnedRouter

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    F64 = npt.NDArray[np.float64]

__all__ = ["Progress", "train_router"]

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called as training advances."""

MIN_TRAIN_ROWS = 20


def resolve_costs(
    data: RoutingRows, models_costs: Mapping[str, ModelCost | Decimal | str | float] | None, train_means: F64
) -> list[ModelCost]:
    """A cost per candidate: from `models_costs`, else (two models) strong calls."""
    if models_costs is None:
        if len(data.models) != 2:
            raise RoutingDataError(
                f"{data.source} has {len(data.models)} models: give their costs (a models file with "
                "input/output prices per 1M tokens or cost_per_call_usd); without one only a two-model "
                "set can be costed, in strong calls"
            )
        strong = int(train_means.argmax())
        return [ModelCost(m, unit=1.0 if i == strong else 0.0) for i, m in enumerate(data.models)]
    out = []
    for m in data.models:
        cost = models_costs[m]
        out.append(cost if isinstance(cost, ModelCost) else ModelCost(m, per_call_usd=Decimal(str(cost))))
    return out


TEXT_ONLY = "logistic-text"  # logistic regression on the n-grams alone: the length counts left out


def _configs(binary: bool, c_grid: Sequence[float]) -> list[tuple[str, float]]:
    configs = [("logistic", c) for c in c_grid]
    if not binary:
        configs += [("ridge", c) for c in c_grid]
    # The length counts carry most of the signal within one benchmark (GSM8K: out-of-fold APGR 0.61
    # with them, 0.55 without) but extrapolate badly to kinds of prompts of other lengths (LLMRouter,
    # whole datasets held out: routing area 0.929 with them, 0.936 without). One text-only option at
    # the middle strength lets the out-of-fold selection decide per data set.
    configs.append((TEXT_ONLY, sorted(c_grid)[len(c_grid) // 2]))
    return configs


def _columns(kind: str, x: Any, n_dense: int) -> Any:
    """`x` as the predictor sees it: a text-only predictor gets the length-count columns zeroed, so its
    coefficients there are 0 and the saved router needs no new field."""
    if kind != TEXT_ONLY:
        return x
    import numpy as np
    from scipy import sparse

    keep = np.ones(x.shape[1])
    keep[x.shape[1] - n_dense :] = 0.0
    return (x @ sparse.diags(keep)).tocsr()


def _fit(kind: str, strength: float, x: Any, y: F64, seed: int) -> tuple[F64, float]:
    """(coefficients, intercept) of one predictor; a constant target gives a constant model."""
    import numpy as np
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression, Ridge

    n_cols = x.shape[1]
    if float(y.min()) == float(y.max()):
        value = float(y[0])
        if kind != "ridge":
            value = float(np.log(max(value, 1e-6) / max(1.0 - value, 1e-6)))
        return np.zeros(n_cols), value
    x = _columns(kind, x, len(DENSE_FEATURES))
    if kind == "ridge":
        model = Ridge(alpha=1.0 / strength, random_state=seed).fit(x, y)
        return np.asarray(model.coef_, dtype=np.float64).ravel(), float(model.intercept_)
    model = LogisticRegression(C=strength, max_iter=2000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fold that converges slowly is still a usable fit
        if bool(np.all((y == 0) | (y == 1))):
            model.fit(x, y.astype(np.int64))
        else:
            both = sparse.vstack([x, x]).tocsr()
            labels = np.r_[np.ones(len(y)), np.zeros(len(y))].astype(np.int64)
            model.fit(both, labels, sample_weight=np.r_[y, 1.0 - y])
    return np.asarray(model.coef_, dtype=np.float64).ravel(), float(model.intercept_[0])


def _cross_fit(
    x: Any,
    scores: F64,
    configs: list[list[tuple[str, float]]],
    splits: list[tuple[Any, Any]],
    seed: int,
    tick: Callable[[], None],
) -> list[F64]:
    """Out-of-fold predictions: per candidate, one column per config."""
    import numpy as np

    oof = [np.zeros((scores.shape[0], len(c))) for c in configs]
    for train_idx, val_idx in splits:
        for j, options in enumerate(configs):
            for k, (kind, strength) in enumerate(options):
                coef, b = _fit(kind, strength, x[train_idx], scores[train_idx, j], seed)
                oof[j][val_idx, k] = _apply(kind, coef, b, x[val_idx])
                tick()
    return oof


def _apply(kind: str, coef: F64, intercept: float, x: Any) -> F64:
    import numpy as np

    z = np.asarray(x @ coef, dtype=np.float64).ravel() + intercept
    return 1.0 / (1.0 + np.exp(-z)) if kind != "ridge" else np.clip(z, 0.0, 1.0)


def train_router(
    rows: Iterable[Mapping[str, Any]] | RoutingRows,
    models_costs: Mapping[str, ModelCost | Decimal | str | float] | None = None,
    *,
    target: float = 0.95,
    holdout: float = 0.0,
    output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    word_ngrams: int = 2,
    char_ngrams: tuple[int, int] | None = None,
    min_df: int = 2,
    max_features: int = 100_000,
    folds: int = 5,
    c_grid: Sequence[float] = (0.3, 1.0, 3.0),
    rules: Sequence[str] = RULES,
    seed: int = 0,
    calibrate_by: str = "auto",
    progress: Progress | None = None,
    source: str = "rows",
) -> LearnedRouter:
    """Train a `LearnedRouter` (see the module docstring).

    `rows`: dicts with `prompt`, one score column per model, optionally `split` and `contaminated` (or the
    result of `read_routing_csv`). `models_costs`: model -> `ModelCost` (or a cost per call in USD);
    its keys are the candidates. `holdout`: percent of rows to set aside by prompt hash (for files
    without a test split). `target`: the default quality target of `decide`. `calibrate_by`: "rows",
    "dataset" (folds that hold out whole datasets), "mixed" (both pooled) or "auto" (mixed when there
    are enough datasets, else rows).
    """
    import numpy as np
    from sklearn.model_selection import GroupKFold, KFold

    if not 0 < target <= 2:
        raise ValueError(f"target {target} must be a share of the strongest model's quality, e.g. 0.95")
    if folds < 2:
        raise ValueError("folds must be at least 2")
    if calibrate_by not in ("auto", "rows", "dataset", "mixed"):
        raise ValueError(f"calibrate_by {calibrate_by!r}: use auto, rows, dataset or mixed")
    if isinstance(rows, RoutingRows):
        data = rows
        if models_costs is not None:
            unknown = sorted(set(models_costs) - set(data.models))
            if unknown:
                raise RoutingDataError(f"{data.source} has no score column for model {unknown[0]!r}")
            data = _subset(data, [m for m in data.models if m in models_costs])
    else:
        data = parse_rows(rows, models=None if models_costs is None else list(models_costs), source=source)
    held = holdout_mask(data.prompts, holdout)
    keep = [i for i in range(len(data)) if not data.test[i] and not held[i]]
    if len(keep) < max(MIN_TRAIN_ROWS, 2 * folds):
        raise RoutingDataError(
            f"{data.source} has {len(keep)} training rows (not split=test, not held out): "
            f"at least {max(MIN_TRAIN_ROWS, 2 * folds)} are needed"
        )
    prompts = [data.prompts[i] for i in keep]
    scores = np.array([data.scores[i] for i in keep], dtype=np.float64)
    means = scores.mean(axis=0)
    costs = resolve_costs(data, models_costs, means)
    m = len(data.models)

    hashed = []
    for i, prompt in enumerate(prompts):
        hashed.append(hash_prompt(prompt, word_ngrams=word_ngrams, char_ngrams=char_ngrams))
        if progress is not None and (i % 500 == 0 or i == len(prompts) - 1):
            progress("featurise", i + 1, len(prompts))
    featurizer = Featurizer.fit(
        hashed,
        word_ngrams=word_ngrams,
        char_ngrams=char_ngrams,
        min_df=min_df,
        max_word_features=max_features,
        max_char_features=max_features if char_ngrams else 0,
    )
    x = featurizer.matrix(hashed)

    binary = [bool(np.all((scores[:, j] == 0) | (scores[:, j] == 1))) for j in range(m)]
    configs = [_configs(b, c_grid) for b in binary]
    groups = [data.groups[i] for i in keep]
    mode = calibrate_by
    if mode == "auto":
        mode = "mixed" if len(set(groups)) >= folds else "rows"
    by_group = mode in ("dataset", "mixed")
    if by_group and len(set(groups)) < folds:
        raise RoutingDataError(
            f"{data.source}: calibrating by dataset needs at least {folds} distinct values in its "
            f"'dataset' column among the training rows (it has {len(set(groups))})"
        )
    total = folds * sum(len(c) for c in configs) + (folds * m if mode == "mixed" else 0) + m
    ticks = iter(range(1, total + 1))

    def tick(stage: str) -> None:
        done = next(ticks)
        if progress is not None:
            progress(stage, done, total)

    index = np.arange(len(prompts))
    rows_split = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(index))
    # Predictors are chosen under the same folds that calibrate them: with dataset folds, what routes
    # best on datasets a model never saw (stronger regularisation, no length counts), not what fits
    # known datasets best.
    group_split = list(GroupKFold(n_splits=folds).split(index, groups=groups)) if by_group else []
    oof = _cross_fit(x, scores, configs, group_split or rows_split, seed, lambda: tick("cross-validate"))
    errors = [((oof[j] - scores[:, j : j + 1]) ** 2).mean(axis=0) for j in range(m)]
    cost = cost_matrix(prompts, cost_terms(costs), output_tokens)
    strongest = int(np.argmax(means))
    cost_scale = float(cost[:, strongest].mean()) or 1.0
    best, curves, selection, area = _select(
        oof, errors, configs, c_grid, cost, scores, strongest, cost_scale, tuple(rules)
    )
    if mode == "mixed":
        # Pool the predictions for held-out datasets with those for held-out rows of known datasets
        # (each row once per protocol) and calibrate on both: the knob then meets the target on
        # average over traffic that is half new kinds of prompts and half known kinds shifted a
        # little. Dataset folds alone price every prompt as if its kind were new (on the LLMRouter
        # training rows: 81% of the strongest model's cost to reach 95%); row folds alone assume no
        # shift at all (17%), and both bracket what a deployed router meets.
        chosen = [[configs[j][best[j]]] for j in range(m)]
        known = _cross_fit(x, scores, chosen, rows_split, seed, lambda: tick("calibrate on rows too"))
        unseen = np.column_stack([oof[j][:, best[j]] for j in range(m)])
        pred = np.vstack([unseen, np.column_stack([k[:, 0] for k in known])])
        curves = calibrate(
            pred, np.vstack([cost, cost]), np.vstack([scores, scores]), strongest, cost_scale, tuple(rules)
        )

    coefs, intercepts, links = [], [], []
    for j in range(m):
        kind, strength = configs[j][best[j]]
        coef, b = _fit(kind, strength, x, scores[:, j], seed)
        coefs.append(coef)
        intercepts.append(b)
        links.append("linear" if kind == "ridge" else "logistic")
        tick("fit")

    info = {
        "source": data.source,
        "train_rows": len(prompts),
        "test_rows": int(sum(data.test)),
        "holdout_percent": holdout,
        "holdout_rows": int(sum(h and not t for h, t in zip(held, data.test, strict=True))),
        "dropped_contaminated": data.dropped_contaminated,
        "dropped_missing": data.dropped_missing,
        "folds": folds,
        "calibrated_by": {"rows": "row folds", "dataset": "dataset folds", "mixed": "dataset and row folds"}[
            mode
        ],
        "seed": seed,
        "train_means": {mod: float(v) for mod, v in zip(data.models, means, strict=True)},
        "selection": selection,
        "oof_area": area,
        "predictors": {
            mod: {
                "kind": configs[j][best[j]][0],
                "strength": configs[j][best[j]][1],
                "oof_mse": float(errors[j][best[j]]),
            }
            for j, mod in enumerate(data.models)
        },
    }
    return LearnedRouter(
        featurizer=featurizer,
        candidates=data.models,
        coef=np.column_stack(coefs),
        intercept=np.array(intercepts),
        links=links,
        costs=costs,
        curves=curves,
        strongest=data.models[strongest],
        cost_scale=cost_scale,
        output_tokens=output_tokens,
        target=target,
        info=info,
    )


def _select(
    oof: list[F64],
    errors: list[F64],
    configs: list[list[tuple[str, float]]],
    c_grid: Sequence[float],
    cost: F64,
    scores: F64,
    strongest: int,
    cost_scale: float,
    rules: tuple[str, ...],
) -> tuple[list[int], list[Curve], str, float]:
    """Pick each candidate's predictor by what routes best out of fold: each candidate's lowest-error
    predictor, or one logistic strength shared by all (with or without the length counts); the winner
    has the largest area under its out-of-fold cost-quality hull (cost share 0 to 1). Returns choices,
    curves, label, area."""
    import numpy as np

    options = {"lowest error per model": [int(np.argmin(e)) for e in errors]}
    for c in c_grid:
        options[f"logistic C={c:g} for all"] = [cfg.index(("logistic", c)) for cfg in configs]
    text_only = [next(k for k, cfg in enumerate(cfgs) if cfg[0] == TEXT_ONLY) for cfgs in configs]
    options[f"logistic C={configs[0][text_only[0]][1]:g} without length counts for all"] = text_only
    found: tuple[list[int], list[Curve], str, float] | None = None
    for label, best in options.items():
        pred = np.column_stack([oof[j][:, k] for j, k in enumerate(best)])
        curves = calibrate(pred, cost, scores, strongest, cost_scale, rules)
        area = curve_area(curves)
        if found is None or area > found[3] + 1e-12:
            found = (best, curves, label, area)
    assert found is not None
    return found


def _subset(data: RoutingRows, models: list[str]) -> RoutingRows:
    cols = [data.models.index(m) for m in models]
    return RoutingRows(
        source=data.source,
        models=tuple(models),
        prompts=data.prompts,
        scores=[[row[c] for c in cols] for row in data.scores],
        test=data.test,
        groups=data.groups,
        dropped_contaminated=data.dropped_contaminated,
        dropped_missing=data.dropped_missing,
    )
