"""Test helpers for costlens and its users: a fake OpenAI/Anthropic server and a fixed clock.

    from costlens.testing import FakeProvider, FakeUsage, Fault

    with FakeProvider() as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="x")
        fake.enqueue(usage=FakeUsage(input_tokens=100, output_tokens=5, cached_tokens=40))
        fake.enqueue(fault=Fault.http(429, retry_after=0.1))

Endpoints: OpenAI `/v1/chat/completions`, `/v1/responses`, `/v1/embeddings`, `/v1/completions`
(plain and `stream=true`), the same under Azure's `/openai/deployments/{name}/...` and `/openai/v1/...`,
Anthropic `/v1/messages` (plain and stream) and `/v1/messages/count_tokens`. Anything else is a 404
with an OpenAI-style error body.

Per-request headers, for callers that can't reach the Python queue (other threads, processes, trace
replay); they win over `enqueue`, which wins over `default_usage` / `latency_s`:
`x-fake-input-tokens`, `x-fake-output-tokens`, `x-fake-cached-tokens`, `x-fake-cache-write-tokens`,
`x-fake-reasoning-tokens`, `x-fake-cache-write-1h-tokens`, `x-fake-latency-ms`, and `x-fake-fault`
with a `Fault.name`:
`http-429`, `http-429-retry-0.5`, `http-500`, `timeout-2.0`, `cut-3`, `malformed`, `usage-missing`,
`usage-negative`, `usage-no-output`. `x-fake-stream-deltas: N` sends a streamed answer in at most N
text deltas (the same text and usage; replays of long answers then cost the client less parsing).
A bad header value is answered with a 400. `fake.enqueue(raw=...)` answers verbatim with a body
(dict) or stream events (list) captured from a real API.

`MemoryStore` (from `costlens.store.memory`) is re-exported lazily.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from costlens.testing._clock import FixedClock
from costlens.testing._config import FakeUsage, Fault
from costlens.testing._fake_provider import FakeProvider, FakeRequest, serve_forever
from costlens.testing._process import FakeProviderProcess, fake_provider_process

if TYPE_CHECKING:
    from costlens.store.memory import MemoryStore

__all__ = [
    "FakeProvider",
    "FakeProviderProcess",
    "FakeRequest",
    "FakeUsage",
    "Fault",
    "FixedClock",
    "MemoryStore",
    "fake_provider_process",
    "serve_forever",
]


def __getattr__(name: str) -> Any:
    # Lazy so that importing costlens.testing never depends on the store package.
    if name == "MemoryStore":
        return import_module("costlens.store.memory").MemoryStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
