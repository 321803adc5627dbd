"""The ROI planner as a form: two paths (keep prompting, or fine-tune), posted, planned by
`costlens.roi.plan` (as `costlens roi plan` does), shown as the verdict, the CLI's summary tables and
the crossover chart (`costlens.roi._plot.curve_series`, the curves `plot_plan` draws).

Prices left blank come from the catalogues (genai-prices, the fine-tuning catalogue), as in a
scenario file. Every field is checked by the scenario's own validation; a bad one is shown on the form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["DEFAULTS", "FIELDS", "RoiField", "plan_form"]


@dataclass(frozen=True, slots=True)
class RoiField:
    name: str
    label: str
    kind: str  # text | number
    group: str
    hint: str = ""


#: The form, in order. Defaults: the published worked example (a) of `examples/roi/published_a.toml`.
FIELDS = (
    RoiField("title", "Title", "text", "Scenario"),
    RoiField("horizon_months", "Horizon (months)", "number", "Scenario"),
    RoiField("requests_per_month", "Requests per month", "number", "Scenario"),
    RoiField("growth_per_month", "Growth per month (share, 0.03 = 3%)", "number", "Scenario"),
    RoiField("prompt_provider", "Provider", "text", "Prompt engineering (the baseline)"),
    RoiField("prompt_model", "Model", "text", "Prompt engineering (the baseline)"),
    RoiField("prompt_system", "System + few-shot tokens", "number", "Prompt engineering (the baseline)"),
    RoiField("prompt_user_input", "User input tokens", "number", "Prompt engineering (the baseline)"),
    RoiField("prompt_output", "Output tokens", "number", "Prompt engineering (the baseline)"),
    RoiField(
        "prompt_price_input",
        "Input $/1M tokens",
        "number",
        "Prompt engineering (the baseline)",
        "blank: catalogue",
    ),
    RoiField(
        "prompt_price_output",
        "Output $/1M tokens",
        "number",
        "Prompt engineering (the baseline)",
        "blank: catalogue",
    ),
    RoiField("tuned_base_model", "Base model", "text", "Fine-tuned path"),
    RoiField("tuned_system", "System tokens", "number", "Fine-tuned path"),
    RoiField("tuned_user_input", "User input tokens", "number", "Fine-tuned path"),
    RoiField("tuned_output", "Output tokens", "number", "Fine-tuned path"),
    RoiField("tuned_price_input", "Input $/1M tokens", "number", "Fine-tuned path", "blank: catalogue"),
    RoiField("tuned_price_output", "Output $/1M tokens", "number", "Fine-tuned path", "blank: catalogue"),
    RoiField("training_fixed", "Training, quoted price (USD)", "number", "Fine-tuned path"),
    RoiField(
        "training_tokens", "Training tokens per epoch", "number", "Fine-tuned path", "priced by the catalogue"
    ),
    RoiField("training_epochs", "Epochs", "number", "Fine-tuned path"),
    RoiField("hosting_per_hour", "Hosting (USD per hour)", "number", "Fine-tuned path", "blank: catalogue"),
    RoiField("engineering_hours", "Engineering hours", "number", "Fine-tuned path"),
    RoiField("hourly_rate", "Hourly rate (USD)", "number", "Fine-tuned path"),
)
DEFAULTS = {
    "title": "Published case (a): 50,000 requests/month",
    "horizon_months": "12",
    "requests_per_month": "50000",
    "growth_per_month": "0",
    "prompt_provider": "openai",
    "prompt_model": "example-model",
    "prompt_system": "2000",
    "prompt_user_input": "500",
    "prompt_output": "500",
    "prompt_price_input": "3",
    "prompt_price_output": "15",
    "tuned_base_model": "example-model",
    "tuned_system": "0",
    "tuned_user_input": "500",
    "tuned_output": "500",
    "tuned_price_input": "3",
    "tuned_price_output": "15",
    "training_fixed": "200",
    "training_tokens": "0",
    "training_epochs": "1",
    "hosting_per_hour": "0",
    "engineering_hours": "0",
    "hourly_rate": "0",
}
_NUMBERS = {f.name for f in FIELDS if f.kind == "number"}
_MAX_CHARS = 200


class FormError(ValueError):
    """A field that is not a number (or is too long); names the field."""


def read_form(raw: Mapping[str, list[str]]) -> dict[str, str]:
    """The form's fields (unknown ones ignored, the last value of a repeated one), stripped."""
    out = {}
    for f in FIELDS:
        values = raw.get(f.name) or [""]
        value = values[-1].strip()
        if len(value) > _MAX_CHARS:
            raise FormError(f"{f.label}: at most {_MAX_CHARS} characters")
        out[f.name] = value
    return out


def _number(form: Mapping[str, str], name: str) -> Decimal | None:
    text = form.get(name, "").replace("_", "").replace(",", "")
    if not text:
        return None
    label = next(f.label for f in FIELDS if f.name == name)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise FormError(f"{label}: {form[name]!r} is not a number") from None
    if not value.is_finite():
        raise FormError(f"{label}: give a finite number")
    return value


