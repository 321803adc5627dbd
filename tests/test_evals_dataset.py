"""Datasets: JSONL and CSV loading, validation errors by line and field, deterministic stable splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from costlens._errors import ConfigError
from costlens.evals import SPLITS, Dataset, DatasetError, Item, split_of


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_jsonl_with_text_messages_choices_and_metadata(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "qa.jsonl",
        [
            {"id": "q1", "question": "Capital of France?", "answer": "Paris", "topic": "geo"},
            {
                "id": 2,
                "messages": None,
                "question": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "6 x 7?"},
                ],
                "answer": 42,
            },
            {"id": "q3", "question": "Largest planet?", "answer": "B", "choices": ["Mars", "Jupiter"]},
            {"id": "q4", "question": "Extract", "answer": {"city": "Rome"}, "split": "validation"},
        ],
    )
    data = Dataset.load(path)
    assert [i.id for i in data] == ["q1", "2", "q3", "q4"]
    q1, q2, q3, q4 = data.items
    assert q1.input == "Capital of France?" and q1.expected == "Paris" and q1.metadata == {"topic": "geo"}
    assert q1.line == 1 and q1.split in SPLITS
    assert isinstance(q2.input, tuple) and q2.input[1]["content"] == "6 x 7?" and q2.expected == 42
    assert q2.text == "Be brief.\n6 x 7?"
    assert q3.choices == ("Mars", "Jupiter")
    assert q4.expected == {"city": "Rome"} and q4.split == "dev"  # an explicit split wins, aliases read
    assert data["q3"] is q3 and "q9" not in data


def test_csv_with_choice_columns_quoted_newlines_and_explicit_fields(tmp_path: Path) -> None:
    path = tmp_path / "mmlu.csv"
    path.write_text(
        "qid,prompt,A,B,C,D,gold,subject\n"
        'm1,"Which is a prime?\nPick one.",4,6,7,9,C,math\n'
        "m2,Boiling point of water (C)?,90,100,110,120,B,physics\n",
        encoding="utf-8",
    )
    data = Dataset.load(
        path, id_field="qid", input_field="prompt", expected_field="gold", choices_field=["A", "B", "C", "D"]
    )
    m1, m2 = data.items
    assert m1.input == "Which is a prime?\nPick one." and m1.choices == ("4", "6", "7", "9")
    assert m1.expected == "C" and m1.metadata == {"subject": "math"}
    assert m2.line == 4  # the line a row ends on, counting the quoted newline


def test_csv_choices_as_json_or_pipes(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('input,expected,choices\nQ1,A,"[""x"", ""y""]"\nQ2,B,red | green\n', encoding="utf-8")
    first, second = Dataset.load(path).items
    assert first.choices == ("x", "y") and second.choices == ("red", "green")


def test_bad_lines_name_the_line_and_field(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": "ok", "input": "fine", "expected": "yes"},
            "{not json",
            {"id": "e1", "input": "", "expected": "x"},
            {"id": "e2", "input": "no answer"},
            {"id": "e3", "input": [{"role": "robot", "content": "hi"}], "expected": "x"},
            {"id": "e4", "input": "q", "expected": "x", "split": "holdout"},
            {"id": "ok", "input": "dupe", "expected": "x"},
            "",
            "[1, 2]",
            {"id": "e5", "input": "q", "expected": "x", "choices": ["only one"]},
            {"id": True, "input": "q", "expected": "x"},
        ],
    )
    with pytest.raises(DatasetError) as caught:
        Dataset.load(path)
    err = caught.value
    assert isinstance(err, ConfigError)
    found = {(e.line, e.field) for e in err.errors}
    assert found == {
        (2, "(line)"),
        (3, "input"),
        (4, "expected"),
        (5, "input[0].role"),
        (6, "split"),
        (7, "id"),
        (9, "(line)"),
        (10, "choices"),
        (11, "id"),
    }
    message = str(err)
    assert "bad.jsonl" in message and "9 problem(s)" in message
    assert "line 4, field 'expected': missing" in message
    assert "line 7, field 'id': duplicate id 'ok' (first on line 1)" in message
    assert "unknown split 'holdout'" in message


def test_bad_csv_rows_and_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("input,expected\nq1,a\nq2\nq3,\n", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        Dataset.load(path)
    assert {(e.line, e.field) for e in caught.value.errors} == {(3, "(row)"), (4, "expected")}
    (tmp_path / "no_input.csv").write_text("body,expected\nq,a\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"no input column.*input_field="):
        Dataset.load(tmp_path / "no_input.csv")
    (tmp_path / "no_expected.csv").write_text("input\nq\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no expected-answer column"):
        Dataset.load(tmp_path / "no_expected.csv")
    unlabelled = Dataset.load(tmp_path / "no_expected.csv", require_expected=False)
    assert unlabelled.items[0].expected is None
    with pytest.raises(DatasetError, match="does not exist"):
        Dataset.load(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no rows"):
        Dataset.load(tmp_path / "empty.jsonl")


def test_the_error_message_shows_ten_problems_and_counts_the_rest(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "many.jsonl", [{"input": "", "expected": "a"} for _ in range(15)])
    with pytest.raises(DatasetError, match=r"15 problem\(s\)[\s\S]*and 5 more") as caught:
        Dataset.load(path)
    assert len(caught.value.errors) == 15


# -- splits ------------------------------------------------------------------------------------------


def _rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "input": f"question {i}", "expected": str(i)} for i in range(start, start + n)]


def test_splits_are_deterministic_and_follow_the_fractions(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", _rows(3000))
    first = Dataset.load(path, seed=7)
    again = Dataset.load(path, seed=7)
    assert [i.split for i in first] == [i.split for i in again]
    counts = first.counts()
    assert sum(counts.values()) == 3000
    assert abs(counts["train"] / 3000 - 0.6) < 0.04 and abs(counts["test"] / 3000 - 0.2) < 0.04
    other_seed = Dataset.load(path, seed=8)
    assert [i.split for i in first] != [i.split for i in other_seed]
    test = first.split("test")
    assert len(test) == counts["test"] and all(i.split == "test" for i in test)
    assert len(first.split("validation")) == counts["dev"]
    custom = Dataset.load(path, fractions={"train": 0.5, "test": 0.5})
    assert custom.counts()["dev"] == 0
    with pytest.raises(ConfigError, match="sum to 1"):
        Dataset.load(path, fractions={"train": 0.5, "test": 0.6})
    with pytest.raises(ConfigError, match="unknown split"):
        first.split("holdout")


def test_appending_rows_moves_no_existing_row(tmp_path: Path) -> None:
    before = Dataset.load(_jsonl(tmp_path / "a.jsonl", _rows(200)))
    after = Dataset.load(_jsonl(tmp_path / "b.jsonl", _rows(200) + _rows(100, start=200)))
    assert {i.id: i.split for i in before} == {i.id: i.split for i in after if i.id in before}
    shuffled = Dataset.load(_jsonl(tmp_path / "c.jsonl", list(reversed(_rows(200)))))
    assert {i.id: i.split for i in before} == {i.id: i.split for i in shuffled}  # order does not matter


def test_rows_without_ids_are_keyed_by_input_and_repeats_share_a_split(tmp_path: Path) -> None:
    rows = [{"input": f"q{i}", "expected": "a"} for i in range(50)] + [{"input": "q3", "expected": "b"}]
    data = Dataset.load(_jsonl(tmp_path / "noid.jsonl", rows))
    ids = [i.id for i in data]
    assert len(set(ids)) == 51 and ids[-1] == f"{ids[3]}#2"
    assert data.items[-1].split == data.items[3].split
    appended = Dataset.load(_jsonl(tmp_path / "noid2.jsonl", [{"input": "new", "expected": "c"}, *rows]))
    assert {i.id: i.split for i in data} == {i.id: i.split for i in appended if i.id in data}


def test_split_of_is_the_documented_hash() -> None:
    import hashlib

    u = int.from_bytes(hashlib.sha256(b"0:r1").digest()[:8], "big") / 2.0**64
    expected = "train" if u < 0.6 else "dev" if u < 0.8 else "test"
    assert split_of("r1", 0) == expected


def test_datasets_built_in_code(tmp_path: Path) -> None:
    items = [Item(id=str(i), input=f"q{i}", expected="a") for i in range(20)]
    data = Dataset(items, name="mine", seed=1)
    assert all(i.split in SPLITS for i in data)
    pinned = Dataset([Item(id="x", input="q", expected="a", split="test")])
    assert pinned.items[0].split == "test"
    with pytest.raises(DatasetError, match="duplicate id 'x'"):
        Dataset([Item(id="x", input="a"), Item(id="x", input="b")])
    with pytest.raises(DatasetError, match="unknown split"):
        Dataset([Item(id="x", input="a", split="holdout")])
    assert data.fingerprint() == Dataset(items, seed=1).fingerprint()
    assert data.fingerprint() != Dataset(items, seed=2).fingerprint()
    by_input = Dataset(items, split_by="input")
    assert by_input.items[0].split == split_of(items[0].input_key, 0)
