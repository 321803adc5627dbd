"""Budget alerts and the sinks that deliver them, on a background thread: never in the call's way.

Sinks: `CallbackSink` (any callable taking an `Alert`; a bare callable works too), `LoggingSink`,
`WebhookSink` (JSON POST with a timeout and retries) and `SlackSink` (a webhook whose JSON is a
Slack message: `text` plus `blocks`, which Slack, Mattermost and Rocket.Chat incoming webhooks accept).
A budget's `notify` names the sinks it goes to (all sinks when unset).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from costlens._errors import ConfigError

__all__ = [
    "Alert",
    "AlertDispatcher",
    "AlertKind",
    "AlertSink",
    "CallbackSink",
    "LoggingSink",
    "SlackSink",
    "WebhookSink",
    "as_sink",
    "limit_effect",
]

log = logging.getLogger("costlens")
AlertKind = Literal["threshold", "forecast", "exhausted"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. `threshold`: settled spend reached `threshold_pct` of the limit. `forecast`: at the
    recent rate the window ends above the limit (`projected_usd`, reached at `eta`). `exhausted`: the
    budget refused (`block`) or downgraded a call. Each fires once per budget key per window."""

    kind: AlertKind
    budget: str
    key: str
    mode: str
    message: str
    limit_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal
    window: str
    window_start: datetime
    window_end: datetime | None
    at: datetime
    threshold_pct: Decimal | None = None
    projected_usd: Decimal | None = None
    eta: datetime | None = None
    notify: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: money as exact decimal strings, times as ISO 8601."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            if name == "notify":
                continue
            value = getattr(self, name)
            if isinstance(value, Decimal):
                value = format(value, "f")
            elif isinstance(value, datetime):
                value = value.isoformat()
            out[name] = value
        return out


def limit_effect(mode: str, downgrade_to: str | None = None) -> str:
    """What a budget does to calls once its limit is reached, worded by its mode: the end of an
    `exhausted` alert's message (`block`: refused; `downgrade`: sent to the cheaper model; `warn`:
    nothing is held back)."""
    if mode == "downgrade" and downgrade_to:
        return (
            f"calls that would pass it are downgraded to {downgrade_to} "
            f"(refused only when {downgrade_to} would pass it too)"
        )
    if mode == "warn":
        return "calls go on (mode warn: nothing is refused or downgraded)"
    return "calls that would pass it are refused"


@runtime_checkable
class AlertSink(Protocol):
    name: str | None

    def send(self, alert: Alert) -> None:
        """Deliver one alert. Runs on the alert thread; may block; an exception is logged."""


class CallbackSink:
    def __init__(self, fn: Callable[[Alert], object], *, name: str | None = None) -> None:
        self.fn = fn
        self.name = name

    def send(self, alert: Alert) -> None:
        self.fn(alert)


class LoggingSink:
    """Each alert as one log line (`WARNING` on the `costlens.budgets` logger by default)."""

    def __init__(
        self, logger: str = "costlens.budgets", level: int = logging.WARNING, *, name: str | None = None
    ) -> None:
        self.logger = logging.getLogger(logger)
        self.level = level
        self.name = name

    def send(self, alert: Alert | Mapping[str, Any]) -> None:
        if isinstance(alert, Mapping):  # an analytics event, e.g. an anomaly
            self.logger.log(
                self.level, "costlens %s alert: %s", alert.get("kind", "event"), alert.get("message")
            )
            return
        self.logger.log(self.level, "costlens budget alert: %s", alert.message)


