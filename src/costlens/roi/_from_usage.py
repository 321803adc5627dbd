"""`scenario_from_traffic()`: recorded traffic + a few assumptions -> a scenario ready to plan.

The library side of `costlens roi from-usage` (and of the REST API's): the measured path comes from
a store or a trace CSV (`_usage`), the tuned path from the assumptions (a partial scenario) or,
when those name no paths, from one `TunedAssumptions`. Nothing here parses command-line text,
opens a store by URL or prints: the caller does that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from costlens._errors import ConfigError
from costlens.roi._scenario import Scenario
from costlens.roi._usage import (
    RecordSource,
    UsageProfile,
    profile_from_records,
    read_trace,
    scenario_from_usage,
    usage_profile,
)

__all__ = ["FromUsage", "MissingTunedPath", "TunedAssumptions", "scenario_from_traffic"]


class MissingTunedPath(ConfigError):
    """The assumptions name no paths and no `TunedAssumptions.input_tokens` was given."""


@dataclass(frozen=True, slots=True)
class TunedAssumptions:
    """The one fine-tuned path ("fine-tuned") built when the assumptions name no paths.

    None means "not given": the scenario's default applies. `input_tokens` (prompt tokens per
    request after tuning) is required; the provider and model default to the measured ones and
    `output_tokens` to the measured mean. `recurring` are the tuned path's monthly costs by name,
    `amortise_months` spreads each training job, `retrain_every_months` / `retrain_share` price the
    retraining, and `grader_*` the reinforcement fine-tuning grader (its prices from the catalogue).
    """

    input_tokens: Decimal | None = None
    output_tokens: Decimal | None = None
    provider: str | None = None
    model: str | None = None
    training_tokens: Decimal | None = None
    epochs: int | None = None
    validation_tokens: Decimal | None = None
    training_cost: Decimal | None = None
    examples_to_label: int | None = None
    cost_per_example: Decimal | None = None
    engineering_hours: Decimal | None = None
    hourly_rate: Decimal | None = None
    hosting_per_hour: Decimal | None = None
    setup: Decimal | None = None
    recurring: Mapping[str, Decimal] | None = None
    amortise_months: int | None = None
    retrain_every_months: int | None = None
    retrain_share: Decimal | None = None
    grader_model: str | None = None
    grader_provider: str | None = None
    grader_input_tokens: Decimal | None = None
    grader_output_tokens: Decimal | None = None

    def path(self, profile: UsageProfile) -> dict[str, Any]:
        """The path as scenario data (`[[paths]]` keys); MissingTunedPath without `input_tokens`."""
        if self.input_tokens is None:
            raise MissingTunedPath(
                "the tuned path needs its input tokens per request after tuning "
                "(or assumptions with [[paths]])"
            )
        return _some(
            name="fine-tuned",
            kind="fine_tuned",
            provider=self.provider or profile.provider,
            base_model=self.model or profile.model,
            tokens=_some(user_input=self.input_tokens, output=self.output_tokens),
            training=_some(
                dataset_tokens=self.training_tokens,
                epochs=self.epochs,
                validation_tokens=self.validation_tokens,
                fixed=self.training_cost,
                amortise_months=self.amortise_months,
                grader=self._grader(),
            ),
            one_off=_some(
                examples_to_label=self.examples_to_label,
                cost_per_example=self.cost_per_example,
                engineering_hours=self.engineering_hours,
                hourly_rate=self.hourly_rate,
                setup=self.setup,
            ),
            hosting_per_hour=self.hosting_per_hour,
            recurring=dict(self.recurring) if self.recurring else None,
            lifecycle=_some(retrain_every_months=self.retrain_every_months, retrain_share=self.retrain_share)
            or None,
        )

    def _grader(self) -> dict[str, Any] | None:
        if self.grader_model is None:
            return None
        return _some(
            model=self.grader_model,
            provider=self.grader_provider,
            input_tokens=self.grader_input_tokens,
            output_tokens=self.grader_output_tokens,
        )


@dataclass(frozen=True, slots=True)
class FromUsage:
    """The measured profile and the scenario built from it (plan it with `costlens.roi.plan`)."""

    profile: UsageProfile
    scenario: Scenario


def scenario_from_traffic(
    *,
    store: RecordSource | None = None,
    trace: str | Path | None = None,
    feature: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    trace_provider: str = "openai",
    trace_model: str = "gpt-4o-mini",
    assumptions: Mapping[str, Any] | None = None,
    tuned: TunedAssumptions | None = None,
    horizon_months: int | None = None,
    growth_per_month: Decimal | None = None,
    current_recurring: Mapping[str, Decimal] | None = None,
) -> FromUsage:
    """Measure the traffic of `feature` (all features when None) and build a scenario around it.

    Exactly one source: `store` (a `costlens.store.Store`; the calls recorded in [since, until))
    or `trace` (a CSV, every row a call priced at `trace_provider`/`trace_model`; `since`/`until`
    do not apply). `assumptions` is a partial scenario (as read from a file); when it names no
    paths, `tuned` describes the one tuned path. `horizon_months` and `growth_per_month` override
    the assumptions'; `current_recurring` (monthly costs by name) is merged into the measured path's
    (the assumptions' `[current]` table).

    Raises `ConfigError` (a `ValueError`) naming what to fix: no calls, a bad trace, a bad scenario,
    `MissingTunedPath`; a malformed trace row raises `ValueError`.
    """
    if (store is None) == (trace is None):
        raise ValueError("give either a store or a trace, not both and not neither")
    data = dict(assumptions or {})
    days = int(data.get("conventions", {}).get("days_per_month", 30))
    if trace is not None:
        records = read_trace(trace, provider=trace_provider, model=trace_model, feature=feature or "trace")
        profile = profile_from_records(records, feature=feature, days_per_month=days)
    else:
        assert store is not None
        profile = usage_profile(store, feature, since, until, days)
    if not data.get("paths"):
        data["paths"] = [(tuned or TunedAssumptions()).path(profile)]
    if horizon_months is not None:
        data["horizon_months"] = horizon_months
    if growth_per_month is not None:
        data["volume"] = {**data.get("volume", {}), "growth_per_month": growth_per_month}
    if current_recurring:
        current = dict(data.get("current", {}))
        current["recurring"] = {**current.get("recurring", {}), **current_recurring}
        data["current"] = current
    return FromUsage(profile, scenario_from_usage(profile, data))


def _some(**values: Any) -> dict[str, Any]:
    """The keyword arguments that were given (not None)."""
    return {k: v for k, v in values.items() if v is not None}
