"""`costlens route explain`: the choice and every rejection, in table, JSON and CSV."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from costlens.cli import app

ROUTER = """
default = "default"

[[candidates]]
name = "nano"
model = "gpt-5-nano"
transform = "Always respond concisely. {prompt}"
max_context = 8000

[[candidates]]
name = "default"
model = "gpt-4o"
capabilities = ["tools"]
"""


def test_explain_shows_the_choice_and_the_rejections(tmp_path: Path) -> None:
    config = tmp_path / "router.toml"
    config.write_text(ROUTER)
    runner = CliRunner()
    out = runner.invoke(app, ["route", "explain", "hi", "--config", str(config), "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["chosen"] == "nano" and data["model"] == "gpt-5-nano"
    assert {k: v for k, v in data["rows"][1].items() if k != "reason"} == {
        "candidate": "default",
        "outcome": "rejected",
        "policy": "cheapest",
    }
    needs_tools = runner.invoke(
        app, ["route", "explain", "hi", "--config", str(config), "--require", "tools", "--format", "csv"]
    )
    assert needs_tools.exit_code == 0 and needs_tools.stdout.splitlines()[1].startswith("default,chosen")
    table = runner.invoke(app, ["route", "explain", "hi", "--config", str(config), "--cost-budget", "0.01"])
    assert table.exit_code == 0 and "worst case" in table.stdout


def test_explain_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["route", "explain", "hi", "--config", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    config = tmp_path / "router.toml"
    config.write_text(ROUTER)
    bad = runner.invoke(app, ["route", "explain", "hi", "--config", str(config), "--cost-budget", "cheap"])
    assert bad.exit_code == 2 and "not a number" in bad.output
