"""The costlens price patch: dated corrections over genai-prices, under the user's overrides."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from costlens._errors import ConfigError
from costlens.cli import _prices
from costlens.cli._output import friendly_errors
from costlens.pricing import PriceCatalogue, cost, describe_price, get_catalogue, set_catalogue
from costlens.pricing._patch import load_patch, parse_patch
from costlens.usage import Usage

M = 1_000_000


@pytest.fixture(autouse=True)
def _bundled() -> Iterator[None]:
    """Every test starts from the shipped catalogue (genai-prices + the bundled patch, no overrides)."""
    set_catalogue(None)
    yield
    set_catalogue(None)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- the three gaps of issue 10 item 5 ------------------------------------------------------------


def test_claude_sonnet_4_bills_its_long_context_rates_above_200k_input() -> None:
    big = Usage(
        input_tokens=250_000, output_tokens=1_000, cache_read_tokens=100_000, cache_write_tokens=50_000
    )
    c = cost(big, provider="anthropic", model="claude-sonnet-4-20250514", at=at(2025, 9, 1))
    assert c.parts["input"] == D(100_000) * D(6) / M
    assert c.parts["cache_read"] == D(100_000) * D("0.6") / M
    assert c.parts["cache_write"] == D(50_000) * D("7.5") / M
    assert c.parts["output"] == D(1_000) * D("22.5") / M
    small = Usage(input_tokens=200_000, output_tokens=1_000)  # at the threshold: not above it
    assert cost(small, provider="anthropic", model="claude-sonnet-4-0", at=at(2025, 9, 1)).total == D("0.615")
    # the documented 50% batch discount stacks with the long-context rates
    batch = cost(
        big, provider="anthropic", model="claude-sonnet-4-0", at=at(2025, 9, 1), service_tier="batch"
    )
    assert batch.total == c.total / 2
    # a call before the patch date is priced as before (no tier then)
    before = cost(big, provider="anthropic", model="claude-sonnet-4-0", at=at(2025, 8, 1))
    assert before.parts["input"] == D(100_000) * D(3) / M


def test_deepseek_prices_follow_the_2025_09_05_change_and_drop_the_night_discount() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_tokens=500_000)
    price = {"provider": "deepseek", "model": "deepseek-chat"}
    # 2025-09-05 15:00 UTC: the old peak price (genai-prices) still applies
    assert cost(usage, **price, at=at(2025, 9, 5, 15)).total == D("0.135") + D("0.035") + D("1.1")
    # 20:00 UTC used to be the night discount; from 16:00 UTC on there is one price
    night = cost(usage, **price, at=at(2025, 9, 5, 20))
    assert night.total == D("0.28") + D("0.035") + D("1.68")
    assert cost(usage, **price, at=at(2025, 9, 6, 3)).total == night.total
    # V3.2-Exp price cut on 2025-09-29
    assert cost(usage, **price, at=at(2025, 10, 1)).total == D("0.14") + D("0.014") + D("0.42")
    reasoner = cost(usage, provider="deepseek", model="deepseek-reasoner", at=at(2025, 9, 10, 20))
    assert reasoner.total == night.total


def test_gpt_5_nano_flex_is_priced_flex_from_its_launch() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    flex = cost(usage, provider="openai", model="gpt-5-nano", at=at(2025, 9, 1), service_tier="flex")
    assert flex.total == D("0.025") + D("0.2")
    later = cost(usage, provider="openai", model="gpt-5-nano", at=at(2026, 11, 1), service_tier="flex")
    assert later.total == flex.total
    before = cost(usage, provider="openai", model="gpt-5-nano", at=at(2025, 8, 1), service_tier="flex")
    assert before.total == D("0.05") + D("0.4")  # before the patch date: as genai-prices says
    standard = cost(usage, provider="openai", model="gpt-5-nano", at=at(2025, 9, 1))
    assert standard.total == D("0.05") + D("0.4")


# -- layering --------------------------------------------------------------------------------------


def test_user_overrides_still_win_over_the_patch(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[[models]]\nprovider = "deepseek"\nmodel = "deepseek-chat"\ninput = 1\noutput = 2\n')
    set_catalogue(PriceCatalogue.load(path))
    usage = Usage(input_tokens=M, output_tokens=M)
    assert cost(usage, provider="deepseek", model="deepseek-chat", at=at(2025, 10, 1)).total == D(3)
    described = describe_price("deepseek-chat", provider="deepseek")
    assert described["source_kind"] == "user override"


def test_the_catalogue_version_names_the_patch_and_can_go_without_it() -> None:
    patched = get_catalogue()
    assert patched.version.startswith("genai-prices-") and f"+{load_patch().version}" in patched.version
    plain = PriceCatalogue(patch=False)
    assert "+patch-" not in plain.version
    price = plain.resolve("deepseek", "deepseek-chat", at(2025, 10, 1, 20))
    assert price is not None and price.source == "genai-prices"
    assert PriceCatalogue(genai=False).patch is None


def test_describe_says_where_each_price_came_from() -> None:
    data = describe_price("deepseek-chat", provider="deepseek")
    assert data["source_kind"] == "costlens patch"
    patch = data["patch"]
    assert isinstance(patch, dict) and patch["id"] == "deepseek-chat-2025-09-29"
    assert str(patch["source_url"]).startswith("https://api-docs.deepseek.com/")
    history = data["history"]
    assert isinstance(history, list)
    kinds = [row.get("source_kind") for row in history]
    assert kinds[0] == "genai-prices" and kinds[-1] == "costlens patch"
    tiers = describe_price("gpt-5-nano", provider="openai", at=at(2025, 9, 1))["service_tiers"]
    assert isinstance(tiers, dict) and tiers["flex"]["source_kind"] == "costlens patch"


# -- the patch file --------------------------------------------------------------------------------

GOOD = """
version = 1