class WebhookSink:
    """POST each alert as JSON. Retries connection errors, timeouts, 429 and 5xx `retries` times,
    waiting `backoff_s`, then 2x, 4x... between attempts; gives up with one log line."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook url {url!r} must start with http:// or https://")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ConfigError("webhook timeout_s must be > 0, retries and backoff_s >= 0")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.headers = dict(headers or {})
        self.name = name
        self._stop = threading.Event()

    def payload(self, alert: Alert | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(alert, Mapping):  # analytics events (anomalies) use the same sinks
            return {"type": f"costlens.{alert.get('kind', 'event')}_alert", "alert": dict(alert)}
        return {"type": "costlens.budget_alert", "alert": alert.as_dict()}

    def send(self, alert: Alert | Mapping[str, Any]) -> None:
        data = json.dumps(self.payload(alert)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "costlens", **self.headers}
        for attempt in range(self.retries + 1):
            problem = self._post(data, headers)
            if problem is None:
                return
            if problem.startswith("HTTP 4") and not problem.startswith("HTTP 429"):
                break  # a client error will not get better by asking again
            if attempt < self.retries and self._stop.wait(self.backoff_s * 2**attempt):
                break
        log.warning(
            "costlens: alert webhook %s failed (%s); alert dropped: %s",
            self.url,
            problem,
            alert.get("message") if isinstance(alert, Mapping) else alert.message,
        )

    def _post(self, data: bytes, headers: dict[str, str]) -> str | None:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def close(self) -> None:
        self._stop.set()


class SlackSink(WebhookSink):
    """A Slack-compatible incoming-webhook message: `text` (the fallback) and `blocks`."""

    def payload(self, alert: Alert | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(alert, Mapping):  # an analytics event, e.g. an anomaly
            text = f":chart_with_upwards_trend: *costlens*: {alert.get('message')}"
            return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
        icon = {"threshold": ":warning:", "forecast": ":crystal_ball:", "exhausted": ":no_entry:"}[alert.kind]
        fields = [
            f"*Budget*\n`{alert.key}`",
            f"*Window*\n{alert.window}",
            f"*Spent*\n${format(alert.spent_usd, 'f')} of ${format(alert.limit_usd, 'f')}",
            f"*Mode*\n{alert.mode}",
        ]
        return {
            "text": f"{icon} {alert.message}",
            "blocks": [
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"{icon} *costlens*: {alert.message}"},
                },
                {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
            ],
        }


def as_sink(sink: AlertSink | Callable[[Alert], object]) -> AlertSink:
    if isinstance(sink, AlertSink):
        return sink
    if callable(sink):
        return CallbackSink(sink)
    raise ConfigError(f"an alert sink must have send(alert) or be a callable, got {sink!r}")


class AlertDispatcher:
    """Delivers alerts to sinks on one daemon thread; `flush()` waits until all are delivered."""

    def __init__(self, sinks: Sequence[AlertSink | Callable[[Alert], object]] = ()) -> None:
        self.sinks = [as_sink(s) for s in sinks]
        names = [s.name for s in self.sinks if s.name]
        if len(names) != len(set(names)):
            raise ConfigError(f"alert sink names must be unique, got {names}")
        self._closed = False
        self._fresh_state()

    def _fresh_state(self) -> None:
        """Queue and thread of this process (a forked child starts with none of its parent's)."""
        self._pid = os.getpid()
        self._queue: deque[Alert] = deque()
        self._cond = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None

    def check_names(self, notify: Sequence[str] | None, budget: str) -> None:
        known = {s.name for s in self.sinks if s.name}
        for name in notify or ():
            if name not in known:
                raise ConfigError(
                    f"budget {budget!r} notifies alert sink {name!r}, which is not configured "
                    f"(named sinks: {', '.join(sorted(known)) or 'none'})"
                )

    def submit(self, alert: Alert) -> None:
        if not self.sinks:
            return
        if self._pid != os.getpid():
            self._fresh_state()
        with self._cond:
            if self._closed:
                return
            self._queue.append(alert)
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="costlens-alerts", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                alert = self._queue.popleft()
            try:
                for sink in self.sinks:
                    if alert.notify is None or sink.name in alert.notify:
                        self._deliver(sink, alert)
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

    @staticmethod
    def _deliver(sink: AlertSink, alert: Alert) -> None:
        try:
            sink.send(alert)
        except Exception:
            log.exception(
                "costlens: budget alert sink %r failed; alert: %s", sink.name or sink, alert.message
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every alert submitted so far is delivered; False if `timeout` ran out."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float | None = 5.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        for sink in self.sinks:
            closer = getattr(sink, "close", None)
            if callable(closer):
                closer()
        if thread is not None:
            thread.join(timeout)
