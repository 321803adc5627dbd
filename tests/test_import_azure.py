"""Import of the real Azure LLM inference traces: the counts and totals of data/traces/README.md."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from costlens.analytics import detect_format, import_file, spend
from costlens.pricing import cost
from costlens.store import SpendQuery
from costlens.store.sqlite import SQLiteStore
from costlens.usage import Usage

TRACES = Path(__file__).resolve().parent.parent / "data" / "traces"
CODE = TRACES / "azure_llm_2023_code.csv"
CONV = TRACES / "azure_llm_2023_conv.csv"
# From data/traces/README.md: rows, total input tokens (18.06 M / 22.36 M), output (0.246 M / 4.09 M).
EXPECTED = {"code": (8_819, 18_059_974, 245_896), "conversation": (19_366, 22_361_870, 4_088_665)}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> SQLiteStore:
    store = SQLiteStore(tmp_path_factory.mktemp("azure") / "azure.db")
    for path, feature in ((CODE, "code"), (CONV, "conversation")):
        result = import_file(store, path, model="gpt-4o-mini", tags={"feature": feature})
        rows, inp, out = EXPECTED[feature]
        assert (result.rows, result.imported, result.duplicates, result.bad) == (rows, rows, 0, [])
        assert (result.input_tokens, result.output_tokens, result.unpriced) == (inp, out, 0)
    return store


def test_both_traces_give_the_documented_rows_and_token_totals(imported: SQLiteStore) -> None:
    rows = {r.keys["feature"]: r for r in imported.query(SpendQuery(("feature",)))}
    for feature, (calls, inp, out) in EXPECTED.items():
        assert (rows[feature].calls, rows[feature].input_tokens, rows[feature].output_tokens) == (
            calls,
            inp,
            out,
        )
    assert f"{rows['code'].input_tokens / 1e6:.2f} M" == "18.06 M"
    assert f"{rows['conversation'].output_tokens / 1e6:.2f} M" == "4.09 M"


def test_importing_twice_adds_nothing(imported: SQLiteStore) -> None:
    again = import_file(imported, CODE, model="gpt-4o-mini", tags={"feature": "code"})
    assert (again.imported, again.duplicates) == (0, 8_819)
    assert sum(r.calls for r in imported.query(SpendQuery())) == 28_185


def test_rows_are_priced_at_import_exactly(imported: SQLiteStore) -> None:
    first = next(imported.iter_records(where={"feature": "code"}, limit=1))
    assert first.started_at == datetime(2023, 11, 16, 18, 17, 3, 979960, tzinfo=UTC)  # 7th digit cut
    assert (first.input_tokens, first.output_tokens) == (4808, 10)
    assert (first.provider, first.request_model, first.operation) == ("azure", "gpt-4o-mini", "chat")
    expected = cost(Usage(4808, 10), provider="azure", model="gpt-4o-mini", at=first.started_at)
    assert first.cost_nanousd == expected.nanousd
    assert first.price_known and first.price_version == expected.price_version
    report = spend(imported, ["feature"], measures=["calls", "cost_usd"])
    assert report.totals["cost_usd"] == sum((r["cost_usd"] for r in report.rows), Decimal(0))


def test_the_trace_is_recognised_and_needs_a_model(tmp_path: Path) -> None:
    assert detect_format(CODE) == ("csv", "azure-llm-2023")
    store = SQLiteStore(tmp_path / "x.db")
    with pytest.raises(ValueError, match="names no model: give the model"):
        import_file(store, CODE)
    store.close()


def test_time_zone_and_no_price(tmp_path: Path) -> None:
    head = tmp_path / "head.csv"
    head.write_text("".join(CODE.read_text().splitlines(keepends=True)[:4]))
    store = SQLiteStore(tmp_path / "tz.db")
    result = import_file(
        store, head, model="gpt-4o-mini", provider="azure", timezone="America/Los_Angeles", pricing="none"
    )
    assert (result.imported, result.unpriced) == (3, 3)
    first = next(store.iter_records())
    assert first.started_at == datetime(2023, 11, 17, 2, 17, 3, 979960, tzinfo=UTC)  # 18:17 PST
    assert first.cost_nanousd is None and not first.price_known
    store.close()
