"""The base of every answer check, and the checks that can judge an answer alone: regex, JSON schema,
any callable, log-probability confidence, a judge model.

One class serves two roles. As a *verifier* (the router's cascade) it judges an answer alone:
`verify(answer, response, prompt=)`. As a *scorer* (experiments) it compares an answer with the
item's expected value: `score(answer, expected, response, prompt=, choices=)`. A check that has
nothing to compare without an expected value (`ExactMatch`, `Numeric`, ...) sets `needs_expected`
and refuses to `verify`; a check that needs no expected value ignores it when scoring, or uses it
when it can (`JsonSchema` also matches fields, `Judge` grades against a reference).
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from costlens._errors import ConfigError

__all__ = [
    "Check",
    "JsonSchema",
    "Judge",
    "LogprobConfidence",
    "Regex",
    "Scorer",
    "Verdict",
    "Verifier",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """`passed`; why, in words; a score in [0, 1] where the check has one (a confidence, the share of
    JSON fields that match); and what the check read from the answer (a number, a letter) if anything."""

    passed: bool
    reason: str
    score: float | None = None
    extracted: str | None = None


class Verifier(Protocol):
    """What the router's cascade needs: a name and `verify`."""

    name: str

    def verify(self, answer: str, response: Any = None, *, prompt: str = "") -> Verdict: ...


class Scorer:
    """Base of every check. Subclasses implement `_check`; `expected` is None when verifying."""

    name: str = "scorer"
    needs_expected: bool = False

    @property
    def can_verify(self) -> bool:
        """Whether this check can judge an answer without an expected value (a cascade verifier)."""
        return not self.needs_expected

    def score(
        self,
        answer: str,
        expected: Any,
        response: Any = None,
        *,
        prompt: str = "",
        choices: Sequence[str] = (),
    ) -> Verdict:
        """Compare `answer` with `expected` (a list or tuple: any of them; see each scorer).
        `choices` are the item's options, for multiple-choice answers given as text."""
        if expected is None and self.needs_expected:
            raise ConfigError(f"the {self.name} scorer needs an expected answer and this item has none")
        return self._check(answer, expected, response, prompt=prompt, choices=choices)

    def verify(self, answer: str, response: Any = None, *, prompt: str = "") -> Verdict:
        """Judge `answer` alone, as the router's cascade does."""
        if self.needs_expected:
            raise ConfigError(
                f"the {self.name} check compares an answer with an expected one and cannot verify an "
                "answer alone; use it as an experiment scorer"
            )
        return self._check(answer, None, response, prompt=prompt, choices=())

    def _check(
        self, answer: str, expected: Any, response: Any, *, prompt: str, choices: Sequence[str]
    ) -> Verdict:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} scorer {self.name!r}>"


def alternatives(expected: Any) -> list[Any]:
    """A list or tuple of expected values means 'any of these'."""
    if isinstance(expected, list | tuple):
        return list(expected)
    return [expected]


class Regex(Scorer):
    """The answer matches `pattern` (`re.search`; anchor it, or set `fullmatch`, for a whole match).
    Without a pattern, each item's expected value is its pattern (a list: any of them)."""

    name = "regex"

    def __init__(
        self,
        pattern: str | None = None,
        flags: int = 0,
        *,
        ignore_case: bool = False,
        multiline: bool = False,
        dotall: bool = False,
        fullmatch: bool = False,
    ) -> None:
        self.flags = (
            flags
            | (re.IGNORECASE if ignore_case else 0)
            | (re.MULTILINE if multiline else 0)
            | (re.DOTALL if dotall else 0)
        )
        self.fullmatch = fullmatch
        self.pattern = None if pattern is None else _compile(pattern, self.flags)
        self.needs_expected = pattern is None

    def _check(
        self, answer: str, expected: Any, response: Any, *, prompt: str, choices: Sequence[str]
    ) -> Verdict:
        patterns = (
            [self.pattern]
            if self.pattern is not None
            else [_compile(str(p), self.flags) for p in alternatives(expected)]
        )
        text = answer.strip() if self.fullmatch else answer
        for pattern in patterns:
            found = pattern.fullmatch(text) if self.fullmatch else pattern.search(text)
            if found is not None:
                return Verdict(True, f"matches /{pattern.pattern}/", extracted=found.group(0))
        shown = " or ".join(f"/{p.pattern}/" for p in patterns)
        return Verdict(False, f"does not match {shown}")


