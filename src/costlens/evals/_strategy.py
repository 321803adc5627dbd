"""Strategies: a model plus a prompt recipe, turning an `Item` into a request body and reading the
answer back out of the response text.

    Strategy(name="nano", model="gpt-4.1-nano")                                   # zero-shot
    Strategy(name="nano-5nn", model="gpt-4.1-nano", few_shot=5, selection="nearest")
    Strategy(name="nano-cot", model="gpt-4.1-nano", chain_of_thought=True, system="You are terse.")
    Strategy(name="rag", model="gpt-4o-mini", retrieval=search)                   # search(item) -> text
    Strategy(name="tuned", model="ft:gpt-4o-mini-2024-07-18:acme::abc123")        # fine-tuned
    Strategy(name="hybrid", model="ft:gpt-4o-mini-2024-07-18:acme::abc123", few_shot=3)
    Strategy(name="routed", router=router)        # model = router.name; the runner calls through it

    prompter = strategy.prompter(dataset)          # few-shot examples come from its train split
    rendered = prompter.render(item)
    rendered.openai_body()  /  rendered.anthropic_body()
    strategy.extract(response_text)                # the answer the scorer sees

How a request is built (the definition):
- the user turn is `template` filled with the item's fields: {input} (the text; for chat-message
  input, the last user message's text), {choices} ("A. ...\\nB. ..."), {context} (the retrieval hook's
  text) and any metadata key. Choices and context the template does not place are added: the context
  before the input ("Context:\\n..."), the choices after it. With chain-of-thought, `cot_instruction`
  ends the user turn;
- few-shot examples (`few_shot` = k) come from the dataset's `examples_from` split (train by default,
  never test) and never include the item itself or an item with the same input. `fixed`: the same k
  for every item (explicit `examples` ids, else the first k in a seeded hash order); `nearest`: the k
  most similar by TF-IDF cosine over words (ties in the seeded hash order), the most similar last.
  `few_shot_style` `messages` puts each as a user/assistant pair before the item, `inline` puts them
  in the user turn. An example's answer is its expected value; under chain-of-thought it is
  "Answer: ..." after the example's `rationale` metadata when it has one;
- the system prompt is `system`, then any system messages of the item's own chat input.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from costlens._errors import ConfigError
from costlens.evals._dataset import Dataset, Item

__all__ = ["DEFAULT_COT_INSTRUCTION", "Prompter", "Rendered", "Strategy", "StrategyKind"]

DEFAULT_COT_INSTRUCTION = (
    "Think step by step. Then give the final answer on the last line, in the form: Answer: <answer>"
)
_COT_ANSWER = re.compile(r"(?im)^[\s*#>_]*(?:final\s+)?answer\s*[:：]\s*(.+?)\s*$")
_BODY_KEYS = frozenset({"model", "messages", "system", "stream"})
_OPENAI_ONLY = frozenset(
    {
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "logprobs",
        "top_logprobs",
        "n",
        "response_format",
        "logit_bias",
        "user",
        "parallel_tool_calls",
        "reasoning_effort",
        "store",
        "max_completion_tokens",
        "stop",
    }
)
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

StrategyKind = Literal["prompt", "fine-tuned", "hybrid", "router"]
Retrieval = Callable[[Item], "str | Sequence[str] | None"]


def _import_callable(path: str, what: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ValueError(f"{what} must be a callable or 'package.module:function', got {path!r}")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load {what} {path!r}: {exc}") from None
    if not callable(fn):
        raise ValueError(f"{what} {path!r} is not callable")
    return fn  # type: ignore[no-any-return]


class Strategy(BaseModel):
    """A model (or a router) and a prompt recipe. Errors name the field."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(min_length=1)
    model: str = Field(default="", description="the model id; a router's name when `router` is set")
    router: Any = Field(default=None, description="a costlens.routing.Router (or a router file's path)")
    api: Literal["openai", "anthropic"] = "openai"
    provider: str | None = None
    system: str | None = None
    template: str = "{input}"
    few_shot: int = Field(default=0, ge=0, le=100)
    selection: Literal["fixed", "nearest"] = "fixed"
    examples: tuple[str, ...] = ()
    examples_from: Literal["train", "dev"] = "train"
    few_shot_style: Literal["messages", "inline"] = "messages"
    chain_of_thought: bool = False
    cot_instruction: str = DEFAULT_COT_INSTRUCTION
    answer_pattern: str | None = None
    retrieval: Any = Field(default=None, description="item -> context text; or 'package.module:function'")
    fine_tuned_from: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("router", mode="before")
    @classmethod
    def _router(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str | Path):
            from costlens.routing import load_router

            try:
                return load_router(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        if not (hasattr(value, "get_optimal_model") and isinstance(getattr(value, "name", None), str)):
            raise ValueError("must be a costlens.routing.Router or the path of a router file")
        return value

    @field_validator("retrieval", mode="before")
    @classmethod
    def _retrieval(cls, value: Any) -> Any:
        if value is None or callable(value):
            return value
        if isinstance(value, str):
            return _import_callable(value, "retrieval")
        raise ValueError("must be a callable (item -> context text) or 'package.module:function'")

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as exc:
            raise ValueError(f"not a valid template ({exc}); write literal braces as {{{{ }}}}") from None
        if "input" not in names:
            raise ValueError("the template must contain {input}")
        bad = sorted(n for n in names if not n.isidentifier())
        if bad:
            raise ValueError(f"template fields must be plain names, got {bad}")
        return value

    @field_validator("answer_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compiled = re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
            if compiled.groups > 1:
                raise ValueError("use at most one group (the answer)")
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(_BODY_KEYS & set(value))
        if clash:
            raise ValueError(f"{clash} are set by the strategy itself, not by params")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Strategy:
        if self.router is not None:
            if self.model and self.model != self.router.name:
                raise ValueError(f"model {self.model!r} differs from the router's name {self.router.name!r}")
            object.__setattr__(self, "model", self.router.name)
        elif not self.model:
            raise ValueError("a strategy needs a model (or a router)")
        if self.examples:
            if self.selection != "fixed":
                raise ValueError("explicit examples are a fixed selection; drop selection = 'nearest'")
            if self.few_shot and self.few_shot != len(self.examples):
                raise ValueError(f"few_shot = {self.few_shot} but {len(self.examples)} examples are named")
            object.__setattr__(self, "few_shot", len(self.examples))
        if self.fine_tuned_from is None and self.model.startswith("ft:"):
            base = self.model.split(":")[1] if self.model.count(":") >= 1 else ""
            object.__setattr__(self, "fine_tuned_from", base or None)
        return self

    # -- what it is -----------------------------------------------------------------------------------

    @property
    def fine_tuned(self) -> bool:
        return self.fine_tuned_from is not None

    @property
    def kind(self) -> StrategyKind:
        """router; fine-tuned (a tuned model, zero-shot); hybrid (a tuned model with a recipe); prompt."""
        if self.router is not None:
            return "router"
        if self.fine_tuned:
            plain = not (self.few_shot or self.chain_of_thought or self.retrieval is not None)
            return "fine-tuned" if plain else "hybrid"
        return "prompt"

    @property
    def recipe(self) -> str:
        """The recipe in words: "5-shot nearest, chain-of-thought, system prompt"."""
        parts = [f"{self.few_shot}-shot {self.selection}" if self.few_shot else "zero-shot"]
        if self.chain_of_thought:
            parts.append("chain-of-thought")
        if self.system:
            parts.append("system prompt")
        if self.retrieval is not None:
            parts.append("retrieval")
        if self.fine_tuned:
            parts.append(f"fine-tuned from {self.fine_tuned_from}")
        if self.router is not None:
            parts.append("routed")
        return ", ".join(parts)

    # -- rendering -------------------------------------------------------------------------------------

    def prompter(self, dataset: Dataset | None = None) -> Prompter:
        """A renderer bound to `dataset` (the few-shot pool; its nearest-neighbour index is built once)."""
        return Prompter(self, dataset)

    def render(self, item: Item, dataset: Dataset | None = None) -> Rendered:
        """One item's request (builds a `Prompter` each call: use `prompter()` for many items)."""
        return self.prompter(dataset).render(item)

    def extract(self, text: str) -> str:
        """The answer in a response's text: the last match of `answer_pattern` (its group if it has
        one); with chain-of-thought, the last "Answer: ..." line; otherwise (or when nothing matches)
        the whole text, stripped."""
        pattern = re.compile(self.answer_pattern, re.DOTALL) if self.answer_pattern else None
        if pattern is None and self.chain_of_thought:
            pattern = _COT_ANSWER
        if pattern is not None:
            matches = list(pattern.finditer(text))
            if matches:
                found = matches[-1]
                answer = found.group(1) if pattern.groups else found.group(0)
                return answer.strip().strip("*").strip()
        return text.strip()


@dataclass(frozen=True, slots=True)
class Rendered:
    """One item's request under one strategy, in a provider-neutral form."""

    strategy: str
    item_id: str
    model: str
    api: Literal["openai", "anthropic"]
    system: str | None
    messages: tuple[Mapping[str, Any], ...]
    examples: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)

    def openai_body(self) -> dict[str, Any]:
        """OpenAI chat completions: the system prompt is the first message."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages += [dict(m) for m in self.messages]
        return {"model": self.model, "messages": messages, **self.params}

    def anthropic_body(self) -> dict[str, Any]:
        """Anthropic messages: `system` apart, `max_tokens` required (1024 unless set), `stop` as
        `stop_sequences`; OpenAI-only parameters are dropped."""
        params = {k: v for k, v in self.params.items() if k not in _OPENAI_ONLY}
        params.setdefault(
            "max_tokens", self.params.get("max_tokens", self.params.get("max_completion_tokens", 1024))
        )
        stop = self.params.get("stop")
        if stop is not None and "stop_sequences" not in params:
            params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        body: dict[str, Any] = {"model": self.model}
        if self.system:
            body["system"] = self.system
        body["messages"] = [dict(m) for m in self.messages]
        return {**body, **params}

    def body(self) -> dict[str, Any]:
        return self.anthropic_body() if self.api == "anthropic" else self.openai_body()

    def key(self) -> str:
        """A hash of the request (api and body): identical requests, identical keys (the runner's cache)."""
        canonical = json.dumps([self.api, self.body()], sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        raise KeyError(key)


class Prompter:
    """A strategy bound to a dataset: picks few-shot examples and renders items."""

    def __init__(self, strategy: Strategy, dataset: Dataset | None) -> None:
        self.strategy = strategy
        self.dataset = dataset
        self._pool: list[Item] = []
        self._index: _TfIdf | None = None
        k = strategy.few_shot
        if not k:
            return
        if dataset is None:
            raise ConfigError(f"strategy {strategy.name!r} is {k}-shot: render it with a dataset")
        pool = dataset.split(strategy.examples_from).items
        if strategy.examples:
            named: list[Item] = []
            for example_id in strategy.examples:
                if example_id not in dataset:
                    raise ConfigError(
                        f"strategy {strategy.name!r}: example {example_id!r} is not in the dataset"
                    )
                example = dataset[example_id]
                if example.split != strategy.examples_from:
                    raise ConfigError(
                        f"strategy {strategy.name!r}: example {example_id!r} is in the {example.split} "
                        f"split; examples come from {strategy.examples_from}"
                    )
                named.append(example)
            self._pool = named
            return
        if len(pool) < k:
            raise ConfigError(
                f"strategy {strategy.name!r} is {k}-shot but the {strategy.examples_from} split has "
                f"{len(pool)} item(s)"
            )
        seed = dataset.seed
        self._pool = sorted(pool, key=lambda i: _rank(seed, i.id))  # the seeded hash order
        if strategy.selection == "nearest":
            self._index = _TfIdf([i.text for i in self._pool])

    def examples_for(self, item: Item) -> list[Item]:
        """The few-shot examples for `item`: never itself, never one with the same input."""
        k = self.strategy.few_shot
        if not k:
            return []
        key = item.input_key

        def allowed(example: Item) -> bool:
            return example.id != item.id and example.input_key != key

        if self.strategy.examples:
            return [e for e in self._pool if allowed(e)]
        if self._index is None:
            return [e for e in self._pool if allowed(e)][:k]
        order = self._index.nearest(item.text)
        chosen = [self._pool[i] for i in order if allowed(self._pool[i])][:k]
        return chosen[::-1]  # the most similar last, next to the item

    def render(self, item: Item) -> Rendered:
        s = self.strategy
        examples = self.examples_for(item)
        context = self._context(item)
        systems = [s.system] if s.system else []
        history: list[dict[str, Any]] = []
        if isinstance(item.input, str):
            query_text = item.input
        else:
            last_user = max(i for i, m in enumerate(item.input) if m.get("role") == "user")
            for i, message in enumerate(item.input):
                role = message.get("role")
                if role in ("system", "developer"):
                    systems.append(_text_of(message.get("content")))
                elif i != last_user:
                    history.append(dict(message))
            query_text = _text_of(item.input[last_user].get("content"))
        user = self._user_turn(item, query_text, context, final=True)
        messages: list[dict[str, Any]] = []
        if examples and s.few_shot_style == "messages":
            for example in examples:
                messages.extend(self._example_turns(example))
        elif examples:
            shots = "\n\n".join(
                f"Input: {self._user_turn(e, _query_of(e), None, final=False)}\nOutput: {self._answer_of(e)}"
                for e in examples
            )
            user = f"Examples:\n\n{shots}\n\n---\n\n{user}"
        messages.extend(history)
        messages.append({"role": "user", "content": user})
        return Rendered(
            strategy=s.name,
            item_id=item.id,
            model=s.model,
            api=s.api,
            system="\n\n".join(systems) or None,
            messages=tuple(messages),
            examples=tuple(e.id for e in examples),
            params=dict(s.params),
        )

    def _context(self, item: Item) -> str | None:
        hook = self.strategy.retrieval
        if hook is None:
            return None
        found = hook(item)
        if found is None:
            return None
        if isinstance(found, str):
            return found
        return "\n\n".join(str(part) for part in found)

    def _user_turn(self, item: Item, text: str, context: str | None, *, final: bool) -> str:
        s = self.strategy
        choices = "\n".join(f"{_LETTERS[i]}. {c}" for i, c in enumerate(item.choices))
        fields = _Fields({k: v for k, v in item.metadata.items() if isinstance(k, str)})
        fields.update(input=text, choices=choices, context=context or "")
        try:
            body = s.template.format_map(fields)
        except KeyError as exc:
            raise ConfigError(
                f"strategy {s.name!r}: the template names {{{exc.args[0]}}}, "
                f"which item {item.id!r} does not have"
            ) from None
        if choices and "{choices}" not in s.template:
            body = f"{body}\n\n{choices}"
        if context and "{context}" not in s.template:
            body = f"Context:\n{context}\n\n{body}"
        if final and s.chain_of_thought:
            body = f"{body}\n\n{s.cot_instruction}"
        return body

    def _answer_of(self, example: Item) -> str:
        answer = _expected_text(example)
        if not self.strategy.chain_of_thought:
            return answer
        rationale = example.metadata.get("rationale")
        final = f"Answer: {answer}"
        return f"{str(rationale).strip()}\n{final}" if rationale else final

    def _example_turns(self, example: Item) -> list[dict[str, Any]]:
        turns: list[dict[str, Any]] = []
        if not isinstance(example.input, str):
            last_user = max(i for i, m in enumerate(example.input) if m.get("role") == "user")
            turns.extend(
                dict(m)
                for i, m in enumerate(example.input)
                if i != last_user and m.get("role") not in ("system", "developer")
            )
        turns.append(
            {"role": "user", "content": self._user_turn(example, _query_of(example), None, final=False)}
        )
        turns.append({"role": "assistant", "content": self._answer_of(example)})
        return turns


def _query_of(item: Item) -> str:
    if isinstance(item.input, str):
        return item.input
    users = [m for m in item.input if m.get("role") == "user"]
    return _text_of(users[-1].get("content"))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def _expected_text(item: Item) -> str:
    expected = item.expected
    if isinstance(expected, list | tuple) and expected and not isinstance(expected[0], dict | list):
        expected = expected[0]  # several acceptable answers: show the first
    if item.choices and isinstance(expected, int) and not isinstance(expected, bool):
        return _LETTERS[expected] if 0 <= expected < len(item.choices) else str(expected)
    if isinstance(expected, str):
        return expected
    if expected is None:
        return ""
    if isinstance(expected, dict | list):
        return json.dumps(expected, ensure_ascii=False)
    return str(expected)


def _rank(seed: int, item_id: str) -> bytes:
    return hashlib.sha256(f"{seed}:example:{item_id}".encode()).digest()


_WORD = re.compile(r"\w+")


class _TfIdf:
    """Word TF-IDF (sublinear tf, smoothed idf, L2-normalised) with an inverted index: cheap, offline,
    deterministic, pure Python."""

    def __init__(self, texts: Sequence[str]) -> None:
        n = len(texts)
        counts = [Counter(_WORD.findall(t.casefold())) for t in texts]
        df: Counter[str] = Counter()
        for c in counts:
            df.update(c.keys())
        self.idf = {w: math.log((1 + n) / (1 + d)) + 1 for w, d in df.items()}
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for doc, c in enumerate(counts):
            vector = self._vector(c)
            for w, v in vector.items():
                self.postings.setdefault(w, []).append((doc, v))
        self.n = n

    def _vector(self, counts: Mapping[str, int]) -> dict[str, float]:
        weights = {w: (1 + math.log(c)) * self.idf[w] for w, c in counts.items() if w in self.idf}
        norm = math.sqrt(sum(v * v for v in weights.values())) or 1.0
        return {w: v / norm for w, v in weights.items()}

    def nearest(self, text: str) -> list[int]:
        """Every document's index, most similar first (ties: lower index first, the seeded order)."""
        query = self._vector(Counter(_WORD.findall(text.casefold())))
        scores = [0.0] * self.n
        for w in sorted(query):
            q = query[w]
            for doc, v in self.postings.get(w, ()):
                scores[doc] += q * v
        return sorted(range(self.n), key=lambda d: (-round(scores[d], 12), d))
