"""costlens.pricing against prices written down by hand from genai-prices 0.2.3's bundled data.

Every expected cost below is computed in the test from per-1M-token prices written as literals,
each with the place in genai-prices' data it was read from (`genai_prices/data.py`, provider ->
model -> prices), so a change in the data or in costlens' arithmetic shows up here.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

import costlens
from costlens._errors import CostlensError
from costlens.pricing import (
    PriceCatalogue,
    cost,
    describe_price,
    estimate_max_cost,
    get_catalogue,
    reload_catalogue,
    set_catalogue,
    update_prices,
)
from costlens.usage import Usage

# The installed genai-prices names the catalogue; a fresh install may get a newer 0.2.x.
GENAI_VERSION = importlib.metadata.version("genai-prices")

M = 1_000_000
BEFORE_VARIANTS = datetime(2026, 3, 1, tzinfo=UTC)  # before genai-prices' tier variants start (2026-10-12/14)
AFTER_VARIANTS = datetime(2026, 11, 1, tzinfo=UTC)

OVERRIDES = """
[[models]]
provider = "acme"
model = "acme-chat"
[[models.prices]]
starts_at = 2025-01-01
input = 1
output = 2
[[models.prices]]
starts_at = 2026-01-01T00:00:00Z
input = 0.5
output = 1.5
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """A fresh catalogue with only this file's overrides; no user config leaks in."""
    (tmp_path / "prices.toml").write_text(OVERRIDES)
    monkeypatch.setenv("COSTLENS_HOME", str(tmp_path))
    monkeypatch.delenv("COSTLENS_PRICES", raising=False)
    set_catalogue(None)
    yield
    set_catalogue(None)


def usd(*terms: tuple[int, str]) -> D:
    """Sum of tokens x price-per-1M, divided by 1M: the cost as a person would compute it."""
    return sum((D(tokens) * D(per_mtok) for tokens, per_mtok in terms), D(0)) / M