def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ConfigError(f"invalid regular expression /{pattern}/: {exc}") from None


class JsonSchema(Scorer):
    """The answer is JSON (a ```json fence is allowed), valid against `schema` when one is given (the
    `jsonschema` package, in the `router` extra).

    As a scorer it also matches fields against the expected value (a JSON object or its text):
    `fields` are dotted paths (`"address.city"`, `"items.0.sku"`); without them, every top-level key
    of an expected object, or the whole value otherwise. The score is the share of fields that match;
    the answer passes when it is valid and every field matches. Numbers compare by value, `true` is
    not `1`; `normalize_strings` compares strings case- and whitespace-insensitively.
    """

    name = "json-schema"

    def __init__(
        self,
        schema: Mapping[str, Any] | None = None,
        fields: Sequence[str] | None = None,
        *,
        normalize_strings: bool = False,
    ) -> None:
        self.schema = schema
        self.fields = None if fields is None else tuple(fields)
        self.normalize_strings = normalize_strings
        self._validator: Any = None
        if schema is not None:
            try:
                import jsonschema  # type: ignore[import-untyped]
            except ImportError:
                raise ConfigError(
                    "JsonSchema needs the jsonschema package: pip install 'llm-costlens[router]'"
                ) from None
            jsonschema.Draft202012Validator.check_schema(schema)
            self._validator = jsonschema.Draft202012Validator(schema)

    def _check(
        self, answer: str, expected: Any, response: Any, *, prompt: str, choices: Sequence[str]
    ) -> Verdict:
        try:
            data = json.loads(_strip_fence(answer))
        except ValueError as exc:
            return Verdict(False, f"not JSON ({exc})", 0.0 if expected is not None else None)
        if self._validator is not None:
            error = next(iter(self._validator.iter_errors(data)), None)
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                return Verdict(
                    False,
                    f"JSON fails the schema at {where}: {error.message}",
                    0.0 if expected is not None else None,
                )
        if expected is None:
            return Verdict(True, "valid JSON for the schema" if self.schema is not None else "valid JSON")
        return self._match(data, expected)

    def _match(self, data: Any, expected: Any) -> Verdict:
        if isinstance(expected, str):
            try:
                expected = json.loads(_strip_fence(expected))
            except ValueError:
                raise ConfigError(f"the expected value is not JSON: {expected[:80]!r}") from None
        if self.fields is not None:
            paths: list[str] = list(self.fields)
        elif isinstance(expected, dict):
            paths = list(expected)
        else:
            paths = [""]
        if not paths:
            return Verdict(True, "no fields to match", 1.0)
        wrong: list[str] = []
        for path in paths:
            want, has_want = _at(expected, path)
            got, has_got = _at(data, path)
            if not has_want:
                raise ConfigError(f"the expected value has no field {path!r}")
            if not has_got or not _json_equal(got, want, self.normalize_strings):
                wrong.append(path or "(root)")
        share = (len(paths) - len(wrong)) / len(paths)
        if wrong:
            shown = ", ".join(wrong[:3]) + (f" and {len(wrong) - 3} more" if len(wrong) > 3 else "")
            return Verdict(False, f"{len(wrong)} of {len(paths)} fields differ: {shown}", share)
        return Verdict(True, f"valid JSON; {len(paths)} of {len(paths)} fields match", share)


def _at(data: Any, path: str) -> tuple[Any, bool]:
    """The value at a dotted path (list indexes as numbers); whether it exists."""
    if not path:
        return data, True
    for part in path.split("."):
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.lstrip("-").isdigit() and -len(data) <= int(part) < len(data):
            data = data[int(part)]
        else:
            return None, False
    return data, True


def _json_equal(a: Any, b: Any, normalize: bool) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return " ".join(a.casefold().split()) == " ".join(b.casefold().split()) if normalize else a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y, normalize) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k], normalize) for k in a)
    return a is None and b is None


