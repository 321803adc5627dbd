"""The fake provider in a process of its own, for load: replays and benchmarks.

In-process, the fake's handler threads share the caller's GIL, so a busy client slows its own
server. A child process uses another core and leaves the caller's timings its own.
"""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

__all__ = ["FakeProviderProcess", "fake_provider_process"]

_START_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class FakeProviderProcess:
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"


def _child() -> None:
    """Child side: serve, print the port, and stop when the parent closes our stdin."""
    from costlens.testing._fake_provider import FakeProvider

    with FakeProvider() as fake:
        print(fake.port, flush=True)
        sys.stdin.read()


@contextmanager
def fake_provider_process() -> Iterator[FakeProviderProcess]:
    """Start a `FakeProvider` in a child interpreter on a free port; stop it on exit.

    A plain subprocess, not multiprocessing, so it works from any script (no `__main__` guard needed).
    """
    code = "from costlens.testing._process import _child; _child()"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        line = _read_line(child.stdout, _START_TIMEOUT_S)
        if not line.strip().isdigit():
            raise RuntimeError(f"the fake provider did not start (exit code {child.poll()}, said {line!r})")
        yield FakeProviderProcess(port=int(line))
    finally:
        child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stdout.close()


def _read_line(stream: IO[str], timeout_s: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout_s)
    return stream.readline() if ready else ""
