"""The Prometheus exposition: spend, tokens and latency by model and feature, as text and over WSGI."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from costlens.analytics import prometheus_app, prometheus_text
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord

NOW = datetime(2025, 4, 1, 12, tzinfo=UTC)


def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "p.db")
    s.append(
        [
            CallRecord(
                "openai",
                "chat",
                "gpt-4o",
                started_at=NOW - timedelta(minutes=m),
                latency_ms=float(100 * (m + 1)),
                ttft_ms=50.0,
                input_tokens=1000,
                output_tokens=100,
                cost_nanousd=2_500_000,
                price_known=True,
                tags={"feature": "search"},
            )
            for m in range(10)
        ]
        + [
            CallRecord(
                "acme", "chat", "mystery", started_at=NOW - timedelta(days=2), status="error", latency_ms=9.0
            ),
        ]
    )
    return s


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_exposition_text(tmp_path: Path) -> None:
    s = store(tmp_path)
    got = samples(prometheus_text(s, now=lambda: NOW + timedelta(seconds=1)))
    search = (("feature", "search"), ("model", "gpt-4o"), ("provider", "openai"))
    assert got[("costlens_spend_usd_total", search)] == 0.025
    assert got[("costlens_calls_total", (*search[:2], ("provider", "openai"), ("status", "ok")))] == 10
    assert got[("costlens_tokens_total", (*search, ("type", "input")))] == 10_000
    assert (
        got[("costlens_unpriced_calls_total", (("feature", ""), ("model", "mystery"), ("provider", "acme")))]
        == 1
    )
    p95 = got[("costlens_call_latency_seconds", (*search[:2], ("provider", "openai"), ("quantile", "0.95")))]
    assert abs(p95 - 0.955) < 1e-9  # 100..1000 ms, linear between closest ranks
    assert (
        got[
            (
                "costlens_time_to_first_token_seconds",
                (*search[:2], ("provider", "openai"), ("quantile", "0.5")),
            )
        ]
        == 0.05
    )
    # the failed call is two days old: outside the one-hour latency window
    assert not any(
        name == "costlens_call_latency_seconds" and ("model", "mystery") in labels for name, labels in got
    )
    s.close()


def test_tag_labels_can_be_chosen(tmp_path: Path) -> None:
    s = store(tmp_path)
    text = prometheus_text(s, tags=["feature", "type"], now=lambda: NOW)
    assert 'tag_type=""' in text  # a tag named like a reserved label is prefixed
    s.close()


def test_wsgi_app_serves_metrics(tmp_path: Path) -> None:
    s = store(tmp_path)
    app = prometheus_app(s, now=lambda: NOW)
    status: list[Any] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/metrics",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
    }
    body = b"".join(app(environ, lambda code, headers: status.append(code)))
    assert status == ["200 OK"]
    assert b"costlens_spend_usd_total" in body
    s.close()