def _strip_fence(text: str) -> str:
    """Models often wrap JSON in a ```json fence."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[-1]
        stripped = stripped.rsplit("```", 1)[0]
    return stripped


class Check(Scorer):
    """Any callable: `fn(answer)` judges an answer alone; `fn(answer, expected)` compares (it is
    detected from the callable's signature, or set with `with_expected`). Returns True/False, a
    number in [0, 1] (passed when >= 0.5), or a `Verdict`."""

    name = "check"

    def __init__(
        self,
        fn: Callable[..., bool | float | Verdict],
        name: str | None = None,
        *,
        with_expected: bool | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or str(getattr(fn, "__name__", "check"))
        if with_expected is None:
            with_expected = _positional_arity(fn) >= 2
        self.with_expected = with_expected
        self.needs_expected = with_expected

    def _check(
        self, answer: str, expected: Any, response: Any, *, prompt: str, choices: Sequence[str]
    ) -> Verdict:
        result = self.fn(answer, expected) if self.with_expected else self.fn(answer)
        if isinstance(result, Verdict):
            return result
        if isinstance(result, bool) or result is None:
            return Verdict(bool(result), f"{self.name} {'passed' if result else 'failed'}")
        value = float(result)
        return Verdict(value >= 0.5, f"{self.name} scored {value:.3g}", value)


def _positional_arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in kinds)


class LogprobConfidence(Scorer):
    """The mean token probability of the answer (from the response's `logprobs`, which the request
    must ask for: `logprobs=True`) is at least `min_mean_prob`. No log-probabilities: not passed.
    As a scorer it ignores the expected value (it measures confidence, not correctness)."""

    name = "logprob"

    def __init__(self, min_mean_prob: float = 0.8) -> None:
        if not 0 < min_mean_prob <= 1:
            raise ConfigError(f"min_mean_prob must be in (0, 1], got {min_mean_prob}")
        self.min_mean_prob = min_mean_prob

    def _check(
        self, answer: str, expected: Any, response: Any, *, prompt: str, choices: Sequence[str]
    ) -> Verdict:
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
_JUDGE_REFERENCE_PROMPT = (
    "You grade answers against a reference answer. Question:\n{prompt}\n\n"
    "Reference answer:\n{expected}\n\nAnswer to grade:\n{answer}\n\n"
    "Does the answer agree with the reference? Reply with exactly PASS or FAIL."
)


class Judge(Scorer):
    """A model grades the answer; it passes when the reply has PASS (and not FAIL).

    `client` is an OpenAI-compatible client (`client.chat.completions.create`), an Anthropic client
    (`client.messages.create`), or a callable taking the grading prompt and returning the reply's
    text. Track the client and the judge's own calls are recorded and priced like any other.
    As a verifier it grades the answer with `template` ({prompt}, {answer}); as a scorer with an
    expected value it grades against that reference with `reference_template` (adds {expected}).
    """

    name = "judge"

    def __init__(
        self,
        client: Any,
        model: str,
        template: str = _JUDGE_PROMPT,
        *,
        reference_template: str = _JUDGE_REFERENCE_PROMPT,
        **create: Any,
    ) -> None:
        if client is None:
            raise ConfigError("a judge needs a client (a tracked OpenAI or Anthropic client, or a callable)")
        self.client = client
        self.model = model
        self.template = template
        self.reference_template = reference_template
        self.create = {"max_tokens": 5, **create}

    def _check(
        self, answer: str, expected: Any, response: Any, *, prompt: str, choices: Sequence[str]
    ) -> Verdict:
        if expected is None:
            content = self.template.format(prompt=prompt, answer=answer)
        else:
            reference = " / ".join(e if isinstance(e, str) else json.dumps(e) for e in alternatives(expected))
            content = self.reference_template.format(prompt=prompt, answer=answer, expected=reference)
        text = self._ask(content).strip().upper()
        passed = "PASS" in text and "FAIL" not in text
        return Verdict(passed, f"judge {self.model} said {text[:20] or '(nothing)'}")

    def _ask(self, content: str) -> str:
        messages = [{"role": "user", "content": content}]
        chat = getattr(self.client, "chat", None)
        if chat is not None:
            reply = chat.completions.create(model=self.model, messages=messages, **self.create)
            return (reply.choices[0].message.content or "") if reply.choices else ""
        api = getattr(self.client, "messages", None)
        if api is not None and hasattr(api, "create"):
            reply = api.create(model=self.model, messages=messages, **self.create)
            return "".join(getattr(block, "text", "") for block in (reply.content or ()))
        if callable(self.client):
            return str(self.client(content))
        raise ConfigError("the judge's client has neither chat.completions nor messages and is not callable")
