"""`costlens route explain "prompt" --config router.toml`: which candidate a router picks, and why."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer

from costlens.cli._output import (
    FORMAT_HELP,
    cells,
    check_format,
    console,
    make_table,
    money,
    usage_error,
    write_csv,
    write_json,
)

__all__ = ["explain"]

_COLUMNS = ["candidate", "outcome", "policy", "reason"]


def explain(
    prompt: Annotated[str, typer.Argument(help="The prompt to route.")],
    config: Annotated[Path, typer.Option("--config", metavar="TOML", help="The router file.")],
    task: Annotated[str | None, typer.Option("--task", help="The request's task.")] = None,
    cost_budget: Annotated[
        str | None, typer.Option("--cost-budget", metavar="USD", help="Per-request ceiling, e.g. 0.01.")
    ] = None,
    max_latency_ms: Annotated[
        float | None, typer.Option("--max-latency-ms", help="Latency target (ms).")
    ] = None,
    require: Annotated[
        list[str] | None, typer.Option("--require", help="A needed capability (repeat).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)] = "table",
) -> None:
    """Show the candidate a router file picks for a prompt, its worst-case cost, and why each other
    candidate was turned down. Makes no network call."""
    from costlens._errors import ConfigError
    from costlens.routing import NoRoute, load_router

    fmt = check_format(fmt)
    budget = None
    if cost_budget is not None:
        try:
            budget = Decimal(cost_budget)
        except InvalidOperation:
            usage_error(f"--cost-budget {cost_budget!r} is not a number: give USD such as 0.01")
    try:
        router = load_router(config)
        decision = router.get_optimal_model(
            task=task, prompt=prompt, cost_budget=budget, max_latency_ms=max_latency_ms, require=require or ()
        )
    except NoRoute as exc:
        usage_error(f"{exc} (add a default candidate to {config} to always get an answer)")
    except ConfigError as exc:
        usage_error(str(exc))
    rows: list[dict[str, Any]] = [
        {
            "candidate": decision.name,
            "outcome": "chosen",
            "policy": decision.policy,
            "reason": decision.reason,
        },
        *(
            {"candidate": r.name, "outcome": "rejected", "policy": r.policy, "reason": r.reason}
            for r in decision.rejected
        ),
    ]
    if fmt == "json":
        write_json({"chosen": decision.name, "model": decision.model, **decision.as_route(), "rows": rows})
        return
    if fmt == "csv":
        write_csv(rows, _COLUMNS)
        return
    estimate = (
        "unknown price" if decision.estimate_usd is None else f"{money(decision.estimate_usd)} worst case"
    )
    if decision.predicted_quality is not None:
        estimate += f", predicted score {decision.predicted_quality:.3f}"
    table = make_table(_COLUMNS, title=f"{decision.name} ({decision.model}), {estimate}")
    for row in rows:
        table.add_row(*cells([row[c] for c in _COLUMNS]))
    console().print(table)
