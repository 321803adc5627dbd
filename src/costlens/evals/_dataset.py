"""Datasets: labelled items read from JSONL or CSV, validated line by line, split deterministically.

    data = Dataset.load("tickets.jsonl", input_field="text", expected_field="label")
    data.split("test")          # a Dataset of the test items

A row's input is text or, in JSONL, a list of chat messages (`{"role": ..., "content": ...}`). Its
expected value is text, a number, a list (any of these) or a JSON object (structured output). Every
column not named as a field goes into the item's `metadata` (a `rationale` column is used by
chain-of-thought few-shot examples).

Splits. A row's `split` column (train / dev / test; `validation` and `val` mean dev) wins. Otherwise
the row's split comes from a hash of the seed and its key (the `id` column, or the input's own hash
when there is none): u = first 8 bytes of sha256("{seed}:{key}") / 2**64, train when u < train
fraction, dev when u < train + dev, else test. A row's split depends on nothing else, so appending
rows never moves an existing one, and identical inputs without ids always share a split.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from costlens._errors import ConfigError

__all__ = ["DEFAULT_FRACTIONS", "SPLITS", "Dataset", "DatasetError", "Item", "LineError", "split_of"]

SPLITS = ("train", "dev", "test")
DEFAULT_FRACTIONS: Mapping[str, float] = {"train": 0.6, "dev": 0.2, "test": 0.2}
_SPLIT_ALIASES = {"train": "train", "training": "train", "dev": "dev", "validation": "dev", "val": "dev",
                  "valid": "dev", "test": "test", "testing": "test"}  # fmt: skip
_INPUT_FIELDS = ("input", "question", "prompt", "messages", "text")
_EXPECTED_FIELDS = ("expected", "answer", "label", "output", "target")
_ROLES = ("system", "user", "assistant", "developer", "tool")
_MAX_SHOWN = 10

Message = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, field {self.field!r}: {self.message}"


class DatasetError(ConfigError):
    """A dataset that cannot be used; `errors` lists each bad line and field (the message shows ten)."""

    def __init__(self, source: str, errors: Sequence[LineError] = (), message: str | None = None) -> None:
        self.source = source
        self.errors = tuple(errors)
        if message is None:
            shown = "\n  ".join(str(e) for e in self.errors[:_MAX_SHOWN])
            more = len(self.errors) - _MAX_SHOWN
            message = f"dataset {source}: {len(self.errors)} problem(s):\n  {shown}" + (
                f"\n  ... and {more} more" if more > 0 else ""
            )
        super().__init__(message)


@dataclass(frozen=True, slots=True, eq=True)
class Item:
    """One labelled example. `input` is text or chat messages; `expected` the answer to score against
    (None when the scorer needs none); `choices` the options of a multiple-choice item; `split` is set
    by the `Dataset`; `line` is the source line, for messages."""

    id: str
    input: str | tuple[Message, ...]
    expected: Any = None
    choices: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    split: str | None = None
    line: int | None = None

    @property
    def text(self) -> str:
        """The input as plain text: itself, or the messages' text contents one per line."""
        if isinstance(self.input, str):
            return self.input
        return "\n".join(_content_text(m.get("content")) for m in self.input)

    @property
    def input_key(self) -> str:
        """A hash of the input alone: equal inputs, equal keys."""
        canonical = self.input if isinstance(self.input, str) else _canonical(list(self.input))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def split_of(key: str, seed: int, fractions: Mapping[str, float] = DEFAULT_FRACTIONS) -> str:
    """The split a key falls in (see the module docstring for the definition)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    edge = 0.0
    for name in SPLITS:
        edge += fractions.get(name, 0.0)
        if u < edge:
            return name
    for name in reversed(SPLITS):  # rounding: the last split with a share
        if fractions.get(name, 0.0) > 0:
            return name
    return "test"


def _check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(fractions) - set(SPLITS))
    if unknown:
        raise ConfigError(f"split fractions name unknown splits {unknown}; splits: {', '.join(SPLITS)}")
    out = {name: float(fractions.get(name, 0.0)) for name in SPLITS}
    if any(v < 0 for v in out.values()) or abs(sum(out.values()) - 1.0) > 1e-9:
        raise ConfigError(f"split fractions must be non-negative and sum to 1, got {out}")
    return out


class Dataset:
    """Items with unique ids, each in one split (a given `split`, else by hash; see the module docstring)."""

    def __init__(
        self,
        items: Iterable[Item],
        *,
        name: str = "dataset",
        seed: int = 0,
        fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
        split_by: Literal["id", "input"] = "id",
    ) -> None:
        self.name = name
        self.seed = seed
        self.fractions = _check_fractions(fractions)
        self.split_by = split_by
        placed: list[Item] = []
        seen: dict[str, Item] = {}
        for item in items:
            if item.id in seen:
                first = seen[item.id]
                where = f" (lines {first.line} and {item.line})" if item.line and first.line else ""
                raise DatasetError(name, message=f"dataset {name}: duplicate id {item.id!r}{where}")
            if item.split is None:
                key = item.id if split_by == "id" else item.input_key
                item = replace(item, split=split_of(key, seed, self.fractions))
            elif item.split not in SPLITS:
                raise DatasetError(
                    name, message=f"dataset {name}: item {item.id!r} has unknown split {item.split!r}"
                )
            seen[item.id] = item
            placed.append(item)
        self.items: tuple[Item, ...] = tuple(placed)
        self._by_id = seen

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __getitem__(self, item_id: str) -> Item:
        try:
            return self._by_id[item_id]
        except KeyError:
            raise KeyError(f"dataset {self.name} has no item {item_id!r}") from None

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def __repr__(self) -> str:
        return f"<Dataset {self.name}: {len(self)} items {self.counts()}>"

    def split(self, name: str) -> Dataset:
        """The items of one split (train, dev, test), as a dataset."""
        canonical = _SPLIT_ALIASES.get(name.lower())
        if canonical is None:
            raise ConfigError(f"unknown split {name!r}; splits: {', '.join(SPLITS)}")
        subset = Dataset.__new__(Dataset)
        subset.name = f"{self.name}[{canonical}]"
        subset.seed, subset.fractions, subset.split_by = self.seed, self.fractions, self.split_by
        subset.items = tuple(i for i in self.items if i.split == canonical)
        subset._by_id = {i.id: i for i in subset.items}
        return subset

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(SPLITS, 0)
        for item in self.items:
            counts[item.split or "test"] += 1
        return counts

    def fingerprint(self) -> str:
        """A hash of every item (id, input, expected, choices, split), in order: a run records it so that
        resuming against a changed dataset is noticed."""
        h = hashlib.sha256()
        for i in self.items:
            h.update(_canonical([i.id, i.input, i.expected, list(i.choices), i.split]).encode("utf-8"))
            h.update(b"\n")
        return h.hexdigest()

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        format: Literal["jsonl", "csv"] | None = None,
        id_field: str | None = "id",
        input_field: str | None = None,
        expected_field: str | None = None,
        choices_field: str | Sequence[str] | None = "choices",
        split_field: str | None = "split",
        metadata_fields: Sequence[str] | None = None,
        require_expected: bool = True,
        seed: int = 0,
        fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
        split_by: Literal["id", "input"] = "id",
    ) -> Dataset:
        """Read a JSONL (`.jsonl`, `.ndjson`, `.json` lines) or CSV file.

        `input_field` / `expected_field` default to the first column present of
        input, question, prompt, messages, text / expected, answer, label, output, target.
        `id_field` is optional in the file (missing: the input's hash, `#2`... for repeats).
        `choices_field` is a column holding a list (JSON text or `|`-separated in CSV), or several
        columns, one per option (`["A", "B", "C", "D"]`). `metadata_fields`: the columns to keep
        (default: every other column). Every problem found is reported, by line and field.
        """
        path = Path(path)
        source = str(path)
        if format is None:
            suffix = path.suffix.lower()
            format = "csv" if suffix in (".csv", ".tsv") else "jsonl"
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise DatasetError(source, message=f"dataset {source} does not exist") from None
        except UnicodeDecodeError as exc:
            raise DatasetError(source, message=f"dataset {source} is not UTF-8 text: {exc}") from None
        errors: list[LineError] = []
        rows = list(
            _csv_rows(text, delimiter="\t" if path.suffix.lower() == ".tsv" else ",", errors=errors)
            if format == "csv"
            else _jsonl_rows(text, errors)
        )
        if not rows and not errors:
            raise DatasetError(source, message=f"dataset {source} has no rows")
        columns: set[str] = set()
        for _, row in rows:
            columns.update(row)
        input_field = input_field or _first_present(_INPUT_FIELDS, columns)
        if input_field is None:
            raise DatasetError(
                source,
                message=f"dataset {source}: no input column (looked for {', '.join(_INPUT_FIELDS)}); "
                "name it with input_field=",
            )
        if expected_field is None:
            expected_field = _first_present(_EXPECTED_FIELDS, columns)
            if expected_field is None and require_expected:
                raise DatasetError(
                    source,
                    message=f"dataset {source}: no expected-answer column (looked for "
                    f"{', '.join(_EXPECTED_FIELDS)}); name it with expected_field=, "
                    "or pass require_expected=False",
                )
        choice_columns: tuple[str, ...] = ()
        if isinstance(choices_field, str):
            choice_columns = (choices_field,) if choices_field in columns else ()
        elif choices_field is not None:
            choice_columns = tuple(choices_field)
            missing = [c for c in choice_columns if c not in columns]
            if missing:
                raise DatasetError(source, message=f"dataset {source}: no choice column(s) {missing}")
        named = {input_field, expected_field, id_field, split_field, *choice_columns} - {None}
        items: list[Item] = []
        repeats: dict[str, int] = {}
        for line, row in rows:
            item = _item(
                line,
                row,
                format=format,
                id_field=id_field,
                input_field=input_field,
                expected_field=expected_field,
                choice_columns=choice_columns,
                split_field=split_field,
                metadata=(
                    {k: row[k] for k in metadata_fields if k in row}
                    if metadata_fields is not None
                    else {k: v for k, v in row.items() if k not in named}
                ),
                require_expected=require_expected,
                errors=errors,
            )
            if item is None:
                continue
            if id_field is None or id_field not in row:
                n = repeats[item.id] = repeats.get(item.id, 0) + 1
                if n > 1:
                    item = replace(item, id=f"{item.id}#{n}")
            items.append(item)
        seen: dict[str, int] = {}
        for item in items:
            if item.id in seen:
                errors.append(
                    LineError(
                        item.line or 0,
                        id_field or "id",
                        f"duplicate id {item.id!r} (first on line {seen[item.id]})",
                    )
                )
            else:
                seen[item.id] = item.line or 0
        if errors:
            errors.sort(key=lambda e: e.line)
            raise DatasetError(source, errors)
        if split_by == "input" or id_field is None or id_field not in columns:
            # keyed by input, so repeats of one input share a split
            items = [
                i
                if i.split is not None
                else replace(i, split=split_of(i.input_key, seed, _check_fractions(fractions)))
                for i in items
            ]
        return cls(items, name=path.name, seed=seed, fractions=fractions, split_by=split_by)


def _first_present(names: Sequence[str], columns: set[str]) -> str | None:
    return next((n for n in names if n in columns), None)


def _jsonl_rows(text: str, errors: list[LineError]) -> Iterator[tuple[int, dict[str, Any]]]:
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
        yield number, row


def _csv_rows(text: str, *, delimiter: str, errors: list[LineError]) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    for row in reader:
        line = reader.line_num  # the row's last physical line; a quoted field may span lines
        if header is None:
            header = [h.strip() for h in row]
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                errors.append(LineError(line, "(header)", f"duplicate column(s) {dupes}"))
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            errors.append(LineError(line, "(row)", f"has {len(row)} cells, the header has {len(header)}"))
            continue
        yield line, dict(zip(header, row, strict=True))


def _item(
    line: int,
    row: Mapping[str, Any],
    *,
    format: str,
    id_field: str | None,
    input_field: str,
    expected_field: str | None,
    choice_columns: tuple[str, ...],
    split_field: str | None,
    metadata: dict[str, Any],
    require_expected: bool,
    errors: list[LineError],
) -> Item | None:
    before = len(errors)

    def bad(name: str, message: str) -> None:
        errors.append(LineError(line, name, message))

    raw_input = row.get(input_field)
    value: str | tuple[Message, ...] | None = None
    if raw_input is None or (isinstance(raw_input, str) and not raw_input.strip()):
        bad(input_field, "missing or empty")
    elif isinstance(raw_input, str):
        value = raw_input
    elif isinstance(raw_input, list):
        value = _messages(raw_input, input_field, bad)
    else:
        bad(input_field, f"must be text or a list of chat messages, got {type(raw_input).__name__}")

    expected: Any = None
    if expected_field is not None:
        expected = row.get(expected_field)
        if format == "csv" and expected == "":
            expected = None
        if expected is None and require_expected:
            bad(expected_field, "missing (every item needs an expected answer)")

    choices: tuple[str, ...] = ()
    if len(choice_columns) == 1:
        choices = _choices(row.get(choice_columns[0]), choice_columns[0], format, bad)
    elif choice_columns:
        cells = [row.get(c) for c in choice_columns]
        choices = tuple(str(c) for c in cells if c not in (None, ""))

    split: str | None = None
    if split_field is not None and row.get(split_field) not in (None, ""):
        given = str(row[split_field]).strip().lower()
        split = _SPLIT_ALIASES.get(given)
        if split is None:
            bad(split_field, f"unknown split {row[split_field]!r}; use train, dev or test")

    item_id: str | None = None
    if id_field is not None and id_field in row:
        raw_id = row[id_field]
        if (
            raw_id is None
            or isinstance(raw_id, bool)
            or not isinstance(raw_id, str | int)
            or str(raw_id).strip() == ""
        ):
            bad(id_field, "must be a non-empty text or integer")
        else:
            item_id = str(raw_id).strip()

    if len(errors) > before or value is None:
        return None
    item = Item(
        id="", input=value, expected=expected, choices=choices, metadata=metadata, split=split, line=line
    )
    return replace(item, id=item_id if item_id is not None else item.input_key)


def _messages(raw: list[Any], name: str, bad: Any) -> tuple[Message, ...] | None:
    if not raw:
        bad(name, "an empty list of messages")
        return None
    out: list[Message] = []
    for i, message in enumerate(raw):
        where = f"{name}[{i}]"
        if not isinstance(message, dict):
            bad(where, "a message must be an object with role and content")
            return None
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            bad(f"{where}.role", f"must be one of {', '.join(_ROLES)}, got {role!r}")
            return None
        if not isinstance(content, str | list):
            bad(f"{where}.content", "must be text or a list of content parts")
            return None
        out.append(dict(message))
    if not any(m["role"] == "user" for m in out):
        bad(name, "the messages have no user message")
        return None
    return tuple(out)


def _choices(raw: Any, name: str, format: str, bad: Any) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str) and format == "csv":
        stripped = raw.strip()
        if stripped.startswith("["):
            try:
                raw = json.loads(stripped)
            except ValueError as exc:
                bad(name, f"not a JSON list: {exc}")
                return ()
        else:
            return tuple(part.strip() for part in stripped.split("|"))
    if not isinstance(raw, list) or not all(isinstance(c, str | int | float) for c in raw) or len(raw) < 2:
        bad(name, "must be a list of at least two options (text)")
        return ()
    return tuple(str(c) for c in raw)
