"""`costlens route train|eval`: train a learned router from a routing data file, and score it.

`route_app` is the `costlens route` sub-app; each command is a plain function registered at the bottom
of this module (add a command there). The work is done by `costlens.routing`; this module parses flags,
prints and writes files. Bad input (a missing column, no score columns, a model the data does not have,
a file that is not a router) is a usage error: exit 2 and one line naming the file and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from costlens.cli._output import (
    FORMAT_HELP,
    cells,
    check_format,
    console,
    fail,
    friendly_errors,
    make_table,
    money,
    money_places,
    note,
    one_line,
    staged_progress,
    usage_error,
    write_csv,
    write_json,
)
from costlens.cli._route_explain import explain

if TYPE_CHECKING:
    from costlens.routing._costs import ModelCost
    from costlens.routing._data import RoutingRows
    from costlens.routing._evaluate import Entry, RouterEvaluation
    from costlens.routing._learned import LearnedRouter

__all__ = ["eval_", "route_app", "train"]

route_app = typer.Typer(help="Routing: train a learned router on your data and evaluate it.")

_DATA_HELP = (
    "Routing data CSV: a prompt column, one score column per model, optional split=train/test. "
    "Or an experiment run (its folder, id or id prefix): its items and per-strategy scores."
)
_MODELS_HELP = (
    "Models CSV: model, and input_price_usd_per_1M_tokens + output_price_usd_per_1M_tokens, "
    "or cost_per_call_usd. Without it a two-model file is costed in strong calls."
)
_TARGET_HELP = "Quality target: a share of the strongest model's mean score."
_HOLDOUT_HELP = (
    "Percent of rows to set aside by prompt hash (sha256 of 'costlens-holdout:' + prompt, mod 100 < P), "
    "for files without a test split. eval defaults to the router's training value."
)
_CALIBRATE_HELP = (
    "Calibrate the threshold on folds of rows, or on folds holding out whole values of the dataset "
    "column (prompts of kinds the router never saw: safer when traffic shifts), or on both pooled (mixed). "
    "auto: mixed when the file has enough datasets, else rows."
)
_CSV_COLUMNS = (
    "name",
    "kind",
    "quality",
    "quality_share",
    "cost",
    "cost_usd",
    "saving",
    "target_met",
    "apgr",
    "cpt50",
    "cpt80",
    "note",
)

Fmt = Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)]
DataOpt = Annotated[Path, typer.Option("--data", metavar="FILE.csv|RUN", help=_DATA_HELP)]
ModelsOpt = Annotated[Path | None, typer.Option("--models", metavar="MODELS.csv", help=_MODELS_HELP)]


@contextmanager
def _bad_input() -> Iterator[None]:
    """Routing data, models and router file errors -> exit 2; a missing extra -> exit 1."""
    from costlens.routing._data import RouterFileError, RoutingDataError

    try:
        yield
    except (RoutingDataError, RouterFileError) as exc:
        usage_error(str(exc))
    except ImportError as exc:
        _missing_extra(exc)


def _missing_extra(exc: ImportError) -> NoReturn:
    fail(f"the learned router needs scikit-learn and numpy ({exc}): pip install 'llm-costlens[router]'")


def _rows(data: Path, models: list[str] | None) -> RoutingRows:
    """`--data`: a CSV file, else an experiment run (`costlens.evals._export`); a run that cannot be
    read or whose dataset changed is a usage error, like a bad CSV."""
    from costlens._errors import ConfigError
    from costlens.routing._data import RoutingDataError, read_routing_csv

    if data.is_file() or data.suffix.lower() == ".csv":
        return read_routing_csv(data, models=models)
    from costlens.evals._export import read_run_rows

    try:
        return read_run_rows(data, models=models)
    except RoutingDataError:
        raise  # the run was read: its rows are what is wrong (handled as a bad CSV's are)
    except ConfigError as exc:
        usage_error(f"--data {data}: {one_line(str(exc))}")


def _models(path: Path | None) -> dict[str, ModelCost] | None:
    from costlens.routing._costs import read_models_csv

    return None if path is None else read_models_csv(path)


def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", metavar="PATH", help="Where to write the router (.npz).")],
    models: ModelsOpt = None,
    target: Annotated[float, typer.Option("--target", min=0.01, max=2.0, help=_TARGET_HELP)] = 0.95,
    holdout: Annotated[
        float, typer.Option("--holdout", metavar="PERCENT", min=0, max=90, help=_HOLDOUT_HELP)
    ] = 0.0,
    output_tokens: Annotated[
        int,
        typer.Option("--output-tokens", min=0, help="Output tokens assumed per call, for per-token prices."),
    ] = 256,
    folds: Annotated[int, typer.Option("--folds", min=2, max=20, help="Cross-validation folds.")] = 5,
    char_ngrams: Annotated[
        str | None,
        typer.Option("--char-ngrams", metavar="MIN,MAX", help="Also use character n-grams, e.g. 3,5."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fold split.")] = 0,
    calibrate_by: Annotated[
        str, typer.Option("--calibrate-by", metavar="auto|rows|dataset|mixed", help=_CALIBRATE_HELP)
    ] = "auto",
    fmt: Fmt = "table",
) -> None:
    """Train a learned router: per model, a predictor of its score from the prompt text, calibrated
    on held-out folds of the training rows to the quality target."""
    fmt = check_format(fmt)
    chars = _char_range(char_ngrams)
    if calibrate_by not in ("auto", "rows", "dataset", "mixed"):
        usage_error(f"unknown --calibrate-by {calibrate_by!r}: use auto, rows, dataset or mixed")
    with _bad_input():
        from costlens.routing._train import train_router

        costs = _models(models)
        rows = _rows(data, None if costs is None else list(costs))
        with staged_progress(f"training on {data.name}") as update:
            router = train_router(
                rows,
                costs,
                target=target,
                holdout=holdout,
                output_tokens=output_tokens,
                folds=folds,
                char_ngrams=chars,
                calibrate_by=calibrate_by,
                seed=seed,
                progress=update,
            )
    written = router.save(out)
    note(f"router written to {written}")
    _print_training(router, fmt, written)


def _char_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    lo, _, hi = text.partition(",")
    try:
        low, high = int(lo), int(hi or lo)
    except ValueError:
        usage_error(f"bad --char-ngrams {text!r}: give MIN,MAX such as 3,5")
    if not 1 <= low <= high <= 8:
        usage_error(f"bad --char-ngrams {text!r}: give 1 <= MIN <= MAX <= 8, such as 3,5")
    return low, high


def _print_training(router: LearnedRouter, fmt: str, path: Path) -> None:
    chosen = router.calibrated()
    summary = {
        "router": str(path),
        "candidates": list(router.candidates),
        "strongest": router.strongest,
        "target": router.target,
        "rule": chosen.rule,
        "knob": chosen.knob,
        "train_quality_share": chosen.quality,
        "train_cost_share": chosen.cost,
        **router.info,
    }
    if fmt == "json":
        write_json(summary)
        return
    predictors = router.info.get("predictors", {})
    places = money_places(_prices(router.costs[c] for c in router.candidates))
    rows = [
        {
            "model": c,
            "cost": _cost_text(router.costs[c], places),
            "mean_score": router.info["train_means"][c],
            **predictors.get(c, {}),
        }
        for c in router.candidates
    ]
    columns = ("model", "cost", "mean_score", "kind", "strength", "oof_mse")
    if fmt == "csv":
        write_csv(rows, columns)
        return
    title = (
        f"Router trained on {router.info['train_rows']} rows of {Path(router.info['source']).name} "
        f"({router.info['test_rows']} test, {router.info['holdout_rows']} held out by hash, never seen)"
    )
    table = make_table(columns, title=title, right=["mean_score", "strength", "oof_mse"])
    for r in rows:
        table.add_row(
            *cells(
                [
                    r["model"],
                    r["cost"],
                    f"{r['mean_score']:.3f}",
                    r.get("kind"),
                    f"{r.get('strength', 0):g}",
                    f"{r.get('oof_mse', 0):.4f}",
                ]
            )
        )
    out = console()
    out.print(table)
    rule = f"rule {chosen.rule}, knob {chosen.knob:.4g}" if chosen.rule else "always the strongest model"
    out.print(
        f"Calibrated for {router.target:.0%} of {router.strongest}'s quality on out-of-fold predictions: "
        f"{rule}; realised {chosen.quality:.1%} of its quality at {chosen.cost:.1%} of its cost."
    )


def _prices(costs: Iterable[ModelCost]) -> list[Decimal]:
    return [
        value
        for cost in costs
        for value in (cost.per_call_usd, cost.input_usd_per_1m, cost.output_usd_per_1m)
        if value is not None
    ]


def _cost_text(cost: ModelCost, places: int | None = None) -> str:
    """A model's price; `places`: the column's, so every price in it has one precision."""
    if cost.per_call_usd is not None:
        return f"{money(cost.per_call_usd, places)}/call"
    if cost.input_usd_per_1m is not None and cost.output_usd_per_1m is not None:
        return (
            f"{money(cost.input_usd_per_1m, places)} in / {money(cost.output_usd_per_1m, places)} out per 1M"
        )
    return f"{cost.unit:g} strong call" if cost.unit else "0 (weak)"


def eval_(
    data: DataOpt,
    router_path: Annotated[
        Path, typer.Option("--router", metavar="PATH", help="A router from `route train`.")
    ],
    models: ModelsOpt = None,
    fmt: Fmt = "table",
    plot: Annotated[
        Path | None, typer.Option("--plot", metavar="PNG", help="Write the cost-quality chart.")
    ] = None,
    target: Annotated[
        float | None,
        typer.Option("--target", min=0.01, max=2.0, help=_TARGET_HELP + " Default: the router's."),
    ] = None,
    holdout: Annotated[
        float | None, typer.Option("--holdout", metavar="PERCENT", min=0, max=90, help=_HOLDOUT_HELP)
    ] = None,
) -> None:
    """Score a router on the held-out rows (split=test, and rows held out by hash): the cost-quality
    curve, CS@target (deployable: knob from train), single models, zero router, oracle, APGR/CPT."""
    fmt = check_format(fmt)
    with _bad_input():
        from costlens.routing._evaluate import evaluate
        from costlens.routing._learned import LearnedRouter

        router = LearnedRouter.load(router_path)
        costs = _models(models)
        rows = _rows(data, list(router.candidates))
        result = evaluate(router, rows, target=target, costs=costs, holdout=holdout)
    if plot is not None:
        from costlens.routing._plot import plot_evaluation

        note(f"chart written to {plot_evaluation(result, plot)}")
    _print_eval(result, fmt, router_path)


def _row(e: Entry, ev: RouterEvaluation) -> dict[str, Any]:
    row: dict[str, Any] = e.as_dict()
    two = ev.two_model if e.kind == "router-hull" else None
    for key in ("apgr", "cpt50", "cpt80"):
        row[key] = None if two is None else two[key]
    return row


def eval_json(ev: RouterEvaluation, router_path: Path) -> dict[str, Any]:
    """`route eval --format json`: one object; its policies under `rows` (the csv rows, flat), the
    number of held-out rows scored under `held_out_rows`. `cost` is a statistic in `cost_unit`
    (strong calls or USD, a number); the exact money is `cost_usd` (a string, null for a mix)."""
    data = ev.as_dict()
    held_out = data.pop("rows")
    data.pop("entries", None)
    return {
        "router": str(router_path),
        "held_out_rows": held_out,
        **data,
        "rows": [{c: row.get(c) for c in _CSV_COLUMNS} for row in (_row(e, ev) for e in ev.entries)],
    }


def _print_eval(ev: RouterEvaluation, fmt: str, router_path: Path) -> None:
    if fmt == "json":
        write_json(eval_json(ev, router_path))
        return
    if fmt == "csv":
        write_csv([_row(e, ev) for e in ev.entries], _CSV_COLUMNS)
        return
    costs = _cost_column(ev)
    headers = (
        "policy",
        "quality",
        "% of strongest",
        "cost / prompt",
        f"saving at {ev.target:.0%}",
        "target met",
        "note",
    )
    title = (
        f"Routing on {ev.rows} held-out rows of {Path(ev.source).name}: target {ev.target:.0%} of "
        f"{ev.reference}'s quality = {ev.target_quality:.4f}"
    )
    table = make_table(headers, title=title, right=headers[1:5])
    for e, cost in zip(ev.entries, costs, strict=True):
        table.add_row(
            *cells(
                [
                    e.name,
                    _num(e.quality, "{:.4f}"),
                    _num(e.quality_share, "{:.1%}"),
                    cost,
                    _num(e.saving, "{:.1%}"),
                    "" if e.target_met is None else "yes" if e.target_met else "NO",
                    e.note,
                ]
            )
        )
    out = console()
    out.print(table)
    if ev.two_model is not None:
        t = ev.two_model
        two = make_table(
            ("strong", "weak", "APGR", "APGR 95% interval", "APGR random", "CPT(50%)", "CPT(80%)"),
            title="Two-model metrics (RouteLLM definitions)",
            right=("APGR", "APGR 95% interval", "APGR random", "CPT(50%)", "CPT(80%)"),
        )
        two.add_row(
            *cells(
                [
                    t["strong"],
                    t["weak"],
                    f"{t['apgr']:.3f}",
                    "" if t["apgr_ci95"] is None else "{:.3f} - {:.3f}".format(*t["apgr_ci95"]),
                    "0.500",
                    _num(t["cpt50"], "{:.1%}"),
                    _num(t["cpt80"], "{:.1%}"),
                ]
            )
        )
        out.print(two)


def _num(value: float | None, pattern: str) -> str:
    return "" if value is None else pattern.format(value)


#: Significant digits of the smallest cost in `route eval`'s cost column (means over prompts).
_COST_DIGITS = 3


def _cost_column(ev: RouterEvaluation) -> list[str]:
    """Cost per prompt: in USD, one precision for the column (three significant digits of its smallest
    cost, at least cents, at most nano-USD), else as a share of the strong model's cost."""
    if ev.cost_unit != "usd":
        return ["out of reach" if e.cost is None else f"{e.cost:.1%} strong" for e in ev.entries]
    amounts = [
        None if e.cost is None else e.cost_usd if e.cost_usd is not None else Decimal(repr(e.cost))
        for e in ev.entries
    ]
    smallest = min((abs(a) for a in amounts if a is not None and a != 0), default=Decimal(1))
    wanted = _COST_DIGITS - 1 - smallest.adjusted()
    places = max(2, min(wanted, 9))
    return ["out of reach" if a is None else money(a, places) for a in amounts]


route_app.command("train")(friendly_errors(train))
route_app.command("eval")(friendly_errors(eval_))
route_app.command("explain")(friendly_errors(explain))