# (id, provider, model, at, tier, usage, expected USD computed by hand, expected nano-USD)
TABLE = [
    (
        # openai gpt-4o: input 2.5, cache_read 1.25, output 10 -> cached prompt tokens at 1.25
        "gpt-4o-dated-snapshot-cached-prompt",
        "openai",
        "gpt-4o-2024-08-06",
        BEFORE_VARIANTS,
        None,
        Usage(input_tokens=12_000, cache_read_tokens=8_192, output_tokens=700),
        usd((12_000 - 8_192, "2.5"), (8_192, "1.25"), (700, "10")),
        26_760_000,
    ),
    (
        # openai gpt-4o-mini: input 0.15, cache_read 0.075, output 0.6
        "gpt-4o-mini-dated-snapshot",
        "openai",
        "gpt-4o-mini-2024-07-18",
        BEFORE_VARIANTS,
        "default",
        Usage(input_tokens=3_000, cache_read_tokens=1_024, output_tokens=250),
        usd((3_000 - 1_024, "0.15"), (1_024, "0.075"), (250, "0.6")),
        523_200,
    ),
    (
        # openai o4-mini: input 1.1, cache_read 0.275, output 4.4; no output_reasoning price,
        # so the 4,000 reasoning tokens bill as output
        "o4-mini-reasoning-as-output",
        "openai",
        "o4-mini-2025-04-16",
        BEFORE_VARIANTS,
        "auto",
        Usage(input_tokens=2_000, output_tokens=5_000, reasoning_tokens=4_000),
        usd((2_000, "1.1"), (5_000, "4.4")),
        24_200_000,
    ),
    (
        # anthropic claude-sonnet-4-5: input 3, cache_write 3.75 (1.25x), cache_read 0.3 (0.1x), output 15
        "claude-sonnet-4-5-cache-write-and-read",
        "anthropic",
        "claude-sonnet-4-5-20250929",
        BEFORE_VARIANTS,
        None,
        Usage(input_tokens=50_000, cache_read_tokens=30_000, cache_write_tokens=10_000, output_tokens=1_200),
        usd((10_000, "3"), (30_000, "0.3"), (10_000, "3.75"), (1_200, "15")),
        94_500_000,
    ),
    (
        # anthropic claude-3-5-haiku (alias -latest): input 0.8, cache_write 1, cache_read 0.08, output 4
        "claude-3-5-haiku-latest-alias",
        "anthropic",
        "claude-3-5-haiku-latest",
        BEFORE_VARIANTS,
        None,
        Usage(input_tokens=9_000, cache_read_tokens=4_000, cache_write_tokens=2_000, output_tokens=300),
        usd((3_000, "0.8"), (4_000, "0.08"), (2_000, "1"), (300, "4")),
        5_920_000,
    ),
    (
        # anthropic claude-sonnet-4-5 above 200k input tokens (TieredPrices start=200000):
        # input 6, cache_read 0.6, output 22.5 for ALL tokens of the call
        "claude-sonnet-4-5-long-context",
        "anthropic",
        "claude-sonnet-4-5",
        BEFORE_VARIANTS,
        None,
        Usage(input_tokens=250_000, cache_read_tokens=50_000, output_tokens=2_000),
        usd((200_000, "6"), (50_000, "0.6"), (2_000, "22.5")),
        1_275_000_000,
    ),
    (
        # google gemini-2.5-pro: 1.25 / 10 up to 200k input tokens; 2.5 / 15 above (strictly more than 200k)
        "gemini-2.5-pro-at-threshold",
        "google",
        "gemini-2.5-pro",
        BEFORE_VARIANTS,
        None,
        Usage(input_tokens=200_000, output_tokens=1_000),
        usd((200_000, "1.25"), (1_000, "10")),
        260_000_000,
    ),
    (
        "gemini-2.5-pro-above-threshold",
        "google",
        "gemini-2.5-pro",
        BEFORE_VARIANTS,
        None,
        Usage(input_tokens=200_001, output_tokens=1_000),
        usd((200_001, "2.5"), (1_000, "15")),
        515_002_500,
    ),
    (
        # openai gpt-4o batch after 2026-10-14: explicit variant {"processing": "batch"} input 1.25,
        # output 5; it lists no cached-input price, so cache reads keep the standard 1.25
        "gpt-4o-batch-explicit-variant",
        "openai",
        "gpt-4o",
        AFTER_VARIANTS,
        "batch",
        Usage(input_tokens=10_000, cache_read_tokens=4_000, output_tokens=500),
        usd((6_000, "1.25"), (4_000, "1.25"), (500, "5")),
        15_000_000,
    ),
    (
        # the same call before the variant existed: OpenAI's documented 50% batch discount on
        # input 2.5, cache_read 1.25, output 10
        "gpt-4o-batch-documented-50pct",
        "openai",
        "gpt-4o",
        BEFORE_VARIANTS,
        "batch",
        Usage(input_tokens=10_000, cache_read_tokens=4_000, output_tokens=500),
        usd((6_000, "1.25"), (4_000, "0.625"), (500, "5")),
        12_500_000,
    ),
    (
        # anthropic claude-sonnet-4-5 batch variant: input 1.5, cache_write 1.875, cache_read 0.15, output 7.5
        "claude-sonnet-4-5-batch",
        "anthropic",
        "claude-sonnet-4-5",
        AFTER_VARIANTS,
        "batch",
        Usage(input_tokens=20_000, cache_read_tokens=10_000, cache_write_tokens=5_000, output_tokens=1_000),
        usd((5_000, "1.5"), (10_000, "0.15"), (5_000, "1.875"), (1_000, "7.5")),
        25_875_000,
    ),
    (
        # openai o4-mini flex variant (from 2026-10-12): input 0.55, cache_read 0.138, output 2.2
        "o4-mini-flex",
        "openai",
        "o4-mini",
        AFTER_VARIANTS,
        "flex",
        Usage(input_tokens=4_000, cache_read_tokens=1_000, output_tokens=2_000, reasoning_tokens=1_500),
        usd((3_000, "0.55"), (1_000, "0.138"), (2_000, "2.2")),
        6_188_000,
    ),
    (
        # openai o3 (ConditionalPrice): input 10, output 40 until 2025-06-09; 2 / 8 from 2025-06-10 (UTC)
        "o3-before-price-cut",
        "openai",
        "o3-2025-04-16",
        datetime(2025, 6, 9, 23, 59, 59, tzinfo=UTC),
        None,
        Usage(input_tokens=1_000, output_tokens=1_000),
        usd((1_000, "10"), (1_000, "40")),
        50_000_000,
    ),
    (
        "o3-after-price-cut",
        "openai",
        "o3-2025-04-16",
        datetime(2025, 6, 10, tzinfo=UTC),
        None,
        Usage(input_tokens=1_000, output_tokens=1_000),
        usd((1_000, "2"), (1_000, "8")),
        10_000_000,
    ),
    (
        # deepseek deepseek-chat (TimeOfDateConstraint): 0.27 / 0.07 cached / 1.1 from 00:30 to 16:30 UTC
        "deepseek-chat-daytime",
        "deepseek",
        "deepseek-chat",
        datetime(2025, 7, 1, 12, 0, tzinfo=UTC),
        None,
        Usage(input_tokens=10_000, cache_read_tokens=2_000, output_tokens=1_000),
        usd((8_000, "0.27"), (2_000, "0.07"), (1_000, "1.1")),
        3_400_000,
    ),
    (
        # ... and 0.135 / 0.035 / 0.55 off-peak (16:30 to 00:30 UTC)
        "deepseek-chat-off-peak",
        "deepseek",
        "deepseek-chat",
        datetime(2025, 7, 1, 23, 0, tzinfo=UTC),
        None,
        Usage(input_tokens=10_000, cache_read_tokens=2_000, output_tokens=1_000),
        usd((8_000, "0.135"), (2_000, "0.035"), (1_000, "0.55")),
        1_700_000,
    ),
    (
        # azure gpt-4o: no own price, genai-prices falls back to openai's (2.5 / 1.25 / 10)
        "azure-gpt-4o-uses-openai-price",
        "azure",
        "gpt-4o",
        BEFORE_VARIANTS,
        None,
        Usage(input_tokens=1_000, cache_read_tokens=500, output_tokens=100),
        usd((500, "2.5"), (500, "1.25"), (100, "10")),
        2_875_000,
    ),
    (
        # unknown provider name: the model is matched across providers (gpt-4.1 -> openai 2 / 0.5 / 8)
        "unknown-provider-matches-model",
        "my-openai-compatible-gateway",
        "gpt-4.1",
        BEFORE_VARIANTS,
        None,
        Usage(input_tokens=1_000, cache_read_tokens=200, output_tokens=100),
        usd((800, "2"), (200, "0.5"), (100, "8")),
        2_500_000,
    ),
    (
        # overrides file above, two dated periods: 1 / 2 from 2025-01-01, 0.5 / 1.5 from 2026-01-01
        "override-first-period",
        "acme",
        "acme-chat",
        datetime(2025, 12, 31, 23, 59, tzinfo=UTC),
        None,
        Usage(input_tokens=1_000, output_tokens=1_000),
        usd((1_000, "1"), (1_000, "2")),
        3_000_000,
    ),
    (
        "override-second-period",
        "acme",
        "acme-chat",
        datetime(2026, 1, 1, tzinfo=UTC),
        None,
        Usage(input_tokens=1_000, output_tokens=1_000),
        usd((1_000, "0.5"), (1_000, "1.5")),
        2_000_000,
    ),
]


