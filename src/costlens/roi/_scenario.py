"""The scenario: paths to compare, traffic, horizon, conventions, quality, task facts, thresholds.

A scenario is plain data, validated by pydantic and loadable from TOML, YAML or JSON
(`load_scenario`). Conventions that published worked examples leave implicit are explicit
settings here (days and hours per month, whether validation tokens bill every epoch), and so are
the recommendation thresholds: they are practitioners' rules of thumb, not constants.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Literal

from pydantic import Field, model_validator

from costlens.roi._paths import Accuracy, AnyPath, NonNeg, PromptPath, TunedPath, _Model

__all__ = ["Conventions", "Quality", "Scenario", "SensitivitySettings", "Task", "Thresholds", "Volume"]


class Conventions(_Model):
    """Calendar and billing conventions (the defaults are those of the published worked examples).

    A month is `days_per_month` days and `hours_per_month` hours (default days × 24: 30 days, 720 h,
    so hosting "24/7" is 720 billed hours). Validation tokens are billed once per job unless
    `validation_per_epoch`. Payback is searched up to `payback_search_months` past the start, so a
    payback beyond the horizon is still reported (as beyond it).
    """

    days_per_month: int = Field(default=30, ge=28, le=31)
    hours_per_month: int | None = Field(default=None, ge=1, le=744)
    validation_per_epoch: bool = False
    payback_search_months: int = Field(default=120, ge=1, le=1200)

    @property
    def hours(self) -> int:
        return self.hours_per_month if self.hours_per_month is not None else self.days_per_month * 24


class Volume(_Model):
    """Requests per month: constant, growing by a compounding share each month, or an explicit list.

    Give one of `requests_per_month`, `requests_per_day` (× days per month) or `monthly` (months
    1..k; later months grow from the last value). Month m of a growing volume is
    V1 × (1 + growth)^(m-1), computed exactly and rounded half-even to whole requests.
    """

    requests_per_month: int | None = Field(default=None, ge=0)
    requests_per_day: int | None = Field(default=None, ge=0)
    monthly: list[Annotated[int, Field(ge=0)]] | None = None
    growth_per_month: Decimal = Field(default=Decimal(0), gt=-1)

    @model_validator(mode="after")
    def _one_source(self) -> Volume:
        given = [self.requests_per_month, self.requests_per_day, self.monthly]
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of requests_per_month, requests_per_day or monthly")
        if self.monthly is not None and not self.monthly:
            raise ValueError("monthly needs at least one month")
        return self

    def series(self, months: int, days_per_month: int) -> list[int]:
        """Requests in months 1..`months`."""
        if self.monthly is not None:
            known, last = self.monthly[:months], self.monthly[-1]
            start = len(known)
        else:
            per_month = self.requests_per_month
            last = per_month if per_month is not None else (self.requests_per_day or 0) * days_per_month
            known, start = [], 0
        factor = 1 + Fraction(self.growth_per_month)
        grown = [round(last * factor ** (k + (1 if known else 0))) for k in range(months - start)]
        return known + grown


class Quality(_Model):
    """What a correct answer is worth and what an error costs, in USD per request."""

    value_per_correct: NonNeg = Decimal(0)
    cost_per_error: NonNeg = Decimal(0)


class Task(_Model):
    """Facts about the task the recommendation rules read; unset facts are reported as not assessed."""

    labelled_examples: int | None = Field(default=None, ge=0)
    scope: Literal["narrow", "broad"] | None = None
    stable: bool | None = None
    structured_output: bool | None = None
    latency_sensitive: bool | None = None


class Thresholds(_Model):
    """Recommendation thresholds: rules of thumb from practitioner playbooks, to be tuned per team.

    `fast_payback_months`: a computed payback at least this fast outweighs the low-volume rule of
    thumb. `max_payback_months`: slower is "does not pay back" (default: the horizon).
    """

    low_volume_requests_per_month: int = Field(default=100_000, ge=0)
    min_labelled_examples: int = Field(default=1_000, ge=0)
    fast_payback_months: NonNeg = Decimal(3)
    max_payback_months: NonNeg | None = None


class SensitivitySettings(_Model):
    """Tornado: each lever moved by ± `swing` (a share); `levers` limits them (default: every input).

    An accuracy moves to its stated interval (low, high), else by ± `accuracy_points` (absolute).
    """

    swing: Decimal = Field(default=Decimal("0.2"), gt=0, lt=1)
    accuracy_points: Decimal = Field(default=Decimal("0.02"), gt=0, lt=1)
    levers: list[str] | None = None
    grid: tuple[str, str] | None = None


class Scenario(_Model):
    """Everything the planner needs. `baseline` (default: the first path) must be a prompt or switch path.

    `compare` names the alternative the sensitivity analysis and the recommendation centre on
    (default: the tuned path with the largest advantage).
    """

    title: str = ""
    description: str = ""
    horizon_months: int = Field(default=12, ge=1, le=600)
    volume: Volume
    paths: list[AnyPath] = Field(min_length=2)
    baseline: str | None = None
    compare: str | None = None
    conventions: Conventions = Conventions()
    quality: Quality | None = None
    task: Task = Task()
    thresholds: Thresholds = Thresholds()
    sensitivity: SensitivitySettings = SensitivitySettings()

    @model_validator(mode="after")
    def _names(self) -> Scenario:
        names = [p.name for p in self.paths]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"two paths are named {duplicate!r}: give each path its own name")
        for field in ("baseline", "compare"):
            value = getattr(self, field)
            if value is not None and value not in names:
                raise ValueError(f"{field} = {value!r} names no path; use one of {', '.join(names)}")
        if not isinstance(self.path(self.baseline_name), PromptPath):
            raise ValueError("the baseline must be a prompt or switch path (the one a tuned path reverts to)")
        return self

    def with_accuracy(self, path: str, accuracy: Accuracy | Decimal | str) -> Scenario:
        """A copy with one path's accuracy replaced: how measured results (the evals harness) come in."""
        measured = accuracy if isinstance(accuracy, Accuracy) else Accuracy.model_validate(accuracy)
        target = self.path(path)
        paths = [p.model_copy(update={"accuracy": measured}) if p is target else p for p in self.paths]
        return self.model_copy(update={"paths": paths})

    @property
    def baseline_name(self) -> str:
        return self.baseline or self.paths[0].name

    def path(self, name: str) -> PromptPath | TunedPath:
        """The path called `name` (KeyError if none)."""
        for candidate in self.paths:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    @property
    def search_months(self) -> int:
        """Months simulated: the horizon, a first year, and the payback search window."""
        return max(self.horizon_months, 12, self.conventions.payback_search_months)
