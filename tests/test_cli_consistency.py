"""Issue 10 item 16: one style across every command that has `--format`.

The commands are found by walking `costlens.cli.app`, so a new command with `--format` fails here
until it is given minimal arguments below. For each one:
- `--format json` parses and follows the JSON contract (`costlens.cli._output`): a command that lists
  things writes an array of flat objects, a command about one thing writes one object; money (a key
  ending in `usd` or `cost`) is never a float;
- `--format table` under `NO_COLOR=1` has no ANSI escape, even where colours would show (`FORCE_COLOR`);
- `--format csv` is a header line and rows;
- a usage error (an unknown option, a bad `--format`) is exactly one line on stderr, exit 2.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner, Result

from costlens.cli import app
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord
from tests.conftest import write_demo_eval_run

ROOT = Path(__file__).resolve().parent
SCENARIO = ROOT.parent / "examples" / "roi" / "published_a.toml"
NOW = datetime.now(UTC).replace(microsecond=0)
ANSI = re.compile(r"\x1b\[")

#: Commands whose `--format` names something other than the output (the files they read or write).
NOT_OUTPUT_FORMATS = {
    "import": "the input file's format; `--json` prints the summary as JSON",
    "export": "the exported file's format: csv, jsonl, parquet, otlp or prometheus",
}
#: Commands that talk to a provider's fine-tuning API: their formats are checked against the fake
#: provider in tests/test_finetune.py, not here (this module builds no server).
NEEDS_API = {"finetune submit", "finetune status", "eval run"}

#: Each command with an output `--format`: minimal valid arguments ({placeholders} from `world`).
ARGS: dict[str, list[str]] = {
    "report": ["--store", "{store}"],
    "forecast": ["--store", "{store}"],
    "anomalies": ["--store", "{store}"],
    "reprice": ["--model", "gpt-4o", "--store", "{store}"],
    "prices show": ["gpt-4o-mini"],
    "prices missing": ["--store", "{store}"],
    "prices update": [],
    "prices patch": [],
    "calls tail": ["--store", "{store}"],
    "roi plan": ["{scenario}"],
    "roi from-usage": [
        *("--feature", "triage", "--since", "{since}", "--until", "{until}", "--store", "{store}"),
        *("--tuned-input-tokens", "300", "--training-tokens", "1_000_000", "--epochs", "3", "--horizon", "6"),
    ],
    "roi catalogue": [],
    "budgets list": ["--file", "{budgets}"],
    "budgets status": ["--file", "{budgets}"],
    "route train": ["--data", "{data}", "--models", "{models}", "--out", "{out}", "--folds", "3"],
    "route eval": ["--data", "{data}", "--models", "{models}", "--router", "{router}"],
    "route explain": ["hello there", "--config", "{router_toml}"],
    "finetune prepare": [
        *("{finetune_data}", "--provider", "openai", "--model", "gpt-4o-mini-2024-07-18"),
        *("--out", "{finetune_out}"),
    ],
    "eval report": ["{run}"],
    "eval compare": ["{run}", "--a", "a", "--b", "b"],
    "eval list": ["--runs-dir", "{runs}"],
    "store copy": ["--from", "{store}", "--to", "{copy_to}"],
    "store info": ["--store", "{store}"],
    "keys list": ["--db", "{keys_db}"],
}

#: Commands that list things: a JSON array of flat objects. Every other one writes one object.
LISTS = {
    "report",
    "forecast",
    "anomalies",
    "prices missing",
    "prices patch",
    "calls tail",
    "roi catalogue",
    "budgets list",
    "budgets status",
    "eval compare",
    "eval list",
    "keys list",
}

#: Known departures from the contract, left to the commands' owners: each test marked here fails
#: until it is fixed (strict xfail), so the fix is noticed and the entry removed.
NESTED_ROWS = {
    "budgets list": "rows carry `scope` as an object and `thresholds` as a list (csv: one text each)",
    "calls tail": "rows carry `tags` as an object (csv: `k=v, ...` text)",
}

#: Keys that end in `cost` but hold a statistic, not money (documented in the command's help).
STATISTICS = {
    # the mean cost per prompt in the evaluation's `cost_unit` (strong calls or USD): a number; the
    # exact money is `cost_usd`
    "route eval": {"cost"},
}

ROUTER_TOML = """
default = "default"

