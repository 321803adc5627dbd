"""The scorers on real-looking answers, the shared scorer/verifier hierarchy, and the registry."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from costlens._errors import ConfigError
from costlens.scorers import (
    Check,
    ExactMatch,
    JsonSchema,
    Judge,
    LogprobConfidence,
    MultipleChoice,
    Normalized,
    Numeric,
    Regex,
    Scorer,
    Verdict,
    extract_choice,
    extract_number,
    make_scorer,
    normalize_text,
    parse_number,
    register_scorer,
    scorer_names,
)

# -- exact and normalised ----------------------------------------------------------------------------


def test_exact_match_strips_only_surrounding_whitespace() -> None:
    exact = ExactMatch()
    assert exact.score("  Paris\n", "Paris").passed
    assert not exact.score("paris", "Paris").passed
    assert not exact.score("Paris.", "Paris").passed
    assert not ExactMatch(strip=False).score("Paris ", "Paris").passed
    assert exact.score("42", 42).passed  # a non-text expected value compares as its text
    assert exact.score("NYC", ["New York", "NYC"]).passed  # a list: any of them


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("  The PARIS! ", "the paris"),
        ("**Paris**", "Paris"),
        ("Don't   know.", "dont know"),
        ("Ｐａｒｉｓ", "paris"),  # fullwidth letters: NFKC
        ("Straße", "STRASSE"),  # case-folding, not lower()
    ],
)
def test_normalized_matches(answer: str, expected: str) -> None:
    assert Normalized().score(answer, expected).passed


def test_normalized_options() -> None:
    assert not Normalized().score("The Eiffel Tower", "Eiffel Tower").passed
    assert Normalized(articles=True).score("The Eiffel Tower", "eiffel tower").passed
    assert not Normalized(case=False).score("PARIS", "paris").passed
    contains = Normalized(contains=True)
    assert contains.score("The capital of France is Paris.", "paris").passed
    assert not contains.score("Parisian food", "paris").passed  # whole words only
    verdict = Normalized().score("London", "Paris")
    assert not verdict.passed and "'london' is not 'paris'" in verdict.reason
    assert normalize_text("  a\t b\n") == "a b"


# -- numbers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The total is $1,234.50.", 1234.5),
        ("It costs $12", "12"),
        ("Revenue grew 42%", 42),
        ("Revenue grew 42%", "0.42"),  # either reading of a percentage, by default
        ("The answer is -5.", -5),
        ("The answer is −5", "-5"),  # a Unicode minus
        ("5 - 3 = 2", 2),  # a subtraction is not a negative number
        ("gpt-4 says the answer is 12.", 12),
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "#### 72"),  # the GSM8K mark
        ("so x = \\boxed{3/4} and not 7", 0.75),
        ("1.5e3 meters", 1500),
        ("-$12.00 refund", -12),
        ("Between 3 and 4, I'd say 3.99999999", 4),
        ("$1,000,000", "1e6"),
    ],
)
def test_numeric_reads_real_answers(answer: str, expected: Any) -> None:
    verdict = Numeric(abs_tol="1e-6" if "3.999" not in answer else "0.001").score(answer, expected)
    assert verdict.passed, verdict


def test_numeric_failures_and_options() -> None:
    numeric = Numeric()
    verdict = numeric.score("I think it is 41.", 42)
    assert not verdict.passed and verdict.extracted == "41" and "41 is not 42" in verdict.reason
    assert "no number" in numeric.score("no idea", 42).reason
    assert not numeric.score("3,5", 3.5).passed  # a decimal comma is not understood
    assert Numeric(pick="first").score("42, not 41", 42).passed
    assert not Numeric(pick="only").score("42, not 41", 42).passed
    assert Numeric(rel_tol=0.01).score("99.5", 100).passed
    assert not Numeric(rel_tol=0.001).score("99.5", 100).passed
    assert not Numeric(percent="number").score("42%", 0.42).passed
    assert not Numeric(percent="fraction").score("42%", 42).passed
    with pytest.raises(ConfigError, match="no number"):
        numeric.score("42", "forty-two")
    with pytest.raises(ConfigError, match="not a number"):
        numeric.score("1", True)
    with pytest.raises(ConfigError, match="must not be negative"):
        Numeric(abs_tol=-1)


def test_number_parsing() -> None:
    assert parse_number("$1,234.50 in total") == (Decimal("1234.50"), False)
    assert parse_number("42%") == (Decimal(42), True)
    assert parse_number("1 and 2") is None  # parse_number wants exactly one
    assert extract_number("1 and 2") == (Decimal(2), False)
    assert extract_number("version 1.2.3") == (Decimal("1.2"), False)
    assert extract_number("nothing") is None


# -- multiple choice ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("The answer is (B).", "B"),
        ("B", "B"),
        ("**C.**", "C"),
        ("(d)", "D"),
        ("Answer: b", "B"),
        ("The correct option is C because water boils at 100°C.", "C"),
        ("The answer is: **(D)**", "D"),
        ("I think it's C", "C"),
        ("A good answer here is D", "D"),
        ("B) Paris\nbecause it is the capital", "B"),
        ("Let me think. (A) is wrong, (C) is right.", "C"),  # the last parenthesised letter
        ("A or B", None),
        ("the answer is a dog", None),
        ("Between A and C, I pick C", None),
        ("I don't know", None),
    ],
)
def test_extract_choice(answer: str, letter: str | None) -> None:
    assert extract_choice(answer) == letter


def test_multiple_choice_scorer() -> None:
    choice = MultipleChoice()
    assert choice.score("The answer is (B)", "B").passed
    assert choice.score("The answer is (B)", "(b)").passed
    assert choice.score("The answer is (B)", 1).passed  # a 0-based index
    options = ["London", "Paris", "Rome"]
    assert choice.score("Paris, obviously", "B", choices=options).passed  # the text of one option
    assert choice.score("B", "Paris", choices=options).passed  # the expected option's text
    assert not choice.score("Paris or Rome", "B", choices=options).passed
    wrong = choice.score("The answer is (C)", "B")
    assert not wrong.passed and wrong.extracted == "C" and "expected B" in wrong.reason
    assert "no single option" in choice.score("A or B", "B").reason
    with pytest.raises(ConfigError, match="not an option"):
        choice.score("B", "Z")
    assert extract_choice("D", choices=["x", "y", "z"]) is None  # only as many letters as options


# -- regex, JSON --------------------------------------------------------------------------------------


def test_regex_as_verifier_and_as_scorer() -> None:
    fixed = Regex(r"\b\d{3}-\d{4}\b")
    assert fixed.verify("Call 555-1234 today").passed
    assert fixed.score("Call 555-1234", "ignored").passed  # a fixed pattern ignores expected
    per_item = Regex(fullmatch=True, ignore_case=True)
    assert per_item.needs_expected and not per_item.can_verify
    assert per_item.score(" Yes ", r"yes|y").passed
    assert not per_item.score("yes please", r"yes|y").passed
    assert per_item.score("no", ["yes", "no"]).extracted == "no"
    with pytest.raises(ConfigError, match="cannot verify"):
        per_item.verify("yes")
    with pytest.raises(ConfigError, match="invalid regular expression"):
        Regex("(")


SCHEMA = {
    "type": "object",
    "required": ["city", "population"],
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
}


def test_json_schema_validity_and_field_match() -> None:
    check = JsonSchema(SCHEMA)
    answer = '```json\n{"city": "Paris", "population": 2100000, "country": "FR"}\n```'
    assert check.verify(answer).passed
    both = check.score(answer, {"city": "Paris", "population": 2100000})
    assert both.passed and both.score == 1.0
    half = check.score(answer, '{"city": "Paris", "population": 2}')
    assert not half.passed and half.score == 0.5 and "population" in half.reason
    invalid = check.score('{"city": "Paris", "population": "2.1M"}', {"city": "Paris"})
    assert not invalid.passed and "population" in invalid.reason and invalid.score == 0.0
    assert not check.score("Paris, 2.1M", {"city": "Paris"}).passed


def test_json_fields_paths_types_and_normalising() -> None:
    fields = JsonSchema(fields=["address.city", "items.0.sku"])
    answer = '{"address": {"city": "Lyon"}, "items": [{"sku": "A1"}], "extra": 1}'
    assert fields.score(answer, {"address": {"city": "Lyon"}, "items": [{"sku": "A1"}]}).passed
    missing = fields.score('{"address": {}}', {"address": {"city": "Lyon"}, "items": [{"sku": "A1"}]})
    assert not missing.passed and missing.score == 0.0
    whole = JsonSchema()
    assert whole.score("[1, 2.0]", [1, 2]).passed  # numbers by value
    assert not whole.score('{"ok": 1}', {"ok": True}).passed  # true is not 1
    assert not whole.score('{"name": "paris "}', {"name": "Paris"}).passed
    assert JsonSchema(normalize_strings=True).score('{"name": "paris "}', {"name": "Paris"}).passed
    assert whole.verify('{"any": "json"}').passed
    with pytest.raises(ConfigError, match="no field"):
        JsonSchema(fields=["nope"]).score("{}", {"a": 1})


# -- the callable, log-probabilities, the judge --------------------------------------------------------


def test_check_in_both_roles() -> None:
    alone = Check(lambda text: text.isdigit())
    assert alone.can_verify and alone.verify("42").passed and alone.score("42", "x").passed
    compare = Check(lambda answer, expected: answer.lower() == expected)
    assert compare.needs_expected and compare.score("YES", "yes").passed
    graded = Check(lambda answer, expected: 0.25, name="partial")
    verdict = graded.score("x", "y")
    assert not verdict.passed and verdict.score == 0.25 and "partial" in verdict.reason


def test_logprob_confidence_ignores_expected() -> None:
    sure = {"choices": [{"logprobs": {"content": [{"logprob": -0.01}]}}]}
    assert LogprobConfidence(0.9).score("42", "41", sure).passed


class _Reply:
    def __init__(self, text: str) -> None:
        self.choices = [type("C", (), {"message": type("M", (), {"content": text})()})()]


class _FakeOpenAI:
    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.sent: list[dict[str, Any]] = []
        self.chat = self
        self.completions = self

    def create(self, **body: Any) -> _Reply:
        self.sent.append(body)
        return _Reply(self.replies.pop(0))


def test_judge_grades_against_a_reference_as_a_scorer() -> None:
    client = _FakeOpenAI("PASS", "FAIL")
    judge = Judge(client, model="gpt-4o-mini")
    assert judge.score("Paris is the capital.", "Paris", prompt="Capital of France?").passed
    prompt = client.sent[0]["messages"][0]["content"]
    assert "Reference answer:\nParis" in prompt and "Capital of France?" in prompt
    assert client.sent[0]["model"] == "gpt-4o-mini" and client.sent[0]["max_tokens"] == 5
    assert not judge.verify("Lyon", prompt="Capital of France?").passed
    assert "Reference" not in client.sent[1]["messages"][0]["content"]  # verifying: no reference


def test_judge_accepts_an_anthropic_client_or_a_callable() -> None:
    class _Block:
        text = "PASS"

    class _Anthropic:
        def __init__(self) -> None:
            self.messages = self
            self.sent: dict[str, Any] = {}

        def create(self, **body: Any) -> Any:
            self.sent = body
            return type("R", (), {"content": [_Block()]})()

    anthropic = _Anthropic()
    assert Judge(anthropic, model="claude-haiku").score("4", "4").passed
    assert anthropic.sent["model"] == "claude-haiku"
    assert not Judge(lambda prompt: "FAIL: wrong", model="local").score("5", "4").passed
    with pytest.raises(ConfigError, match="needs a client"):
        Judge(None, model="m")


# -- one hierarchy ---------------------------------------------------------------------------------------


def test_every_check_is_a_scorer_and_the_comparing_ones_refuse_to_verify() -> None:
    for check in (ExactMatch(), Normalized(), Numeric(), MultipleChoice()):
        assert isinstance(check, Scorer) and check.needs_expected
        with pytest.raises(ConfigError, match="cannot verify"):
            check.verify("42")
        with pytest.raises(ConfigError, match="needs an expected answer"):
            check.score("42", None)
    for check in (Regex("x"), JsonSchema(), Check(bool), LogprobConfidence()):
        assert isinstance(check, Scorer) and check.can_verify


# -- the registry ----------------------------------------------------------------------------------------


def test_make_scorer_by_name_and_table() -> None:
    assert isinstance(make_scorer("exact"), ExactMatch)
    numeric = make_scorer({"name": "numeric", "abs_tol": 0.01})
    assert isinstance(numeric, Numeric) and numeric.score("3.141", "3.14").passed
    regex = make_scorer({"name": "regex", "pattern": "^yes$", "ignore_case": True})
    assert regex.verify("YES").passed
    assert isinstance(make_scorer("normalised"), Normalized)
    json_scorer = make_scorer({"name": "json", "schema": SCHEMA, "fields": ["city"]})
    assert json_scorer.score('{"city": "Rome", "population": 1}', {"city": "Rome"}).passed
    judge = make_scorer({"name": "judge", "model": "gpt-4o-mini"}, client=_FakeOpenAI("PASS"))
    assert isinstance(judge, Judge) and judge.score("x", "x").passed
    check = make_scorer({"name": "check", "function": "os.path:isabs"})
    assert check.verify("/tmp").passed
    ready = ExactMatch()
    assert make_scorer(ready) is ready
    builtin = {"exact", "normalized", "regex", "numeric", "choice", "json-schema", "judge"}
    assert builtin <= set(scorer_names())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fuzzy", "unknown scorer 'fuzzy'; known: "),
        ({"name": "numeric", "tol": 1}, "no option 'tol'; its options: abs_tol, rel_tol, pick, percent"),
        ({"abs_tol": 1}, "needs a name"),
        ({"name": "numeric", "abs_tol": "x"}, "scorer 'numeric': abs_tol and rel_tol must be numbers"),
        ({"name": "numeric", "pick": "middle"}, "pick must be"),
        ({"name": "judge"}, "needs the option(s) model"),
        ({"name": "judge", "model": "m"}, "needs client from the caller"),
        ({"name": "judge", "model": "m", "client": "x"}, "no option 'client'"),
        ({"name": "check", "function": "os.path:nope"}, "cannot load"),
    ],
)
def test_make_scorer_errors_name_the_problem(spec: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_scorer(spec)


def test_register_a_scorer() -> None:
    class Length(Scorer):
        name = "length"

        def __init__(self, most: int = 10) -> None:
            self.most = most

        def _check(self, answer: str, expected: Any, response: Any, *, prompt: str, choices: Any) -> Verdict:
            return Verdict(len(answer) <= self.most, "length")

    register_scorer("test-length", Length)
    try:
        assert make_scorer({"name": "test-length", "most": 3}).verify("abc").passed
        with pytest.raises(ConfigError, match="already registered"):
            register_scorer("test-length", Length)
    finally:
        from costlens.scorers import _scorers

        _scorers._REGISTRY.pop("test-length")
