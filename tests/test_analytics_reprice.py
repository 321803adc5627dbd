"""Re-pricing equals pricing every recorded call again with `costlens.cost`, and changes nothing stored."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from costlens.analytics import reprice
from costlens.pricing import PriceCatalogue, cost
from costlens.store.sqlite import SQLiteStore
from costlens.usage import CallRecord, Usage

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def history(n: int = 300) -> list[CallRecord]:
    rng = random.Random(5)
    out = []
    for i in range(n):
        inp = rng.choice([rng.randint(100, 5000), rng.randint(200_001, 300_000)])  # some above 200k tokens
        cached = rng.randint(0, inp // 2)
        out.append(
            CallRecord(
                "openai",
                "chat",
                rng.choice(["gpt-4o", "gpt-4o-mini"]),
                started_at=T0 + timedelta(minutes=i),
                input_tokens=inp,
                output_tokens=rng.randint(1, 2000),
                cache_read_tokens=cached,
                cost_nanousd=rng.randint(1, 10**7),
                price_known=True,
                service_tier=rng.choice([None, "batch"]),
                tags={"feature": rng.choice(["search", "chat"])},
            )
        )
    return out


def test_repricing_on_another_model_equals_per_call_costs(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.db")
    records = history()
    store.append(records)
    result = reprice(store, model="claude-sonnet-4-5", provider="anthropic", by=["feature"])
    expected: dict[str, int] = {}
    for r in records:
        usage = Usage(r.input_tokens, r.output_tokens, r.cache_read_tokens)
        price = cost(
            usage,
            provider="anthropic",
            model="claude-sonnet-4-5",
            at=r.started_at,
            service_tier=r.service_tier,
        )
        assert price.nanousd is not None
        expected[r.tags["feature"]] = expected.get(r.tags["feature"], 0) + price.nanousd
    got = {row["feature"]: row["repriced_cost_usd"] for row in result.rows}
    assert got == {k: Decimal(v).scaleb(-9) for k, v in expected.items()}
    assert result.totals["calls"] == len(records)
    assert result.totals["recorded_cost_usd"] == Decimal(sum(r.cost_nanousd or 0 for r in records)).scaleb(-9)
    assert result.totals["unpriced_after"] == 0
    # nothing stored changed
    assert [r.cost_nanousd for r in store.iter_records()] == [r.cost_nanousd for r in records]
    store.close()


def test_long_context_tiers_apply_per_call() -> None:
    from costlens.store.memory import MemoryStore

    store = MemoryStore()
    small = CallRecord(
        "openai", "chat", "x", started_at=T0, input_tokens=150_000, output_tokens=10, cost_nanousd=1
    )
    large = CallRecord(
        "openai", "chat", "x", started_at=T0, input_tokens=250_000, output_tokens=10, cost_nanousd=1
    )
    store.append([small, large])
    result = reprice(store, model="claude-sonnet-4-5", provider="anthropic", by=[])
    per_call = sum(
        cost(
            Usage(r.input_tokens, r.output_tokens), provider="anthropic", model="claude-sonnet-4-5", at=T0
        ).nanousd
        or 0
        for r in (small, large)
    )
    summed = cost(Usage(400_000, 20), provider="anthropic", model="claude-sonnet-4-5", at=T0).nanousd
    assert result.totals["repriced_cost_usd"] == Decimal(per_call).scaleb(-9)
    assert per_call != summed  # pricing the sum would have put every token in the long-context tier


def test_another_catalogue_and_unknown_models(tmp_path: Path) -> None:
    from costlens.store.memory import MemoryStore

    prices = tmp_path / "prices.toml"
    prices.write_text('[[models]]\nprovider = "openai"\nmodel = "gpt-4o"\ninput = 1\noutput = 2\n')
    store = MemoryStore()
    store.append(
        [
            CallRecord(
                "openai", "chat", "gpt-4o", started_at=T0, input_tokens=1_000_000, output_tokens=500_000
            ),
            CallRecord("acme", "chat", "mystery", started_at=T0, input_tokens=10, cost_nanousd=5),
        ]
    )
    result = reprice(store, catalogue=PriceCatalogue.load(prices, genai=False))
    rows = {row["model"]: row for row in result.rows}
    assert rows["gpt-4o"]["repriced_cost_usd"] == Decimal("2.000000000")  # 1 USD input + 1 USD output
    assert rows["gpt-4o"]["unpriced_before"] == 1
    assert rows["mystery"]["unpriced_after"] == 1
    assert result.notes == [
        "1 calls have no price for the recorded provider/the recorded model: they are left out"
    ]


def test_a_target_is_required() -> None:
    from costlens.store.memory import MemoryStore

    with pytest.raises(ValueError, match="say what to re-price with"):
        reprice(MemoryStore())
