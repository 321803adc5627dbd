"""The `costlens` command: a thin Typer + Rich shell over the library.

Only this package imports Typer and Rich. Commands import the heavy pieces (pricing, stores,
the fake provider) inside their bodies, so `costlens --help` starts fast.
Exit codes: 0 ok, 1 the request could not be answered, 2 a usage error (one line says what to do).
"""

from __future__ import annotations

from typing import Annotated

import typer

from costlens.cli import (
    _budgets,
    _calls,
    _eval,
    _export,
    _finetune,
    _forecast,
    _import,
    _keys,
    _prices,
    _report,
    _reprice,
    _roi,
    _route,
    _serve,
    _store,
)
from costlens.cli._output import OneLineErrorsGroup, friendly_errors

__all__ = ["app", "main"]

app = typer.Typer(
    name="costlens",
    help="Exact cost tracking for LLM calls: reports, prices, recorded calls.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineErrorsGroup,
)
prices_app = typer.Typer(
    help="Model prices: show one, list unpriced models, update the catalogue, list the costlens price patch."
)
calls_app = typer.Typer(help="Recorded calls.")
app.add_typer(prices_app, name="prices", no_args_is_help=True)
app.add_typer(calls_app, name="calls", no_args_is_help=True)

app.command("report")(friendly_errors(_report.report))
app.command("forecast")(friendly_errors(_forecast.forecast))
app.command("anomalies")(friendly_errors(_forecast.anomalies))
app.command("reprice")(friendly_errors(_reprice.reprice))
app.command("import")(friendly_errors(_import.import_))
app.command("export")(friendly_errors(_export.export))
prices_app.command("show")(friendly_errors(_prices.show))
prices_app.command("missing")(friendly_errors(_prices.missing))
prices_app.command("update")(friendly_errors(_prices.update))
prices_app.command("patch")(friendly_errors(_prices.patch))
calls_app.command("tail")(friendly_errors(_calls.tail))

roi_app = typer.Typer(help="ROI: prompt engineering vs fine-tuning (payback, break-even, verdict).")
app.add_typer(roi_app, name="roi", no_args_is_help=True)
roi_app.command("plan")(friendly_errors(_roi.plan))
roi_app.command("from-usage")(friendly_errors(_roi.from_usage))
roi_app.command("catalogue")(friendly_errors(_roi.catalogue))
budgets_app = typer.Typer(help="Budgets: list them, their status, set or remove one.")
app.add_typer(budgets_app, name="budgets", no_args_is_help=True)
budgets_app.command("list")(friendly_errors(_budgets.list_budgets))
budgets_app.command("status")(friendly_errors(_budgets.status))
budgets_app.command("set")(friendly_errors(_budgets.set_budget))
budgets_app.command("remove")(friendly_errors(_budgets.remove))
app.add_typer(_route.route_app, name="route", no_args_is_help=True)  # commands: cli/_route.py
app.add_typer(_finetune.finetune_app, name="finetune", no_args_is_help=True)  # commands: cli/_finetune.py
app.add_typer(_eval.eval_app, name="eval", no_args_is_help=True)  # commands: cli/_eval.py
app.add_typer(_store.store_app, name="store", no_args_is_help=True)  # commands: cli/_store.py
app.command("serve")(_serve.friendly)
app.add_typer(_keys.keys_app, name="keys", no_args_is_help=True)  # commands: cli/_keys.py


@app.command("fake-provider")
def fake_provider(
    port: Annotated[int, typer.Option(help="Port to listen on (0 picks a free one).")] = 8900,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Serve a fake OpenAI/Anthropic-compatible API with real usage fields, for demos and tests."""
    from costlens.testing import serve_forever

    def ready(fake: object) -> None:
        typer.echo(f"fake provider listening on {getattr(fake, 'base_url', '')} (Ctrl-C stops)")

    serve_forever(host, port, on_ready=ready)


def _version(value: bool) -> None:
    if value:
        from costlens import __version__

        typer.echo(f"costlens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Exact cost tracking for LLM calls."""


def main() -> None:
    """Console-script entry point."""
    app()
