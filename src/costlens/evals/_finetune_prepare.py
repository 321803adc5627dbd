"""Fine-tuning, step 1: write the provider's training file, validate it, count it, price it.

    prepared = prepare_training_file("tickets.jsonl", "openai", "gpt-4o-mini-2024-07-18",
                                     input_field="text", output_field="label", system="Classify.")
    prepared.tokens, prepared.trained_tokens, prepared.estimate      # before anything is sent

Input: a labelled dataset (JSONL or CSV, read by `Dataset.load`: one input and one expected answer
per row; a system prompt may be added) or a file that is already chat training data (JSONL rows with
`messages` ending in the assistant's answer). Output: JSONL, one `{"messages": [...]}` per line, the
format all four providers document, with their differences applied:

- OpenAI (https://platform.openai.com/docs/guides/supervised-fine-tuning, and the cookbook's
  "Data preparation and analysis for chat model fine-tuning"): roles system/developer/user/assistant/
  tool/function, message keys role/content/name/weight/tool_calls/tool_call_id/function_call, every
  example needs an assistant message, at least 10 examples, files up to 512 MB (the Files API), and a
  per-example token limit that depends on the model (65,536 for gpt-4o-mini-2024-07-18,
  gpt-4o-2024-08-06 and the gpt-4.1 family; 16,385 for gpt-3.5-turbo-0125/1106; 4,096 for 0613).
- Together (https://docs.together.ai/docs/fine-tuning/data-preparation): conversational `messages`
  with roles system/user/assistant; a conversation starts with system or user and then alternates
  user and assistant; one format per file; files up to 100 GB.
- Fireworks (https://docs.fireworks.ai/fine-tuning/fine-tuning-models): OpenAI's chat format;
  roles system/user/assistant, a system message only as the first message, optional `weight` 0 or 1;
  3 to 3,000,000 examples; `.jsonl`.
- Mistral (https://docs.mistral.ai/capabilities/finetuning/text_finetuning): `messages` of user and
  assistant turns ("Default Instruct"; the documented samples have no system role, so a system prompt
  is prefixed to the first user message, separated by a blank line), the last message the assistant's;
  files up to 512 MB (https://docs.mistral.ai/resources/known-limitations). Mistral's docs now list
  fine-tuning under "deprecated": check that new jobs are still accepted.

Token counts. For OpenAI models they are exact with the model's own BPE (`costlens.tokens`, offline),
framed the way the OpenAI cookbook counts fine-tuning tokens: per example 3 + Σ over messages of
(3 + tokens(role) + tokens(content) + tokens(name) + 1 if a name). For every other model the same
framing over o200k counts is an ESTIMATE (`exact = False`): Llama, Qwen and Mistral tokenizers differ,
and the provider's `trained_tokens` is what gets recorded after the job.

Cost estimate. trained tokens = Σ example tokens × epochs (OpenAI's default epochs for "auto" follow the
cookbook: 3, raised so that examples × epochs ≥ 100 up to 25, lowered so that ≤ 25,000; Together and
Fireworks default to 1 epoch; Mistral jobs are set in training steps, 1 epoch is assumed). Price: an
explicit per-1M-token (or per-hour) price, else the fine-tuning catalogue (`costlens.roi.find_entry`;
`price_entry` picks a size class such as `together/lora-up-to-16b`). estimate = trained tokens ×
price / 1M (or hours × hourly price), at least the entry's minimum charge. No price known: the estimate
is None, never $0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from costlens._errors import ConfigError
from costlens.evals._dataset import Dataset, DatasetError, Item, LineError
from costlens.roi import FineTunePrice, find_entry
from costlens.tokens import count_text, encoding_name_for

__all__ = [
    "PROVIDERS",
    "FineTuneProvider",
    "PreparedFile",
    "ProviderRules",
    "TrainingPrice",
    "example_tokens",
    "openai_default_epochs",
    "prepare_training_file",
    "provider_rules",
    "training_price",
]

FineTuneProvider = Literal["openai", "together", "fireworks", "mistral"]
PROVIDERS: tuple[str, ...] = ("openai", "together", "fireworks", "mistral")

_MB = 1024 * 1024
_MTOK = Decimal(1_000_000)
_TOKENS_PER_EXAMPLE = 3  # the cookbook: every reply is primed with <|start|>assistant<|message|>
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1

#: OpenAI's training context per example, by model prefix (longest prefix wins). From the OpenAI
#: fine-tuning guide's token-limit table; the gpt-4.1 figures are recalled, verify them.
_OPENAI_EXAMPLE_LIMITS: dict[str, int] = {
    "gpt-4o-mini": 65_536,
    "gpt-4o": 65_536,
    "gpt-4.1": 65_536,
    "gpt-3.5-turbo-0613": 4_096,
    "gpt-3.5-turbo-1106": 16_385,
    "gpt-3.5-turbo-0125": 16_385,
    "gpt-3.5-turbo": 16_385,
    "gpt-4-0613": 8_192,
}


@dataclass(frozen=True, slots=True)
class ProviderRules:
    """What one provider documents for a supervised fine-tuning file."""

    provider: str
    roles: tuple[str, ...]
    message_keys: frozenset[str]
    row_keys: frozenset[str]
    min_examples: int
    max_examples: int | None
    max_file_bytes: int | None
    system_first_only: bool = False
    alternate: bool = False
    fold_system: bool = False
    last_is_assistant: bool = False
    weights: bool = False
    content_parts: bool = False
    default_epochs: Callable[[int], int] | None = None
    epochs_note: str = ""
    source: str = ""


def openai_default_epochs(n_examples: int) -> int:
    """OpenAI's epochs for `n_epochs="auto"` (the fine-tuning data-prep cookbook's rule)."""
    if n_examples <= 0:
        return 1
    epochs = 3
    if n_examples * epochs < 100:
        epochs = min(25, 100 // n_examples)
    elif n_examples * epochs > 25_000:
        epochs = max(1, 25_000 // n_examples)
    return epochs


_RULES: dict[str, ProviderRules] = {
    "openai": ProviderRules(
        "openai",
        roles=("system", "developer", "user", "assistant", "tool", "function"),
        message_keys=frozenset(
            {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}
        ),
        row_keys=frozenset({"messages", "tools", "parallel_tool_calls", "functions"}),
        min_examples=10,
        max_examples=None,
        max_file_bytes=512 * _MB,
        weights=True,
        content_parts=True,
        default_epochs=openai_default_epochs,
        epochs_note="OpenAI's default for n_epochs=auto (cookbook rule)",
        source="https://platform.openai.com/docs/guides/supervised-fine-tuning",
    ),
    "together": ProviderRules(
        "together",
        roles=("system", "user", "assistant"),
        message_keys=frozenset({"role", "content"}),
        row_keys=frozenset({"messages"}),
        min_examples=1,
        max_examples=None,
        max_file_bytes=100 * 1024 * _MB,
        system_first_only=True,
        alternate=True,
        default_epochs=lambda _n: 1,
        epochs_note="Together's default n_epochs (1)",
        source="https://docs.together.ai/docs/fine-tuning/data-preparation",
    ),
    "fireworks": ProviderRules(
        "fireworks",
        roles=("system", "user", "assistant"),
        message_keys=frozenset({"role", "content", "weight"}),
        row_keys=frozenset({"messages", "tools"}),
        min_examples=3,
        max_examples=3_000_000,
        max_file_bytes=None,
        system_first_only=True,
        weights=True,
        default_epochs=lambda _n: 1,
        epochs_note="Fireworks' default epochs (1)",
        source="https://docs.fireworks.ai/fine-tuning/fine-tuning-models",
    ),
    "mistral": ProviderRules(
        "mistral",
        roles=("user", "assistant", "tool"),
        message_keys=frozenset({"role", "content", "tool_calls", "tool_call_id", "name"}),
        row_keys=frozenset({"messages", "tools"}),
        min_examples=1,
        max_examples=None,
        max_file_bytes=512 * _MB,
        fold_system=True,
        last_is_assistant=True,
        default_epochs=lambda _n: 1,
        epochs_note="assumed 1 epoch: Mistral jobs are sized in training steps",
        source="https://docs.mistral.ai/capabilities/finetuning/text_finetuning",
    ),
}


def provider_rules(provider: str) -> ProviderRules:
    try:
        return _RULES[provider.strip().lower()]
    except KeyError:
        raise ConfigError(
            f"unknown fine-tuning provider {provider!r}; use one of {', '.join(PROVIDERS)}"
        ) from None


def max_example_tokens(provider: str, model: str) -> int | None:
    """The per-example token limit the provider documents for `model`, or None when not known."""
    if provider != "openai":
        return None
    name = _base_model(model).lower()
    best = max((p for p in _OPENAI_EXAMPLE_LIMITS if name.startswith(p)), key=len, default=None)
    return None if best is None else _OPENAI_EXAMPLE_LIMITS[best]


def _base_model(model: str) -> str:
    """`ft:gpt-4o-mini-2024-07-18:org::id` -> `gpt-4o-mini-2024-07-18` (tuning a tuned model)."""
    if model.startswith("ft:"):
        return model[3:].split(":", 1)[0]
    return model


# -- prices -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainingPrice:
    """A training price: per 1M trained tokens and/or per training hour, a minimum, and its source."""

    per_mtok: Decimal | None = None
    per_hour: Decimal | None = None
    min_charge: Decimal | None = None
    source: str = "given"
    version: str = "explicit"

    @classmethod
    def from_entry(cls, entry: FineTunePrice) -> TrainingPrice:
        return cls(
            per_mtok=entry.training_per_mtok,
            per_hour=entry.training_per_hour,
            min_charge=entry.min_training_charge,
            source=f"fine-tuning catalogue {entry.id} ({entry.confidence}, as of {entry.as_of}, "
            f"{entry.source})",
            version=f"finetune-catalogue:{entry.id}@{entry.as_of.isoformat()}",
        )

    def for_tokens(self, tokens: int) -> Decimal | None:
        """tokens × price per 1M, at least the minimum; None when there is no per-token price."""
        if self.per_mtok is None:
            return None
        return max(Decimal(tokens) * self.per_mtok / _MTOK, self.min_charge or Decimal(0))

    def for_hours(self, hours: Decimal) -> Decimal | None:
        if self.per_hour is None:
            return None
        return max(hours * self.per_hour, self.min_charge or Decimal(0))


def training_price(
    provider: str,
    model: str,
    *,
    price_entry: str | None = None,
    per_mtok: Decimal | None = None,
    per_hour: Decimal | None = None,
) -> TrainingPrice | None:
    """The price to use: the explicit one, else the catalogue entry (named, or found for the model)."""
    if per_mtok is not None or per_hour is not None:
        return TrainingPrice(per_mtok=per_mtok, per_hour=per_hour, source="given on the command line")
    entry = find_entry(provider, _base_model(model), price_entry)
    return None if entry is None else TrainingPrice.from_entry(entry)


# -- counting -----------------------------------------------------------------------------------------


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out: list[str] = []
        for part in value:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                out.append(part["text"])
            elif isinstance(part, str):
                out.append(part)
        return out
    return []


def example_tokens(messages: Sequence[Mapping[str, Any]], model: str) -> tuple[int, bool]:
    """(tokens, exact) of one training example, counted the way the OpenAI cookbook does.

    3 per example + per message 3 + tokens of role, content (its text parts) and name (+1 for a name);
    tool calls are counted as their JSON text. Exact only for OpenAI models (see the module docstring)."""
    exact = encoding_name_for(model) is not None
    total = _TOKENS_PER_EXAMPLE
    for message in messages:
        total += _TOKENS_PER_MESSAGE
        for key in ("role", "content", "name"):
            for text in _texts(message.get(key)):
                counted = count_text(text, model)
                total += counted.tokens
                exact = exact and counted.exact
        if isinstance(message.get("name"), str):
            total += _TOKENS_PER_NAME
        if message.get("tool_calls"):
            counted = count_text(json.dumps(message["tool_calls"], ensure_ascii=False), model)
            total += counted.tokens
            exact = False  # the provider renders tool calls its own way
    return total, exact


# -- the prepared file --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedFile:
    """A validated, counted and priced training file (written to `path` unless `path` is None)."""

    provider: str
    model: str
    source: str
    path: Path | None
    lines: tuple[str, ...] = field(repr=False)
    source_lines: tuple[int, ...] = field(repr=False)
    example_tokens: tuple[int, ...] = field(repr=False)
    exact: bool
    epochs: int
    epochs_source: str
    price: TrainingPrice | None
    hours: Decimal | None = None
    notes: tuple[str, ...] = ()

    @property
    def examples(self) -> int:
        return len(self.lines)

    @property
    def tokens(self) -> int:
        """Tokens of one pass over the file."""
        return sum(self.example_tokens)

    @property
    def trained_tokens(self) -> int:
        return self.tokens * self.epochs

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return len(self.content)

    @property
    def content(self) -> bytes:
        return "".join(line + "\n" for line in self.lines).encode("utf-8")

    @property
    def estimate(self) -> Decimal | None:
        """The training cost before anything is sent; None when no price is known (never $0)."""
        if self.price is None:
            return None
        by_tokens = self.price.for_tokens(self.trained_tokens)
        if by_tokens is not None:
            return by_tokens
        return None if self.hours is None else self.price.for_hours(self.hours)

    @property
    def minimum_applied(self) -> bool:
        if self.price is None or self.price.min_charge is None or self.price.per_mtok is None:
            return False
        return Decimal(self.trained_tokens) * self.price.per_mtok / _MTOK < self.price.min_charge

    def to_dict(self) -> dict[str, Any]:
        price = self.price
        return {
            "provider": self.provider,
            "model": self.model,
            "dataset": self.source,
            "file": None if self.path is None else str(self.path),
            "examples": self.examples,
            "bytes": self.size,
            "tokens": self.tokens,
            "tokens_exact": self.exact,
            "max_example_tokens": max(self.example_tokens, default=0),
            "epochs": self.epochs,
            "epochs_source": self.epochs_source,
            "trained_tokens": self.trained_tokens,
            "training_per_mtok": None if price is None else price.per_mtok,
            "training_per_hour": None if price is None else price.per_hour,
            "min_training_charge": None if price is None else price.min_charge,
            "price_source": None if price is None else price.source,
            "estimate_usd": self.estimate,
            "minimum_applied": self.minimum_applied,
            "notes": list(self.notes),
        }


def _looks_like_chat(path: Path, output_field: str | None) -> bool:
    if output_field is not None or path.suffix.lower() in (".csv", ".tsv"):
        return False
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for raw in handle:
                if raw.strip():
                    row = json.loads(raw)
                    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
                        return False
                    roles = [m.get("role") for m in row["messages"] if isinstance(m, dict)]
                    return "assistant" in roles
    except (OSError, ValueError):
        return False
    return False


def _chat_rows(path: Path, split: str | None, errors: list[LineError]) -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    text = path.read_text(encoding="utf-8-sig")
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError as exc:
            errors.append(LineError(number, "(line)", f"not valid JSON: {exc}"))
            continue
        if not isinstance(row, dict):
            errors.append(LineError(number, "(line)", f"expected a JSON object, got {type(row).__name__}"))
            continue
        if split is not None and str(row.get("split", "")).strip().lower() not in ("", split):
            continue
        rows.append((number, row))
    return rows


def _item_messages(item: Item, system: str | None) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    given = [dict(m) for m in item.input] if not isinstance(item.input, str) else []
    if system and not (given and given[0].get("role") in ("system", "developer")):
        messages.append({"role": "system", "content": system})
    if isinstance(item.input, str):
        messages.append({"role": "user", "content": item.input})
    else:
        messages.extend(given)
    expected = item.expected
    if isinstance(expected, str):
        answer = expected
    elif isinstance(expected, bool) or expected is None:
        answer = json.dumps(expected)
    elif isinstance(expected, int | float):
        answer = str(expected)
    else:
        answer = json.dumps(expected, ensure_ascii=False, separators=(",", ":"))
    messages.append({"role": "assistant", "content": answer})
    return messages


def _fold_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mistral: system text goes before the first user message's content (a blank line between)."""
    system = [m for m in messages if m.get("role") == "system"]
    if not system:
        return messages
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    prefix = "\n\n".join(str(m.get("content") or "") for m in system)
    for message in rest:
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            message["content"] = f"{prefix}\n\n{message['content']}"
            break
    return rest