[[candidates]]
name = "nano"
model = "gpt-5-nano"

[[candidates]]
name = "default"
model = "gpt-4o"
"""


def _commands() -> dict[str, list[str]]:
    """Every leaf command of the app, by path, with its option names."""
    found: dict[str, list[str]] = {}

    def walk(command: Any, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*path, name])
            return
        found[" ".join(path)] = [opt for param in command.params for opt in param.opts]

    walk(typer.main.get_command(app), [])
    return found


WITH_FORMAT = sorted(path for path, opts in _commands().items() if "--format" in opts)
OUTPUT_FORMAT = [path for path in WITH_FORMAT if path not in NOT_OUTPUT_FORMATS and path not in NEEDS_API]


def _call(minutes_ago: float, cost: int | None, model: str = "gpt-4o-mini", **tags: str) -> CallRecord:
    return CallRecord(
        "openai",
        "chat",
        model,
        started_at=NOW - timedelta(minutes=minutes_ago),
        input_tokens=3000,
        output_tokens=200,
        cost_nanousd=cost,
        price_known=cost is not None,
        tags=tags,
    )


def _routing_files(folder: Path) -> tuple[Path, Path]:
    rng = random.Random(3)
    words = ["red", "blue", "green", "cyan", "black", "white", "pink", "gold", "grey", "teal"]
    data = folder / "routing.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "split", "small-model", "big-model"])
        for i in range(90):
            hard = i % 3 == 0
            prompt = " ".join([*rng.sample(words, 5), "hard" if hard else "easy"])
            writer.writerow([prompt, "test" if i % 5 == 0 else "train", 0 if hard else 1, 1])
    models = folder / "models.csv"
    models.write_text("model,cost_per_call_usd\nsmall-model,0.0002\nbig-model,0.003\n", encoding="utf-8")
    return data, models


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A small store (priced, partly priced and unpriced calls), a budgets file, routing files and a
    trained router: what the commands' minimal arguments name."""
    folder = tmp_path_factory.mktemp("consistency")
    store = SQLiteStore(folder / "calls.db")
    calls = [_call(60 * i + 5, 570_000 + 1_234 * i, feature="triage") for i in range(48)]
    calls += [
        _call(30, None, "mystery-1", feature="triage"),
        _call(45, 900_000_000, "gpt-4o", feature="chat"),
    ]
    store.append(calls)
    store.close()
    budgets = folder / "budgets.toml"
    budgets.write_text(
        '[[budgets]]\nname = "daily"\nlimit_usd = "5.00"\nwindow = "day"\nmode = "block"\n', encoding="utf-8"
    )
    router_toml = folder / "router.toml"
    router_toml.write_text(ROUTER_TOML, encoding="utf-8")
    data, models = _routing_files(folder)
    router = folder / "router.npz"
    values = {
        "store": f"sqlite://{folder / 'calls.db'}",
        "scenario": str(SCENARIO),
        "since": (NOW - timedelta(days=3)).isoformat(),
        "until": (NOW + timedelta(minutes=1)).isoformat(),
        "budgets": str(budgets),
        "data": str(data),
        "models": str(models),
        "out": str(folder / "trained.npz"),
        "router": str(router),
        "router_toml": str(router_toml),
        "finetune_data": str(Path(__file__).parent / "data" / "finetune" / "tickets.jsonl"),
        "finetune_out": str(folder / "train.jsonl"),
        "runs": str(folder / "runs"),
        "run": str(write_demo_eval_run(folder / "runs")),
        "copy_to": f"sqlite://{folder / 'copy.db'}",
        "keys_db": str(_keys_db(folder / "keys.db")),
    }
    trained = CliRunner().invoke(
        app,
        [
            "route",
            "train",
            "--data",
            str(data),
            "--models",
            str(models),
            "--out",
            str(router),
            "--folds",
            "3",
        ],
    )
    assert trained.exit_code == 0, trained.output
    return values


