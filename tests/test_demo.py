"""`make demo` keeps working: a short replay end to end, in a child interpreter like `make demo`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_replays_a_slice_of_the_trace(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'demo.db'}"
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples/demo.py"), "--limit", "40", "--store", store],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "", "COSTLENS_HOME": str(tmp_path)},
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "80 real requests" in out.stdout
    assert "conversation" in out.stdout and "code" in out.stdout
    assert "Budget status" in out.stdout
    assert "ROI: keep prompting or fine-tune" in out.stdout
    assert "through a cascade" in out.stdout and "saving $" in out.stdout
    assert "Traceback" not in out.stderr
