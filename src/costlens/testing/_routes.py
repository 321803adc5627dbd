"""Which endpoint a path is, and how to answer it: the table the HTTP handler dispatches on."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from costlens.testing import _anthropic, _openai
from costlens.testing._config import Call
from costlens.testing._openai import SSE

__all__ = ["Endpoint", "Route", "match_route"]

Provider = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How to answer one operation: which fields hold the prompt, which bound the output, the builders."""

    prompt_keys: tuple[str, ...]
    bound_keys: tuple[str, ...]
    plain: Callable[[Call], dict[str, Any]]
    stream: Callable[[Call], list[SSE]] | None = None

    def bound(self, body: Mapping[str, Any]) -> int | None:
        """The request's output-token limit, if it sets one."""
        for key in self.bound_keys:
            value = body.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider
    endpoint: Endpoint
    deployment: str | None = None

    def error_body(self, status: int, message: str | None, request_id: str) -> dict[str, Any]:
        if self.provider == "anthropic":
            return _anthropic.error_body(status, message, request_id)
        return _openai.error_body(status, message)


_MESSAGES = Endpoint(("system", "messages"), ("max_tokens",), _anthropic.message, _anthropic.message_stream)
_COUNT_TOKENS = Endpoint(("system", "messages"), (), _anthropic.count_tokens)

_OPENAI_OPS: dict[str, Endpoint] = {
    "chat/completions": Endpoint(
        ("messages",), ("max_completion_tokens", "max_tokens"), _openai.chat_completion, _openai.chat_stream
    ),
    "responses": Endpoint(
        ("input", "instructions"), ("max_output_tokens",), _openai.response_object, _openai.responses_stream
    ),
    "embeddings": Endpoint(("input",), (), _openai.embeddings),
    "completions": Endpoint(("prompt",), ("max_tokens",), _openai.completion, _openai.completion_stream),
}

_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/(.+)")
#: OpenAI (`/v1/...`), Azure v1 (`/openai/v1/...`) and Azure's deployment-less form (`/openai/...`).
_OPENAI_PREFIXES = ("/v1/", "/openai/v1/", "/openai/")


def match_route(path: str) -> Route | None:
    """The route for a request path (query string already removed), None when unknown."""
    path = path.rstrip("/")
    if path == "/v1/messages":
        return Route("anthropic", _MESSAGES)
    if path == "/v1/messages/count_tokens":
        return Route("anthropic", _COUNT_TOKENS)
    azure = _AZURE_DEPLOYMENT.fullmatch(path)
    if azure and azure[2] in _OPENAI_OPS:
        return Route("openai", _OPENAI_OPS[azure[2]], deployment=azure[1])
    for prefix in _OPENAI_PREFIXES:
        if path.startswith(prefix) and path[len(prefix) :] in _OPENAI_OPS:
            return Route("openai", _OPENAI_OPS[path[len(prefix) :]])
    return None
