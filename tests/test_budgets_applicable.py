"""`BudgetEngine.applicable` is cached per (model, provider, tags) while its window positions hold:
the cached answer must always equal the one worked out afresh, across window boundaries, clocks
that go back, scopes of every kind, and budgets added or removed between calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from costlens.budgets import Budget, BudgetEngine, BudgetKey
from costlens.budgets._window import Window

T0 = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # near a month end and a DST change in Europe
BUDGETS = [
    Budget("all", limit_usd="10", window="month"),
    Budget("per-model", limit_usd="5", window="day", scope={"model": "*"}),
    Budget("berlin", limit_usd="5", window="day", timezone="Europe/Berlin", scope={"user": "*"}),
    Budget("team-a", limit_usd="3", window="24h", scope={"team": "a", "provider": "openai"}),
    Budget("ever", limit_usd="100", window="lifetime", scope={"model": ["m1", "m2"]}),
]


def _fresh(
    budgets: tuple[Budget, ...], tags: dict[str, str], model: str, provider: str, at: datetime
) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for budget in budgets:
        key_id = budget.key_for(tags, model, provider)
        if key_id is not None:
            pos = budget.window.position(at)
            key = BudgetKey(key_id, budget.limit_nanousd, pos.since_us, pos.bucket_us, budget.enforced)
            out.append((budget.name, key, pos.bucket_us, pos.since_us, pos.period_us))
    return out


_calls = st.lists(
    st.tuples(
        st.sampled_from(["m1", "m2", "m3"]),
        st.sampled_from(["openai", "anthropic"]),
        st.fixed_dictionaries({}, optional={"user": st.sampled_from(["u1", "u2"]), "team": st.just("a")}),
        st.integers(-3 * 3600, 5 * 86_400),  # seconds from T0: back and forth over day and month ends
        st.sampled_from(["call", "call", "call", "add", "remove"]),
        st.sampled_from(BUDGETS),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(_calls)
def test_cached_applicable_always_equals_a_fresh_answer(calls: list[tuple[Any, ...]]) -> None:
    engine = BudgetEngine(BUDGETS[:2])
    for model, provider, tags, offset, action, budget in calls:
        if action == "add":
            engine.add(budget)
        elif action == "remove":
            engine.remove(budget.name)
        at = T0 + timedelta(seconds=offset)
        got = [
            (a.budget.name, a.key, a.position.bucket_us, a.position.since_us, a.position.period_us)
            for a in engine.applicable(tags, model, provider, at)
        ]
        assert got == _fresh(engine.budgets, tags, model, provider, at)


def test_a_new_window_gives_new_keys_for_the_same_call() -> None:
    engine = BudgetEngine([Budget("d", limit_usd="1", window="day")])
    before = engine.applicable({}, "m", "p", datetime(2026, 5, 1, 23, 59, 59, tzinfo=UTC))
    again = engine.applicable({}, "m", "p", datetime(2026, 5, 1, 23, 59, 59, 999_999, tzinfo=UTC))
    after = engine.applicable({}, "m", "p", datetime(2026, 5, 2, tzinfo=UTC))
    assert again is before  # still the same window: the cached answer
    assert after[0].key.since_us - before[0].key.since_us == 86_400_000_000


def test_window_start_iso_is_the_start_in_iso_8601() -> None:
    pos = Window("day", "Europe/Berlin").position(datetime(2026, 7, 1, 12, tzinfo=UTC))
    assert pos.start_iso == pos.start.isoformat() == "2026-06-30T22:00:00+00:00"  # kept in UTC


def test_a_tag_value_that_cannot_be_hashed_is_answered_without_the_cache() -> None:
    engine = BudgetEngine([Budget("all", limit_usd="1", window="day")])
    tags: Any = {"feature": ["not", "hashable"]}
    at = datetime(2026, 5, 1, tzinfo=UTC)
    assert [a.key.id for a in engine.applicable(tags, "m", "p", at)] == ["all"]
    assert [a.key.id for a in engine.applicable(tags, "m", "p", at)] == ["all"]
