"""`costlens export`: records as CSV, JSON lines or Parquet; OTLP spans and metrics; Prometheus."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from costlens.cli._output import STORE_HELP, fail, note, open_cli_store, progress_bar, usage_error
from costlens.cli._report import parse_range, parse_where

if TYPE_CHECKING:
    from costlens.store import Store

_FORMATS = ("csv", "jsonl", "parquet", "otlp", "prometheus")


@dataclass(frozen=True, slots=True)
class _Selection:
    since: datetime | None
    until: datetime | None
    where: Mapping[str, str]
    include_content: bool


def export(
    fmt: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="csv, jsonl, parquet, otlp or prometheus.")
    ] = "jsonl",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write here (csv/jsonl: default stdout)."),
    ] = None,
    since: Annotated[str | None, typer.Option(metavar="WHEN", help="Start: 30d, 2w, or an ISO date.")] = None,
    until: Annotated[str | None, typer.Option(metavar="WHEN", help="End (exclusive).")] = None,
    where: Annotated[
        list[str] | None, typer.Option(metavar="KEY=VALUE", help="Only calls where key=value.")
    ] = None,
    include_content: Annotated[
        bool, typer.Option("--include-content", help="Include stored prompt/response content.")
    ] = False,
    endpoint: Annotated[
        str, typer.Option(metavar="URL", help="OTLP/HTTP endpoint for --format otlp.")
    ] = "http://127.0.0.1:4318",
    label: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TAG", help="Tags that become metric labels (otlp, prometheus; default feature)."
        ),
    ] = None,
    prometheus_port: Annotated[
        int | None, typer.Option(metavar="PORT", help="Serve /metrics on this port until Ctrl-C.")
    ] = None,
    store: Annotated[str | None, typer.Option(metavar="URL", help=STORE_HELP)] = None,
) -> None:
    """Export recorded calls: files, OpenTelemetry (GenAI conventions) or a Prometheus exposition."""
    if fmt not in _FORMATS:
        usage_error(f"unknown --format {fmt!r}: use {', '.join(_FORMATS)}")
    if fmt == "parquet" and output is None:
        usage_error("--format parquet needs --output FILE")
    start, end = parse_range(since, until)
    chosen = _Selection(start, end, parse_where(where or []), include_content)
    labels = tuple(label or ["feature"])
    backend = open_cli_store(store, create=False)
    closed_pipe = False
    try:
        if fmt == "prometheus":
            _prometheus(backend, labels, prometheus_port)
        elif fmt == "otlp":
            _otlp(backend, endpoint, labels, chosen)
        else:
            _files(backend, fmt, output, chosen)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do. Handled here, before the
        # store is closed, so the half-read records are released while it is still open.
        closed_pipe = True
    except ImportError as exc:
        fail(str(exc))
    finally:
        backend.close()
    if closed_pipe:
        _silence_stdout()
        raise typer.Exit(0)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (tests): nothing to flush there
        pass


def _files(backend: Store, fmt: str, output: Path | None, chosen: _Selection) -> None:
    from costlens.analytics import export_records

    with progress_bar(f"exporting {fmt}") as update:
        n = export_records(
            backend,
            output if output is not None else sys.stdout,
            fmt,
            since=chosen.since,
            until=chosen.until,
            where=chosen.where,
            include_content=chosen.include_content,
            progress=update,
        )
    if output is not None:
        note(f"{n:,} calls written to {output}")


def _otlp(backend: Store, endpoint: str, labels: Sequence[str], chosen: _Selection) -> None:
    from costlens.analytics import OTLPExportError, otlp_export
    from costlens.analytics._export import iter_export

    records = iter_export(
        backend, chosen.since, chosen.until, chosen.where, include_content=chosen.include_content
    )
    try:
        with progress_bar("sending spans") as update:
            n = otlp_export(records, endpoint, metric_tags=labels, tick=lambda done: update(done, 0))
    except OTLPExportError as exc:
        fail(
            f"{exc}. Is an OpenTelemetry collector listening there for OTLP/HTTP (port 4318)? "
            "Start one, or pass --endpoint with its URL (e.g. --endpoint http://collector:4318)"
        )
    finally:
        if hasattr(records, "close"):
            records.close()
    if n == 0:
        note(f"no calls to send to {endpoint}")
        return
    note(f"{n:,} calls sent to {endpoint} as spans and metrics")


def _prometheus(backend: Store, labels: Sequence[str], port: int | None) -> None:
    from costlens.analytics import prometheus_text
    from costlens.analytics._prometheus import serve_prometheus

    if port is None:
        typer.echo(prometheus_text(backend, tags=labels), nl=False)
        return
    server, _ = serve_prometheus(backend, port, tags=labels)
    note(f"serving http://127.0.0.1:{server.server_port}/metrics (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
