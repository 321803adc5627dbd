"""The REST API under `/api` (its OpenAPI schema at `/api/openapi.json`).

Every endpoint calls the library functions the CLI calls, with the same defaults:

| endpoint | CLI | library |
|---|---|---|
| GET /reports/spend | report | `costlens.analytics.spend` |
| GET /forecasts | forecast | `costlens.analytics.forecast` |
| GET /anomalies | anomalies | `costlens.analytics.detect_anomalies` |
| GET /budgets, /budgets/status | budgets list, status | `load_budgets`, `recorded_budgets`, `budget_status` |
| PUT, DELETE /budgets/{name} | budgets set, remove | `upsert_budget_text`, `remove_budget_text` |
| GET /calls | calls tail | `Store.iter_records` |
| GET /routing/decisions | - | `Store.iter_records` (calls with a `route`) |
| GET /prices/{model}, /prices/unpriced | prices show, missing | `describe_price`, `Store.unpriced_models` |
| POST /roi/plan | roi plan | `costlens.roi.plan`, `plan_to_dict` |
| GET /evals, /evals/{run} | eval list, report | `list_runs`, `RunResult`, `summarize_run` |

Money is exact decimal text; a bad parameter is a 422 naming it (FastAPI's validation-error shape).
Who may call what is `_auth`'s: GET needs `read`, any other method `admin`.
"""

from __future__ import annotations

from typing import Any

from costlens.server._context import ServerContext

__all__ = ["router"]


def router(ctx: ServerContext) -> Any:
    from fastapi import APIRouter

    from costlens.server import _api_budgets, _api_calls, _api_reports, _api_roi

    api = APIRouter()
    for part in (_api_reports, _api_calls, _api_budgets, _api_roi):
        api.include_router(part.router(ctx))
    return api
