"""`costlens store migrate|copy|info`: bring a store's schema up, move records between stores, describe one.

The work is in `costlens.store._copy` (`copy_records`, checkpoints, `mask_url`); this module opens
the stores, shows a progress bar and prints. A URL is always shown masked (`user:***@host`): a
password given in `--from`/`--to`/`--store` never reaches the terminal.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from costlens.cli._output import (
    FORMAT_HELP,
    STORE_HELP,
    check_format,
    err_console,
    fail,
    friendly_errors,
    note,
    store_url,
    usage_error,
    write_mapping,
)
from costlens.cli._report import parse_range

if TYPE_CHECKING:
    from costlens.store import Store
    from costlens.store._copy import CopyResult

__all__ = ["copy", "info", "migrate", "store_app"]

#: `costlens store ...`, registered by `costlens.cli`; each command is registered at the bottom.
store_app = typer.Typer(help="Stores: bring the schema up to date, copy calls between stores, describe one.")

Fmt = Annotated[str, typer.Option("--format", metavar="FORMAT", help=FORMAT_HELP)]
StoreOpt = Annotated[str | None, typer.Option("--store", metavar="URL", help=STORE_HELP)]
#: The package extra that installs each backend's driver.
_EXTRAS = {"postgresql": "postgres", "postgres": "postgres", "clickhouse": "clickhouse"}
#: Exit status after Ctrl-C, as a shell reports a process ended by SIGINT.
INTERRUPTED = 130


def _scrub(text: str, url: str) -> str:
    """`text` (an error message) with the URL, and its password anywhere else, masked."""
    from urllib.parse import urlsplit

    from costlens.store._copy import mask_url

    text = text.replace(url, mask_url(url))
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text


def _open(url: str, flag: str, *, create: bool) -> Store:
    """Open one store; a bad URL is a usage error, a missing one (reading) one line, exit 1."""
    from costlens._errors import ConfigError
    from costlens.store import StoreNotFound, open_store
    from costlens.store._copy import mask_url

    try:
        return open_store(url, create=create)
    except StoreNotFound:
        fail(f"{flag}: no store at {mask_url(url)}: nothing to read there; check the URL")
    except ConfigError as exc:
        usage_error(f"{flag}: {_scrub(str(exc), url)}")
    except ImportError as exc:  # a backend whose driver is not installed
        fail(f"{flag}: a backend of {mask_url(url)} cannot be loaded ({exc}): {_install_hint(url)}")


def _backend(url: str) -> str:
    """The URL's scheme; `fanout(sqlite, clickhouse)` for a comma-separated list of stores."""
    if "," in url:
        return f"fanout({', '.join(_backend(part.strip()) for part in url.split(','))})"
    return url.partition("://")[0].lower() or "?"


def _install_hint(url: str) -> str:
    schemes = {part.strip().partition("://")[0].lower() for part in url.split(",")}
    extras = sorted({_EXTRAS[scheme] for scheme in schemes if scheme in _EXTRAS})
    return f"pip install 'llm-costlens[{','.join(extras)}]'" if extras else "check the URL's scheme"


# -- migrate -----------------------------------------------------------------------------------