def _check_messages(
    line: int, row: Mapping[str, Any], rules: ProviderRules, errors: list[LineError]
) -> list[dict[str, Any]] | None:
    def bad(where: str, message: str) -> None:
        errors.append(LineError(line, where, message))

    before = len(errors)
    for key in row:
        if key not in rules.row_keys and key not in ("id", "split"):
            bad(
                key,
                f"not a field of a {rules.provider} training example "
                f"(allowed: {', '.join(sorted(rules.row_keys))})",
            )
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        bad("messages", "missing, or not a non-empty list of messages")
        return None
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            bad(where, "a message must be an object with role and content")
            continue
        role = message.get("role")
        if role not in rules.roles:
            bad(
                f"{where}.role", f"must be one of {', '.join(rules.roles)} for {rules.provider}, got {role!r}"
            )
        for key in message:
            if key not in rules.message_keys:
                bad(
                    f"{where}.{key}",
                    f"not a {rules.provider} message key (allowed: {', '.join(sorted(rules.message_keys))})",
                )
        content = message.get("content")
        if isinstance(content, str):
            if not content.strip() and not message.get("tool_calls"):
                bad(f"{where}.content", "empty")
        elif isinstance(content, list) and rules.content_parts:
            if not content:
                bad(f"{where}.content", "an empty list of content parts")
        elif content is None and message.get("tool_calls"):
            pass
        else:
            kind = "text or a list of content parts" if rules.content_parts else "text"
            bad(f"{where}.content", f"must be {kind}, got {type(content).__name__}")
        if "weight" in message and (not rules.weights or message["weight"] not in (0, 1)):
            bad(
                f"{where}.weight",
                "must be 0 or 1" if rules.weights else f"{rules.provider} documents no weight key",
            )
        out.append(message)
    if len(errors) > before:
        return None
    roles = [m["role"] for m in out]
    if "assistant" not in roles:
        bad("messages", "no assistant message: an example needs the answer to learn")
    if rules.system_first_only and "system" in roles[1:]:
        bad(
            f"messages[{roles.index('system', 1)}].role",
            f"{rules.provider} allows a system message only first",
        )
    if rules.alternate:
        turns = roles[1:] if roles[0] == "system" else roles
        if not turns or turns[0] != "user":
            bad("messages", "must start with system or user")
        for i in range(1, len(turns)):
            if turns[i] == turns[i - 1]:
                at = i + (1 if roles[0] == "system" else 0)
                bad(
                    f"messages[{at}].role",
                    f"user and assistant must alternate ({turns[i]} follows {turns[i]})",
                )
                break
    if rules.last_is_assistant and roles[-1] != "assistant":
        bad(
            f"messages[{len(roles) - 1}].role",
            f"the last message must be the assistant's for {rules.provider}",
        )
    return None if len(errors) > before else out


