"""The scorers that compare an answer with an expected value, and the registry that names every check
for experiment files (`scorer = "numeric"`, or `scorer = { name = "numeric", abs_tol = 0.01 }`).

    ExactMatch()                          "Paris" == "Paris" (surrounding whitespace aside)
    Normalized()                          "  the PARIS! " == "paris" (case, whitespace, punctuation)
    Numeric(abs_tol=0.01)                 "It costs $1,234.50." == 1234.5; "42%" == 42 or 0.42
    MultipleChoice()                      "The answer is (B)." == "B"
"""

from __future__ import annotations

import importlib
import inspect
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from costlens._errors import ConfigError
from costlens.scorers._verifiers import (
    Check,
    JsonSchema,
    Judge,
    LogprobConfidence,
    Regex,
    Scorer,
    Verdict,
    alternatives,
)

__all__ = [
    "ExactMatch",
    "MultipleChoice",
    "Normalized",
    "Numeric",
    "extract_choice",
    "extract_number",
    "make_scorer",
    "normalize_text",
    "parse_number",
    "register_scorer",
    "scorer_names",
    "scorer_options",
    "scorer_runtime",
]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


class ExactMatch(Scorer):
    """The answer equals the expected text, apart from surrounding whitespace (`strip=False`: exactly)."""

    name = "exact"
    needs_expected = True

    def __init__(self, *, strip: bool = True) -> None:
        self.strip = strip

    def _check(
        self, answer: str, expected: Any, response: Any, *, prompt: str, choices: Sequence[str]
    ) -> Verdict:
        got = answer.strip() if self.strip else answer
        for want in alternatives(expected):
            text = _text(want).strip() if self.strip else _text(want)
            if got == text:
                return Verdict(True, "exact match", extracted=got)
        return Verdict(False, f"{_short(got)} is not {_short(_text(expected))}", extracted=got)


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[: n - 1] + "…")


_ARTICLES = re.compile(r"\b(?:a|an|the)\b", re.IGNORECASE)


def normalize_text(text: str, *, case: bool = True, punctuation: bool = True, articles: bool = False) -> str:
    """Unicode NFKC; case-folded (`case`); punctuation removed (`punctuation`: every character of a
    Unicode punctuation category, so `"don't"` becomes `"dont"` and `"**B**"` becomes `"B"`);
    English articles removed (`articles`); runs of whitespace become one space, none at the ends."""
    text = unicodedata.normalize("NFKC", text)
    if case:
        text = text.casefold()
    if punctuation:
        text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    if articles:
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


class Normalized(Scorer):
    """The answer equals the expected text after `normalize_text` (case, whitespace, punctuation;
    `articles=True` also drops a/an/the). `contains=True`: the expected text appears in the answer
    as whole words ("The capital is Paris." contains "paris")."""

    name = "normalized"
    needs_expected = True

    def __init__(
        self,
        *,
        case: bool = True,
        punctuation: bool = True,
        articles: bool = False,
        contains: bool = False,
    ) -> None:
        self.options = {"case": case, "punctuation": punctuation, "articles": articles}
        self.contains = contains

    def _check(
        self, answer: str, expected: Any, response: Any, *, prompt: str, choices: Sequence[str]
    ) -> Verdict:
        got = normalize_text(answer, **self.options)
        for want in alternatives(expected):
            text = normalize_text(_text(want), **self.options)
            if got == text:
                return Verdict(True, "match after normalising", extracted=got)
            if self.contains and text and f" {text} " in f" {got} ":
                return Verdict(True, "contains it after normalising", extracted=got)
        want_text = normalize_text(_text(alternatives(expected)[0]), **self.options)
        return Verdict(False, f"{_short(got)} is not {_short(want_text)} after normalising", extracted=got)


# -- numbers -----------------------------------------------------------------------------------------

_NUMBER = re.compile(
    r"""
    (?<![\w.,])                                   # not inside a word or another number
    (?P<sign1>[-+−])?
    (?P<cur>[$€£¥₹])?\s?
    (?P<sign2>[-+−])?
    (?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
    (?:[eE](?P<exp>[-+]?\d+))?
    (?:/(?P<den>\d+)(?!/))?
    (?P<pct>\s?%)?
    """,
    re.VERBOSE,
)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def parse_number(text: str) -> tuple[Decimal, bool] | None:
    """The one number in `text` (surrounding words allowed, as in "$1,234.50 in total"): its value and
    whether it was a percentage. None when there is none, or several. Thousands separators are commas;
    a comma as the decimal mark is not understood ("3,5" is two numbers)."""
    return extract_number(text, pick="only")