[[patch]]
id = "x-chat"
provider = "deepseek"
model = "deepseek-chat"
starts_at = 2025-01-01
source = "https://example.com/prices"
input = 0.135
cache_read = 0.035
output = 0.55
"""


def test_the_bundled_patch_is_valid_and_every_entry_still_corrects_something() -> None:
    patch = load_patch()
    assert patch.entries and all(e.source.startswith("https://") for e in patch.entries)
    rows = get_catalogue().patch_differences()
    assert rows is not None
    assert {r["status"] for r in rows} == {"differs"}, "drop entries genai-prices now agrees with"
    assert {r["id"] for r in rows} == {e.id for e in patch.entries}


def test_differences_say_when_an_entry_agrees_or_names_no_known_model() -> None:
    ghost = (
        GOOD.replace("version = 1", "")
        .replace('"x-chat"', '"ghost"')
        .replace('"deepseek-chat"', '"nope-xyz"')
    )
    agrees = (
        GOOD.replace("version = 1", "")
        .replace('"x-chat"', '"same"')
        .replace('"deepseek"', '"openai"')
        .replace('"deepseek-chat"', '"gpt-5-nano"')
        .replace("input = 0.135\ncache_read = 0.035\noutput = 0.55", "input = 0.05\noutput = 0.4")
    )
    catalogue = PriceCatalogue(patch=parse_patch(GOOD + ghost + agrees, "test.toml"))
    rows = catalogue.patch_differences()
    assert rows is not None
    status = {r["id"]: r["status"] for r in rows}
    assert status == {"x-chat": "differs", "ghost": "not-in-genai-prices", "same": "agrees"}
    # from 2025-01-01 the entry gives the night prices all day: only the day window differs
    assert {r["rate"] for r in rows if r["id"] == "x-chat"} == {
        "UTC 00:30-16:30 input", "UTC 00:30-16:30 output", "UTC 00:30-16:30 cache_read",
        "UTC 00:30-16:30 cache_write",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("input = 0.135", 'input = "cheap"'),
            "'x-chat' (line 4): key 'input': expected a non-negative number",
        ),
        (
            ('source = "https://example.com/prices"', 'source = "see docs"'),
            "key 'source': expected the http(s) URL",
        ),
        (('source = "https://example.com/prices"\n', ""), "key 'source': expected a non-empty string"),
        (("starts_at = 2025-01-01\n", ""), "key 'starts_at': expected a date"),
        (("output = 0.55", "output = 0.55\nouput = 1"), "key 'ouput': unknown key"),
        (('id = "x-chat"', 'id = "X Chat"'), "key 'id': use lower case"),
        (("version = 1", "version = 2"), "unsupported version 2"),
        (
            ("output = 0.55", "output = 0.55\n[[patch.long_context]]\nthreshold = -1"),
            "long_context[0].threshold",
        ),
    ],
)
def test_a_malformed_patch_entry_is_a_clear_error_naming_the_entry(
    change: tuple[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_patch(GOOD.replace(*change), "patch.toml")
    message = str(info.value)
    assert message.startswith("costlens price patch patch.toml")
    assert expected in message


def test_duplicate_ids_and_clashing_starts_are_errors() -> None:
    second = GOOD.replace("version = 1", "").replace("input = 0.135", "input = 0.2")
    with pytest.raises(
        ConfigError, match=r"#2 'x-chat' \(line \d+\): id 'x-chat' is already used by entry #1"
    ):
        parse_patch(GOOD + second, "p.toml")
    with pytest.raises(ConfigError, match="starts at the same time"):
        parse_patch(GOOD + second.replace('"x-chat"', '"x-chat-2"'), "p.toml")


def test_an_entry_with_no_price_underneath_needs_input_and_output() -> None:
    patch = parse_patch(GOOD.replace("deepseek-chat", "deepseek-chat"), "p.toml")
    (entry,) = patch.entries
    made = entry.apply(None, at(2025, 1, 1))
    assert (
        made is not None and made.rates.input == D("0.135") / M and made.rates.cache_write == made.rates.input
    )
    partial = parse_patch(GOOD.replace("input = 0.135\n", ""), "p.toml").entries[0]
    assert partial.apply(None, None) is None


# -- the commands ------------------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("show")(friendly_errors(_prices.show))
    app.command("patch")(friendly_errors(_prices.patch))
    return app


def _run(*args: str) -> str:
    result = CliRunner().invoke(_app(), list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_prices_patch_in_every_format() -> None:
    table = _run("patch")
    assert "claude-sonnet-4-long-context" in table and "above 200000 input: output" in table
    assert "2025-09-05 16:00 UTC" in table
    rows = json.loads(_run("patch", "--format", "json"))
    flex = [r for r in rows if r["id"] == "gpt-5-nano-flex" and r["rate"] == "input"]
    assert flex == [
        {"id": "gpt-5-nano-flex", "provider": "openai", "model": "gpt-5-nano", "tier": "flex",
         "at": "2025-08-07T00:00:00+00:00", "status": "differs", "rate": "input", "genai_prices": "0.05",
         "patch": "0.025", "source": "https://platform.openai.com/docs/pricing?latest-pricing=flex",
         "note": flex[0]["note"]},
    ]  # fmt: skip
    header, *lines = list(csv.reader(io.StringIO(_run("patch", "--format", "csv"))))
    assert header[:4] == ["id", "provider", "model", "tier"] and len(lines) == len(rows)


def test_prices_show_table_is_short_grouped_and_labelled() -> None:
    table = _run("show", "claude-sonnet-4-20250514", "--provider", "anthropic")
    lines = table.splitlines()
    assert len(lines) < 30
    for text in ("in force", "tiers", "history", "input > 200,000", "50% batch discount", "costlens patch",
                 "https://www.anthropic.com/news/1m-context", "flex, priority: standard price"):  # fmt: skip
        assert text in table, text
    assert "per_mtok" not in table
    data = json.loads(_run("show", "deepseek-chat", "--format", "json"))  # json keeps full detail
    assert data["per_mtok"]["input"] == "0.28" and data["source_kind"] == "costlens patch"
    header, row = list(csv.reader(io.StringIO(_run("show", "deepseek-chat", "--format", "csv"))))
    assert row[header.index("patch.id")] == "deepseek-chat-2025-09-29"
