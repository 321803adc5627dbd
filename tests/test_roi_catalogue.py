"""The fine-tuning price catalogue, price resolution with sources, and scenario files (errors included)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from costlens._errors import ConfigError
from costlens.pricing import PriceCatalogue
from costlens.roi import (
    ScenarioError,
    catalogue_rows,
    find_entry,
    finetune_catalogue,
    load_scenario,
    parse_scenario,
    plan,
    resolve_prices,
)
from costlens.roi._load import scenario_to_toml

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "roi"


def test_every_entry_has_a_source_a_date_and_no_invented_zero() -> None:
    entries = finetune_catalogue()
    assert len(entries) >= 15
    providers = {e.provider for e in entries}
    assert {"openai", "azure", "google", "together", "fireworks", "mistral"} <= providers
    for e in entries:
        assert e.source.startswith("https://")
        assert e.as_of.year >= 2024
        if e.confidence == "uncertain":
            assert e.note
    assert len({e.id for e in entries}) == len(entries)


def test_published_openai_figures() -> None:
    mini = find_entry("openai", "gpt-4o-mini-2024-07-18")
    assert mini is not None
    assert (mini.training_per_mtok, mini.input_per_mtok, mini.output_per_mtok) == (
        Decimal("3.00"),
        Decimal("0.30"),
        Decimal("1.20"),
    )
    assert mini.input_markup == 2
    big = find_entry("openai", "gpt-4o")
    assert big is not None and (big.training_per_mtok, big.input_per_mtok) == (
        Decimal("25.00"),
        Decimal("3.75"),
    )
    nano = find_entry(None, "gpt-4.1-nano")
    assert nano is not None and nano.training_per_mtok == Decimal("1.50")
    azure = find_entry("azure", "gpt-4o-mini")
    assert azure is not None and azure.hosting_per_hour == Decimal("1.70")
    assert find_entry("openai", "no-such-model") is None
    with pytest.raises(ConfigError, match="costlens roi catalogue"):
        find_entry(None, "x", "nope/nope")


def test_catalogue_rows_keep_unknown_as_none() -> None:
    rows = {r["id"]: r for r in catalogue_rows()}
    assert rows["azure/gpt-4o-mini-2024-07-18"]["training_per_mtok"] is None
    assert rows["mistral/open-mistral-nemo"]["min_training_charge"] == Decimal("4.00")


def _tuned_only(**path: object) -> dict[str, object]:
    return {
        "volume": {"requests_per_month": 1000},
        "paths": [
            {
                "name": "p",
                "kind": "prompt",
                "model": "m",
                "tokens": {"user_input": 10},
                "prices": {"input": 1, "output": 1},
            },
            {"name": "t", "kind": "fine_tuned", "tokens": {"user_input": 10}, **path},
        ],
    }


def test_user_overrides_file_beats_the_built_in_catalogue(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(
        '[[models]]\nprovider = "openai"\nmodel = "ft:gpt-4o-mini-2024-07-18"\ninput = 0.25\noutput = 1\n'
        "training_per_mtok = 2\nhosting_per_hour = 0.5\n"
    )
    s = parse_scenario(
        _tuned_only(
            provider="openai", base_model="gpt-4o-mini-2024-07-18", training={"dataset_tokens": 1_000_000}
        )
    )
    resolved, sources = resolve_prices(s, PriceCatalogue.load(prices, genai=False))
    t = resolved.paths[1]
    assert t.prices.input == Decimal("0.25")
    assert t.training.per_mtok == 2
    assert t.hosting_per_hour == Decimal("0.5")
    by_field = {x.field: x.source for x in sources if x.path == "t"}
    assert by_field["input"].startswith("override:")
    assert by_field["cached_input"].startswith(
        "override:"
    )  # the overrides file's cache_read defaults to input
    assert by_field["storage_per_month"].startswith("fine-tuning catalogue openai/gpt-4o-mini-2024-07-18")


def test_missing_price_is_an_error_naming_the_field() -> None:
    s = parse_scenario(_tuned_only(base_model="unknown-model"))
    with pytest.raises(ConfigError, match=r"paths\[1\]\.prices\.input"):
        resolve_prices(s, PriceCatalogue(None, genai=False))


def test_unknown_fees_are_assumed_zero_and_said_so() -> None:
    s = parse_scenario(_tuned_only(base_model="unknown", prices={"input": 1, "output": 1}))
    _, sources = resolve_prices(s, PriceCatalogue(None, genai=False))
    hosting = next(x for x in sources if x.field == "hosting_per_hour")
    assert hosting.value == 0 and hosting.source.startswith("assumed $0")


def test_prompt_path_prices_come_from_genai_prices() -> None:
    data = _tuned_only(base_model="m", prices={"input": 1, "output": 1})
    data["paths"][0] = {"name": "p", "kind": "prompt", "provider": "openai", "model": "gpt-4o", "tokens": {}}  # type: ignore[index]
    _, sources = resolve_prices(parse_scenario(data))
    found = {x.field: x for x in sources if x.path == "p"}
    assert found["input"].value == Decimal("2.5") and "genai-prices" in found["input"].source


def test_yaml_and_json_scenarios_read_exactly(tmp_path: Path) -> None:
    text = (EXAMPLES / "published_a.toml").read_text()
    original = load_scenario(EXAMPLES / "published_a.toml")
    toml_copy = tmp_path / "copy.toml"
    toml_copy.write_text(scenario_to_toml(original))
    assert load_scenario(toml_copy) == original
    json_copy = tmp_path / "copy.json"
    json_copy.write_text(original.model_dump_json())
    assert load_scenario(json_copy) == original
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text(
        "volume: {requests_per_month: 50000}\npaths:\n"
        "  - {name: p, kind: prompt, model: m, tokens: {system: 2000, user_input: 500, output: 500},"
        " prices: {input: 3.0, output: 15.0}}\n"
        "  - {name: t, kind: fine_tuned, base_model: m, tokens: {user_input: 500, output: 500},"
        " prices: {input: 0.1, output: 15}, training: {fixed: 200}}\n"
    )
    loaded = load_scenario(yaml_file)
    assert loaded.paths[1].prices.input == Decimal("0.1")  # exact, not 0.1000000000000000055...
    assert "title" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("volume = {requests_per_month = 5}\nhorizon_months = = 3\n", r"bad.toml, line 2: "),
        (
            'volume = {requests_per_month = 5}\n[[paths]]\nname = "p"\nkind = "prompt"\nmodel = "m"\n'
            'tokens = {outptu = 5}\n[[paths]]\nname = "t"\nkind = "switch"\nmodel = "n"\ntokens = {}\n',
            r'field paths\[0\] \("p"\)\.tokens\.outptu: Extra inputs are not permitted',
        ),
        ('volume = {requests_per_month = 5}\n[[paths]]\nname = "p"\nkind = "magic"\n', r"paths\[0\]"),
        ("volume = {requests_per_month = 5, requests_per_day = 1}\npaths = []\n", "exactly one of"),
    ],
)
def test_invalid_scenarios_name_the_file_and_the_field(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(content)
    with pytest.raises(ScenarioError, match=message) as caught:
        load_scenario(bad)
    assert str(bad) in str(caught.value)


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(tmp_path / "nope.toml")


def test_baseline_must_be_a_prompt_path() -> None:
    data = _tuned_only(base_model="m")
    data["baseline"] = "t"
    with pytest.raises(ScenarioError, match="baseline must be a prompt or switch path"):
        parse_scenario(data)


def test_plan_from_catalogue_prices_only() -> None:
    s = parse_scenario(
        _tuned_only(
            provider="openai",
            base_model="gpt-4.1-mini-2025-04-14",
            training={"dataset_tokens": 2_000_000, "epochs": 2},
        )
    )
    p = plan(s).path("t")
    assert p.training is not None and p.training.charged == 20  # 4M × $5/1M
    assert p.cost_per_request == Decimal("0.000008")  # 10 tokens × $0.80/1M
