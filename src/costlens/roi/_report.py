"""A report a person can send to their manager: Markdown or HTML, from one list of blocks.

The content (headings, paragraphs, tables, lists, chart) is built once and rendered twice, so the
two formats never disagree. All text is escaped for its format: a path named `<b>|x` shows as typed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from costlens.roi._money import fmt_decimal, fmt_money
from costlens.roi._plan import Plan, VolumeRange
from costlens.roi._sensitivity import GridCell, TornadoBar
from costlens.roi._tables import (
    Table,
    _months,
    comparison_table,
    path_table,
    ranking_table,
    training_table,
)
from costlens.roi._verdict import LABELS

__all__ = ["render_report"]


Block = tuple[str, str | list[str] | Table]
Grid = tuple[str, str, Sequence[Sequence[GridCell]]]
_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse;margin:0.5rem 0 1.5rem}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
    "th{background:#f2f2f2}img{max-width:100%}"
    ".verdict{font-size:1.1rem;background:#eef5ff;padding:0.75rem;border-radius:6px}"
)


def _range_sets(plan: Plan) -> list[tuple[str, Sequence[VolumeRange]]]:
    out: list[tuple[str, Sequence[VolumeRange]]] = [
        ("Cheapest path by constant monthly volume", plan.cheapest)
    ]
    if plan.best_value:
        out.append(("Best net value by constant monthly volume", plan.best_value))
    return out


def _upper(r: VolumeRange) -> str:
    return "any volume" if r.high is None else fmt_decimal(r.high, 0)


def _recommendation_blocks(plan: Plan) -> list[Block]:
    rec = plan.recommendation
    if rec is None:
        return []
    rules = Table(
        ["rule", "favours", "basis", "with the numbers"],
        [[r.id, LABELS[r.favours], r.source, r.text] for r in rec.fired()],
    )
    out: list[Block] = [("verdict", rec.headline), ("h2", "Why: the rules that fired"), ("table", rules)]
    if rec.caveats:
        out += [("h3", "Caveats"), ("ul", list(rec.caveats))]
    return out


def _sensitivity_blocks(bars: Sequence[TornadoBar], grid: Grid | None) -> list[Block]:
    out: list[Block] = []
    if bars:
        rows = [
            [
                b.lever,
                f"{fmt_decimal(b.low_value)} .. {fmt_decimal(b.high_value)}",
                fmt_money(b.low_metric),
                fmt_money(b.high_metric),
                "yes" if b.flips else "no",
            ]
            for b in bars[:10]
        ]
        header = ["input", "low .. high", "advantage at low", "at high", "flips the decision"]
        out += [("h2", "Sensitivity (tornado)"), ("table", Table(header, rows))]
    if grid is not None and grid[2] and grid[2][0]:
        x, y, cells = grid
        header = [f"{y} \\ {x}", *(fmt_decimal(c.x) for c in cells[0])]
        body = [[fmt_decimal(r[0].y), *(_months(c.payback_months) for c in r)] for r in cells if r]
        out += [("h2", "Payback by two inputs"), ("table", Table(header, body))]
    return out


def _input_blocks(plan: Plan) -> list[Block]:
    s, c = plan.scenario, plan.scenario.conventions
    growth = fmt_decimal(s.volume.growth_per_month * 100)
    facts = [
        f"volume in month 1: {plan.volumes[0]:,} requests; growth {growth}% per month (compounding)",
        f"a month is {c.days_per_month} days and {c.hours} hours (hosting 24/7 = {c.hours} billed hours); "
        f"validation tokens billed {'every epoch' if c.validation_per_epoch else 'once per job'}",
        "up-front costs fall in month 0; costs accrue evenly within a month (payback interpolates inside it)",
        "recurring monthly costs are paid every month a path serves, from month 1; amortised training is "
        "paid in equal instalments from month 1 (a retraining from the month it starts)",
        "money is exact; payback months, volumes and ROI are exact fractions shown rounded half-even",
        "volume and data thresholds are rules of thumb from practitioner playbooks, set in [thresholds]",
    ]
    events = [f"{p.name}, month {m}: {text}" for p in plan.paths for m, text in p.events]
    sources = Table(
        ["path", "price", "value", "source"],
        [[x.path, x.field, fmt_decimal(x.value), x.source] for x in plan.sources],
    )
    out: list[Block] = [("h2", "Inputs and conventions"), ("ul", facts)]
    if events:
        out += [("h3", "Lifecycle events"), ("ul", events)]
    return [
        *out,
        ("h3", "Where each price came from (USD per 1M tokens, per hour or per month)"),
        ("table", sources),
    ]


def _blocks(plan: Plan, chart: str | None, bars: Sequence[TornadoBar], grid: Grid | None) -> list[Block]:
    s = plan.scenario
    out: list[Block] = [("h1", s.title or "Prompt engineering vs fine-tuning")]
    if s.description:
        out.append(("p", s.description))
    out += _recommendation_blocks(plan)
    out += [("h2", f"Every path ranked on {plan.decision_basis}"), ("table", ranking_table(plan))]
    out += [("h2", f"Cost per path over {s.horizon_months} months"), ("table", path_table(plan))]
    training = training_table(plan)
    if training is not None:
        out += [("h3", "Training and retraining"), ("table", training)]
    out += [
        ("h2", f"Against the baseline {s.baseline_name!r} ({plan.decision_basis} basis)"),
        ("table", comparison_table(plan.value_comparisons or plan.comparisons)),
    ]
    for title, found in _range_sets(plan):
        ranges = [f"{r.path}: {fmt_decimal(r.low, 0)} to {_upper(r)}" for r in found]
        out += [("h3", f"{title} (requests/month)"), ("ul", ranges)]
    if chart:
        out += [("h2", "Charts"), ("img", chart)]
    return out + _sensitivity_blocks(bars, grid) + _input_blocks(plan)


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _markdown(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    for kind, body in blocks:
        if isinstance(body, Table):
            lines += ["| " + " | ".join(_md(h) for h in body.header) + " |", "|" + "---|" * len(body.header)]
            lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in body.rows]
        elif isinstance(body, list):
            lines += [f"- {_md(item)}" for item in body]
        elif kind.startswith("h"):
            lines.append("#" * int(kind[1]) + " " + _md(body))
        elif kind == "img":
            lines.append(f"![cumulative cost and tornado charts](<{body}>)")
        else:
            lines.append(f"**{_md(body)}**" if kind == "verdict" else _md(body))
        lines.append("")
    return "\n".join(lines)


def _html(blocks: Sequence[Block], title: str) -> str:
    e = html.escape
    head = f'<meta charset="utf-8"><title>{e(title)}</title><style>{_CSS}</style>'
    parts = [f'<!doctype html>\n<html lang="en"><head>{head}</head><body>']
    for kind, body in blocks:
        if isinstance(body, Table):
            top = "".join(f"<th>{e(h)}</th>" for h in body.header)
            rows = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in body.rows)
            parts.append(f"<table><thead><tr>{top}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(body, list):
            parts.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in body) + "</ul>")
        elif kind.startswith("h"):
            parts.append(f"<{kind}>{e(body)}</{kind}>")
        elif kind == "img":
            parts.append(f'<p><img src="{e(body)}" alt="cumulative cost and tornado charts"></p>')
        else:
            parts.append(
                f'<p class="verdict"><strong>{e(body)}</strong></p>'
                if kind == "verdict"
                else f"<p>{e(body)}</p>"
            )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_report(
    plan: Plan,
    fmt: str = "markdown",
    *,
    chart: str | Path | None = None,
    bars: Sequence[TornadoBar] = (),
    grid: Grid | None = None,
) -> str:
    """The report as Markdown (`fmt="markdown"`) or a standalone HTML page (`fmt="html"`).

    `chart` is the path or URL of the PNG to show (relative to where the report will be read).
    """
    blocks = _blocks(plan, None if chart is None else str(chart), bars, grid)
    if fmt == "html":
        return _html(blocks, plan.scenario.title or "ROI report")
    if fmt == "markdown":
        return _markdown(blocks)
    raise ValueError(f"unknown report format {fmt!r}: use markdown or html")


def summary_tables(
    plan: Plan, bars: Sequence[TornadoBar] = ()
) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report's main tables as (title, header, rows) of strings, for terminals (`costlens roi plan`)."""
    out: list[tuple[str, list[str], list[list[str]]]] = []
    rec = plan.recommendation
    if rec is not None:
        out.append(
            (
                "Rules that fired",
                ["rule", "favours", "with the numbers"],
                [[r.id, LABELS[r.favours], r.text] for r in rec.fired()],
            )
        )
    ranking = ranking_table(plan)
    out.append((f"Every path ranked on {plan.decision_basis}", ranking.header, ranking.rows))
    paths = path_table(plan)
    out.append((f"Cost per path over {plan.scenario.horizon_months} months", paths.header, paths.rows))
    training = training_table(plan)
    if training is not None:
        out.append(("Training and retraining", training.header, training.rows))
    against = comparison_table(plan.value_comparisons or plan.comparisons)
    out.append(
        (f"Against {plan.scenario.baseline_name!r} ({plan.decision_basis})", against.header, against.rows)
    )
    for title, found in _range_sets(plan):
        rows = [[r.path, fmt_decimal(r.low, 0), _upper(r)] for r in found]
        out.append((title, ["path", "from requests/month", "to"], rows))
    if bars:
        rows = [
            [
                b.lever,
                f"{fmt_decimal(b.low_value)} .. {fmt_decimal(b.high_value)}",
                fmt_money(b.low_metric),
                fmt_money(b.high_metric),
                "yes" if b.flips else "no",
            ]
            for b in bars[:8]
        ]
        out.append(
            (
                f"What moves the decision (advantage of {plan.primary!r})",
                ["input", "low .. high", "at low", "at high", "flips"],
                rows,
            )
        )
    if rec is not None and rec.caveats:
        out.append(("Caveats", ["caveat"], [[c] for c in rec.caveats]))
    return out
