"""Benchmark: `LearnedRouter.decide` on 2,000-token prompts, beside scikit-learn's TfidfVectorizer baseline.

Run: `.venv/bin/python bench/bench_router.py [--iterations 300]`. Pinned to one CPU core with
single-threaded BLAS. A router is trained on the LLMRouter data (9 candidates, the widest case; from
../shared/data/routing when present, else on synthetic prompts), small settings so the run stays short.
Each call is timed on its own with `time.perf_counter_ns`; the table shows p50/p90 per decision in
milliseconds and the share of it spent featurising the prompt. Baseline: `TfidfVectorizer` (word 1-2
grams, same vocabulary cap) fitted on the same prompts, `transform([prompt])` then `predict_proba` of
one `LogisticRegression` per candidate. Goal: decide <= 2 ms p50 including featurisation.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402
from time import perf_counter_ns  # noqa: E402
from typing import Any  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

GOAL_MS = 2.0
ROWS = 3000  # training rows: enough for a realistic vocabulary, few enough to train in seconds
TOKENS = 2000
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing"


def _rows() -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    from costlens.routing._costs import ModelCost, read_models_csv

    data, models = DATA / "llmrouter_9models.csv", DATA / "llmrouter_9models_models.csv"
    if data.is_file() and models.is_file():
        with data.open(newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.DictReader(handle) if r["split"] == "train"][:ROWS]
        return rows, dict(read_models_csv(models)), f"the first {len(rows):,} LLMRouter train rows"
    rng = random.Random(0)
    words = [f"w{i}" for i in range(3000)]
    names = [f"model-{i}" for i in range(9)]
    rows = [
        {"prompt": " ".join(rng.choices(words, k=60)), **{n: float(rng.random() < 0.5) for n in names}}
        for _ in range(ROWS)
    ]
    costs = {n: ModelCost(n, per_call_usd=Decimal(i + 1) / 1000) for i, n in enumerate(names)}
    return rows, costs, "3,000 synthetic rows (shared data not found)"


def _long_prompt(rows: list[dict[str, Any]]) -> str:
    """About 2,000 tokens of real prompt text (o200k count when bpe-openai is installed)."""
    text = "\n\n".join(r["prompt"] for r in rows[:400])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import bpe_openai

            enc = bpe_openai.get_encoding("o200k_base")
        return str(enc.decode(enc.encode(text)[:TOKENS]))
    except ImportError:
        return text[: TOKENS * 4]


def _timings(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(20):
        fn()
    out = []
    for _ in range(n):
        start = perf_counter_ns()
        fn()
        out.append((perf_counter_ns() - start) / 1e6)
    return out


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    import numpy as np
    import sklearn
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from costlens.routing._train import train_router

    rows, costs, label = _rows()
    router = train_router(rows, costs, folds=2, c_grid=(1.0,), calibrate_by="rows")
    prompt = _long_prompt(rows)
    prompts = [r["prompt"] for r in rows]
    labels = np.array([[float(r[c]) >= 0.5 for c in router.candidates] for r in rows])
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=100_000)
    x = vectorizer.fit_transform(prompts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = [
            LogisticRegression(C=1.0, max_iter=300).fit(x, labels[:, j]) for j in range(labels.shape[1])
        ]

    def baseline() -> list[float]:
        features = vectorizer.transform([prompt])
        return [float(m.predict_proba(features)[0, 1]) for m in models]

    n = args.iterations
    runs = {
        "decide": _timings(lambda: router.decide(prompt), n),
        "featurise": _timings(lambda: router.featurizer.transform_one(prompt), n),
        "predict": _timings(lambda: router.predict([prompt]), n),
        "baseline": _timings(baseline, n),
        "baseline featurise": _timings(lambda: vectorizer.transform([prompt]), n),
    }
    p50 = {k: statistics.median(v) for k, v in runs.items()}
    table = Table(
        title=f"Learned router decision latency, {n} decisions of a {TOKENS:,}-token prompt, one core (ms)"
    )
    for col in ("what", "p50", "p90", "featurisation share of p50", f"p50 <= {GOAL_MS:g} ms"):
        table.add_column(col, justify="left" if col == "what" else "right")
    shown = [
        ("LearnedRouter.decide (costlens featuriser)", "decide", p50["featurise"] / p50["decide"]),
        ("  of which featurisation (hash + vocabulary look-up + tf-idf)", "featurise", None),
        ("LearnedRouter.predict(\\[prompt])", "predict", None),
        (
            "baseline: TfidfVectorizer.transform + 9x predict_proba",
            "baseline",
            p50["baseline featurise"] / p50["baseline"],
        ),
        ("  of which TfidfVectorizer.transform", "baseline featurise", None),
    ]
    for what, key, share in shown:
        ok = "" if key not in ("decide", "baseline") else "yes" if p50[key] <= GOAL_MS else "NO"
        table.add_row(
            what, f"{p50[key]:.3f}", f"{_pct(runs[key], 90):.3f}", "" if share is None else f"{share:.0%}", ok
        )
    console = Console(width=150)
    console.print(table)
    f = router.featurizer
    console.print(
        f"router: {len(router.candidates)} candidates, {len(f.word_vocab):,} word n-grams + "
        f"{len(f.char_vocab):,} char n-grams, trained on {label}; prompt {len(prompt):,} characters; "
        f"speed-up over the baseline "
        f"{p50['baseline'] / p50['decide']:.1f}x; python {sys.version.split()[0]}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}"
    )


if __name__ == "__main__":
    main()
