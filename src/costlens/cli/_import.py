"""`costlens import`: usage recorded outside costlens (traces, OpenAI exports, LiteLLM logs, JSONL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from costlens.cli._output import (
    STORE_HELP,
    cells,
    console,
    fail,
    make_table,
    money,
    money_places,
    note,
    open_cli_store,
    progress_bar,
    usage_error,
    write_json,
)

if TYPE_CHECKING:
    from costlens.analytics import ImportResult

__all__ = ["import_", "progress_bar"]

_SHOWN_BAD_ROWS = 20


def _parse_tags(values: Sequence[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            usage_error(f"bad --tag {item!r}: write key=value, e.g. --tag feature=code")
        tags[key.strip()] = value
    return tags


def _parse_start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        usage_error(f"bad --start {text!r}: give an ISO date-time, e.g. 2023-11-16T18:00:00Z")


def import_(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Files to import.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="auto (default: recognised from the file), csv, jsonl, openai-usage, openai-costs, "
            "litellm, litellm-daily, costlens-jsonl.",
        ),
    ] = "auto",
    preset: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="A known trace layout: azure-llm-2023, burstgpt, mooncake."),
    ] = None,
    mapping: Annotated[
        str | None,
        typer.Option(
            "--map",
            metavar="TARGET=COLUMN,...",
            help="CSV columns or JSON-lines keys (dotted paths allowed), e.g. timestamp=TIMESTAMP,"
            "input_tokens=ContextTokens,output_tokens=GeneratedTokens (also model, provider, latency_ms, "
            "cost_usd, id, tag.NAME, ...).",
        ),
    ] = None,
    provider: Annotated[
        str | None, typer.Option(metavar="NAME", help="Provider of rows that name none.")
    ] = None,
    model: Annotated[str | None, typer.Option(metavar="NAME", help="Model of rows that name none.")] = None,
    operation: Annotated[str | None, typer.Option(metavar="NAME", help="Operation (default: chat).")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(metavar="KEY=VALUE", help="Tag every imported call (repeatable).")
    ] = None,
    timezone: Annotated[
        str,
        typer.Option("--timezone", "--tz", metavar="ZONE", help="Zone of times without one (default UTC)."),
    ] = "UTC",
    no_price: Annotated[
        bool, typer.Option("--no-price", help="Do not price rows the file does not price.")
    ] = False,
    reprice: Annotated[
        bool,
        typer.Option("--reprice", help="Price every row with costlens prices, even if the file has a cost."),
    ] = False,
    on_error: Annotated[
        str,
        typer.Option(
            metavar="reject|skip",
            help="reject (default): import nothing if any row is bad; skip: import the good rows. "
            "Bad rows are always listed with their line numbers.",
        ),
    ] = "reject",
    source: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Name the source (record ids derive from it; CSV and JSON lines)."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN",
            help="The trace's real start (ISO date-time) for relative timestamps, e.g. BurstGPT's seconds "
            "or Mooncake's milliseconds since the trace began.",
        ),
    ] = None,
    time_unit: Annotated[
        str | None,
        typer.Option(
            "--time-unit", metavar="s|ms|us", help="Unit of relative timestamps (default s; mooncake: ms)."
        ),
    ] = None,
    store: Annotated[str | None, typer.Option(metavar="URL", help=STORE_HELP)] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON: one object per file.")
    ] = False,
) -> None:
    """Import usage from files, idempotently: importing a file twice adds nothing."""
    from costlens.analytics import import_file

    if no_price and reprice:
        usage_error("--no-price and --reprice contradict each other: give one")
    if on_error not in ("reject", "skip"):
        usage_error(f"bad --on-error {on_error!r}: use reject or skip")
    policy: Literal["reject", "skip"] = "skip" if on_error == "skip" else "reject"
    pricing: Literal["auto", "catalogue", "none"] = "none" if no_price else "catalogue" if reprice else "auto"
    tags = _parse_tags(tag or [])
    began = _parse_start(start)
    if time_unit is not None and time_unit not in ("s", "ms", "us"):
        usage_error(f"bad --time-unit {time_unit!r}: use s, ms or us")
    if time_unit is not None and began is None:
        usage_error("--time-unit is for relative timestamps: give the trace's start too (--start)")
    for file in files:
        if not file.is_file():
            usage_error(f"no such file: {file}")
    backend = open_cli_store(store, create=True)  # importing creates the store
    results = []
    try:
        for file in files:
            with progress_bar(f"importing {file.name}") as update:
                try:
                    result = import_file(
                        backend, file, fmt, preset=preset, mapping=mapping, provider=provider, model=model,
                        operation=operation, tags=tags, timezone=timezone, pricing=pricing, on_error=policy,
                        source=source, start=began, time_unit=time_unit, progress=update,
                    )  # fmt: skip
                except ValueError as exc:
                    usage_error(f"{file}: {exc}")
            results.append(result)
    finally:
        backend.close()
    _summary(results, json_out)
    _report_bad_rows(results, on_error)


def _summary(results: Sequence[ImportResult], json_out: bool) -> None:
    from costlens.store import nanousd_to_usd

    if json_out:  # one flat object per file; `bad`: each bad row as `where: why`
        write_json([r.as_dict() | {"bad": [str(b) for b in r.bad]} for r in results])
        return
    headers = ["file", "format", "rows", "imported", "duplicates", "bad", "input", "output", "cost (USD)"]
    table = make_table(headers, right=headers[2:])
    costs = [nanousd_to_usd(r.cost_nanousd) for r in results]
    places = money_places(costs)
    for r, cost in zip(results, costs, strict=True):
        counts = [r.rows, r.imported, r.duplicates, len(r.bad), r.input_tokens, r.output_tokens]
        table.add_row(*cells([Path(r.path).name, r.format, *(f"{n:,}" for n in counts), money(cost, places)]))
    console().print(table)


def _report_bad_rows(results: Sequence[ImportResult], on_error: str) -> None:
    rejected = False
    for r in results:
        for bad in r.bad[:_SHOWN_BAD_ROWS]:
            note(f"{Path(r.path).name}: {bad}")
        if len(r.bad) > _SHOWN_BAD_ROWS:
            note(f"{Path(r.path).name}: ... and {len(r.bad) - _SHOWN_BAD_ROWS} more bad rows")
        if r.unpriced:
            note(f"{Path(r.path).name}: {r.unpriced} rows have no known price: see `costlens prices missing`")
        for warning in r.warnings:
            note(f"{Path(r.path).name}: warning: {warning}")
        rejected = rejected or r.rejected
    if rejected:
        fail("nothing imported from files with bad rows: fix them, or use --on-error skip to import the rest")
    skipped = sum(len(r.bad) for r in results)
    if skipped and on_error == "skip":
        note(f"{skipped} bad rows skipped")