def _value(match: re.Match[str]) -> tuple[Decimal, bool] | None:
    try:
        value = Decimal(match["num"].replace(",", ""))
        if match["exp"]:
            value = value.scaleb(int(match["exp"]))
        if match["den"]:
            den = Decimal(match["den"])
            if den == 0:
                return None
            value = value / den
    except (InvalidOperation, ValueError):
        return None
    if "-" in ((match["sign1"] or "") + (match["sign2"] or "")).replace("−", "-"):
        value = -value
    return value, match["pct"] is not None


def extract_number(
    text: str, *, pick: Literal["last", "first", "only"] = "last"
) -> tuple[Decimal, bool] | None:
    """The answer's number: inside the last `\\boxed{...}` if any, else after the last `####` (the GSM8K
    mark) if any, else the `pick`-th number of the text (`only`: None unless there is exactly one).
    Returns the value and whether it was a percentage; None when there is none."""
    boxed = _BOXED.findall(text)
    if boxed:
        text = boxed[-1]
    elif "####" in text:
        text = text.rsplit("####", 1)[1]
    values = [v for m in _NUMBER.finditer(text) if (v := _value(m)) is not None]
    if not values or (pick == "only" and len(values) != 1):
        return None
    return values[-1] if pick == "last" else values[0]


class Numeric(Scorer):
    """The answer's number (see `extract_number`: "$1,234.50", "-3.5e2", "42%", "3/4", `\\boxed{7}`,
    "#### 72") is within `abs_tol` or `rel_tol` (relative to the larger) of the expected number,
    given as a number or a text read the same way. `percent`: a percentage answer is compared as
    written ("number": 42% is 42), as a fraction ("fraction": 0.42) or either ("either", the default)."""

    name = "numeric"
    needs_expected = True

    def __init__(
        self,
        *,
        abs_tol: float | str = "1e-6",
        rel_tol: float | str = 0,
        pick: Literal["last", "first", "only"] = "last",
        percent: Literal["number", "fraction", "either"] = "either",
    ) -> None:
        try:
            self.abs_tol = Decimal(str(abs_tol))
            self.rel_tol = Decimal(str(rel_tol))
        except InvalidOperation:
            raise ConfigError(f"abs_tol and rel_tol must be numbers, got {abs_tol!r}, {rel_tol!r}") from None
        if self.abs_tol < 0 or self.rel_tol < 0:
            raise ConfigError("abs_tol and rel_tol must not be negative")
        if pick not in ("last", "first", "only"):
            raise ConfigError(f"pick must be last, first or only, got {pick!r}")
        if percent not in ("number", "fraction", "either"):
            raise ConfigError(f"percent must be number, fraction or either, got {percent!r}")
        self.pick: Literal["last", "first", "only"] = pick
        self.percent = percent

    def _expected(self, expected: Any) -> Decimal:
        if isinstance(expected, bool):
            raise ConfigError(f"the expected value {expected!r} is not a number")
        if isinstance(expected, int | float | Decimal):
            return Decimal(str(expected))
        found = extract_number(_text(expected), pick="last")
        if found is None:
            raise ConfigError(f"the expected value {_short(_text(expected))} has no number")
        value, is_percent = found
        return value / 100 if is_percent and self.percent == "fraction" else value

    def _check(
        self, answer: str, expected: Any, response: Any, *, prompt: str, choices: Sequence[str]
    ) -> Verdict:
        found = extract_number(answer, pick=self.pick)
        if found is None:
            what = "not exactly one number" if self.pick == "only" else "no number"
            return Verdict(False, f"the answer has {what}")
        value, is_percent = found
        candidates = [value]
        if is_percent:
            candidates = {"number": [value], "fraction": [value / 100], "either": [value, value / 100]}[
                self.percent
            ]
        wants = [self._expected(e) for e in alternatives(expected)]
        for want in wants:
            for got in candidates:
                tol = max(self.abs_tol, self.rel_tol * max(abs(got), abs(want)))
                if abs(got - want) <= tol:
                    return Verdict(True, f"{_fmt(got)} matches {_fmt(want)}", extracted=_fmt(value))
        return Verdict(False, f"{_fmt(value)} is not {_fmt(wants[0])}", extracted=_fmt(value))


