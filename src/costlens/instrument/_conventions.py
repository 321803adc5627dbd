"""Provider usage conventions: how an OpenAI-compatible provider's usage numbers differ from OpenAI's.

OpenAI counts reasoning inside `completion_tokens`; some compatible providers do not. Each such
difference is a `UsageConvention` registered under the provider's costlens id, so the adapter
applies it without an `if provider == ...` anywhere:

    register_convention("x-ai", UsageConvention(completion_excludes_reasoning=True))

Sources for the built-in conventions:

* xAI: "reasoning token consumption will be counted separately from completion_tokens, but will
  be counted in the total_tokens" (https://docs.x.ai/docs/key-information/consumption-and-rate-limits);
  a real grok-4 body: prompt 4643 + completion 1187 + reasoning 860 = total 6690
  (evalstate/fast-agent#276). genai-prices' own x-ai `chat` extractor adds reasoning to the output
  the same way. xAI's Responses API follows OpenAI (`output_tokens` include reasoning), so the
  convention covers chat completions only.
* Perplexity: `reasoning_tokens` and `citation_tokens` are top-level usage fields reported beside
  `completion_tokens`, and `num_search_queries` counts the searches billed per 1,000
  (https://docs.perplexity.ai/getting-started/pricing; genai-prices' perplexity extractor adds
  both token counts to the output and maps the searches to `web_searches`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from costlens.pricing._providers import canonical_provider

__all__ = ["UsageConvention", "convention_for", "register_convention"]

_CHAT_OPERATIONS = frozenset({"chat", "text_completion"})


@dataclass(frozen=True, slots=True)
class UsageConvention:
    """How one provider's OpenAI-shaped usage must be read.

    `completion_excludes_reasoning`: the output is `completion_tokens` + reasoning (not OpenAI's
    "completion includes reasoning"). `reasoning_field` / `citation_field` / `search_field` name
    top-level usage keys holding reasoning tokens, citation tokens (output tokens billed apart,
    reported outside `completion_tokens`) and web searches billed per request. `operations` are
    the costlens operations the convention applies to.
    """

    completion_excludes_reasoning: bool = False
    reasoning_field: str | None = None
    citation_field: str | None = None
    search_field: str | None = None
    operations: frozenset[str] = _CHAT_OPERATIONS


_conventions: dict[str, UsageConvention] = {
    "x-ai": UsageConvention(completion_excludes_reasoning=True, reasoning_field="reasoning_tokens"),
    "perplexity": UsageConvention(
        completion_excludes_reasoning=True,
        reasoning_field="reasoning_tokens",
        citation_field="citation_tokens",
        search_field="num_search_queries",
    ),
}
_lock = threading.Lock()
# (provider as the caller spelt it, operation) -> its convention: `convention_for` runs for every
# response, so the name is made canonical once per spelling. Emptied by `register_convention`.
_resolved: dict[tuple[str, str], UsageConvention | None] = {}


def register_convention(provider: str, convention: UsageConvention | None) -> None:
    """Declare how `provider` reports usage (None removes a convention: plain OpenAI rules apply)."""
    key = canonical_provider(provider)
    with _lock:
        if convention is None:
            _conventions.pop(key, None)
        else:
            _conventions[key] = convention
        _resolved.clear()


def convention_for(provider: str, operation: str) -> UsageConvention | None:
    """The convention for a provider's calls of one operation; None: OpenAI's own rules."""
    key = (provider, operation)
    try:
        return _resolved[key]
    except KeyError:
        pass
    convention = _resolve(provider, operation)
    if len(_resolved) < 1_000:  # names invented without end must not grow it without end
        _resolved[key] = convention
    return convention


def _resolve(provider: str, operation: str) -> UsageConvention | None:
    found = _conventions.get(provider)
    if found is None:
        found = _conventions.get(canonical_provider(provider))
    if found is None or operation not in found.operations:
        return None
    return found
