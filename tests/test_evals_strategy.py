"""Strategies: each prompt recipe rendered into OpenAI and Anthropic bodies, answer extraction, few-shot
selection that never leaks the item or the test split, and experiment files with errors by field."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from costlens._errors import ConfigError
from costlens.evals import (
    DEFAULT_COT_INSTRUCTION,
    Dataset,
    ExperimentSpec,
    Item,
    Strategy,
    load_spec,
    spec_from_dict,
)
from costlens.routing import Candidate, Router
from costlens.scorers import Numeric

TOPICS = ["refund", "shipping", "password", "invoice"]


def _dataset() -> Dataset:
    items = []
    for i in range(40):
        topic = TOPICS[i % 4]
        split = "test" if i % 5 == 0 else "dev" if i % 5 == 1 else "train"
        items.append(
            Item(
                id=f"t{i}",
                input=f"ticket {i}: my {topic} question number {i}",
                expected=topic,
                metadata={"rationale": f"It is about the {topic}.", "lang": "en"},
                split=split,
            )
        )
    return Dataset(items, name="tickets")


DATA = _dataset()


def test_zero_shot_with_a_system_prompt_and_params() -> None:
    s = Strategy(name="nano", model="gpt-4.1-nano", system="You label tickets.", params={"temperature": 0})
    item = DATA["t0"]
    rendered = s.render(item)
    assert rendered.openai_body() == {
        "model": "gpt-4.1-nano",
        "messages": [
            {"role": "system", "content": "You label tickets."},
            {"role": "user", "content": item.input},
        ],
        "temperature": 0,
    }
    assert rendered.anthropic_body() == {
        "model": "gpt-4.1-nano",
        "system": "You label tickets.",
        "messages": [{"role": "user", "content": item.input}],
        "temperature": 0,
        "max_tokens": 1024,
    }
    assert s.kind == "prompt" and s.recipe == "zero-shot, system prompt"
    assert rendered.key() == s.render(item).key() != Strategy(name="x", model="gpt-4o").render(item).key()


def test_a_template_with_metadata_and_choices() -> None:
    item = Item(id="m", input="Largest planet?", expected="B", choices=("Mars", "Jupiter"), metadata={"n": 2})
    plain = Strategy(name="s", model="m").render(item)
    assert plain.messages[-1]["content"] == "Largest planet?\n\nA. Mars\nB. Jupiter"
    templated = Strategy(name="s", model="m", template="Q ({n} options): {input}\n{choices}\nLetter:")
    assert (
        templated.render(item).messages[-1]["content"]
        == "Q (2 options): Largest planet?\nA. Mars\nB. Jupiter\nLetter:"
    )
    with pytest.raises(ConfigError, match=r"template names \{missing\}, which item 'm' does not have"):
        Strategy(name="s", model="m", template="{input} {missing}").render(item)


def test_fixed_few_shot_is_the_same_for_every_item_and_comes_from_train_only() -> None:
    s = Strategy(name="3shot", model="m", few_shot=3)
    prompter = s.prompter(DATA)
    first = prompter.render(DATA["t0"])
    second = prompter.render(DATA["t5"])
    assert first.examples == second.examples and len(first.examples) == 3
    assert all(DATA[e].split == "train" for e in first.examples)
    roles = [m["role"] for m in first.messages]
    assert roles == ["user", "assistant"] * 3 + ["user"]
    example = DATA[first.examples[0]]
    assert first.messages[0]["content"] == example.input and first.messages[1]["content"] == example.expected
    # a train item rendered with its own pool never sees itself
    own = first.examples[0]
    rendered = prompter.render(DATA[own])
    assert own not in rendered.examples and len(rendered.examples) == 3


def test_explicit_examples_must_be_train_items() -> None:
    s = Strategy(name="pinned", model="m", examples=("t2", "t3"))
    assert s.few_shot == 2
    assert s.render(DATA["t0"], DATA).examples == ("t2", "t3")
    assert s.render(DATA["t2"], DATA).examples == ("t3",)  # never the item itself
    with pytest.raises(ConfigError, match="'t0' is in the test split; examples come from train"):
        Strategy(name="leak", model="m", examples=("t0",)).prompter(DATA)
    with pytest.raises(ConfigError, match="not in the dataset"):
        Strategy(name="x", model="m", examples=("nope",)).prompter(DATA)


def test_nearest_neighbour_few_shot_picks_similar_train_items() -> None:
    s = Strategy(name="nn", model="m", few_shot=3, selection="nearest")
    prompter = s.prompter(DATA)
    for item in DATA.split("test"):
        rendered = prompter.render(item)
        chosen = [DATA[e] for e in rendered.examples]
        assert all(e.split == "train" and e.id != item.id for e in chosen)
        assert chosen[-1].expected == item.expected  # the most similar (same topic) sits last
    query = Item(id="new", input="I forgot my password again", expected="password")
    assert all(DATA[e].expected == "password" for e in prompter.render(query).examples)


def test_few_shot_never_uses_an_item_with_the_same_input() -> None:
    items = [Item(id="a", input="same text", expected="x", split="train"),
             Item(id="b", input="same text", expected="x", split="test"),
             Item(id="c", input="other text", expected="y", split="train"),
             Item(id="d", input="more text", expected="z", split="train")]  # fmt: skip
    data = Dataset(items)
    for selection in ("fixed", "nearest"):
        rendered = Strategy(name="s", model="m", few_shot=2, selection=selection).render(data["b"], data)
        assert set(rendered.examples) == {"c", "d"}


def test_few_shot_needs_a_dataset_and_enough_train_items() -> None:
    with pytest.raises(ConfigError, match="render it with a dataset"):
        Strategy(name="s", model="m", few_shot=2).render(DATA["t0"])
    with pytest.raises(ConfigError, match="is 50-shot but the train split has 24 item"):
        Strategy(name="s", model="m", few_shot=50).prompter(DATA)


def test_inline_few_shot_and_chain_of_thought_with_rationales() -> None:
    s = Strategy(name="cot", model="m", few_shot=2, chain_of_thought=True, few_shot_style="inline")
    rendered = s.render(DATA["t0"], DATA)
    (user,) = rendered.messages
    text = user["content"]
    assert text.startswith("Examples:\n\nInput: ")
    example = DATA[rendered.examples[0]]
    assert f"Output: {example.metadata['rationale']}\nAnswer: {example.expected}" in text
    assert text.endswith(f"{DATA['t0'].input}\n\n{DEFAULT_COT_INSTRUCTION}")
    as_messages = Strategy(name="cot2", model="m", few_shot=1, chain_of_thought=True).render(DATA["t0"], DATA)
    assert as_messages.messages[1]["content"].endswith("\nAnswer: " + DATA[as_messages.examples[0]].expected)
    assert DEFAULT_COT_INSTRUCTION not in as_messages.messages[0]["content"]  # only the item asks for it


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Let me think.\n6 times 7 is 42.\nAnswer: 42", "42"),
        ("Step 1: ... answer: maybe 41?\n**Final answer:** 42", "42"),
        ("Reasoning...\nANSWER: (B)", "(B)"),
        ("no marker at all\n", "no marker at all"),
    ],
)
def test_chain_of_thought_extracts_the_last_answer_line(text: str, answer: str) -> None:
    s = Strategy(name="cot", model="m", chain_of_thought=True)
    assert s.extract(text) == answer


def test_answer_pattern_extraction_and_the_scorer_sees_the_extracted_answer() -> None:
    s = Strategy(name="tags", model="m", answer_pattern=r"<answer>(.*?)</answer>")
    text = "I computed <answer>12</answer> first, then <answer>$1,234</answer>."
    assert s.extract(text) == "$1,234"
    assert Numeric().score(s.extract(text), 1234).passed
    assert Strategy(name="plain", model="m").extract("  42\n") == "42"
    with pytest.raises(ValidationError, match="at most one group"):
        Strategy(name="x", model="m", answer_pattern="(a)(b)")


def _search(item: Item) -> list[str]:
    return [f"Policy for {item.expected}.", "Be polite."]


def test_retrieval_adds_context() -> None:
    rendered = Strategy(name="rag", model="m", retrieval=_search).render(DATA["t0"])
    assert rendered.messages[-1]["content"] == (
        f"Context:\nPolicy for refund.\n\nBe polite.\n\n{DATA['t0'].input}"
    )
    placed = Strategy(
        name="rag2", model="m", retrieval=lambda item: "CTX", template="{input}\n---\n{context}"
    )
    assert placed.render(DATA["t0"]).messages[-1]["content"] == f"{DATA['t0'].input}\n---\nCTX"
    by_path = Strategy(name="rag3", model="m", retrieval="tests.test_evals_strategy:_search")
    assert by_path.retrieval is _search and by_path.recipe == "zero-shot, retrieval"


def test_fine_tuned_and_hybrid_strategies() -> None:
    tuned = Strategy(name="ft", model="ft:gpt-4o-mini-2024-07-18:acme::abc123")
    assert (
        tuned.fine_tuned and tuned.fine_tuned_from == "gpt-4o-mini-2024-07-18" and tuned.kind == "fine-tuned"
    )
    hybrid = Strategy(name="hy", model="ft:gpt-4o-mini-2024-07-18:acme::abc123", few_shot=2)
    assert hybrid.kind == "hybrid"
    other = Strategy(
        name="tg", model="acme/llama-tuned", fine_tuned_from="meta-llama/Llama-3-8b", chain_of_thought=True
    )
    assert other.kind == "hybrid" and "fine-tuned from meta-llama/Llama-3-8b" in other.recipe
    assert hybrid.render(DATA["t0"], DATA).model == "ft:gpt-4o-mini-2024-07-18:acme::abc123"


def test_a_router_is_a_strategy() -> None:
    router = Router([Candidate(name="nano", model="gpt-4.1-nano")], name="costlens/support")
    s = Strategy(name="routed", router=router)
    assert s.model == "costlens/support" and s.kind == "router" and s.router is router
    assert s.render(DATA["t0"]).openai_body()["model"] == "costlens/support"
    with pytest.raises(ValidationError, match="differs from the router's name"):
        Strategy(name="routed", router=router, model="gpt-4o")
    with pytest.raises(ValidationError, match=r"must be a costlens\.routing\.Router"):
        Strategy(name="routed", router=object())


def test_chat_message_inputs() -> None:
    item = Item(
        id="chat",
        input=(
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "Capital of Italy?"},
        ),
        expected="Rome",
    )
    s = Strategy(name="chat", model="m", system="Be brief.", chain_of_thought=True, params={"stop": "\n\n"})
    rendered = s.render(item)
    openai = rendered.openai_body()
    assert openai["messages"][0] == {"role": "system", "content": "Be brief.\n\nAnswer in French."}
    assert [m["role"] for m in openai["messages"]] == ["system", "user", "assistant", "user"]
    assert openai["messages"][-1]["content"] == f"Capital of Italy?\n\n{DEFAULT_COT_INSTRUCTION}"
    anthropic = rendered.anthropic_body()
    assert anthropic["system"] == "Be brief.\n\nAnswer in French."
    assert [m["role"] for m in anthropic["messages"]] == ["user", "assistant", "user"]
    assert anthropic["stop_sequences"] == ["\n\n"] and "stop" not in anthropic
    assert Strategy(name="a", model="claude", api="anthropic").render(item).body()["max_tokens"] == 1024


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"few_shot": -1}, "few_shot"),
        ({"selection": "random"}, "selection"),
        ({"template": "no placeholder"}, "must contain {input}"),
        ({"template": "{input} {"}, "not a valid template"),
        ({"params": {"messages": []}}, "set by the strategy itself"),
        ({"model": ""}, "needs a model"),
        ({"examples": ("t2",), "selection": "nearest"}, "fixed selection"),
        ({"examples": ("t2",), "few_shot": 3}, "few_shot = 3 but 1 examples"),
        ({"retrieval": "nomodule"}, "package.module:function"),
        ({"tempreature": 0}, "tempreature"),
    ],
)
def test_strategy_errors_name_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")):
        Strategy(**{"name": "s", "model": "m", **fields})


# -- experiment files ------------------------------------------------------------------------------------


def _write_data(folder: Path) -> None:
    rows = [{"id": f"r{i}", "input": f"what is {i} + {i}?", "expected": str(2 * i)} for i in range(30)]
    (folder / "sums.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


SPEC = """
name = "sums"
split = "test"
scorer = { name = "numeric", abs_tol = 0.5 }
max_cost_usd = 2.5
concurrency = 8