def _fmt(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


# -- multiple choice -----------------------------------------------------------------------------------

_LETTERS = "ABCDEFGHIJ"


def extract_choice(answer: str, *, letters: str = _LETTERS, choices: Sequence[str] = ()) -> str | None:
    """The option letter an answer gives, or None when it gives none or several.

    In order: an explicit statement ("answer is (B)", "Answer: b", "correct option is B"); the whole
    answer being one letter ("B", "(B)", "**B.**"); a parenthesised letter "(B)" (the last one);
    a line that starts with "B." or "B)"; the text of exactly one of `choices`; one distinct
    standalone capital letter ("I think it's C"; "A" and "I" before a lower-case word are words)."""
    allowed = letters.upper()
    if choices:
        allowed = allowed[: len(choices)]
    upper, lower = re.escape(allowed), re.escape(allowed.lower())
    cls = f"[{upper}{lower}]"
    # a lower-case letter counts only when nothing but punctuation follows ("the answer is a dog")
    letter = rf"(?:([{upper}])(?!\w)|([{lower}])(?=[)\].:;,*!]|\s*$))"
    stated = re.findall(
        rf"(?i:answer|option|choice)\s*(?i:is|would be|:|=)?\s*(?i:option|choice|letter)?\s*[:\-]?\s*"
        rf"[(\[*]*{letter}",
        answer,
    )
    if stated:
        return "".join(stated[-1]).upper()
    bare = re.fullmatch(rf"[\s(\[*_]*({cls})[\s)\].:*_]*", answer)
    if bare:
        return bare.group(1).upper()
    parenthesised = re.findall(rf"\(({cls})\)", answer)
    if parenthesised:
        return str(parenthesised[-1]).upper()
    line = re.search(rf"(?m)^\s*[*_]*([{re.escape(allowed)}])[.)]", answer)
    if line:
        return str(line.group(1))
    if choices:
        said = normalize_text(answer)
        texts = [normalize_text(c) for c in choices]
        within = [i for i, c in enumerate(texts) if c and f" {c} " in f" {said} "]
        hits = [i for i, c in enumerate(texts) if c == said] or within
        if len(hits) == 1:
            return allowed[hits[0]]
    standalone = {
        m.group(1)
        for m in re.finditer(rf"(?<![\w'’])([{re.escape(allowed)}])(?![\w'’])", answer)
        if not (m.group(1) in "AI" and re.match(r"\s+(?!(?:or|and|nor)\b)[a-z]", answer[m.end() :]))
    }
    if len(standalone) == 1:
        return standalone.pop()
    return None


class MultipleChoice(Scorer):
    """The option letter the answer gives (see `extract_choice`) is the expected one. The expected value
    is a letter ("B", "(b)"), a 0-based index, or the text of one of the item's `choices`."""

    name = "choice"
    needs_expected = True

    def __init__(self, *, letters: str = _LETTERS) -> None:
        if not letters or not letters.isalpha() or len(set(letters.upper())) != len(letters):
            raise ConfigError(f"letters must be distinct letters, got {letters!r}")
        self.letters = letters.upper()

    def expected_letter(self, expected: Any, choices: Sequence[str] = ()) -> str:
        if isinstance(expected, int) and not isinstance(expected, bool):
            if 0 <= expected < len(self.letters):
                return self.letters[expected]
        elif isinstance(expected, str):
            stripped = expected.strip().strip("()[]. ").upper()
            if len(stripped) == 1 and stripped in self.letters:
                return stripped
            wanted = normalize_text(expected)
            for i, choice in enumerate(choices):
                if normalize_text(choice) == wanted and i < len(self.letters):
                    return self.letters[i]
        raise ConfigError(f"the expected value {expected!r} is not an option letter, index or choice")

    def _check(
        self, answer: str, expected: Any, response: Any, *, prompt: str, choices: Sequence[str]
    ) -> Verdict:
        wants = [self.expected_letter(e, choices) for e in alternatives(expected)]
        got = extract_choice(answer, letters=self.letters, choices=choices)
        if got is None:
            return Verdict(False, "the answer names no single option")
        if got in wants:
            return Verdict(True, f"option {got}", extracted=got)
        return Verdict(False, f"option {got}, expected {wants[0]}", extracted=got)


# -- the registry ---------------------------------------------------------------------------------------

# name -> (factory, runtime arguments the caller supplies rather than the file, e.g. a judge's client)
_REGISTRY: dict[str, tuple[Callable[..., Scorer], tuple[str, ...]]] = {}


def register_scorer(
    name: str, factory: Callable[..., Scorer], *, runtime: Sequence[str] = (), replace: bool = False
) -> None:
    """Name a scorer for experiment files. `factory(**options)` builds it; `runtime` names arguments
    the runner supplies (the judge's `client`), not the file."""
    if not replace and name in _REGISTRY:
        raise ConfigError(f"a scorer named {name!r} is already registered")
    _REGISTRY[name] = (factory, tuple(runtime))


def scorer_names() -> list[str]:
    return sorted(_REGISTRY)


def scorer_runtime(name: str) -> tuple[str, ...]:
    """The arguments a named scorer needs from the caller rather than the file (a judge's `client`)."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown scorer {name!r}; known: {', '.join(scorer_names())}")
    return _REGISTRY[name][1]


def scorer_options(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split a scorer setting into its name and options, and check the options against the factory
    (unknown or missing options name themselves) without building it."""
    if isinstance(spec, str):
        name, options = spec, {}
    else:
        options = dict(spec)
        name = options.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError('a scorer table needs a name, e.g. { name = "numeric", abs_tol = 0.01 }')
    if name not in _REGISTRY:
        raise ConfigError(f"unknown scorer {name!r}; known: {', '.join(scorer_names())}")
    factory, runtime = _REGISTRY[name]
    sig = inspect.signature(factory)
    accepted = [p for p in sig.parameters if p not in runtime]
    for key in options:
        if key in runtime or key not in sig.parameters:
            raise ConfigError(f"scorer {name!r} has no option {key!r}; its options: {', '.join(accepted)}")
    missing = [
        p.name
        for p in sig.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        and p.name not in options
        and p.name not in runtime
    ]
    if missing:
        raise ConfigError(f"scorer {name!r} needs the option(s) {', '.join(missing)}")
    return name, options


def make_scorer(spec: str | Mapping[str, Any] | Scorer, **runtime: Any) -> Scorer:
    """A scorer from its name (`"exact"`) or a table (`{"name": "numeric", "abs_tol": 0.01}`); a
    `Scorer` is returned as is. `runtime` supplies what the file cannot (`client=` for a judge)."""
    if isinstance(spec, Scorer):
        return spec
    name, options = scorer_options(spec)
    factory, needs = _REGISTRY[name]
    missing = [r for r in needs if r not in runtime]
    if missing:
        raise ConfigError(f"scorer {name!r} needs {', '.join(missing)} from the caller (the runner)")
    extra = {k: v for k, v in runtime.items() if k in needs}
    try:
        return factory(**options, **extra)
    except ConfigError as exc:
        raise ConfigError(f"scorer {name!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"scorer {name!r}: {exc}") from None


def _check_from_path(function: str, name: str | None = None, with_expected: bool | None = None) -> Check:
    """`function` is "package.module:callable"."""
    module, _, attr = function.partition(":")
    if not module or not attr:
        raise ConfigError(f"function must be 'package.module:callable', got {function!r}")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {function!r}: {exc}") from None
    return Check(fn, name or attr, with_expected=with_expected)


def _regex(
    pattern: str | None = None,
    ignore_case: bool = False,
    multiline: bool = False,
    dotall: bool = False,
    fullmatch: bool = False,
) -> Regex:
    return Regex(pattern, ignore_case=ignore_case, multiline=multiline, dotall=dotall, fullmatch=fullmatch)


def _judge(client: Any, model: str, template: str | None = None, max_tokens: int = 5) -> Judge:
    if template is None:
        return Judge(client, model, max_tokens=max_tokens)
    return Judge(client, model, template, max_tokens=max_tokens)


for _name, _factory, _runtime in (
    ("exact", ExactMatch, ()),
    ("normalized", Normalized, ()),
    ("normalised", Normalized, ()),
    ("regex", _regex, ()),
    ("numeric", Numeric, ()),
    ("choice", MultipleChoice, ()),
    ("multiple-choice", MultipleChoice, ()),
    ("json", JsonSchema, ()),
    ("json-schema", JsonSchema, ()),
    ("logprob", LogprobConfidence, ()),
    ("check", _check_from_path, ()),
    ("judge", _judge, ("client",)),
):
    register_scorer(_name, _factory, runtime=_runtime)
