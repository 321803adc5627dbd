"""The stores' JSON text: `budgets_text` is exactly `dumps` of a record's budget entries."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from costlens.store import _codec
from costlens.store._codec import budgets_text, dumps

SETTLED = (
    "budget",
    "key",
    "mode",
    "window_start",
    "reservation",
    "reserved_nanousd",
    "outcome",
    "charged_nanousd",
)
TEXT = st.text(max_size=12) | st.sampled_from(["all", "per-model[model=gpt-4o]", 'q"uote\\', "é\u2028\x00"])
ANY_VALUE = st.none() | st.booleans() | st.integers(-(10**20), 10**20) | TEXT | st.floats(allow_nan=False)


def settled(
    budget: str, key: str, rid: str, reserved: int, outcome: str, charged: int | None
) -> dict[str, Any]:
    """An entry as `Ticket.entries` makes it for a settled call (the keys in this order)."""
    return {
        "budget": budget,
        "key": key,
        "mode": "block",
        "window_start": "2026-12-01T00:00:00+00:00",
        "reservation": rid,
        "reserved_nanousd": reserved,
        "outcome": outcome,
        "charged_nanousd": charged,
    }


USUAL = st.builds(
    settled,
    TEXT,
    TEXT,
    st.text(alphabet="0123456789abcdef", min_size=1, max_size=32) | TEXT,
    st.integers(0, 10**30) | st.booleans(),
    st.sampled_from(["settled", "released", "unsettled", "reserved", "blocked", 'x"']),
    st.none() | st.integers(-(10**30), 10**30) | st.booleans(),
)
# any other entry: keys missing, in another order, values of any type
ODD = st.dictionaries(st.sampled_from([*SETTLED, "reason", "spent_nanousd"]), ANY_VALUE, max_size=9)
SWAPPED = USUAL.map(lambda e: dict(reversed(list(e.items()))))
ANY_VALUES = st.lists(ANY_VALUE, min_size=8, max_size=8).map(lambda vs: dict(zip(SETTLED, vs, strict=True)))


@settings(max_examples=400, deadline=None)
@given(entries=st.lists(USUAL | ODD | SWAPPED | ANY_VALUES, max_size=4))
def test_budgets_text_is_the_json_dumps_gives(entries: list[dict[str, Any]]) -> None:
    """The shortcut for settled entries gives the text `dumps` gives, byte for byte, for the usual
    entries (each budget's head cached once) and falls back to it for anything else."""
    expected = dumps(entries)
    assert budgets_text(entries) == expected
    assert budgets_text(entries) == expected  # (a second time: from the cached heads)


def test_no_entries_are_an_empty_list_and_the_head_cache_is_bounded(monkeypatch: Any) -> None:
    assert budgets_text(None) == budgets_text([]) == "[]"
    monkeypatch.setattr(_codec, "_MAX_HEADS", 3)
    _codec._heads.clear()
    for i in range(10):
        entry = settled(f"b{i}", "k", "abc123", 5, "settled", 4)
        assert budgets_text([entry]) == dumps([entry])
    assert 1 <= len(_codec._heads) <= 3


def test_a_budgeted_calls_entries_take_the_shortcut() -> None:
    """The entries a settled call's record carries are the ones the shortcut knows (a change to
    `Ticket.entries` that it no longer matches fails here, not silently in the recorder's time)."""
    from costlens.budgets import Budget, BudgetEngine, BudgetStep
    from costlens.pipeline import Pipeline, Request
    from costlens.usage import CallRecord, Usage

    engine = BudgetEngine([Budget("all", limit_usd="10"), Budget("m", limit_usd="5", scope={"model": "*"})])
    records: list[CallRecord] = []
    pipeline = Pipeline({"budget": BudgetStep(engine)}, sinks=[records.append])
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9}
    call = pipeline.start(Request.of("openai", "chat", body))
    call.usage = Usage(input_tokens=5, output_tokens=4)
    pipeline.finish(call)
    entries = records[0].budgets
    assert [tuple(e) for e in entries] == [SETTLED, SETTLED]
    _codec._heads.clear()
    assert budgets_text(entries) == dumps(entries) and len(_codec._heads) == 2
    engine.close()