def prepare_training_file(
    dataset: str | Path,
    provider: str,
    model: str,
    *,
    out: str | Path | None = None,
    write: bool = True,
    input_field: str | None = None,
    output_field: str | None = None,
    system: str | None = None,
    split: str | None = None,
    epochs: int | None = None,
    price: TrainingPrice | None = None,
    price_entry: str | None = None,
    hours: Decimal | None = None,
) -> PreparedFile:
    """Build, validate, count and price a training file; write it (to `out`, default
    `<dataset stem>.<provider>.jsonl` beside the dataset) when `write`. Raises `DatasetError` listing
    every bad line and field, or for a file-level limit (too few examples, too large)."""
    rules = provider_rules(provider)
    source = Path(dataset)
    if not source.exists():
        raise DatasetError(str(source), message=f"dataset {source} does not exist")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")
    wanted = None if split in (None, "all") else split
    errors: list[LineError] = []
    examples: list[tuple[int, dict[str, Any]]] = []
    if _looks_like_chat(source, output_field):
        for line, row in _chat_rows(source, wanted, errors):
            if system and isinstance(row.get("messages"), list):
                first = row["messages"][0] if row["messages"] else None
                if not (isinstance(first, dict) and first.get("role") in ("system", "developer")):
                    row = {**row, "messages": [{"role": "system", "content": system}, *row["messages"]]}
            examples.append((line, row))  # checked below
    else:
        data = Dataset.load(source, input_field=input_field, expected_field=output_field)
        if wanted is not None:
            data = data.split(wanted)
        for item in data:
            examples.append((item.line or 0, {"messages": _item_messages(item, system)}))
    lines: list[str] = []
    source_lines: list[int] = []
    counts: list[int] = []
    exact = True
    limit = max_example_tokens(rules.provider, model)
    for line, row in examples:
        candidate = row
        if rules.fold_system and isinstance(candidate.get("messages"), list):
            candidate = {**candidate, "messages": _fold_system(candidate["messages"])}
        messages = _check_messages(line, candidate, rules, errors)
        if messages is None:
            continue
        tokens, is_exact = example_tokens(messages, model)
        if limit is not None and tokens > limit:
            errors.append(
                LineError(
                    line, "messages", f"{tokens:,} tokens, over {model}'s {limit:,}-token limit per example"
                )
            )
            continue
        exact = exact and is_exact
        kept = {k: v for k, v in candidate.items() if k in rules.row_keys}
        kept["messages"] = messages
        lines.append(json.dumps(kept, ensure_ascii=False, separators=(",", ":")))
        source_lines.append(line)
        counts.append(tokens)
    if errors:
        errors.sort(key=lambda e: e.line)
        raise DatasetError(str(source), errors)
    label = f"{rules.provider} fine-tuning ({rules.source})"
    if len(lines) < rules.min_examples:
        raise DatasetError(
            str(source),
            message=f"dataset {source}: {len(lines)} example(s); {label} needs at least {rules.min_examples}",
        )
    if rules.max_examples is not None and len(lines) > rules.max_examples:
        raise DatasetError(
            str(source),
            message=f"dataset {source}: {len(lines):,} examples; "
            f"{label} takes at most {rules.max_examples:,}",
        )
    size = sum(len(line.encode("utf-8")) + 1 for line in lines)
    if rules.max_file_bytes is not None and size > rules.max_file_bytes:
        raise DatasetError(
            str(source),
            message=f"dataset {source}: the training file would be {size:,} bytes; "
            f"{label} takes files up to {rules.max_file_bytes:,} bytes",
        )
    notes: list[str] = []
    if epochs is None:
        assert rules.default_epochs is not None
        epochs, epochs_source = rules.default_epochs(len(lines)), rules.epochs_note
    else:
        epochs_source = "given"
    if not exact:
        notes.append(
            f"token counts are estimates: no offline tokenizer for {model} (o200k counts with the "
            "cookbook's framing); the job's trained_tokens will be recorded"
        )
    if limit is None and rules.provider == "openai":
        notes.append(f"no documented per-example token limit known for {model}: not checked")
    if rules.fold_system and system:
        notes.append("mistral: the system prompt is prefixed to the first user message")
    if price is None:
        price = training_price(rules.provider, model, price_entry=price_entry)
    if price is None:
        notes.append(
            f"no training price for {rules.provider}/{model}: pass --price-entry "
            "(see `costlens roi catalogue`) or --price-per-mtok; the estimate is unknown, not $0"
        )
    elif price.per_mtok is None and price.per_hour is not None and hours is None:
        notes.append("billed per training hour: pass --hours to estimate")
    target: Path | None = None
    if write:
        target = Path(out) if out is not None else source.with_name(f"{source.stem}.{rules.provider}.jsonl")
        if target.resolve() == source.resolve():
            raise ConfigError(f"the training file would overwrite the dataset {source}: pass another --out")
    prepared = PreparedFile(
        provider=rules.provider,
        model=model,
        source=str(source),
        path=target,
        lines=tuple(lines),
        source_lines=tuple(source_lines),
        example_tokens=tuple(counts),
        exact=exact,
        epochs=epochs,
        epochs_source=epochs_source,
        price=price,
        hours=hours,
        notes=tuple(notes),
    )
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(prepared.content)
    return prepared