def _int(form: Mapping[str, str], name: str) -> int | None:
    value = _number(form, name)
    if value is None:
        return None
    if value != value.to_integral_value():
        label = next(f.label for f in FIELDS if f.name == name)
        raise FormError(f"{label}: give a whole number")
    return int(value)


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != {}}


def scenario_data(form: Mapping[str, str]) -> dict[str, Any]:
    """The scenario (as a scenario file's data) the form describes; FormError on a bad number."""
    n = {name: _number(form, name) for name in _NUMBERS}
    prompt = _drop_none(
        {
            "name": "prompt",
            "kind": "prompt",
            "provider": form.get("prompt_provider") or None,
            "model": form.get("prompt_model", ""),
            "tokens": _drop_none(
                {
                    "system": n["prompt_system"],
                    "user_input": n["prompt_user_input"],
                    "output": n["prompt_output"],
                }
            ),
            "prices": _drop_none({"input": n["prompt_price_input"], "output": n["prompt_price_output"]}),
        }
    )
    training = _drop_none(
        {
            "fixed": n["training_fixed"],
            "dataset_tokens": n["training_tokens"],
            "epochs": _int(form, "training_epochs"),
        }
    )
    tuned = _drop_none(
        {
            "name": "fine-tuned",
            "kind": "fine_tuned",
            "provider": form.get("prompt_provider") or None,
            "base_model": form.get("tuned_base_model", ""),
            "tokens": _drop_none(
                {
                    "system": n["tuned_system"],
                    "user_input": n["tuned_user_input"],
                    "output": n["tuned_output"],
                }
            ),
            "prices": _drop_none({"input": n["tuned_price_input"], "output": n["tuned_price_output"]}),
            "training": training,
            "hosting_per_hour": n["hosting_per_hour"],
            "storage_per_month": Decimal(0) if n["hosting_per_hour"] is not None else None,
            "one_off": _drop_none(
                {"engineering_hours": n["engineering_hours"], "hourly_rate": n["hourly_rate"]}
            ),
        }
    )
    return _drop_none(
        {
            "title": form.get("title") or None,
            "horizon_months": _int(form, "horizon_months"),
            "volume": _drop_none(
                {"requests_per_month": n["requests_per_month"], "growth_per_month": n["growth_per_month"]}
            ),
            "paths": [prompt, tuned],
        }
    )


def plan_form(form: Mapping[str, str]) -> dict[str, Any]:
    """Plan the form's scenario: the verdict, the CLI's summary tables and the crossover chart.
    Raises FormError (a bad number) or `ScenarioError` / `ConfigError` (the planner's message)."""
    from costlens.roi import parse_scenario, plan
    from costlens.roi._plot import curve_series
    from costlens.roi._report import summary_tables

    result = plan(parse_scenario(scenario_data(form), "the form"))
    basis, curves = curve_series(result)
    months = list(range(result.scenario.horizon_months + 1))
    data: list[dict[str, Any]] = []
    for curve in curves:
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if len(months) <= 25 else "lines",
                "name": curve.label,
                "x": months,
                "y": [float(v) for v in curve.values],
                "customdata": [str(v) for v in curve.values],
                "hovertemplate": "month %{x}: $%{customdata}<extra>%{fullData.name}</extra>",
            }
        )
    crossings = [c for c in curves if c.payback is not None and c.within_horizon]
    if crossings:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "payback (crossover)",
                "x": [float(c.payback) for c in crossings if c.payback is not None],
                "y": [_at(c.values, c.payback) for c in crossings if c.payback is not None],
                "marker": {
                    "symbol": "star",
                    "size": 18,
                    "color": "#e08a1e",
                    "line": {"width": 1, "color": "#222"},
                },
                "hovertemplate": "payback at month %{x:.2f}<extra></extra>",
            }
        )
    what = "cumulative cost" if basis == "cost" else "cumulative net cost (cost − value of the answers)"
    layout = {
        "title": {"text": f"Crossover: {what} by path", "font": {"size": 14}},
        "height": 420,
        "margin": {"l": 70, "r": 20, "t": 50, "b": 50},
        "xaxis": {"title": {"text": "month (0 = up-front costs)"}, "range": [0, months[-1]]},
        "yaxis": {"title": {"text": "USD"}, "tickprefix": "$", "tickformat": ",.2~f"},
        "legend": {"orientation": "h", "y": -0.25},
    }
    rec = result.recommendation
    return {
        "headline": None if rec is None else rec.headline,
        "verdict": None if rec is None else rec.verdict,
        "caveats": [] if rec is None else list(rec.caveats),
        "tables": summary_tables(result),
        "chart": {"data": data, "layout": layout},
        "basis": basis,
    }


def _at(values: list[Decimal], t: Any) -> float:
    """The cumulative curve at month `t` (a Fraction), amounts accruing evenly within a month."""
    whole = int(t)
    if whole >= len(values) - 1:
        return float(values[-1])
    share = t - whole
    return float(
        values[whole]
        + (values[whole + 1] - values[whole]) * Decimal(share.numerator) / Decimal(share.denominator)
    )