[dataset]
path = "sums.jsonl"
seed = 3

[defaults]
params = { temperature = 0, max_tokens = 64 }

[[strategies]]
name = "nano"
model = "gpt-4.1-nano"

[[strategies]]
name = "nano-3nn-cot"
model = "gpt-4.1-nano"
few_shot = 3
selection = "nearest"
chain_of_thought = true
params = { max_tokens = 512 }

[[strategies]]
name = "routed"
router = "router.toml"
"""

ROUTER = """
name = "costlens/sums"
[[candidates]]
name = "nano"
model = "gpt-4.1-nano"
"""


def test_an_experiment_file(tmp_path: Path) -> None:
    _write_data(tmp_path)
    (tmp_path / "spec.toml").write_text(SPEC, encoding="utf-8")
    (tmp_path / "router.toml").write_text(ROUTER, encoding="utf-8")
    spec = load_spec(tmp_path / "spec.toml")
    assert isinstance(spec, ExperimentSpec) and spec.name == "sums" and spec.concurrency == 8
    assert spec.max_cost_usd == Decimal("2.5") and spec.scorer_name == "numeric"
    nano, cot, routed = spec.strategies
    assert nano.params == {"temperature": 0, "max_tokens": 64}
    assert cot.params == {"temperature": 0, "max_tokens": 512}  # merged key by key
    assert routed.kind == "router" and routed.model == "costlens/sums"
    data = spec.load_dataset()
    assert len(data) == 30 and data.seed == 3
    scorer = spec.build_scorer()
    assert isinstance(scorer, Numeric) and scorer.score("about 4.2", 4).passed
    item = data.split("test").items[0]
    rendered = cot.prompter(data).render(item)
    assert all(data[e].split == "train" for e in rendered.examples)
    assert spec.strategy("nano") is nano


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"concurrency": 0}, "spec.toml: concurrency: Input should be greater than or equal to 1"),
        ({"scorer": "fuzzy"}, "spec.toml: scorer: unknown scorer 'fuzzy'"),
        ({"scorer": {"name": "numeric", "tol": 1}}, "scorer: scorer 'numeric' has no option 'tol'"),
        ({"max_cost_usd": -1}, "max_cost_usd: Input should be greater than 0"),
        ({"split": "holdout"}, "split: Input should be 'train', 'dev' or 'test'"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"strategies": []}, "strategies: List should have at least 1 item"),
    ],
)
def test_experiment_errors_name_the_field(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    raw: dict[str, Any] = {
        "name": "x",
        "dataset": {"path": "sums.jsonl"},
        "strategies": [{"name": "a", "model": "m"}],
        **change,
    }
    with pytest.raises(ConfigError) as caught:
        spec_from_dict(raw, source="spec.toml")
    assert message in str(caught.value)


def test_strategy_errors_in_a_file_name_the_strategy(tmp_path: Path) -> None:
    raw = {
        "name": "x",
        "dataset": "sums.jsonl",
        "strategies": [{"name": "ok", "model": "m"}, {"name": "bad", "model": "m", "few_shot": "many"}],
    }
    with pytest.raises(
        ConfigError, match=r"spec.toml: strategies\[1\] \(bad\).few_shot: Input should be a valid"
    ):
        spec_from_dict(raw, source="spec.toml")
    twice = {**raw, "strategies": [{"name": "a", "model": "m"}, {"name": "a", "model": "n"}]}
    with pytest.raises(ConfigError, match=r"strategy names must be unique; repeated: \['a'\]"):
        spec_from_dict(twice, source="spec.toml")
    routed = {**raw, "strategies": [{"name": "r", "router": "missing.toml"}]}
    with pytest.raises(
        ConfigError, match=r"strategies\[0\] \(r\).router: router file .*missing.toml does not exist"
    ):
        spec_from_dict(routed, source="spec.toml", base=tmp_path)
    judge = {**raw, "strategies": [{"name": "ok", "model": "m"}], "scorer": {"name": "judge", "model": "j"}}
    spec = spec_from_dict(judge, source="spec.toml")  # the judge's client comes from the runner
    with pytest.raises(ConfigError, match="needs client from the caller"):
        spec.build_scorer()


def test_experiment_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "nope.toml")
    (tmp_path / "broken.toml").write_text("name = ", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_spec(tmp_path / "broken.toml")
    (tmp_path / "two.toml").write_text('name = "x"\nconcurrency = 0\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"two.toml: 3 problems:[\s\S]*dataset: Field required"):
        load_spec(tmp_path / "two.toml")
