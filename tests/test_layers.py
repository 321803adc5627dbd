"""The import contracts of pyproject.toml (`[tool.importlinter]`) hold: `lint-imports` passes.

One run of `lint-imports` (the same check as `make lint`) in a subprocess; every contract must be
reported KEPT, so a broken one names itself in the failure.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
CONTRACTS = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
_RUN = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))"
)


def test_every_contract_has_an_id() -> None:
    ids = [c["id"] for c in CONTRACTS]
    assert len(ids) == len(set(ids)) >= 10
    assert {"layers", "acyclic"} <= set(ids)


def test_every_contract_is_kept() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _RUN, str(PYPROJECT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    output = " ".join((result.stdout + result.stderr).split())  # long names wrap across lines
    assert result.returncode == 0, result.stdout + result.stderr
    for contract in CONTRACTS:
        assert f"{' '.join(contract['name'].split())} KEPT" in output, contract["id"]
