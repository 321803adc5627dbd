"""The user overrides file: where it is found, what it may say, and how errors read."""

from __future__ import annotations

import importlib.metadata
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from costlens._errors import ConfigError
from costlens.pricing import PriceCatalogue, cost, get_catalogue, prices_path, set_catalogue
from costlens.usage import Usage

# The installed genai-prices names the catalogue; a fresh install may get a newer 0.2.x.
GENAI_VERSION = importlib.metadata.version("genai-prices")

M = 1_000_000

VALID = """
version = 1

[[models]]
provider = "openai"
model = "gpt-4o"
aliases = ["gpt-4o-2024-08-06"]
input = 1
output = 4
cache_read = "0.5"
tier_multipliers = { flex = 0.5, priority = 1.75 }
[models.tiers.batch]
input = 0.4
output = 1.6

[[models]]
provider = "vllm-local"
model = "support-bot-ft"
match_prefixes = ["support-bot-ft:"]
input = 0.2
output = 0.3
reasoning = 0.9
per_request = 0.0001
training_per_mtok = 8
training_per_hour = 0
hosting_per_hour = 1.7
storage_per_month = 0.1
min_training_charge = 5

[[models]]
provider = "*"
model = "ft:gpt-4o-mini-2024-07-18"
match_prefixes = ["ft:gpt-4o-mini-2024-07-18:"]
[[models.prices]]
input = 0.3
output = 1.2
[[models.prices.long_context]]
threshold = 100000
input = 0.6
[[models.prices]]
starts_at = 2026-06-01
input = 0.25
output = 1.0

[[models]]
provider = "anthropic"
model = "claude-sonnet-4-5"
match_prefixes = ["claude-sonnet-4-5"]
[[models.prices]]
starts_at = 2026-01-01
input = 2
output = 10
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("COSTLENS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COSTLENS_PRICES", raising=False)
    set_catalogue(None)
    yield
    set_catalogue(None)


def write(tmp_path: Path, text: str, name: str = "prices.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def use(tmp_path: Path, text: str) -> Path:
    path = write(tmp_path, text)
    set_catalogue(PriceCatalogue.load(path))
    return path


def usd(*terms: tuple[int, str]) -> D:
    return sum((D(tokens) * D(per_mtok) for tokens, per_mtok in terms), D(0)) / M


def test_override_beats_genai_prices(tmp_path: Path) -> None:
    path = use(tmp_path, VALID)
    usage = Usage(input_tokens=1_000, cache_read_tokens=400, output_tokens=100)
    c = cost(usage, provider="openai", model="gpt-4o-2024-08-06")
    assert c.total == usd((600, "1"), (400, "0.5"), (100, "4"))  # genai-prices says 2.5 / 1.25 / 10
    price = get_catalogue().resolve("openai", "GPT-4o")
    assert price is not None
    assert price.source == f"override:{path}"
    assert c.price_version.startswith(f"genai-prices-{GENAI_VERSION}+overrides-")


def test_service_tiers_in_overrides(tmp_path: Path) -> None:
    use(tmp_path, VALID)
    usage = Usage(input_tokens=1_000, output_tokens=1_000)
    assert cost(usage, provider="openai", model="gpt-4o", service_tier="batch").total == usd(
        (1_000, "0.4"), (1_000, "1.6")
    )
    assert cost(usage, provider="openai", model="gpt-4o", service_tier="flex").total == usd(
        (1_000, "0.5"), (1_000, "2")
    )
    assert cost(usage, provider="openai", model="gpt-4o", service_tier="priority").total == usd(
        (1_000, "1.75"), (1_000, "7")
    )
    assert cost(usage, provider="openai", model="gpt-4o", service_tier="standard").total == usd(
        (1_000, "1"), (1_000, "4")
    )


def test_custom_self_hosted_model(tmp_path: Path) -> None:
    use(tmp_path, VALID)
    usage = Usage(input_tokens=10_000, output_tokens=2_000, reasoning_tokens=500)
    c = cost(usage, provider="vllm-local", model="support-bot-ft:v3")
    assert c.parts == {
        "input": usd((10_000, "0.2")),
        "cache_read": D(0),
        "cache_write": D(0),
        "reasoning": usd((500, "0.9")),
        "output": usd((1_500, "0.3")),
        "request": D("0.0001"),
    }
    assert c.total == sum(c.parts.values(), D(0))
    price = get_catalogue().resolve("vllm-local", "support-bot-ft")
    assert price is not None
    assert (price.training_per_mtok, price.training_per_hour, price.hosting_per_hour) == (8, 0, D("1.7"))
    assert (price.storage_per_month, price.min_training_charge) == (D("0.1"), 5)
    assert not cost(usage, provider="other-host", model="support-bot-ft").known


def test_wildcard_provider_prefix_dates_and_long_context(tmp_path: Path) -> None:
    use(tmp_path, VALID)
    model = "ft:gpt-4o-mini-2024-07-18:acme::abc123"
    small = Usage(input_tokens=100_000, output_tokens=10)
    large = Usage(input_tokens=100_001, output_tokens=10)
    early = datetime(2026, 1, 1, tzinfo=UTC)
    assert cost(small, provider="openai", model=model, at=early).total == usd((100_000, "0.3"), (10, "1.2"))
    # long-context input 0.6; output left out keeps the price below the threshold
    assert cost(large, provider="azure", model=model, at=early).total == usd((100_001, "0.6"), (10, "1.2"))
    late = datetime(2026, 6, 1, tzinfo=UTC)
    assert cost(large, provider="openai", model=model, at=late).total == usd((100_001, "0.25"), (10, "1.0"))


def test_before_first_starts_at_genai_prices_apply(tmp_path: Path) -> None:
    use(tmp_path, VALID)
    usage = Usage(input_tokens=1_000, output_tokens=1_000)
    before = cost(
        usage, provider="anthropic", model="claude-sonnet-4-5", at=datetime(2025, 12, 31, tzinfo=UTC)
    )
    after = cost(usage, provider="anthropic", model="claude-sonnet-4-5", at=datetime(2026, 1, 1, tzinfo=UTC))
    assert before.total == usd((1_000, "3"), (1_000, "15"))  # genai-prices claude-sonnet-4-5
    assert after.total == usd((1_000, "2"), (1_000, "10"))


def test_env_var_points_at_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, VALID, "elsewhere.toml")
    monkeypatch.setenv("COSTLENS_PRICES", str(path))
    assert prices_path() == path
    assert cost(Usage(input_tokens=M), provider="openai", model="gpt-4o").total == 1
    assert get_catalogue().overrides is not None


def test_costlens_home_default_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTLENS_HOME", str(tmp_path))
    assert prices_path() == tmp_path / "prices.toml"
    write(tmp_path, VALID)
    assert cost(Usage(input_tokens=M), provider="openai", model="gpt-4o").total == 1


def test_missing_default_file_means_no_overrides() -> None:
    assert get_catalogue().overrides is None
    assert cost(Usage(input_tokens=M), provider="openai", model="gpt-4o").total == D("2.5")


def test_env_var_to_missing_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTLENS_PRICES", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"nope\.toml does not exist.*COSTLENS_PRICES"):
        get_catalogue()


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[[models]]\nprovider = "openai"\nmodel = "x"\ninput = = 2\n')
    with pytest.raises(ConfigError) as info:
        PriceCatalogue.load(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 4" in message
    assert "fix the syntax" in message


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('provider = "openai"\nmodel = "m"\ninput = 1\nouput = 2\n', "'ouput'"),
        ('provider = "openai"\nmodel = "m"\ninput = 1\n', "'output'"),
        ('provider = "openai"\nmodel = "m"\ninput = -1\noutput = 2\n', "'input'"),
        ('provider = "openai"\nmodel = "m"\ninput = "cheap"\noutput = 2\n', "'input'"),
        ('provider = "openai"\nmodel = "m"\ninput = true\noutput = 2\n', "'input'"),
        ('provider = ""\nmodel = "m"\ninput = 1\noutput = 2\n', "'provider'"),
        (
            'provider = "openai"\nmodel = "m"\ninput = 1\noutput = 2\ntier_multipliers = { default = 2 }\n',
            "default",
        ),
        (
            'provider = "openai"\nmodel = "m"\ninput = 1\noutput = 2\nlong_context = { threshold = 0 }\n',
            "'long_context.threshold'",
        ),
        (
            'provider = "openai"\nmodel = "m"\n'
            "[[models.prices]]\nstarts_at = 2026-01-01\ninput = 1\noutput = 2\n"
            "[[models.prices]]\nstarts_at = 2025-01-01\ninput = 1\noutput = 2\n",
            "'prices[1].starts_at'",
        ),
        (
            'provider = "openai"\nmodel = "m"\ninput = 1\noutput = 2\ntraining_per_hour = "x"\n',
            "'training_per_hour'",
        ),
    ],
)
def test_schema_error_names_the_key(tmp_path: Path, body: str, key: str) -> None:
    path = write(tmp_path, "# prices\n\n[[models]]\n" + body)
    with pytest.raises(ConfigError) as info:
        PriceCatalogue.load(path)
    message = str(info.value)
    assert str(path) in message
    assert key in message
    assert "[[models]] #1 (line 3)" in message
    assert "COSTLENS_PRICES" in message


def test_duplicate_model_is_an_error(tmp_path: Path) -> None:
    text = '[[models]]\nprovider = "a"\nmodel = "m"\ninput = 1\noutput = 1\n' * 2
    with pytest.raises(ConfigError, match="priced twice"):
        PriceCatalogue.load(write(tmp_path, text))


def test_overrides_only_catalogue(tmp_path: Path) -> None:
    catalogue = PriceCatalogue.load(write(tmp_path, VALID), genai=False)
    set_catalogue(catalogue)
    assert catalogue.version.startswith("overrides-")
    assert cost(Usage(input_tokens=M), provider="openai", model="gpt-4o").total == 1
    assert not cost(Usage(input_tokens=M), provider="openai", model="gpt-4.1").known


def test_json_overrides_file(tmp_path: Path) -> None:
    text = '{"models": [{"provider": "openai", "model": "gpt-4o", "input": 1.10, "output": "4",'
    text += ' "prices_note": 1}]}'
    with pytest.raises(ConfigError, match="'prices_note'"):
        PriceCatalogue.load(write(tmp_path, text, "prices.json"))
    good = '{"models": [{"provider": "openai", "model": "gpt-4o", "input": 1.10, "output": "4"}]}'
    set_catalogue(PriceCatalogue.load(write(tmp_path, good, "prices.json")))
    assert cost(Usage(input_tokens=M), provider="openai", model="gpt-4o").total == D("1.10")
    with pytest.raises(ConfigError, match=r"invalid JSON .* line 2"):
        PriceCatalogue.load(write(tmp_path, '{"models": [\n  oops]}', "bad.json"))


def test_unknown_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown top-level key 'model'"):
        PriceCatalogue.load(write(tmp_path, '[[model]]\nprovider = "a"\n'))