@pytest.fixture(autouse=True)
def _offline_price_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """`prices update` without the network: a catalogue update that reports its version."""
    import costlens.pricing

    monkeypatch.setattr(costlens.pricing, "update_prices", lambda: "2026-01-01T00:00:00+00:00")


def _keys_db(path: Path) -> Path:
    """A keys database with one API key (one with a budget), as `costlens keys create` writes it."""
    from costlens.server._keys import KeyStore

    KeyStore(path).create("ci-bot", ["read", "gateway"], budget_usd="5", window="day")
    return path


def _args(command: str, world: dict[str, str]) -> list[str]:
    return [*command.split(), *(arg.format(**world) for arg in ARGS[command])]


def _run(args: list[str], **env: str) -> Result:
    return CliRunner(env=env or None).invoke(app, args)


def _ok(args: list[str], **env: str) -> Result:
    result = _run(args, **env)
    assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
    return result


def _money_floats(value: object, where: str, statistics: set[str]) -> Iterator[str]:
    """Paths of floats held under a money key (a name ending in `usd` or `cost`), at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}"
            money = str(key).lower().endswith(("usd", "cost")) and key not in statistics
            items = item if isinstance(item, list) else [item]
            if money and any(isinstance(v, float) for v in items):
                yield path
            yield from _money_floats(item, path, statistics)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _money_floats(item, f"{where}[{i}]", statistics)


def _is_flat(row: object) -> bool:
    """A row object: scalars (or lists of scalars) only, no nested objects."""
    scalar = (str, int, float, bool, type(None))
    return isinstance(row, dict) and all(
        isinstance(v, scalar) or (isinstance(v, list) and all(isinstance(x, scalar) for x in v))
        for v in row.values()
    )


# -- the set of commands -------------------------------------------------------------------------------


def test_every_command_with_format_is_covered() -> None:
    assert set(OUTPUT_FORMAT) == set(ARGS), "give each new command with --format minimal arguments in ARGS"
    assert set(NOT_OUTPUT_FORMATS) | NEEDS_API <= set(WITH_FORMAT)
    assert set(ARGS) >= LISTS | set(STATISTICS) and set(NESTED_ROWS) <= LISTS


def test_every_command_with_an_output_format_takes_table_json_and_csv(world: dict[str, str]) -> None:
    for command in OUTPUT_FORMAT:
        for fmt in ("table", "json", "csv"):
            _ok([*_args(command, world), "--format", fmt])


# -- json ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", OUTPUT_FORMAT)
def test_json_follows_the_contract(
    command: str, world: dict[str, str], request: pytest.FixtureRequest
) -> None:
    if command in NESTED_ROWS:
        request.applymarker(pytest.mark.xfail(reason=NESTED_ROWS[command], strict=True))
    result = _ok([*_args(command, world), "--format", "json"])
    data = json.loads(result.stdout)  # stdout holds the JSON alone
    if command in LISTS:
        assert isinstance(data, list), f"{command}: a list command writes a JSON array"
        bad = [row for row in data if not _is_flat(row)]
        assert not bad, f"{command}: rows must be flat objects: {bad[:1]}"
    else:
        assert isinstance(data, dict), f"{command}: a command about one thing writes one JSON object"
        if "rows" in data:
            assert isinstance(data["rows"], list) and all(_is_flat(r) for r in data["rows"])
    floats = list(_money_floats(data, command, STATISTICS.get(command, set())))
    assert not floats, f"{command}: money must be exact strings, never floats: {floats[:5]}"


def test_json_money_is_an_exact_string_and_unknown_money_is_null(world: dict[str, str]) -> None:
    rows = json.loads(_ok(["report", "--store", world["store"], "--format", "json"]).stdout)
    by_model = {row["model"]: row for row in rows}
    assert by_model["gpt-4o"]["cost_usd"] == "0.900000000"
    assert by_model["mystery-1"]["cost_usd"] is None
    Decimal(by_model["gpt-4o-mini"]["cost_usd"])  # exact decimal text


def test_import_json_summary_is_an_array_of_flat_objects(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 'imported.db'}"
    fixture = ROOT / "data" / "litellm_spend_logs.csv"
    result = _ok(["import", str(fixture), "--store", store, "--json"])
    data = json.loads(result.stdout)
    assert isinstance(data, list) and len(data) == 1 and _is_flat(data[0])
    assert isinstance(data[0]["cost_usd"], str) and not list(_money_floats(data, "import", set()))
    table = _ok(["import", str(fixture), "--store", store], NO_COLOR="1", FORCE_COLOR="1", COLUMNS="200")
    assert not ANSI.search(table.stdout) and "duplicates" in table.stdout


def test_prices_update_json_is_an_object() -> None:
    data = json.loads(_ok(["prices", "update", "--format", "json"]).stdout)
    assert data == {"version": "2026-01-01T00:00:00+00:00"}


# -- tables and csv ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", OUTPUT_FORMAT)
def test_table_under_no_color_has_no_ansi_escape(command: str, world: dict[str, str]) -> None:
    result = _ok([*_args(command, world), "--format", "table"], NO_COLOR="1", FORCE_COLOR="1")
    assert not ANSI.search(result.stdout), f"{command}: ANSI escape under NO_COLOR: {result.stdout[:200]!r}"
    assert not re.search(r"\x1b\[[0-9;]*m", result.stderr), f"{command}: styled stderr under NO_COLOR"


def test_force_color_alone_does_colour_a_table(world: dict[str, str]) -> None:
    """The check above means something: the same table is styled when colours may show."""
    result = _ok(["report", "--store", world["store"]], FORCE_COLOR="1")
    assert ANSI.search(result.stdout)


@pytest.mark.parametrize("command", OUTPUT_FORMAT)
def test_csv_has_a_header_and_rows(command: str, world: dict[str, str]) -> None:
    result = _ok([*_args(command, world), "--format", "csv"])
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows and all(rows[0]), f"{command}: csv starts with a header of column names"
    assert all(len(row) == len(rows[0]) for row in rows), f"{command}: ragged csv"


def test_money_columns_have_one_precision(world: dict[str, str]) -> None:
    out = _ok(["report", "--store", world["store"]], NO_COLOR="1").stdout
    amounts = re.findall(r"\$[\d,]+\.(\d+)", out)
    assert amounts and len({len(places) for places in amounts}) == 1, amounts


# -- usage errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", WITH_FORMAT)
def test_an_unknown_option_is_one_line_exit_2(command: str, world: dict[str, str]) -> None:
    args = [*command.split(), *(arg.format(**world) for arg in ARGS.get(command, []))]
    if command == "import":
        args.append(str(ROOT / "data" / "litellm_spend_logs.csv"))
    result = _run([*args, "--no-such-option"])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("costlens: error: "), result.stderr
    assert "--no-such-option" in result.stderr


@pytest.mark.parametrize("command", OUTPUT_FORMAT)
def test_a_bad_format_is_one_line_exit_2(command: str, world: dict[str, str]) -> None:
    result = _run([*_args(command, world), "--format", "xml"])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr == "costlens: error: unknown --format 'xml': use table, json or csv\n"


def test_reading_commands_never_create_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    for args in (
        ["prices", "missing"],
        ["export"],
        ["roi", "from-usage", "--tuned-input-tokens", "300"],
        ["store", "info"],
    ):
        result = _run([*args, "--store", f"sqlite://{missing}"])
        assert result.exit_code == 1, (args, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and str(missing) in result.stderr, result.stderr
        assert not missing.exists()
