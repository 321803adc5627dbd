"""The verifiers: regex, JSON schema, any callable, log-probability confidence, a judge model."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from costlens._errors import ConfigError

__all__ = ["Check", "JsonSchema", "Judge", "LogprobConfidence", "Regex", "Verdict", "Verifier"]


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str
    score: float | None = None


class Verifier(Protocol):
    name: str

    def verify(self, answer: str, response: Any = None, *, prompt: str = "") -> Verdict: ...


class Regex:
    """The answer matches `pattern` (`re.search`; anchor it for a full match)."""

    name = "regex"

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = re.compile(pattern, flags)

    def verify(self, answer: str, response: Any = None, *, prompt: str = "") -> Verdict:
        found = self.pattern.search(answer) is not None
        return Verdict(found, f"{'matches' if found else 'does not match'} /{self.pattern.pattern}/")


class JsonSchema:
    """The answer is JSON valid against `schema` (the `jsonschema` package, in the `router` extra)."""

    name = "json-schema"

    def __init__(self, schema: Mapping[str, Any]) -> None:
        try:
            import jsonschema  # type: ignore[import-untyped]
        except ImportError:
            raise ConfigError(
                "JsonSchema needs the jsonschema package: pip install 'llm-costlens[router]'"
            ) from None
        jsonschema.Draft202012Validator.check_schema(schema)
        self._validator = jsonschema.Draft202012Validator(schema)

    def verify(self, answer: str, response: Any = None, *, prompt: str = "") -> Verdict:
        try:
            data = json.loads(_strip_fence(answer))
        except ValueError as exc:
            return Verdict(False, f"not JSON ({exc})")
        error = next(iter(self._validator.iter_errors(data)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            return Verdict(False, f"JSON fails the schema at {where}: {error.message}")
        return Verdict(True, "valid JSON for the schema")


def _strip_fence(text: str) -> str:
    """Models often wrap JSON in a ```json fence."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[-1]
        stripped = stripped.rsplit("```", 1)[0]
    return stripped


class Check:
    """Any callable on the answer's text: True/False, or a `Verdict`."""

    name = "check"

    def __init__(self, fn: Callable[[str], bool | Verdict], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or str(getattr(fn, "__name__", "check"))

    def verify(self, answer: str, response: Any = None, *, prompt: str = "") -> Verdict:
        result = self.fn(answer)
        if isinstance(result, Verdict):
            return result
        return Verdict(bool(result), f"{self.name} {'passed' if result else 'failed'}")


class LogprobConfidence:
    """The mean token probability of the answer (from the response's `logprobs`, which the request
    must ask for: `logprobs=True`) is at least `min_mean_prob`. No log-probabilities: not passed."""

    name = "logprob"

    def __init__(self, min_mean_prob: float = 0.8) -> None:
        if not 0 < min_mean_prob <= 1:
            raise ConfigError(f"min_mean_prob must be in (0, 1], got {min_mean_prob}")
        self.min_mean_prob = min_mean_prob

    def verify(self, answer: str, response: Any = None, *, prompt: str = "") -> Verdict:
        values = _logprobs(response)
        if not values:
            return Verdict(False, "the response has no log-probabilities (ask with logprobs=True)")
        mean = sum(math.exp(v) for v in values) / len(values)
        ok = mean >= self.min_mean_prob
        return Verdict(
            ok, f"mean token probability {mean:.3f} {'>=' if ok else '<'} {self.min_mean_prob}", mean
        )


def _logprobs(response: Any) -> list[float]:
    choices = _get(response, "choices") or ()
    if not choices:
        return []
    content = _get(_get(choices[0], "logprobs"), "content") or ()
    return [v for item in content if isinstance(v := _get(item, "logprob"), int | float)]


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


_JUDGE_PROMPT = (
    "You grade answers. Question:\n{prompt}\n\nAnswer:\n{answer}\n\n"
    "Is the answer correct and complete? Reply with exactly PASS or FAIL."
)


class Judge:
    """A model grades the answer. `client` is an OpenAI-compatible client (track it, and the judge's
    own calls are recorded and priced like any other); the answer passes when the reply has PASS."""

    name = "judge"

    def __init__(self, client: Any, model: str, template: str = _JUDGE_PROMPT, **create: Any) -> None:
        self.client = client
        self.model = model
        self.template = template
        self.create = {"max_tokens": 5, **create}

    def verify(self, answer: str, response: Any = None, *, prompt: str = "") -> Verdict:
        content = self.template.format(prompt=prompt, answer=answer)
        reply = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": content}], **self.create
        )
        text = (reply.choices[0].message.content or "").strip().upper() if reply.choices else ""
        passed = "PASS" in text and "FAIL" not in text
        return Verdict(passed, f"judge {self.model} said {text[:20] or '(nothing)'}")