def migrate(
    store: StoreOpt = None,
    repair_rollups: Annotated[
        bool,
        typer.Option(
            "--repair-rollups",
            help="Also rebuild the pre-aggregated hours from the raw calls (ClickHouse: after a write "
            "race counted a record twice in the rollup). Run it with no writes in flight.",
        ),
    ] = False,
) -> None:
    """Bring the store's schema up to date (creating it if needed); safe to run again."""
    from costlens.store._copy import mask_url, migrate_store

    url = store_url(store)
    target = _open(url, "--store", create=True)
    repaired: int | None = None
    try:
        applied = migrate_store(target)
        if repair_rollups:
            repair = getattr(target, "repair_rollups", None)
            if repair is None:
                fail(f"{_backend(url)} keeps its rollups in step with every write: nothing to repair")
            repaired = repair()
    finally:
        target.close()
    typer.echo(f"store: {mask_url(url)}")
    if repaired is not None:
        typer.echo(f"rollups: {repaired} hour group(s) corrected")
    if applied is None:
        typer.echo("schema: up to date")
    elif applied:
        typer.echo(f"schema: applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        typer.echo("schema: already up to date, nothing applied")


# -- info --------------------------------------------------------------------------------------


def describe(target: Store, url: str) -> dict[str, Any]:
    """Backend, masked URL, record count and the first and last call's time (three cheap reads)."""
    from costlens.store import SpendQuery
    from costlens.store._copy import mask_url

    first = next(target.iter_records(limit=1), None)
    last = next(target.iter_records(limit=1, newest_first=True), None)
    return {
        "backend": _backend(url),
        "url": mask_url(url),
        "records": sum(row.calls for row in target.query(SpendQuery())),
        "first_call": None if first is None else first.started_at,
        "last_call": None if last is None else last.started_at,
    }


def info(store: StoreOpt = None, fmt: Fmt = "table") -> None:
    """Describe a store: backend, URL (password masked), how many calls, the first and last call."""
    fmt = check_format(fmt)
    url = store_url(store)
    target = _open(url, "--store", create=False)
    try:
        data = describe(target, url)
    finally:
        target.close()
    write_mapping(data, fmt, title="store")


# -- copy --------------------------------------------------------------------------------------


def copy(
    source: Annotated[str, typer.Option("--from", metavar="URL", help="The store to read (must exist).")],
    dest: Annotated[
        str, typer.Option("--to", metavar="URL", help="The store to write (created and migrated if needed).")
    ],
    since: Annotated[
        str | None, typer.Option(metavar="WHEN", help="Only calls from then on: 30d, 12h, or an ISO time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(metavar="WHEN", help="Only calls before then (exclusive), same forms.")
    ] = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, metavar="N", help="Records per write transaction.")
    ] = 10_000,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start over, ignoring where a stopped copy got to.")
    ] = False,
    fmt: Fmt = "table",
) -> None:
    """Copy calls from one store to another, in batches; run it again after a stop to continue.

    Calls the destination already holds (same id) are skipped, so copying twice writes nothing new."""
    fmt = check_format(fmt)
    start, end = parse_range(since, until)
    if source == dest:
        usage_error("--from and --to name the same store: give two different stores")
    reader = _open(source, "--from", create=False)
    try:
        writer = _open(dest, "--to", create=True)
        try:
            result = _run_copy(reader, writer, source, dest, start, end, batch, fresh)
        finally:
            writer.close()
    finally:
        reader.close()
    write_mapping(_summary(result, source, dest), fmt, title="store copy")


def _run_copy(reader: Store, writer: Store, source: str, dest: str, start: datetime | None,
              end: datetime | None, batch: int, fresh: bool) -> CopyResult:  # fmt: skip
    from costlens.store import copy_records
    from costlens.store._copy import migrate_store

    migrate_store(writer)  # before the first batch: a schema problem stops the copy at once
    last: list[CopyResult] = []
    try:
        with _progress() as show:

            def progress(done: CopyResult) -> None:
                last[:] = [done]
                show(done)

            return copy_records(
                reader, writer, since=start, until=end, batch=batch, on_progress=progress,
                resume=not fresh, source_url=source, dest_url=dest,
            )  # fmt: skip
    except KeyboardInterrupt:
        _interrupted(last[0] if last else None, source, dest, start, end)
    except ValueError as exc:  # the same store twice (found from the stores themselves)
        usage_error(_scrub(str(exc), source))


def _interrupted(done: CopyResult | None, source: str, dest: str, start: datetime | None,
                 end: datetime | None) -> NoReturn:  # fmt: skip
    """After Ctrl-C: what was committed, and the command that continues (absolute times, since a
    relative --since would name another window, and so another checkpoint, on the next run)."""
    from costlens.store._copy import mask_url

    args = ["costlens", "store", "copy", "--from", mask_url(source), "--to", mask_url(dest)]
    args += ["--since", start.isoformat()] if start is not None else []
    args += ["--until", end.isoformat()] if end is not None else []
    copied = f"{done.read:,} calls read, {done.written:,} written" if done else "no batch finished"
    note(f"costlens: interrupted ({copied}); every finished batch is kept.")
    note(f"to continue where it stopped, run: {shlex.join(args)}  (--fresh starts over)")
    raise typer.Exit(INTERRUPTED)


@contextmanager
def _progress() -> Iterator[Callable[[CopyResult], None]]:
    """A Rich bar on stderr when it is a terminal: calls read (of the total when counted), calls/s."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    err = err_console()
    columns = (
        TextColumn("copying"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} calls/s"), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("copy", total=None, rate="-")

        def show(done: CopyResult) -> None:
            bar.update(task, completed=done.read, total=done.total or None, rate=f"{done.per_second:,.0f}")

        yield show


def _summary(result: CopyResult, source: str, dest: str) -> dict[str, Any]:
    from costlens.store._copy import mask_url

    resumed = result.resumed_from
    return {
        "from": mask_url(source),
        "to": mask_url(dest),
        "read": result.read,
        "written": result.written,
        "skipped": result.skipped,
        "seconds": round(result.seconds, 3),
        "records_per_second": round(result.per_second, 1),
        "resumed_from": None if resumed is None else resumed.started_at,
    }


store_app.command("migrate")(friendly_errors(migrate))
store_app.command("copy")(friendly_errors(copy))
store_app.command("info")(friendly_errors(info))
