"""Anomaly detection on hourly series with known injected spikes, and the alert sinks."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from costlens.analytics import Anomaly, detect_anomalies, notify
from costlens.store import Store, open_store
from costlens.usage import CallRecord

START = datetime(2025, 5, 1, tzinfo=UTC)
DAYS = 9
SPEND_SPIKE = START + timedelta(days=8, hours=14)
TOKEN_SPIKE = START + timedelta(days=8, hours=3)


def normal_traffic(rng: random.Random) -> list[CallRecord]:
    out = []
    for hour in range(DAYS * 24):
        at = START + timedelta(hours=hour)
        for model in ("a", "b"):
            for i in range(rng.randint(4, 6)):
                tokens = rng.randint(900, 1100)
                out.append(
                    CallRecord(
                        "openai",
                        "chat",
                        model,
                        started_at=at + timedelta(minutes=7 * i),
                        input_tokens=tokens,
                        output_tokens=100,
                        cost_nanousd=tokens * 1000,
                        price_known=True,
                        tags={"feature": "f"},
                    )
                )
    return out


def injected() -> list[CallRecord]:
    spend = [
        CallRecord(
            "openai",
            "chat",
            "a",
            started_at=SPEND_SPIKE + timedelta(minutes=m),
            input_tokens=1000,
            output_tokens=100,
            cost_nanousd=cost,
            price_known=True,
            tags={"feature": "f"},
            id=f"spike-{m}",
        )
        for m, cost in ((5, 90_000_000), (20, 70_000_000), (40, 50_000_000))
    ]
    tokens = [
        CallRecord(
            "openai",
            "chat",
            "b",
            started_at=TOKEN_SPIKE + timedelta(minutes=m),
            input_tokens=60_000,
            output_tokens=100,
            cost_nanousd=1_000_000,
            price_known=True,
            tags={"feature": "f"},
            id=f"long-{m}",
        )
        for m in (10, 30)
    ]
    return spend + tokens


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend = open_store("memory://" if request.param == "memory" else f"sqlite://{tmp_path / 'a.db'}")
    backend.append(normal_traffic(random.Random(11)) + injected())
    yield backend
    backend.close()


def test_injected_spikes_are_found_with_the_calls_behind_them(store: Store) -> None:
    found = detect_anomalies(store, ["model"], since=START + timedelta(days=7))
    assert sorted((a.metric, a.hour, a.keys["model"]) for a in found) == [
        ("spend", SPEND_SPIKE, "a"),
        ("tokens_per_call", TOKEN_SPIKE, "b"),
    ]
    assert found[0].score >= found[1].score
    spend = next(a for a in found if a.metric == "spend")
    assert [c["id"] for c in spend.top_calls[:3]] == ["spike-5", "spike-20", "spike-40"]
    assert spend.top_calls[0]["cost_usd"] == Decimal("0.090000000")
    assert spend.value > 30 * spend.baseline
    assert spend.score >= 4
    tokens = next(a for a in found if a.metric == "tokens_per_call")
    assert [c["id"] for c in tokens.top_calls[:2]] == ["long-10", "long-30"]
    assert tokens.baseline < 1200 < tokens.value


def test_scopes_and_metrics_can_be_narrowed(store: Store) -> None:
    only_spend = detect_anomalies(
        store, ["feature", "model"], since=START + timedelta(days=7), metrics=["spend"]
    )
    assert [(a.keys, a.metric) for a in only_spend] == [({"feature": "f", "model": "a"}, "spend")]
    assert (
        detect_anomalies(
            store, ["model"], since=START + timedelta(days=7), where={"model": "b"}, metrics=["spend"]
        )
        == []
    )
    # Before the baseline has filled up nothing can be judged.
    assert detect_anomalies(store, ["model"], since=START, until=START + timedelta(hours=20)) == []


def test_quiet_traffic_has_no_anomalies() -> None:
    store = open_store("memory://")
    store.append(normal_traffic(random.Random(3)))
    assert detect_anomalies(store, ["model"], since=START + timedelta(days=2)) == []


def test_sinks_receive_events_and_a_failing_sink_does_not_stop_the_others(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    found = detect_anomalies(store, ["model"], since=START + timedelta(days=7))
    received: list[dict[str, object]] = []

    def broken(event: dict[str, object]) -> None:
        raise RuntimeError("webhook down")

    class Outbox:
        def __init__(self) -> None:
            self.sent: list[dict[str, object]] = []

        def send(self, event: dict[str, object]) -> None:
            self.sent.append(event)

    outbox = Outbox()
    with caplog.at_level(logging.ERROR, logger="costlens"):
        delivered = notify(found, [broken, received.append, outbox])
    assert delivered == 2 * len(found) == 4
    assert outbox.sent == received
    assert "anomaly alert sink" in caplog.text
    event = next(e for e in received if e["metric"] == "spend")
    assert event["kind"] == "anomaly"
    assert event["scope"] == {"model": "a"}
    assert event["top_call_ids"][:1] == ["spike-5"]  # type: ignore[index]
    assert "spend spike for model=a" in str(event["message"])


def test_bad_options() -> None:
    store = open_store("memory://")
    with pytest.raises(ValueError, match="unknown metric 'latency'"):
        detect_anomalies(store, since=START, metrics=["latency"])
    with pytest.raises(ValueError, match="must be positive"):
        detect_anomalies(store, since=START, threshold=0)


def test_anomaly_as_dict_is_flat() -> None:
    anomaly = Anomaly(
        {"model": "a"}, "spend", START, Decimal(2), Decimal(1), 5.0, 3, Decimal(2), ({"id": "x"},)
    )
    assert anomaly.as_dict()["top_call_ids"] == ["x"]


def test_budget_sinks_take_anomalies(caplog: pytest.LogCaptureFixture) -> None:
    """Anomaly alerts use the same sinks as budgets: logging, webhook (local receiver) and Slack."""
    import http.server
    import json
    import threading

    from costlens.budgets import LoggingSink, SlackSink, WebhookSink

    bodies: list[dict[str, object]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        anomaly = Anomaly(
            {"model": "a"}, "spend", START, Decimal(9), Decimal(1), 7.5, 3, Decimal(9), ({"id": "x"},)
        )
        with caplog.at_level(logging.WARNING, logger="costlens.budgets"):
            delivered = notify(
                [anomaly], [LoggingSink(), WebhookSink(url, retries=0), SlackSink(url, retries=0)]
            )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert delivered == 3
    assert "costlens anomaly alert: spend spike for model=a" in caplog.text
    webhook, slack = bodies
    assert webhook["type"] == "costlens.anomaly_alert"
    assert webhook["alert"]["top_call_ids"] == ["x"]  # type: ignore[index]
    assert "spend spike for model=a" in str(slack["text"])
