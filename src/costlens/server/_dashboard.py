"""The dashboard: server-rendered pages (Jinja2, autoescaped) over the library the CLI uses.

Pages: `/` (spend over time by model, feature and user; this period against the previous one; top
spenders), `/budgets`, `/calls` (recent calls and their routing decisions, paged), `/anomalies`,
`/roi` (the ROI planner as a form), `/evals` and `/evals/{run}` (the cost–accuracy frontier),
`/prices` (every model's price per 1M tokens). Charts are drawn by plotly.js, served from the
installed `plotly` package at `/static/plotly.min.js`; nothing is loaded from another origin.

Every number comes from the library functions behind the CLI and the API (see each `_dashboard_*`
module). A query parameter the page cannot use gets a friendly page with status 422, never a 500;
an empty store gets empty states that say what to do.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request

from costlens.server._context import ServerContext
from costlens.server._dashboard_render import problem, render

__all__ = ["router"]

_STATIC = {"dashboard.css": "text/css; charset=utf-8"}
_PAGE_SIZES = (25, 50, 100, 200)
_BY = ("model", "feature", "user", "provider")
_METRICS = {
    "both": ("spend", "tokens_per_call"),
    "spend": ("spend",),
    "tokens_per_call": ("tokens_per_call",),
}
_PROVIDER = re.compile(r"^[A-Za-z0-9*][A-Za-z0-9._\-]{0,99}$")
_MAX_FORM_BYTES = 64 * 1024


def _choice(value: str | None, allowed: Any, default: str) -> str | None:
    """`value` if it is one of `allowed`, `default` when absent, None when it is not allowed."""
    if value is None or value == "":
        return default
    return value if value in allowed else None


def _nav(page: str, **extra: Any) -> dict[str, Any]:
    return {"section": page, "generated": datetime.now(UTC), **extra}


def router(ctx: ServerContext) -> Any:
    from fastapi import APIRouter
    from fastapi.responses import FileResponse, Response

    api = APIRouter(include_in_schema=False)

    @api.get("/static/plotly.min.js")
    def plotly_js() -> Any:
        path = resources.files("plotly") / "package_data" / "plotly.min.js"
        return FileResponse(
            str(path),
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @api.get("/static/{name}")
    def static(name: str) -> Any:
        kind = _STATIC.get(name)
        if kind is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body = (resources.files("costlens.server") / "static" / name).read_bytes()
        return Response(body, media_type=kind, headers={"Cache-Control": "public, max-age=3600"})

    @api.get("/")
    def overview(period: str | None = None) -> Any:
        from costlens.server._dashboard_spend import PERIODS, overview

        chosen = _choice(period, PERIODS, "7d")
        if chosen is None:
            return problem(
                "overview", "Unknown period", f"period={period!r}: use one of {', '.join(PERIODS)}."
            )
        started = time.perf_counter()
        view = overview(ctx.store, chosen)
        return render(
            "overview.html", **_nav("overview"), period=chosen, periods=list(PERIODS), view=view,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )  # fmt: skip

    @api.get("/budgets")
    def budgets() -> Any:
        from costlens.server._dashboard_budgets import budgets_view

        view = budgets_view(ctx.config.budgets, ctx.config.ledger)
        return render("budgets.html", **_nav("budgets"), view=view)

    @api.get("/calls")
    def calls(size: str | None = None, before: str | None = None, seen: str | None = None) -> Any:
        from costlens.server._dashboard_spend import calls_page, parse_cursor, route_of

        try:
            page_size = int(size) if size else 50
            offset = int(seen) if seen else 0
            cursor = parse_cursor(before) if before else None
        except ValueError:
            return problem(
                "calls", "Bad page", "The page link is not valid: start again from the newest calls."
            )
        if page_size not in _PAGE_SIZES or offset < 0 or offset > 10**12:
            sizes = ", ".join(map(str, _PAGE_SIZES))
            return problem("calls", "Bad page", f"size must be one of {sizes}; seen must be a count.")
        page = calls_page(ctx.store, page_size, cursor, offset)
        rows = [(r, route_of(r)) for r in page.records]
        return render("calls.html", **_nav("calls"), page=page, rows=rows, size=page_size, sizes=_PAGE_SIZES)

    @api.get("/anomalies")
    def anomalies(
        period: str | None = None,
        by: str | None = None,
        metric: str | None = None,
        threshold: str | None = None,
    ) -> Any:
        from costlens.server._dashboard_spend import ANOMALY_PERIODS, anomalies_view

        chosen, key, which = (
            _choice(period, ANOMALY_PERIODS, "7d"),
            _choice(by, _BY, "model"),
            _choice(metric, _METRICS, "both"),
        )
        try:
            score = float(threshold) if threshold else 4.0
        except ValueError:
            score = -1.0
        if chosen is None or key is None or which is None or not 0.5 <= score <= 100:
            return problem(
                "anomalies",
                "Bad filter",
                f"Use period {', '.join(ANOMALY_PERIODS)}; by {', '.join(_BY)}; "
                f"metric {', '.join(_METRICS)}; threshold a number from 0.5 to 100.",
            )
        view = anomalies_view(ctx.store, chosen, key, _METRICS[which], score)
        return render(
            "anomalies.html", **_nav("anomalies"), view=view, period=chosen, by=key, metric=which,
            threshold=score, periods=list(ANOMALY_PERIODS), bys=_BY, metrics=list(_METRICS),
        )  # fmt: skip

    @api.get("/roi")
    def roi_form() -> Any:
        from costlens.server._dashboard_roi import DEFAULTS, FIELDS

        return render("roi.html", **_nav("roi"), fields=FIELDS, values=DEFAULTS, result=None, error=None)

    @api.post("/roi")
    async def roi_plan(request: Request) -> Any:
        from costlens.server._dashboard_roi import DEFAULTS, FIELDS, FormError, read_form

        body = await request.body()
        if len(body) > _MAX_FORM_BYTES:
            return problem("roi", "Form too large", "The form is larger than the planner reads.", 413)
        try:
            values = read_form(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
        except FormError as exc:
            return render(
                "roi.html", 422, **_nav("roi"), fields=FIELDS, values=DEFAULTS, result=None, error=str(exc)
            )
        from starlette.concurrency import run_in_threadpool

        result, error = await run_in_threadpool(_plan, values)
        status = 200 if error is None else 422
        return render(
            "roi.html", status, **_nav("roi"), fields=FIELDS, values=values, result=result, error=error
        )

    @api.get("/evals")
    def evals() -> Any:
        from costlens.server._dashboard_evals import run_rows

        return render("evals.html", **_nav("evals"), view=run_rows())

    @api.get("/evals/{run}")
    def eval_run(run: str) -> Any:
        from costlens._errors import ConfigError
        from costlens.server._dashboard_evals import run_view

        try:
            view = run_view(run)
        except ConfigError as exc:
            return problem("evals", "Run cannot be read", str(exc), 422, back="/evals")
        if view is None:
            return problem("evals", "No such run", f"There is no experiment run {run!r}.", 404, back="/evals")
        return render("eval_run.html", **_nav("evals"), view=view)

    @api.get("/prices")
    def prices(provider: str | None = None, q: str | None = None) -> Any:
        from costlens.server._dashboard_prices import price_rows, providers

        known = providers()
        ids = {p[0] for p in known}
        if provider and (not _PROVIDER.match(provider) or provider not in ids):
            return problem(
                "prices",
                "Unknown provider",
                f"No provider {provider!r} in the price catalogue.",
                back="/prices",
            )
        if q is not None and len(q) > 100:
            return problem("prices", "Search too long", "Search for at most 100 characters.", back="/prices")
        view = price_rows(provider or None, q or None)
        return render(
            "prices.html", **_nav("prices"), view=view, providers=known, provider=provider or "", q=q or ""
        )

    return api


def _plan(values: dict[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """The planner's result for the form, or the message that says which field to fix."""
    from costlens._errors import ConfigError
    from costlens.server._dashboard_roi import FormError, plan_form

    try:
        return plan_form(values), None
    except (FormError, ConfigError, ValueError, ArithmeticError) as exc:
        return None, str(exc)
