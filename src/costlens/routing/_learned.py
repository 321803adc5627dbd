"""`LearnedRouter`: predicts each candidate model's score on a prompt from its text alone, and sends the
prompt to the cheapest candidate whose prediction clears a threshold calibrated to a quality target.

Train one with `train_router` (or `costlens route train`); save it with `.save(path)` and load it with
`LearnedRouter.load(path)`. The file is a numpy `.npz` archive of plain arrays (vocabulary hashes, idf,
coefficients) and one JSON document (candidates, costs, calibration curves), read with
`allow_pickle=False`: loading it can never run code. A loaded router predicts exactly what the trained
one did. scikit-learn is needed only to train; deciding needs numpy alone.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from costlens.routing._calibrate import Curve, Pick, choose, pick
from costlens.routing._costs import ModelCost, cost_matrix, cost_terms, prompt_tokens
from costlens.routing._data import RouterFileError
from costlens.routing._decision import Rejected, RouteDecision
from costlens.routing._features import Featurizer

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    F64 = npt.NDArray[np.float64]

__all__ = ["FORMAT", "LearnedRouter"]

FORMAT = "costlens.learned-router"
VERSION = 1
_ARRAYS = {
    "word_vocab": "uint64",
    "word_idf": "float64",
    "char_vocab": "uint64",
    "char_idf": "float64",
    "dense_mean": "float64",
    "dense_std": "float64",
    "coef": "float64",
    "intercept": "float64",
}
LINKS = ("logistic", "linear")


class LearnedRouter:
    """A trained router: `candidates` (model names, cheapest first by typical cost), `predict`, `decide`."""

    def __init__(
        self,
        *,
        featurizer: Featurizer,
        candidates: Sequence[str],
        coef: F64,
        intercept: F64,
        links: Sequence[str],
        costs: Sequence[ModelCost],
        curves: Sequence[Curve],
        strongest: str,
        cost_scale: float,
        output_tokens: int,
        target: float = 0.95,
        info: dict[str, Any] | None = None,
    ) -> None:
        import numpy as np

        self.featurizer = featurizer
        self.candidates: tuple[str, ...] = tuple(candidates)
        self.coef = np.ascontiguousarray(coef, dtype=np.float64)
        self.intercept = np.ascontiguousarray(intercept, dtype=np.float64)
        self.links = tuple(links)
        self.costs = {c.name: c for c in costs}
        self.curves = list(curves)
        self.strongest = strongest
        self.cost_scale = cost_scale
        self.output_tokens = output_tokens
        self.target = target
        self.info = dict(info or {})
        m = len(self.candidates)
        if self.coef.shape != (featurizer.n_columns, m) or self.intercept.shape != (m,):
            raise ValueError("coefficients do not match the features and candidates")
        if len(self.links) != m or any(link not in LINKS for link in self.links):
            raise ValueError("every candidate needs a link: logistic or linear")
        if set(self.costs) != set(self.candidates) or strongest not in self.candidates:
            raise ValueError("every candidate needs a cost, and the strongest must be a candidate")
        self._logistic = np.array([link == "logistic" for link in self.links])
        self._terms = cost_terms([self.costs[c] for c in self.candidates])
        self._picks: dict[float, Pick] = {}

    @property
    def priced(self) -> bool:
        """Whether costs are in USD (else in strong calls: the strong model 1, the other 0)."""
        return all(c.priced for c in self.costs.values())

    # -- predicting -------------------------------------------------------------------------------

    def _scores(self, prompt: str) -> F64:
        import numpy as np

        cols, vals = self.featurizer.transform_one(prompt)
        z = np.einsum("i,ij->j", vals, self.coef[cols]) + self.intercept
        return np.asarray(
            np.where(self._logistic, 1.0 / (1.0 + np.exp(-z)), np.clip(z, 0.0, 1.0)), dtype=np.float64
        )

    def predict(self, prompts: Sequence[str]) -> list[dict[str, float]]:
        """Predicted score of every candidate, one dict per prompt."""
        if isinstance(prompts, str):
            raise TypeError("predict takes a list of prompts; use predict([prompt]) for one")
        return [dict(zip(self.candidates, map(float, self._scores(p)), strict=True)) for p in prompts]

    def predict_matrix(self, prompts: Sequence[str]) -> F64:
        """Predicted scores as an array (prompts x candidates), for evaluation."""
        import numpy as np

        return np.array([self._scores(p) for p in prompts]).reshape(len(prompts), len(self.candidates))

    def cost_matrix(self, prompts: Sequence[str]) -> F64:
        """Each candidate's estimated cost per prompt (USD, or strong calls when unpriced)."""
        return cost_matrix(prompts, self._terms, self.output_tokens)

    def calibrated(self, target: float | None = None) -> Pick:
        """The rule and knob the calibration chose for `target` (default: the training target)."""
        target = self.target if target is None else float(target)
        found = self._picks.get(target)
        if found is None:
            found = self._picks[target] = pick(self.curves, target)
        return found

    def choose_many(self, prompts: Sequence[str], target: float | None = None) -> list[str]:
        """`decide(...).name` for many prompts at once."""
        import numpy as np

        chosen = self.calibrated(target)
        if chosen.rule is None:
            return [self.strongest] * len(prompts)
        idx = choose(
            self.predict_matrix(prompts), self.cost_matrix(prompts), chosen.rule, chosen.knob, self.cost_scale
        )
        return [self.candidates[int(i)] for i in np.asarray(idx)]

    def decide(self, prompt: str, target: float | None = None) -> RouteDecision:
        """The cheapest candidate whose predicted score clears the threshold calibrated for `target`
        (a share of the strongest candidate's mean score; default the training target, e.g. 0.95)."""
        target = self.target if target is None else float(target)
        if not 0 < target <= 2:
            raise ValueError(f"target {target} is a share of the strongest model's quality, e.g. 0.95")
        scores = self._scores(prompt)
        cost = self.cost_matrix([prompt])[0]
        chosen = self.calibrated(target)
        tokens = prompt_tokens(prompt)
        usd = {c: self.costs[c].call_usd(tokens, self.output_tokens) for c in self.candidates}
        pred = dict(zip(self.candidates, map(float, scores), strict=True))
        if chosen.rule is None:
            best = self.strongest
            reason = (
                f"no calibrated setting reaches {target:.0%} of {self.strongest}'s quality on the "
                f"training rows: taking the strongest candidate"
            )
            why = dict.fromkeys(pred, "the target is out of reach: only the strongest candidate is used")
            threshold = None
        else:
            best = self.candidates[
                int(choose(scores[None, :], cost[None, :], chosen.rule, chosen.knob, self.cost_scale)[0])
            ]
            reason, why, threshold = self._explain(best, pred, cost, chosen, target)
        rejected = tuple(Rejected(c, "learned", why[c]) for c in self._by_cost(cost) if c != best)
        return RouteDecision(
            name=best,
            provider="",
            model=best,
            policy="learned",
            reason=reason,
            estimate_usd=usd[best],
            predicted_quality=pred[best],
            rejected=rejected,
            details={
                "target": target,
                "rule": chosen.rule,
                "knob": chosen.knob,
                "threshold": threshold,
                "predicted": pred,
                "calibrated_quality": chosen.quality,
                "calibrated_cost": chosen.cost,
                "strongest": self.strongest,
            },
        )

    def _by_cost(self, cost: F64) -> list[str]:
        order = sorted(range(len(self.candidates)), key=lambda i: (float(cost[i]), i))
        return [self.candidates[i] for i in order]

    def _explain(
        self, best: str, pred: dict[str, float], cost: F64, chosen: Pick, target: float
    ) -> tuple[str, dict[str, str], float | None]:
        col = {c: i for i, c in enumerate(self.candidates)}
        goal = f"calibrated for {target:.0%} of {self.strongest}'s quality"
        why: dict[str, str] = {}
        if chosen.rule == "margin":
            threshold = max(pred.values()) - chosen.knob
            for c, p in pred.items():
                if p < threshold:
                    why[c] = f"predicted score {p:.3f} is below the threshold {threshold:.3f}"
                elif cost[col[c]] > cost[col[best]]:
                    why[c] = f"clears the threshold but costs more than {best}"
                else:
                    why[c] = f"costs the same as {best} with a lower predicted score ({p:.3f})"
            reason = (
                f"cheapest candidate whose predicted score {pred[best]:.3f} clears the threshold "
                f"{threshold:.3f} (best prediction - margin {chosen.knob:.3f}), {goal}"
            )
            return reason, why, threshold
        unit = "USD" if self.priced else "strong calls"

        def value(c: str) -> float:
            return pred[c] - chosen.knob * float(cost[col[c]]) / self.cost_scale

        for c in pred:
            why[c] = (
                f"predicted {pred[c]:.3f} less cost penalty = {value(c):.3f} < {value(best):.3f} for {best}"
            )
        reason = (
            f"highest predicted score less {chosen.knob:.3f} x cost ({unit}, relative to "
            f"{self.strongest}): {value(best):.3f}, {goal}"
        )
        return reason, why, value(best)

    # -- the file ---------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        f = self.featurizer
        return {
            "format": FORMAT,
            "version": VERSION,
            "candidates": [
                {"name": c, "link": link, "cost": self.costs[c].as_dict()}
                for c, link in zip(self.candidates, self.links, strict=True)
            ],
            "features": {
                "word_ngrams": f.word_ngrams,
                "char_ngrams": None if f.char_ngrams is None else list(f.char_ngrams),
            },
            "curves": [c.as_dict() for c in self.curves],
            "strongest": self.strongest,
            "cost_scale": self.cost_scale,
            "output_tokens": self.output_tokens,
            "target": self.target,
            "info": self.info,
        }

    def save(self, path: str | Path) -> Path:
        """Write the router to `path` (a `.npz` archive; written to a temporary file, then renamed)."""
        import numpy as np

        path = Path(path)
        f = self.featurizer
        arrays: dict[str, Any] = {
            "word_vocab": f.word_vocab,
            "word_idf": f.word_idf,
            "char_vocab": f.char_vocab,
            "char_idf": f.char_idf,
            "dense_mean": f.dense_mean,
            "dense_std": f.dense_std,
            "coef": self.coef,
            "intercept": self.intercept,
        }
        meta = np.frombuffer(json.dumps(self.meta(), allow_nan=False).encode("utf-8"), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            with tmp.open("wb") as handle:
                np.savez_compressed(handle, meta=meta, **arrays)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LearnedRouter:
        """Read a router written by `save` (or `costlens route train`). Refuses anything else, pickles
        included, with a `RouterFileError` that says what the file is not."""
        import numpy as np

        path = Path(path)
        hint = "train one with `costlens route train --data FILE.csv --out PATH`"
        try:
            with np.load(path, allow_pickle=False) as archive:
                names = set(archive.files)
                missing = sorted({"meta", *_ARRAYS} - names)
                if missing:
                    raise RouterFileError(
                        f"{path} is not a costlens router (no {missing[0]!r} array): {hint}"
                    )
                arrays = {name: archive[name] for name in ("meta", *_ARRAYS)}
        except FileNotFoundError:
            raise RouterFileError(f"{path}: no such router file: {hint}") from None
        except AttributeError:  # a plain .npy array, not an archive
            raise RouterFileError(f"{path} is not a costlens router (a single array): {hint}") from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise RouterFileError(f"{path} is not a costlens router file ({exc}): {hint}") from None
        try:
            return cls._from_arrays(arrays)
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise RouterFileError(f"{path} is not a valid costlens router file ({exc}): {hint}") from None

    @classmethod
    def _from_arrays(cls, arrays: dict[str, Any]) -> LearnedRouter:
        for name, dtype in _ARRAYS.items():
            if str(arrays[name].dtype) != dtype:
                raise ValueError(f"array {name!r} is {arrays[name].dtype}, expected {dtype}")
        if str(arrays["meta"].dtype) != "uint8":
            raise ValueError("the metadata is not UTF-8 bytes")
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"its format is not {FORMAT!r}")
        if meta.get("version") != VERSION:
            raise ValueError(f"format version {meta.get('version')!r}; this costlens reads version {VERSION}")
        feats = meta["features"]
        char = feats["char_ngrams"]
        featurizer = Featurizer(
            word_ngrams=int(feats["word_ngrams"]),
            char_ngrams=None if char is None else (int(char[0]), int(char[1])),
            word_vocab=arrays["word_vocab"],
            word_idf=arrays["word_idf"],
            char_vocab=arrays["char_vocab"],
            char_idf=arrays["char_idf"],
            dense_mean=arrays["dense_mean"],
            dense_std=arrays["dense_std"],
        )
        cands = meta["candidates"]
        return cls(
            featurizer=featurizer,
            candidates=[str(c["name"]) for c in cands],
            coef=arrays["coef"],
            intercept=arrays["intercept"],
            links=[str(c["link"]) for c in cands],
            costs=[ModelCost.from_dict(c["cost"]) for c in cands],
            curves=[Curve.from_dict(c) for c in meta["curves"]],
            strongest=str(meta["strongest"]),
            cost_scale=float(meta["cost_scale"]),
            output_tokens=int(meta["output_tokens"]),
            target=float(meta["target"]),
            info=dict(meta.get("info") or {}),
        )

    def __repr__(self) -> str:
        return f"LearnedRouter(candidates={list(self.candidates)!r}, strongest={self.strongest!r})"
