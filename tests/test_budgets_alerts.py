"""Alerts: thresholds once per window (across ledgers sharing a file), forecasts, refusals, and every
sink: callback, logging, webhook (a local receiver: retries, timeout, never blocking the call), Slack."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costlens
from costlens.budgets import Alert, Budget, BudgetEngine, CallbackSink, LoggingSink, SlackSink, WebhookSink
from costlens.budgets._alerts import AlertDispatcher
from costlens.budgets._sqlite_ledger import SQLiteLedger
from costlens.config import configure_budgets, flush_alerts, reset_budgets
from costlens.testing import FakeProvider, FixedClock
from tests.conftest import Recorded

MSG: Any = [{"role": "user", "content": "hello"}]
DAY = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def clean(recorded: Recorded) -> Iterator[None]:
    yield
    reset_budgets()


def _client(fake: FakeProvider) -> openai.OpenAI:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    return costlens.track(client, provider="openai")


def _spend(client: openai.OpenAI, out: int = 1000, model: str = "gpt-4o") -> None:
    client.chat.completions.create(
        model=model, messages=MSG, max_tokens=out, extra_headers={"x-fake-output-tokens": str(out)}
    )


def _alert(kind: str = "threshold", **kw: Any) -> Alert:
    fields: dict[str, Any] = {
        "kind": kind,
        "budget": "b",
        "key": "b",
        "mode": "block",
        "message": "budget 'b': 80% of $10.00 spent ($8.00)",
        "limit_usd": Decimal(10),
        "spent_usd": Decimal(8),
        "reserved_usd": Decimal(0),
        "window": "day (UTC)",
        "window_start": DAY,
        "window_end": DAY + timedelta(days=1),
        "at": DAY + timedelta(hours=5),
        "threshold_pct": Decimal(80),
    }
    fields.update(kw)
    return Alert(**fields)


# -- when alerts fire ------------------------------------------------------------------------------------


def test_each_threshold_fires_once_per_window(fake: FakeProvider, clean: None) -> None:
    alerts: list[Alert] = []
    clock = FixedClock(DAY + timedelta(minutes=30))
    configure_budgets(
        [Budget("d", limit_usd="0.1", window="day", mode="warn", forecast=False)],
        ledger="memory://",
        sinks=[alerts.append],
        clock=clock,
    )
    client = _client(fake)
    for _ in range(12):  # $0.01 each: 50% after 5, 80% after 8, 100% after 10
        _spend(client)
    flush_alerts()
    assert [(a.kind, a.threshold_pct) for a in alerts] == [
        ("threshold", 50),
        ("threshold", 80),
        ("threshold", 100),
    ]
    assert alerts[1].spent_usd >= Decimal("0.08") and alerts[1].window_end == DAY + timedelta(days=1)
    assert "80% of $0.10 spent" in alerts[1].message
    clock.advance(delta=timedelta(days=1))  # a new window: they fire again
    for _ in range(6):
        _spend(client)
    flush_alerts()
    assert [a.threshold_pct for a in alerts] == [50, 80, 100, 50]


def test_thresholds_fire_once_across_engines_sharing_a_ledger_file(tmp_path: Path) -> None:
    """Two engines on one SQLite file stand for two processes: each alert fires in only one of them."""
    path = tmp_path / "budgets.db"
    seen: list[tuple[str, Alert]] = []
    budget = Budget("shared", limit_usd="1", window="day", forecast=False)
    engines = [
        BudgetEngine([budget], ledger=SQLiteLedger(path), sinks=[lambda a, n=n: seen.append((n, a))])
        for n in ("one", "two")
    ]
    at = datetime.now(UTC)
    applied = [e.applicable({}, "m", "p", at) for e in engines]
    for i in range(20):  # both see the same spend cross 50%, 80% and 100%
        engine, items = engines[i % 2], applied[i % 2]
        r = engine.ledger.reserve([a.key for a in items], 0, 60, at=at)
        engine.ledger.settle(r, 0)
        engine.watch.settled(items, r, 60_000_000 * (i + 1), at)
    for e in engines:
        e.dispatcher.flush()
        e.close()
    assert sorted(a.threshold_pct for _, a in seen) == [50, 80, 100]  # type: ignore[type-var]


def test_a_refused_call_fires_one_exhausted_alert_per_window(fake: FakeProvider, clean: None) -> None:
    alerts: list[Alert] = []
    configure_budgets([Budget("tiny", limit_usd="0.000001")], ledger="memory://", sinks=[alerts.append])
    client = _client(fake)
    for _ in range(3):
        with pytest.raises(costlens.BudgetExceeded):
            _spend(client, 10)
    flush_alerts()
    assert [a.kind for a in alerts] == ["exhausted"]
    assert "calls that would pass it are refused" in alerts[0].message


def test_an_exhausted_downgrade_budget_says_calls_are_downgraded(fake: FakeProvider, clean: None) -> None:
    alerts: list[Alert] = []
    tiny = {"limit_usd": "0.000001", "scope": {"feature": "x"}, "mode": "downgrade"}
    budgets = [Budget(n, downgrade_to="gpt-4o-mini", **tiny) for n in ("a", "b")]  # type: ignore[arg-type]
    configure_budgets(budgets, ledger="memory://", sinks=[alerts.append])
    client = _client(fake)
    with costlens.tags(feature="x"), pytest.raises(costlens.BudgetExceeded):
        _spend(client, 10)
    flush_alerts()
    assert sorted(a.budget for a in alerts) == ["a", "b"]
    assert all("downgraded to gpt-4o-mini" in a.message and "are refused" not in a.message for a in alerts)


def test_forecast_says_when_the_limit_will_be_hit(fake: FakeProvider, clean: None) -> None:
    alerts: list[Alert] = []
    clock = FixedClock(DAY + timedelta(hours=4))
    configure_budgets(
        [Budget("daily", limit_usd="0.5", window="day", thresholds=[100])],
        ledger="memory://",
        sinks=[alerts.append],
        clock=clock,
    )
    client = _client(fake)
    for _ in range(5):
        _spend(client)  # $0.01 each
    clock.advance(60)  # forecasts are checked at most once a minute
    _spend(client)  # $0.06 in the last 3 hours: ~$0.46 by midnight, under the limit
    flush_alerts()
    assert alerts == []
    for _ in range(4):
        _spend(client)
    clock.advance(60)
    _spend(client)  # $0.11 in the last 3 hours: ~$0.84 by midnight; $0.50 reached at ~14:40
    flush_alerts()
    (forecast,) = alerts
    assert forecast.kind == "forecast" and forecast.eta is not None and forecast.projected_usd is not None
    assert forecast.projected_usd > Decimal("0.5") > forecast.spent_usd
    assert DAY + timedelta(hours=14) < forecast.eta < DAY + timedelta(hours=15)
    assert f"you will hit $0.50 on {forecast.eta:%Y-%m-%d at %H:%M} UTC" in forecast.message


def test_notify_routes_a_budget_to_named_sinks(fake: FakeProvider, clean: None) -> None:
    ops: list[Alert] = []
    everyone: list[Alert] = []
    configure_budgets(
        [Budget("tiny", limit_usd="0.000001", notify=["ops"])],
        ledger="memory://",
        sinks=[CallbackSink(ops.append, name="ops"), CallbackSink(everyone.append, name="all")],
    )
    with pytest.raises(costlens.BudgetExceeded):
        _spend(_client(fake), 10)
    flush_alerts()
    assert len(ops) == 1 and everyone == []
    with pytest.raises(costlens.ConfigError, match="not configured"):
        configure_budgets([Budget("x", limit_usd=1, notify=["nobody"])], ledger="memory://")


# -- sinks ----------------------------------------------------------------------------------------------


def test_logging_sink_writes_one_line(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = AlertDispatcher([LoggingSink()])
    with caplog.at_level(logging.WARNING, logger="costlens.budgets"):
        dispatcher.submit(_alert())
        assert dispatcher.flush(5)
    assert "costlens budget alert: budget 'b': 80% of $10.00 spent" in caplog.text
    dispatcher.close()


def test_a_failing_sink_is_logged_and_the_others_still_deliver(caplog: pytest.LogCaptureFixture) -> None:
    got: list[Alert] = []

    def broken(alert: Alert) -> None:
        raise RuntimeError("sink down")

    dispatcher = AlertDispatcher([broken, got.append])
    dispatcher.submit(_alert())
    dispatcher.flush(5)
    dispatcher.close()
    assert len(got) == 1 and "sink down" in caplog.text


class Receiver:
    """A local webhook endpoint: answers with the queued statuses, optionally holding a request."""

    def __init__(self, statuses: list[int], hold: threading.Event | None = None, hold_s: float = 5) -> None:
        self.statuses, self.hold, self.hold_s = statuses, hold, hold_s
        self.bodies: list[Any] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.bodies.append(body)
                if receiver.hold is not None and len(receiver.bodies) == 1:
                    receiver.hold.wait(receiver.hold_s)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_webhook_posts_json_and_retries_server_errors() -> None:
    with Receiver([500, 503, 200]) as receiver:
        dispatcher = AlertDispatcher([WebhookSink(receiver.url, retries=3, backoff_s=0)])
        dispatcher.submit(_alert())
        dispatcher.flush(10)
        dispatcher.close()
    assert len(receiver.bodies) == 3
    body = receiver.bodies[-1]
    assert body["type"] == "costlens.budget_alert"
    assert body["alert"]["limit_usd"] == "10" and body["alert"]["threshold_pct"] == "80"
    assert body["alert"]["window_start"] == DAY.isoformat()


def test_webhook_gives_up_after_its_retries_and_does_not_retry_client_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Receiver([500, 500, 500, 404]) as receiver:
        dispatcher = AlertDispatcher([WebhookSink(receiver.url, retries=2, backoff_s=0)])
        dispatcher.submit(_alert())
        dispatcher.submit(_alert())  # the 4th request: a 404, not retried
        dispatcher.flush(10)
        dispatcher.close()
    assert len(receiver.bodies) == 4
    assert caplog.text.count("alert dropped") == 2 and "HTTP 404" in caplog.text


def test_webhook_times_out_then_retries() -> None:
    hold = threading.Event()
    with Receiver([], hold=hold) as receiver:
        dispatcher = AlertDispatcher([WebhookSink(receiver.url, timeout_s=0.2, retries=1, backoff_s=0)])
        dispatcher.submit(_alert())
        dispatcher.flush(10)
        hold.set()
        dispatcher.close()
    assert len(receiver.bodies) == 2  # the first timed out, the second was answered


def test_a_slow_webhook_never_blocks_the_call(fake: FakeProvider, clean: None) -> None:
    hold = threading.Event()
    with Receiver([], hold=hold, hold_s=30) as receiver:
        engine = configure_budgets(
            [Budget("tiny", limit_usd="0.000001")], ledger="memory://", sinks=[WebhookSink(receiver.url)]
        )
        with pytest.raises(costlens.BudgetExceeded):
            _spend(_client(fake), 10)  # fires an alert whose webhook is held by the receiver
        assert not engine.dispatcher.flush(0)  # still in flight, and the call has returned
        hold.set()
        assert engine.dispatcher.flush(10)
    assert len(receiver.bodies) == 1 and receiver.bodies[0]["alert"]["kind"] == "exhausted"


def test_slack_payload_has_text_and_blocks() -> None:
    with Receiver([]) as receiver:
        dispatcher = AlertDispatcher([SlackSink(receiver.url)])
        dispatcher.submit(_alert("forecast", projected_usd=Decimal("14.2"), eta=DAY + timedelta(hours=20)))
        dispatcher.flush(10)
        dispatcher.close()
    (body,) = receiver.bodies
    assert body["text"].startswith(":crystal_ball: budget 'b'")
    assert body["blocks"][0]["type"] == "section" and body["blocks"][0]["text"]["type"] == "mrkdwn"
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert "*Spent*\n$8 of $10" in fields


def test_webhook_urls_are_checked() -> None:
    with pytest.raises(costlens.ConfigError, match="http"):
        WebhookSink("ftp://example.com")


@settings(max_examples=500, deadline=None)
@given(
    pct=st.decimals(min_value=Decimal("0.001"), max_value=Decimal(1000), places=3),
    limit=st.integers(0, 10**15),
)
def test_a_threshold_is_crossed_at_the_exact_nano_usd(pct: Decimal, limit: int) -> None:
    """The integer mark each settle compares with is the least spend with `spend * 100 >= pct * limit`."""
    from costlens.budgets._model import _crossed_at

    mark = _crossed_at(pct, limit)
    assert mark * 100 >= pct * limit
    assert (mark - 1) * 100 < pct * limit


def test_forecasts_are_judged_at_each_call_s_start_and_out_of_order_settles_do_not_recheck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`BudgetEngine.settle` gives `Watch.settled` its clock, not a time: below every threshold, with
    a forecast checked under a minute ago, the clock is not read. A call that started earlier but
    settles later does not run the projection again; one started a minute after the last check does,
    and so does a clock set back more than a minute."""
    from costlens.budgets import _watch

    runs: list[int] = []
    real = _watch.projection
    monkeypatch.setattr(_watch, "projection", lambda *a: runs.append(1) or real(*a))
    engine = BudgetEngine([Budget("m", limit_usd="1000", window="month")], ledger="memory://")
    at = datetime(2025, 6, 10, 12, tzinfo=UTC)
    items = engine.applicable({}, "m", "p", at)
    reads: list[int] = []

    def clock() -> datetime:
        reads.append(1)
        return at

    def settle_started(offset_s: float) -> None:
        r = engine.ledger.reserve([a.key for a in items], 10, 60, at=at + timedelta(seconds=offset_s))
        engine.ledger.settle(r, 10)
        engine.watch.settled(items, r, 10, clock=clock)

    settle_started(0)  # the first: checked
    settle_started(5)
    settle_started(-3)  # started before the last check, settled after it
    assert (len(runs), len(reads)) == (1, 1)
    settle_started(61)  # a minute after the last check
    settle_started(-120)  # a clock set back over a minute
    assert (len(runs), len(reads)) == (3, 3)
    engine.close()
