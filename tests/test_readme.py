"""The README's self-contained examples run as written (those that need no API key or network)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
# Blocks that run offline: they use the fake provider, a pipeline of their own, or only price arithmetic
# (not those that read a file the reader makes first, such as a trained router).
RUNNABLE = [
    b
    for b in BLOCKS
    if (
        ("costlens.testing" in b or "costlens.pipeline" in b or "costlens.routing" in b) and ".load(" not in b
    )
    or b.startswith("from costlens import Usage, cost")
]


def test_readme_has_runnable_examples() -> None:
    assert len(RUNNABLE) >= 2


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"block{i}" for i in range(len(RUNNABLE))])
def test_readme_block_runs(block: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import costlens

    try:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    finally:
        costlens.configure(store="memory://", durability="sync")
