"""The prompt and response text a record keeps when the user opted in (`store_content=True`).

Off by default. When on, each side is cut to `max_chars` characters (the cut is flagged), and
anything shaped like an API key or a bearer token is replaced by `[redacted]` first: a key pasted
into a prompt must not reach a store.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from costlens.pipeline._estimate import _prompt
from costlens.pipeline._request import Request

__all__ = ["DEFAULT_MAX_CHARS", "content_of", "redact"]

DEFAULT_MAX_CHARS = 16_384
_KEYS = re.compile(
    r"""
    \b(?:sk|pk|rk)-(?:ant-|proj-|svcacct-|live-|test-)?[A-Za-z0-9_\-]{16,}   # OpenAI, Anthropic, Stripe-like
    | \bxai-[A-Za-z0-9]{20,}                                                # xAI
    | \bgsk_[A-Za-z0-9]{20,}                                                # Groq
    | \bAIza[0-9A-Za-z_\-]{30,}                                             # Google
    | \b(?:ghp|gho|github_pat)_[A-Za-z0-9_]{20,}                            # GitHub
    | \bAKIA[0-9A-Z]{16}\b                                                  # AWS access key id
    | (?i:\bbearer\s+)[A-Za-z0-9._\-~+/]{16,}=*                             # Authorization values
    """,
    re.VERBOSE,
)


def redact(text: str) -> str:
    """`text` with every API-key-shaped substring replaced by `[redacted]`."""
    return _KEYS.sub("[redacted]", text)


def _cut(text: str, max_chars: int) -> tuple[str, bool]:
    text = redact(text)
    return (text, False) if len(text) <= max_chars else (text[:max_chars], True)


def content_of(request: Request, output: Sequence[str], max_chars: int) -> dict[str, Any]:
    """`{"input", "output", "truncated"}`: the prompt's text parts (system, messages, instructions;
    one per line) and the answer's text, each cut to `max_chars` characters after redaction."""
    texts, _, _ = _prompt(request.operation, request.body)
    prompt, cut_in = _cut("\n".join(t for t in texts if "\x00" not in t), max_chars)
    answer, cut_out = _cut("".join(output), max_chars)
    return {"input": prompt, "output": answer, "truncated": cut_in or cut_out}