@pytest.mark.parametrize(
    ("provider", "model", "at", "tier", "usage", "expected", "nano"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_hand_checked_costs(
    provider: str, model: str, at: datetime, tier: str | None, usage: Usage, expected: D, nano: int
) -> None:
    c = cost(usage, provider=provider, model=model, at=at, service_tier=tier)
    assert c.known
    assert c.total == expected
    assert c.nanousd == nano
    assert sum(c.parts.values(), D(0)) == c.total
    assert all(type(v) is D for v in c.parts.values())
    assert {"input", "cache_read", "cache_write", "output"} <= set(c.parts)


def test_parts_split_by_token_kind() -> None:
    usage = Usage(
        input_tokens=50_000, cache_read_tokens=30_000, cache_write_tokens=10_000, output_tokens=1_200
    )
    c = cost(usage, provider="anthropic", model="claude-sonnet-4-5", at=BEFORE_VARIANTS)
    assert c.parts == {
        "input": usd((10_000, "3")),
        "cache_read": usd((30_000, "0.3")),
        "cache_write": usd((10_000, "3.75")),
        "output": usd((1_200, "15")),
    }


def test_request_fee_is_its_own_part() -> None:
    # perplexity sonar: input 1, output 1 per 1M, plus requests_kcount 12 ($12 per 1,000 requests)
    c = cost(Usage(input_tokens=1_000, output_tokens=500), provider="perplexity", model="sonar")
    assert c.parts["request"] == D("0.012")
    assert c.total == usd((1_000, "1"), (500, "1")) + D("0.012")


def test_naive_timestamp_is_utc() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=1_000)
    naive = cost(usage, provider="openai", model="o3", at=datetime(2025, 6, 10))
    assert naive.total == usd((1_000, "2"), (1_000, "8"))


def test_price_version_names_the_catalogue(tmp_path: Path) -> None:
    c = cost(Usage(input_tokens=1), provider="openai", model="gpt-4o")
    assert c.price_version.startswith(f"genai-prices-{GENAI_VERSION}+overrides-")
    assert c.price_version == get_catalogue().version


def test_unknown_model_is_loud_once_and_never_zero(caplog: pytest.LogCaptureFixture) -> None:
    usage = Usage(input_tokens=100, output_tokens=10)
    with caplog.at_level(logging.WARNING, logger="costlens"):
        first = cost(usage, provider="nowhere", model="no-such-model-xyz")
        second = cost(usage, provider="nowhere", model="no-such-model-xyz")
    assert first == second
    assert first.known is False
    assert first.total is None
    assert first.nanousd is None
    assert first.total != 0
    warnings = [r for r in caplog.records if "no-such-model-xyz" in r.getMessage()]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "prices.toml" in message
    assert "COSTLENS_PRICES" in message


def test_known_provider_does_not_borrow_other_providers_prices() -> None:
    assert not cost(Usage(input_tokens=1), provider="groq", model="claude-sonnet-4-5").known


def test_unknown_tier_falls_back_to_standard(caplog: pytest.LogCaptureFixture) -> None:
    usage = Usage(input_tokens=1_000, output_tokens=100)
    standard = cost(usage, provider="anthropic", model="claude-3-5-haiku", at=BEFORE_VARIANTS)
    with caplog.at_level(logging.DEBUG, logger="costlens"):
        scale = cost(
            usage, provider="anthropic", model="claude-3-5-haiku", at=BEFORE_VARIANTS, service_tier="scale"
        )
    assert scale == standard
    assert any("'scale'" in r.getMessage() for r in caplog.records)
    price = get_catalogue().resolve("anthropic", "claude-3-5-haiku", BEFORE_VARIANTS, "scale")
    assert price is not None
    assert price.tier_rule == "fallback-standard"


def test_batch_discount_only_where_documented() -> None:
    usage = Usage(input_tokens=1_000_000)
    # mistral documents no 50% rule here and genai-prices has no batch variant for this model
    price = get_catalogue().resolve("mistral", "mistral-large-latest", BEFORE_VARIANTS, "batch")
    assert price is not None
    assert price.tier_rule == "fallback-standard"
    openai = cost(usage, provider="openai", model="gpt-4.1-mini", at=BEFORE_VARIANTS, service_tier="batch")
    assert openai.total == usd((1_000_000, "0.2"))  # 50% of 0.4


def test_resolve_returns_model_price() -> None:
    price = get_catalogue().resolve("anthropic", "claude-sonnet-4-5-20250929", BEFORE_VARIANTS)
    assert price is not None
    assert (price.provider, price.model, price.source) == ("anthropic", "claude-sonnet-4-5", "genai-prices")
    assert price.input_per_mtok == 3
    assert price.output_per_mtok == 15
    assert [t.threshold for t in price.long_context] == [200_000]
    assert get_catalogue().resolve("openai", "gpt-nonexistent-1") is None


def test_estimate_max_cost_is_worst_case() -> None:
    # claude-sonnet-4-5: dearest input price is the 1-hour cache write, 2x input: 6 (12 above 200k;
    # a 5-minute write is 3.75 / 7.5, and a prompt may ask for the 1-hour lifetime); output 15 / 22.5
    small = estimate_max_cost("anthropic", "claude-sonnet-4-5", 150_000, 4_000, at=BEFORE_VARIANTS)
    assert small.total == usd((150_000, "6"), (4_000, "15"))
    large = estimate_max_cost("anthropic", "claude-sonnet-4-5", 250_000, 4_000, at=BEFORE_VARIANTS)
    assert large.total == usd((250_000, "12"), (4_000, "22.5"))
    one_hour = Usage(150_000, 4_000, cache_write_tokens=150_000, cache_write_1h_tokens=150_000)
    written = cost(one_hour, provider="anthropic", model="claude-sonnet-4-5", at=BEFORE_VARIANTS)
    assert written.total == small.total  # the worst case is reachable, and never exceeded
    real = cost(
        Usage(input_tokens=150_000, output_tokens=4_000), provider="anthropic", model="claude-sonnet-4-5"
    )
    assert real.total is not None
    assert small.total is not None
    assert real.total <= small.total
    assert not estimate_max_cost("x", "no-such-model-abc", 1, 1).known


def test_describe_price_is_json_friendly() -> None:
    info = describe_price("gpt-4o-2024-08-06", "openai", at=AFTER_VARIANTS)
    json.dumps(info)
    assert info["known"] is True
    assert info["matched_model"] == "gpt-4o"
    assert info["per_mtok"] == {
        "input": "2.5",
        "output": "10",
        "cache_read": "1.25",
        "cache_write": "2.5",
        "reasoning": None,
        "per_request": "0",
        # OpenAI's built-in tools: web search $10 and file search $2.50 per 1,000 calls
        "web_search_per_request": "0.01",
        "file_search_per_request": "0.0025",
    }
    tiers = info["service_tiers"]
    assert isinstance(tiers, dict)
    assert tiers["batch"]["rule"] == "explicit"
    assert tiers["batch"]["per_mtok"]["input"] == "1.25"
    assert tiers["flex"]["rule"] == "fallback-standard"
    history = describe_price("o3", "openai")["history"]
    assert isinstance(history, list)
    assert [row["per_mtok"]["input"] for row in history] == ["10", "2"]
    unknown = describe_price("no-such-model-def")
    assert unknown["known"] is False
    assert "prices.toml" in str(unknown["hint"])


def test_describe_long_context_and_schedule() -> None:
    info = describe_price("gemini-2.5-pro", "google")
    assert info["long_context"] == [
        {
            "above_input_tokens": 200_000,
            "per_mtok": {
                "input": "2.5",
                "output": "15",
                "cache_read": "0.25",
                "cache_write": "2.5",
                "reasoning": None,
                "per_request": "0",
                "web_search_per_request": "0.035",  # Gemini grounding: $35 per 1,000 requests
            },
        }
    ]
    rows = describe_price("deepseek-chat", "deepseek")["history"]
    assert isinstance(rows, list)
    assert [r.get("utc_from") for r in rows] == ["00:00", "00:30", "16:30", None, None]


def test_catalogue_is_lazy_and_replaceable() -> None:
    first = get_catalogue()
    assert get_catalogue() is first
    fresh = reload_catalogue()
    assert fresh is not first
    custom = PriceCatalogue(genai=False)
    set_catalogue(custom)
    assert not cost(Usage(input_tokens=1), provider="openai", model="gpt-4o").known
    assert custom.missing() == [("openai", "gpt-4o")]


def test_costlens_cost_is_the_same_function() -> None:
    assert costlens.cost is cost


@pytest.mark.parametrize("module", ["costlens", "costlens.pricing"])
def test_import_loads_no_price_data(module: str) -> None:
    code = f"import {module}, sys; assert 'genai_prices' not in sys.modules, 'genai_prices imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_update_prices_fails_cleanly_when_unreachable() -> None:
    before = get_catalogue().version
    started = time.monotonic()
    with pytest.raises(CostlensError, match=r"could not reach .* offline\? the bundled prices"):
        update_prices(timeout=1, url="http://127.0.0.1:9/prices.json")
    assert time.monotonic() - started < 5
    assert get_catalogue().version == before


def test_update_prices_default_url_offline() -> None:
    from genai_prices import data_snapshot

    started = time.monotonic()
    message = ""
    try:
        update_prices(timeout=2)
    except CostlensError as exc:
        message = str(exc)
    else:  # network present: the fetched data is current; put the bundled data back
        data_snapshot.set_custom_snapshot(None)
        message = "offline? ... stay in use"
    assert time.monotonic() - started < 6
    assert "offline?" in message
    assert "stay in use" in message


def test_update_prices_uses_fetched_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """A local server stands in for the genai-prices data URL: the fetched prices become current."""
    import http.server
    import threading

    from genai_prices import data_snapshot

    payload = json.dumps(
        [
            {
                "id": "openai",
                "name": "OpenAI",
                "api_pattern": "https://api\\.openai\\.com",
                "models": [
                    {
                        "id": "gpt-4o",
                        "match": {"equals": "gpt-4o"},
                        "prices": {"input_mtok": 9, "output_mtok": 90},
                    }
                ],
            }
        ]
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        version = update_prices(timeout=5, url=f"http://127.0.0.1:{server.server_port}/data.json")
        assert version.startswith(f"genai-prices-{GENAI_VERSION}+live-")
        assert get_catalogue().version == version
        c = cost(Usage(input_tokens=M, output_tokens=M), provider="openai", model="gpt-4o")
        assert c.total == 99
        assert c.price_version == version
    finally:
        server.shutdown()
        server.server_close()
        data_snapshot.set_custom_snapshot(None)
        set_catalogue(None)
    assert cost(Usage(input_tokens=M), provider="openai", model="gpt-4o").total == D("2.5")
