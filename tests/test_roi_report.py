"""Charts and reports: the PNGs are rendered, the Markdown and HTML say the same and escape their text."""

from __future__ import annotations

from pathlib import Path

from costlens.roi import (
    break_even_grid,
    load_scenario,
    parse_scenario,
    plan,
    plot_plan,
    render_report,
    tornado,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "roi"
PNG = b"\x89PNG\r\n\x1a\n"


def test_charts_are_rendered_with_and_without_the_tornado(tmp_path: Path) -> None:
    result = plan(load_scenario(EXAMPLES / "support_bot.toml"))
    both = plot_plan(result, tmp_path / "charts" / "roi.png", tornado(result.scenario))
    curves = plot_plan(result, tmp_path / "curves.png")
    for png in (both, curves):
        data = png.read_bytes()
        assert data[:8] == PNG
        assert 30_000 < len(data) < 2_000_000
    width = int.from_bytes(both.read_bytes()[16:20], "big")
    assert width == 1800  # two 7.5-inch panels at 120 dpi
    assert int.from_bytes(curves.read_bytes()[16:20], "big") == 900


def test_chart_of_a_path_that_never_pays_back(tmp_path: Path) -> None:
    result = plan(load_scenario(EXAMPLES / "never_breaks_even.toml"))
    png = plot_plan(result, tmp_path / "never.png", tornado(result.scenario))
    assert png.stat().st_size > 30_000


def test_markdown_report_has_verdict_rules_results_and_sources() -> None:
    result = plan(load_scenario(EXAMPLES / "published_a.toml"))
    bars = tornado(result.scenario)
    grid = break_even_grid(result.scenario, "volume.requests_per_month", "paths.fine-tuned.training.fixed")
    text = render_report(
        result,
        chart="roi.png",
        bars=bars,
        grid=("volume.requests_per_month", "paths.fine-tuned.training.fixed", grid),
    )
    assert text.startswith("# Published case (a)")
    assert "**Fine-tune: take 'fine-tuned'." in text
    assert "| pays_back | fine-tuning | computed from this scenario |" in text
    assert "| fine-tuned | $0.006000 | $300.00 | $200.00 | 0.67 months | 33,333 |" in text
    assert "![cumulative cost and tornado charts](<roi.png>)" in text
    assert "## Payback by two inputs" in text
    assert "| fine-tuned | training_per_mtok |" not in text  # a fixed training price needs no per-token price
    assert "a month is 30 days and 720 hours" in text
    assert "rules of thumb from practitioner playbooks" in text


def test_reports_escape_what_users_type() -> None:
    data = load_scenario(EXAMPLES / "published_a.toml").model_dump()
    data["title"] = "<script>alert(1)</script> | costs"
    data["paths"][1]["name"] = "tuned|<b>"
    data["paths"][1]["note"] = "x"
    result = plan(parse_scenario(data))
    html = render_report(result, "html", chart='a".png')
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | costs" in html
    assert "tuned|&lt;b&gt;" in html
    assert 'src="a&quot;.png"' in html
    assert html.startswith("<!doctype html>")
    markdown = render_report(result)
    assert "tuned\\|&lt;b>" in markdown  # a tag cannot open; the pipe cannot split a cell
    assert "<script>" not in markdown
