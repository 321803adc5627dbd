"""`costlens.track(client)`: record the exact cost of every call a provider SDK client makes.

    client = costlens.track(openai.OpenAI(), feature="search")
    client.chat.completions.create(...)   # recorded, priced, attributed

Tracking patches one method of *this* client instance; other clients, and the SDK classes, are
untouched. A second `track` is a no-op; `untrack` restores the client exactly.
Providers plug in with `register_adapter`, so adding one edits no central `if/elif`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, TypeVar

from costlens._errors import CostlensError
from costlens.instrument._core import Adapter, using_pipeline, wrap_async_request, wrap_sync_request

__all__ = ["Adapter", "is_tracked", "register_adapter", "track", "untrack", "using_pipeline"]

C = TypeVar("C")

_STATE_ATTR = "_costlens_tracking"
# Instance attributes we set: the request choke point, and the copy methods, so that
# `client.with_options(timeout=5)` returns a client that is tracked too.
_PATCHED = ("request", "copy", "with_options")


def _default_adapters() -> list[Adapter]:
    from costlens.instrument.anthropic import AnthropicAdapter
    from costlens.instrument.openai import OpenAIAdapter

    return [OpenAIAdapter(), AnthropicAdapter()]


_adapters: list[Adapter] = []


def register_adapter(adapter: Adapter, *, first: bool = False) -> None:
    """Teach `track` a new client type. `first=True` lets it take precedence over built-ins."""
    adapters = _registered()
    if first:
        adapters.insert(0, adapter)
    else:
        adapters.append(adapter)


def _registered() -> list[Adapter]:
    if not _adapters:
        _adapters.extend(_default_adapters())
    return _adapters


@dataclass
class _Tracking:
    provider: str
    tags: dict[str, str]
    router: Any = None
    saved: dict[str, Any] = field(default_factory=dict)  # instance attributes we replaced


def is_tracked(client: object) -> bool:
    return _STATE_ATTR in getattr(client, "__dict__", {})


def track(client: C, *, provider: str | None = None, router: Any = None, **tags: object) -> C:
    """Record every LLM call `client` makes; returns the same client.

    `provider` names the price catalogue to use (inferred from the client class and base URL
    when omitted: `openai`, `azure`, `anthropic`, `groq`, ...). `tags` attribute every call of
    this client (e.g. `feature="chat"`); `costlens.tags(...)` blocks add to and override them.
    `router` (a `costlens.routing.Router`) routes the calls that name it (`model="costlens/auto"`)
    to the candidate it chooses; calls naming a real model are untouched.
    """
    if is_tracked(client):
        return client
    adapter = _adapter_for(client)
    state = _Tracking(
        provider=provider or adapter.provider_for(client),
        tags={k: str(v) for k, v in tags.items() if v is not None},
        router=router,
    )
    instance_dict: dict[str, Any] = vars(client)
    for name in _PATCHED:
        if name in instance_dict:
            state.saved[name] = instance_dict[name]
    original = client.request  # type: ignore[attr-defined]
    wrap = wrap_async_request if inspect.iscoroutinefunction(original) else wrap_sync_request
    instance_dict["request"] = wrap(original, adapter, state.provider, state.tags, state.router)
    if hasattr(client, "copy"):
        instance_dict["copy"] = instance_dict["with_options"] = _tracked_copy(client, state)
    instance_dict[_STATE_ATTR] = state
    return client


def untrack(client: C) -> C:
    """Undo `track`: the client behaves exactly as before. Untracking an untracked client is a no-op."""
    instance_dict: dict[str, Any] = vars(client)
    state: _Tracking | None = instance_dict.pop(_STATE_ATTR, None)
    if state is None:
        return client
    for name in _PATCHED:
        instance_dict.pop(name, None)
    instance_dict.update(state.saved)
    return client


def _adapter_for(client: object) -> Adapter:
    for adapter in _registered():
        if adapter.matches(client):
            return adapter
    known = ", ".join(a.name for a in _registered())
    raise CostlensError(
        f"costlens.track() does not know clients of type {type(client).__qualname__}; "
        f"supported: {known} SDK clients. Register others with costlens.instrument.register_adapter()."
    )


def _tracked_copy(client: Any, state: _Tracking) -> Any:
    original_copy = type(client).copy

    def copy(*args: Any, **kwargs: Any) -> Any:
        # The copy is built from the class method, so it starts untracked; track it the same way.
        copied = original_copy(client, *args, **kwargs)
        return track(copied, provider=state.provider, router=state.router, **state.tags)

    return copy
