"""A Prometheus `/metrics` exposition of recorded spend, tokens and latency (prometheus-client).

Every scrape asks the store (cheap: the sums come from rollups where the store keeps them):
- `costlens_spend_usd_total{provider,model,<tags>}`: all-time spend of priced calls;
- `costlens_calls_total{provider,model,status,<tags>}` and `costlens_unpriced_calls_total`;
- `costlens_tokens_total{provider,model,<tags>,type}` with type input, output, cache_read,
  cache_write, reasoning;
- `costlens_call_latency_seconds{provider,model,<tags>,quantile}` and
  `costlens_time_to_first_token_seconds{...}`: p50/p95/p99 over the last `window` (gauges, like a
  summary), from the raw calls of that window.
`<tags>` are the tag keys asked for (default `feature`), as labels (an absent tag is `""`).
Prometheus samples are floats: money is exact in the store and in every other export.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from costlens.analytics._measures import percentile
from costlens.store import SpendQuery, Store, nanousd_to_usd
from costlens.store._base import scan_calls

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["prometheus_app", "prometheus_registry", "prometheus_text", "serve_prometheus"]

_QUANTILES = (("0.5", 50.0), ("0.95", 95.0), ("0.99", 99.0))
_TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")
_RESERVED = {"provider", "model", "status", "type", "quantile", "le"}


def _label(tag: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9_]", "_", tag)
    if not re.match(r"[a-zA-Z_]", name) or name in _RESERVED or name.startswith("__"):
        name = f"tag_{name}"
    return name


class _Collector:
    def __init__(self, store: Store, tags: Sequence[str], window: timedelta, now: Callable[[], datetime]):
        self.store, self.tags, self.window, self.now = store, tuple(tags), window, now
        self.labels = [_label(t) for t in self.tags]

    def describe(self) -> Iterable[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        base = ["provider", "model", *self.labels]
        spend = CounterMetricFamily("costlens_spend_usd", "Spend of priced LLM calls (USD).", labels=base)
        calls = CounterMetricFamily("costlens_calls", "LLM calls.", labels=[*base, "status"])
        unpriced = CounterMetricFamily("costlens_unpriced_calls", "Calls without a known price.", labels=base)
        tokens = CounterMetricFamily("costlens_tokens", "Tokens by kind.", labels=[*base, "type"])
        rows = self.store.query(SpendQuery(("provider", "model", "status", *self.tags)))
        for row in rows:
            values = [row.keys["provider"] or "", row.keys["model"] or ""]
            values += [row.keys[t] or "" for t in self.tags]
            spend.add_metric(values, float(nanousd_to_usd(row.cost_nanousd)))
            calls.add_metric([*values, row.keys["status"] or ""], row.calls)
            unpriced.add_metric(values, row.unpriced_calls)
            counts = (
                row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens,
                row.reasoning_tokens,
            )  # fmt: skip
            for kind, count in zip(_TOKEN_KINDS, counts, strict=True):
                tokens.add_metric([*values, kind], count)
        yield from (spend, calls, unpriced, tokens)
        yield from self._latencies(base)

    def _latencies(self, base: list[str]) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        end = self.now()
        q = SpendQuery(("provider", "model", *self.tags), end - self.window, end)
        samples: dict[tuple[str, ...], tuple[list[float], list[float]]] = {}
        n = len(q.group_by)
        for row in scan_calls(self.store, q, ("latency_ms", "ttft_ms")):
            key = tuple(v or "" for v in row[:n])
            latency, ttft = samples.setdefault(key, ([], []))
            if row[n] is not None:
                latency.append(row[n] / 1000)
            if row[n + 1] is not None:
                ttft.append(row[n + 1] / 1000)
        window = f"over the last {int(self.window.total_seconds())} s"
        for name, index, text in (
            ("costlens_call_latency_seconds", 0, f"Call latency quantiles {window}."),
            ("costlens_time_to_first_token_seconds", 1, f"Time to first token quantiles {window}."),
        ):
            family = GaugeMetricFamily(name, text, labels=[*base, "quantile"])
            for key, pair in sorted(samples.items()):
                values = sorted(pair[index])
                for label, q_pct in _QUANTILES:
                    value = percentile(values, q_pct)
                    if value is not None:
                        family.add_metric([*key, label], value)
            yield family


def prometheus_registry(
    store: Store,
    *,
    tags: Sequence[str] = ("feature",),
    window: timedelta = timedelta(hours=1),
    now: Callable[[], datetime] | None = None,
) -> CollectorRegistry:
    """A registry whose collector reads `store` on every scrape."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(store, tags, window, now or (lambda: datetime.now(UTC))))
    return registry


def prometheus_text(store: Store, **options: Any) -> str:
    """The exposition text a scrape would get (see `prometheus_registry` for the options)."""
    from prometheus_client import generate_latest

    text: str = generate_latest(prometheus_registry(store, **options)).decode()
    return text


def prometheus_app(store: Store, **options: Any) -> Callable[..., Any]:
    """A WSGI app serving `/metrics` (mount it in any WSGI server)."""
    from prometheus_client import make_wsgi_app

    app: Callable[..., Any] = make_wsgi_app(prometheus_registry(store, **options))
    return app


def serve_prometheus(store: Store, port: int, addr: str = "127.0.0.1", **options: Any) -> tuple[Any, Any]:
    """Serve `/metrics` on a background thread; returns (server, thread): `server.shutdown()` stops it."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=addr, registry=prometheus_registry(store, **options))
    return server, thread
