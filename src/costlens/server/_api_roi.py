"""`/api/roi/plan` (a scenario in, the plan and its verdict out: `costlens.roi.plan`, as `costlens roi
plan --format json`) and `/api/evals` (the runs kept and one run's summary table: `list_runs`,
`RunResult`, `summarize_run`, as `costlens eval list|report --format json`).

A run is found only among the folders `list_runs` returns, by its exact folder name or a unique
prefix of one: a URL never names a path on disk. The runs folder is `ctx.extras["runs_dir"]` when
the app's builder set one, else `costlens.evals._results.default_runs_dir()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam

from costlens.roi import Scenario
from costlens.server._api_models import EvalRunOut, EvalRunSummary, Message, RoiPlanOut
from costlens.server._api_params import bad, jsonable
from costlens.server._context import ServerContext

__all__ = ["eval_summary", "plan_verdict", "router", "run_list"]

_RUN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,199}$"


def plan_verdict(scenario: Scenario) -> dict[str, Any]:
    """What `costlens roi plan --format json` writes, less the sensitivity analysis: `plan_to_dict`
    and the monthly rows (`plan_month_rows`), money as exact strings."""
    from costlens._errors import ConfigError
    from costlens.roi import plan, plan_month_rows, plan_to_dict

    try:
        result = plan(scenario)
    except (ConfigError, ValueError) as exc:
        bad("scenario", " ".join(str(exc).split()), None, where="body")
    data = plan_to_dict(result)
    data["months"] = plan_month_rows(result)
    out: dict[str, Any] = jsonable(data)
    return out


def _runs_dir(ctx: ServerContext) -> Path:
    from costlens.evals._results import default_runs_dir

    given = ctx.extras.get("runs_dir")
    return Path(given) if given is not None else default_runs_dir()


def run_list(ctx: ServerContext) -> list[dict[str, Any]]:
    """`costlens eval list --format json` (a damaged run is left out)."""
    from costlens._errors import ConfigError
    from costlens.evals._results import RunResult, list_runs

    rows: list[dict[str, Any]] = []
    for folder in list_runs(_runs_dir(ctx)):
        try:
            result = RunResult.load(folder)
        except ConfigError:
            continue
        rows.append(result.overview())
    return rows


def eval_summary(ctx: ServerContext, run: str) -> dict[str, Any] | None:
    """`costlens eval report RUN --format json`: the summary rows and the paired comparisons against
    the most accurate strategy; None when no run has that id (or unique id prefix)."""
    from costlens._errors import ConfigError
    from costlens.evals._results import RunResult, list_runs
    from costlens.evals._stats import compare_to_best, run_report, summarize_run

    folders = list_runs(_runs_dir(ctx))
    exact = [f for f in folders if f.name == run]
    matches = exact or [f for f in folders if f.name.startswith(run)]
    if len(matches) != 1:
        return None
    try:
        result = RunResult.load(matches[0])
    except ConfigError:
        return None
    summaries = summarize_run(result)
    report: dict[str, Any] = jsonable(run_report(result, summaries, compare_to_best(result, summaries)))
    return report


def router(ctx: ServerContext) -> Any:
    api = APIRouter()
    not_found: dict[int | str, dict[str, Any]] = {404: {"model": Message}}
    bad_body: dict[int | str, dict[str, Any]] = {400: {"model": Message, "description": "Not JSON."}}

    @api.post("/roi/plan", response_model=RoiPlanOut, tags=["roi"], responses=bad_body)
    def roi_plan(scenario: Scenario) -> Any:
        """Compare a scenario's paths: monthly costs, payback, break-even, ROI and the verdict
        (`costlens roi plan`; the body is the scenario file's content as JSON)."""
        return plan_verdict(scenario)

    @api.get("/evals", response_model=list[EvalRunOut], tags=["evals"])
    def evals() -> Any:
        """The experiment runs kept (`costlens eval list`)."""
        return run_list(ctx)

    @api.get("/evals/{run}", response_model=EvalRunSummary, tags=["evals"], responses=not_found)
    def eval_run(
        run: Annotated[str, PathParam(pattern=_RUN, description="A run id or unique prefix.")],
    ) -> Any:
        """One run's summary table (`costlens eval report`)."""
        found = eval_summary(ctx, run)
        if found is None:
            raise HTTPException(404, f"no experiment run {run!r}: GET /api/evals lists them")
        return found

    return api
