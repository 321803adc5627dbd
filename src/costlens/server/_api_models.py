"""The REST API's response models: what `/api/openapi.json` documents.

Money is always an exact decimal string (`"0.001234500"`), never a float; money that is not known
(an unpriced call or group) is null, never `"0"`. Times are ISO 8601 with their offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AnomalyOut",
    "BudgetIn",
    "BudgetOut",
    "BudgetRemoved",
    "BudgetStatusOut",
    "CallOut",
    "CallsPage",
    "EvalRunOut",
    "EvalRunSummary",
    "ForecastOut",
    "Message",
    "PriceOut",
    "RoiPlanOut",
    "SpendReportOut",
    "UnpricedModelOut",
]

Money = str  # exact decimal text
Cell = str | int | float | bool | None


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Out):
    """An error that is not a validation error (404: no such run, model or budget)."""

    detail: str


class SpendReportOut(_Out):
    """`costlens report --format json`'s rows, with the query that made them and the totals."""

    keys: list[str] = Field(description="The group keys (a time bucket first when asked for).")
    columns: list[str] = Field(description="Every row's columns: the keys, then the measures.")
    since: datetime | None
    until: datetime | None
    timezone: str
    previous: list[datetime] | None = Field(description="The compared window [start, end), if any.")
    rows: list[dict[str, Cell]] = Field(
        description="One per group, most expensive first (time buckets in order), then the `(other)` "
        "groups of a top-N; money as exact decimal strings, null for wholly unpriced groups."
    )
    totals: dict[str, Cell]


class ForecastOut(_Out):
    scope: dict[str, str | None] = Field(description="The group's key values (empty: all calls).")
    window_start: datetime
    window_end: datetime
    spent_usd: Money
    forecast_usd: Money
    low_usd: Money | None
    high_usd: Money | None
    level: float
    daily_rate_usd: Money
    daily_trend_usd: Money | None
    history_days: int
    method: str


class AnomalyOut(_Out):
    scope: dict[str, str | None]
    metric: str = Field(description="spend or tokens_per_call")
    hour: datetime
    value: str = Field(description="Exact decimal, in `unit`.")
    baseline: str
    unit: str = Field(description="usd or tokens")
    score: float
    calls: int
    cost_usd: Money
    top_call_ids: list[str]


class BudgetOut(_Out):
    """A budget's definition (the budgets file's form), and where it is defined."""

    name: str
    scope: dict[str, str | list[str]]
    scope_text: str
    limit_usd: Money
    window: str
    timezone: str | None
    mode: str
    downgrade_to: str | None
    thresholds: list[str]
    forecast: bool
    unknown_price: str
    notify: list[str] | None
    defined_in: str = Field(description="file (the server's budgets file) or code (recorded in the ledger)")
    defined_by: str | None
    defined_at: datetime | None


class BudgetStatusOut(_Out):
    budget: str
    key: str
    scope: str
    mode: str
    window: str
    window_start: datetime
    window_end: datetime | None
    limit_usd: Money
    spent_usd: Money
    reserved_usd: Money
    remaining_usd: Money
    projected_usd: Money | None
    limit_reached_at: datetime | None
    thresholds_crossed: list[str]
    defined_in: str
    defined_by: str | None
    defined_at: datetime | None


class BudgetIn(BaseModel):
    """A budget to create, or the fields of one to change (`costlens budgets set`'s options)."""

    model_config = ConfigDict(extra="forbid")

    limit_usd: str | None = Field(
        default=None, max_length=40, pattern=r"^\s*\d+(\.\d+)?\s*$", description="e.g. 5.00"
    )
    window: str | None = Field(
        default=None, max_length=40, description="day, week, month, <N>h, <N>d, lifetime"
    )
    timezone: str | None = Field(default=None, max_length=64)
    scope: dict[str, str | list[str]] | None = None
    mode: str | None = Field(default=None, max_length=20, description="block, downgrade or warn")
    downgrade_to: str | None = Field(default=None, max_length=200)
    thresholds: list[str] | None = Field(default=None, max_length=20)
    forecast: bool | None = None
    unknown_price: str | None = Field(default=None, max_length=20, description="block or allow")
    notify: list[str] | None = Field(default=None, max_length=20)


class BudgetRemoved(_Out):
    removed: str
    defined_in: str


class RouteOut(_Out):
    """A call's routing decision, as kept on its record (`route`), with the common fields read out."""

    policy: str | None
    requested: str | None = Field(description="The model the caller asked for.")
    chosen: str | None = Field(description="The model (or candidate) the router sent the call to.")
    reason: str | None
    raw: dict[str, Any]


class CallOut(_Out):
    id: str
    started_at: datetime
    ended_at: datetime | None
    provider: str
    operation: str
    model: str
    request_model: str
    response_model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: Money | None = Field(description="null when the call has no known price")
    price_known: bool
    estimated: bool
    status: str
    error_type: str | None
    http_status: int | None
    stream: bool
    service_tier: str | None
    latency_ms: float | None
    ttft_ms: float | None
    tags: dict[str, str]
    route: RouteOut | None


class CallsPage(_Out):
    calls: list[CallOut] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null at the end."
    )


class PriceOut(_Out):
    """`costlens prices show --format json`: rates in USD per 1M tokens as decimal strings."""

    model_config = ConfigDict(extra="allow")

    model: str
    provider: str | None
    at: str | None
    known: bool
    version: str
    currency: str
    matched_model: str | None = None
    matched_provider: str | None = None
    source: str | None = None
    source_kind: str | None = None
    starts_at: str | None = None
    per_mtok: dict[str, str | None] | None = None
    long_context: list[dict[str, Any]] | None = None
    service_tiers: dict[str, dict[str, Any]] | None = None
    history: list[dict[str, Any]] | None = None
    fine_tuning: dict[str, str] | None = None


class UnpricedModelOut(_Out):
    provider: str
    model: str
    calls: int
    first_seen: datetime
    last_seen: datetime


class Verdict(_Out):
    verdict: str
    path: str | None
    headline: str
    blockers: list[str]
    caveats: list[str]
    rules: list[dict[str, Any]]


class RoiPlanOut(_Out):
    """`costlens roi plan --format json` (without sensitivity): every result, and the verdict."""

    model_config = ConfigDict(extra="allow")

    title: str | None
    horizon_months: int
    baseline: str
    compared: str | None
    decision_basis: str
    recommendation: Verdict | None = None
    paths: list[dict[str, Any]]
    ranking: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    months: list[dict[str, Any]]


class EvalRunOut(_Out):
    run: str
    name: str
    created: str
    split: str
    items: int
    strategies: int
    done: int
    expected: int
    complete: bool


class EvalRunSummary(_Out):
    """`costlens eval report --format json`."""

    run: str
    name: str
    split: str
    scorer: str
    items: int
    complete: bool
    rows: list[dict[str, Cell]]
    comparisons: list[dict[str, Cell]]
