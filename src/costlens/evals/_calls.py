"""Which client a strategy calls through, and the call itself (OpenAI chat, Anthropic messages, or a
router's `create`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costlens._errors import ConfigError
from costlens.evals._config import ExperimentSpec
from costlens.evals._strategy import Rendered, Strategy

__all__ = ["Clients", "answer_text", "call_model", "client_for"]

#: SDK clients by strategy name, provider or API ("openai", "anthropic"), looked up in that order.
Clients = Mapping[str, Any]
_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def client_for(clients: Clients | None, strategy: Strategy | None, api: str, spec: ExperimentSpec) -> Any:
    """The tracked client a strategy (or, with None, the judge) calls through, with the run's
    retries and timeout. A given client that is not tracked yet is tracked here."""
    from costlens.instrument import is_tracked, track

    provider = strategy.provider if strategy is not None else None
    keys = [strategy.name, provider, api] if strategy is not None else ["judge", api]
    found = [clients[k] for k in keys if k and clients is not None and k in clients]
    client = found[0] if found else _from_environment(api, strategy)
    if not is_tracked(client):
        track(client, provider=provider)
    return client.with_options(max_retries=spec.max_retries, timeout=spec.timeout_s)


def _from_environment(api: str, strategy: Strategy | None) -> Any:
    who = f"strategy {strategy.name!r}" if strategy is not None else "the judge"
    try:
        if api == "anthropic":
            import anthropic

            return anthropic.Anthropic()
        import openai

        return openai.OpenAI()
    except ImportError:
        raise ConfigError(f"{who} calls the {api} API: pip install 'llm-costlens[{api}]'") from None
    except Exception as exc:  # the SDK refuses to build without a key
        raise ConfigError(
            f"{who} calls the {api} API and no client could be made from the environment ({exc}); "
            f"set {_KEYS.get(api, 'the API key')} (and the base URL for a compatible provider) "
            "or pass clients="
        ) from None


def call_model(client: Any, strategy: Strategy, rendered: Rendered) -> Any:
    """One request, as the strategy's API shapes it; a router strategy routes through its router."""
    body = rendered.body()
    if strategy.router is not None:
        return strategy.router.create(client, **body)
    if rendered.api == "anthropic":
        return client.messages.create(**body)
    return client.chat.completions.create(**body)


def answer_text(response: Any) -> str:
    """The answer's text: an OpenAI chat completion's first choice, or an Anthropic message's text blocks."""
    choices = getattr(response, "choices", None)
    if choices:
        message = getattr(choices[0], "message", None)
        return str(getattr(message, "content", None) or "")
    blocks = getattr(response, "content", None)
    if isinstance(blocks, list):
        return "".join(str(getattr(b, "text", "") or "") for b in blocks if getattr(b, "type", "") == "text")
    if isinstance(response, Mapping):
        return str(response.get("text") or "")
    return ""
