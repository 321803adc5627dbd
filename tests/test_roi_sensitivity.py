"""Sensitivity: the tornado orders inputs by how much they move the decision; the grid maps payback."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from costlens._errors import ConfigError
from costlens.roi import break_even_grid, levers, load_scenario, tornado

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "roi"


def test_tornado_puts_the_dominant_input_first() -> None:
    # hosting is 1,224 of the tuned path's 1,422 a month: ±20% of it moves the 12-month advantage by
    # ±2,937.60, more than the horizon (±2 months × 1,180) and far more than any token count.
    bars = tornado(load_scenario(EXAMPLES / "published_c_azure_hosting.toml"))
    assert bars[0].lever == "paths.azure-fine-tuned.hosting_per_hour"
    assert bars[0].swing == Decimal("5875.2")
    assert bars[1].lever == "horizon_months"
    assert bars[1].swing == Decimal(4720)
    swings = [b.swing for b in bars]
    assert swings == sorted(swings, reverse=True)
    assert not any(b.flips for b in bars)


def test_tornado_marks_inputs_that_flip_the_decision() -> None:
    bars = tornado(load_scenario(EXAMPLES / "published_b.toml"), swing=Decimal("0.9"))
    flips = {b.lever for b in bars if b.flips}
    assert "paths.fine-tuned.training.fixed" in flips  # $20 of training pays back within the year


def test_tornado_values_and_bounds() -> None:
    bars = {b.lever: b for b in tornado(load_scenario(EXAMPLES / "published_a.toml"))}
    volume = bars["volume.requests_per_month"]
    assert (volume.low_value, volume.high_value) == (40_000, 60_000)
    assert (volume.low_metric, volume.high_metric, volume.base_metric) == (2680, 4120, 3400)
    assert bars["horizon_months"].low_value == 10  # 9.6 rounds half-even to whole months


def test_accuracy_moves_to_its_interval_or_by_points() -> None:
    s = load_scenario(EXAMPLES / "support_bot.toml")
    bars = {b.lever: b for b in tornado(s, against="fine-tuned")}
    stated = bars["paths.prompt.accuracy.value"]
    assert (stated.low_value, stated.high_value) == (Decimal("0.87"), Decimal("0.93"))
    points = bars["paths.fine-tuned.accuracy.value"]
    assert (points.low_value, points.high_value) == (Decimal("0.91"), Decimal("0.95"))


def test_levers_name_paths_not_indexes() -> None:
    names = levers(load_scenario(EXAMPLES / "published_a.toml"), "fine-tuned")
    assert "paths.fine-tuned.training.fixed" in names
    assert "paths.prompt.tokens.system" in names
    assert "volume.requests_per_month" in names


def test_unknown_lever_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="names no number"):
        tornado(load_scenario(EXAMPLES / "published_a.toml"), only=["paths.fine-tuned.nope"])


def test_break_even_grid_over_two_inputs() -> None:
    s = load_scenario(EXAMPLES / "published_a.toml")
    rows = break_even_grid(s, "volume.requests_per_month", "paths.fine-tuned.training.fixed")
    assert len(rows) == 5 and all(len(r) == 5 for r in rows)
    corner = rows[0][0]  # 12,500 requests/month (saving $75/month), $100 of training
    assert (corner.x, corner.y) == (12_500, 100)
    assert corner.payback_months == Fraction(4, 3)
    centre = rows[2][2]
    assert centre.payback_months == Fraction(2, 3)
    assert centre.advantage == 3400
