"""`FakeProvider`: a local HTTP server that speaks enough OpenAI and Anthropic for the real SDKs.

The SDK clients talk to it over real HTTP on 127.0.0.1, so everything they do (retries, timeouts,
SSE parsing, usage models) runs exactly as against the live APIs. Stdlib only; the HTTP layer
lives in `_http`, the response shapes in `_openai` / `_anthropic`.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from costlens.testing._config import Behaviour, ConfigError, FakeUsage, Fault, Overrides
from costlens.testing._finetune import FakeFineTuning
from costlens.testing._http import FakeRequest, Server

__all__ = ["FakeProvider", "FakeRequest", "serve_forever"]

_STOP_JOIN_S = 2.0


class Clock(Protocol):
    def now(self) -> datetime: ...


#: A request's JSON body -> the answer text, a `Fault`, or None (the default answer).
Responder = Callable[[dict[str, Any]], "str | Fault | None"]


class FakeProvider:
    """A fake OpenAI + Anthropic endpoint on 127.0.0.1 (see the package docstring for the full API).

    Precedence for one request: `x-fake-*` headers > the next `enqueue`d behaviour > `default_usage`
    and `latency_s`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        default_usage: FakeUsage | None = None,
        latency_s: float = 0.0,
        clock: Clock | None = None,
        responder: Responder | None = None,
    ) -> None:
        self.host = host
        #: Answers a request by its JSON body when nothing is queued: the answer text (a str), a
        #: `Fault`, or None for the default answer. Scripted answer keys (per model, per prompt) use it;
        #: it runs in the server's threads, so it must be thread-safe.
        self.responder = responder
        self._initial_responder = responder
        self.default_usage = default_usage
        self.latency_s = latency_s
        self.clock = clock
        self._requested_port = port
        self._initial = (default_usage, latency_s)
        self._lock = threading.Lock()
        self._queue: collections.deque[Behaviour] = collections.deque()
        self._requests: list[FakeRequest] = []
        self._seq = 0
        self._stopping = threading.Event()
        self._life_lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        #: Files and fine-tuning jobs (`/v1/files`, `/v1/fine_tuning/jobs`); see `costlens.testing._finetune`.
        self.fine_tuning = FakeFineTuning(self._created)

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        """Bind and serve in a daemon thread; returns self. Port 0 picks a free port."""
        with self._life_lock:
            if self._server is not None:
                return self
            self._stopping.clear()
            self._server = Server((self.host, self._requested_port), self)
            # A short poll keeps stop() at a few ms: shutdown() waits for the loop to notice.
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name="costlens-fake",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly: wakes handlers sleeping in a delay and closes kept-alive connections."""
        with self._life_lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        handlers = server.drop_connections()
        server.server_close()
        deadline = time.monotonic() + _STOP_JOIN_S
        for handler in [thread, *handlers]:
            handler.join(max(deadline - time.monotonic(), 0))

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeProvider is not running; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """Root URL: Anthropic's `base_url` and Azure's `azure_endpoint`."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    # -- behaviour -------------------------------------------------------------------------------------

    def enqueue(
        self,
        usage: FakeUsage | None = None,
        fault: Fault | None = None,
        text: str | None = None,
        latency_s: float | None = None,
        *,
        times: int = 1,
        raw: dict[str, Any] | list[Any] | None = None,
    ) -> None:
        """Queue a one-shot behaviour for the next request(s), FIFO; None fields fall back to the defaults.

        `raw` answers verbatim, e.g. with a body captured from the real API: a dict is sent as the
        JSON body; a list is sent as the SSE events of a stream, each a dict (sent with
        `event: <its "type">` when it has one, as Anthropic and Responses events do), a
        `(event name or None, data)` pair, or the string "[DONE]". Token settings do not apply."""
        behaviour = Behaviour(usage=usage, fault=fault, text=text, latency_s=latency_s, raw=raw)
        with self._lock:
            self._queue.extend([behaviour] * times)

    @property
    def pending(self) -> int:
        """Queued behaviours not consumed yet."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[FakeRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget requests and queued behaviours; restore the constructor's default usage, latency
        and responder."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self.default_usage, self.latency_s = self._initial
            self.responder = self._initial_responder
        self.fine_tuning.reset()

    # -- used by the handler ---------------------------------------------------------------------------

    def _record(self, request: FakeRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next(self, overrides: Overrides, body: Any = None) -> tuple[Behaviour, str]:
        """Pop the queue (else ask the responder) and merge with the defaults and `overrides`; also
        hands out the id seed."""
        with self._lock:
            queued = self._queue.popleft() if self._queue else None
            self._seq += 1
            seed = str(self._seq)
        if queued is None:
            queued = self._respond(body)
        base = Behaviour(
            usage=queued.usage or self.default_usage,
            fault=queued.fault,
            text=queued.text,
            latency_s=self.latency_s if queued.latency_s is None else queued.latency_s,
            raw=queued.raw,
        )
        return overrides.apply(base), seed

    def _respond(self, body: Any) -> Behaviour:
        responder = self.responder
        answer = responder(body) if responder is not None and isinstance(body, dict) else None
        if isinstance(answer, Fault):
            return Behaviour(fault=answer)
        if answer is not None and not isinstance(answer, str):
            kind = type(answer).__name__
            raise ConfigError(f"the fake's responder returned {kind}; return str, Fault or None")
        return Behaviour(text=answer)

    def _created(self) -> int:
        return int(self.clock.now().timestamp() if self.clock is not None else time.time())


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8900,
    *,
    default_usage: FakeUsage | None = None,
    on_ready: Callable[[FakeProvider], None] | None = None,
) -> None:
    """Run a `FakeProvider` in the foreground until KeyboardInterrupt (for `costlens fake-provider`).

    `on_ready(fake)` is called once it listens, e.g. to print `fake.base_url` when `port=0`.
    Returns normally after Ctrl-C.
    """
    fake = FakeProvider(host, port, default_usage=default_usage).start()
    try:
        if on_ready is not None:
            on_ready(fake)
        while not fake._stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
