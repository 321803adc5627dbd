"""The gateway's cost: latency it adds to a call, and requests per second with 1 and 2 workers.

Everything runs in processes of its own: the fake provider (`fake_provider_process`), the gateway
(`costlens serve`, its default SQLite store in a temporary COSTLENS_HOME, async durability) and this
client. Latency: sequential chat completions (plain and streamed), the direct call and the gateway
call interleaved one by one so machine drift hits both alike; the figure is the paired median of
(gateway - direct). Goal: <= 1 ms p50 added on 2 cores. Throughput: 32 concurrent clients against
`costlens serve --workers 1` and `--workers 2`, with the fake alone as the ceiling.

Knobs (environment): BENCH_CALLS, BENCH_STREAM_CALLS, BENCH_THROUGHPUT=0 (latency only). uvicorn
uses httptools and uvloop when they are importable (`pip install 'uvicorn[standard]'`); the first
line printed says which it found.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from costlens.testing import fake_provider_process

CALLS = int(os.environ.get("BENCH_CALLS", 2000))
STREAM_CALLS = int(os.environ.get("BENCH_STREAM_CALLS", 500))
CONCURRENCY = 32
LOAD_SECONDS = 6.0
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}
STREAM_BODY = {**BODY, "stream": True}
#: Published added latency of other gateways (their own figures, not measured here).
PUBLISHED = {"LiteLLM proxy": "~4 ms", "Portkey gateway": "~2.5 ms"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"costlens serve exited with {proc.returncode}: {said}")
        try:
            with httpx.Client() as client:
                client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY)
            return
        except httpx.TransportError:
            time.sleep(0.1)  # a benchmark's start-up poll, not a test
    raise RuntimeError("costlens serve did not start listening")


@contextmanager
def serve(upstream: str, workers: int, home: Path) -> Iterator[str]:
    """`costlens serve` in a subprocess, forwarding to `upstream`; yields its base URL."""
    port = _free_port()
    env = {**os.environ, "COSTLENS_HOME": str(home)}
    env.pop("COSTLENS_STORE", None)
    costlens = str(Path(sys.executable).with_name("costlens"))  # the console script beside python
    args = [costlens, "serve", "--port", str(port), "--workers", str(workers)]
    args += ["--upstream", f"openai={upstream}/v1"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


# -- latency ------------------------------------------------------------------------------------


def _caller(client: httpx.Client, url: str, stream: bool) -> Callable[[], None]:
    if stream:

        def run_stream() -> None:
            with client.stream("POST", url, json=STREAM_BODY) as r:
                for _ in r.iter_raw():
                    pass
                assert r.status_code == 200

        return run_stream

    def run() -> None:
        r = client.post(url, json=BODY)
        assert r.status_code == 200

    return run


def _interleaved(variants: dict[str, Callable[[], None]], total: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm connections, caches and the tokenizer
        for _ in range(50):
            fn()
    for _ in range(total):
        for name, fn in variants.items():
            t0 = time.perf_counter_ns()
            fn()
            samples[name].append((time.perf_counter_ns() - t0) / 1000)
    return samples


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def latency(direct: str, gateway: str) -> Table:
    table = Table(title="Added latency: sequential calls, direct vs through the gateway (interleaved)")
    for col in ("call", "variant", "n", "p50 µs", "p99 µs", "added p50 µs (paired median)", "added p99 µs"):
        table.add_column(col, justify="left" if col in ("call", "variant") else "right")
    with httpx.Client(timeout=30) as a, httpx.Client(timeout=30) as b:
        for label, stream, n in (("chat", False, CALLS), ("chat stream", True, STREAM_CALLS)):
            samples = _interleaved(
                {
                    "direct": _caller(a, f"{direct}/v1/chat/completions", stream),
                    "gateway": _caller(b, f"{gateway}/v1/chat/completions", stream),
                },
                n,
            )
            base, via = samples["direct"], samples["gateway"]
            diffs = [g - d for g, d in zip(via, base, strict=True)]
            for name, values in samples.items():
                row = [f"{statistics.median(values):.0f}", f"{_p(values, 99):.0f}"]
                added = (
                    ["", ""]
                    if name == "direct"
                    else [f"{statistics.median(diffs):+.0f}", f"{_p(diffs, 99):+.0f}"]
                )
                table.add_row(label, name, str(len(values)), *row, *added)
    for name, figure in PUBLISHED.items():
        table.add_row("published", name, "", "", "", figure, "")
    return table


# -- throughput ---------------------------------------------------------------------------------


async def _load(url: str, seconds: float) -> tuple[int, int]:
    """(ok, failed) calls made by CONCURRENCY clients in `seconds`."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    counts = [0, 0]
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                r = await client.post(url, json=BODY)
                counts[0 if r.status_code == 200 else 1] += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return counts[0], counts[1]


def throughput(direct: str, home: Path) -> Table:
    table = Table(title=f"Throughput: {CONCURRENCY} concurrent clients, {LOAD_SECONDS:.0f} s each")
    for col in ("target", "req/s", "failed"):
        table.add_column(col, justify="left" if col == "target" else "right")
    asyncio.run(_load(f"{direct}/v1/chat/completions", 1.0))  # warm
    ok, failed = asyncio.run(_load(f"{direct}/v1/chat/completions", LOAD_SECONDS))
    table.add_row("fake provider alone (the ceiling)", f"{ok / LOAD_SECONDS:,.0f}", str(failed))
    for workers in (1, 2):
        with serve(direct, workers, home / f"w{workers}") as gateway:
            url = f"{gateway}/v1/chat/completions"
            asyncio.run(_load(url, 1.0))
            ok, failed = asyncio.run(_load(url, LOAD_SECONDS))
        table.add_row(f"gateway, --workers {workers}", f"{ok / LOAD_SECONDS:,.0f}", str(failed))
    return table


def main() -> None:
    console = Console()
    import importlib.util

    fast = [m for m in ("httptools", "uvloop") if importlib.util.find_spec(m) is not None]
    console.print(
        f"{os.cpu_count()} CPU cores; fake provider, gateway and client in separate processes; "
        f"uvicorn with {', '.join(fast) if fast else 'h11 + asyncio (no httptools/uvloop installed)'}"
    )
    with fake_provider_process() as fake, tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        with serve(fake.base_url, 1, home / "latency") as gateway:
            console.print(latency(fake.base_url, gateway))
        if os.environ.get("BENCH_THROUGHPUT", "1") != "0":
            console.print(throughput(fake.base_url, home))


if __name__ == "__main__":
    main()
