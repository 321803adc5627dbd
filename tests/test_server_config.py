"""`costlens serve` settings: the TOML file, flags over it, and errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from costlens._errors import ConfigError
from costlens.cli import app
from costlens.server import load_server_config


def test_file_then_flags_and_keys_required_off_loopback(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        '[server]\nhost = "0.0.0.0"\nport = 9000\n\n[upstreams]\nopenai = "http://up.example/v1/"\n\n'
        '[upstream_keys]\nopenai = "MY_OPENAI_KEY"\n',
        encoding="utf-8",
    )
    config = load_server_config(path, port=9100, upstreams={"anthropic": "http://up.example"})
    assert (config.host, config.port) == ("0.0.0.0", 9100)
    assert config.upstreams == {"openai": "http://up.example/v1", "anthropic": "http://up.example"}
    assert config.key_variable("openai") == "MY_OPENAI_KEY"
    assert config.key_variable("anthropic") == "ANTHROPIC_API_KEY"
    assert config.keys_required and not load_server_config().keys_required  # default host is loopback


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nport = 70000\n", "bad server config: port"),
        ('[upstreams]\nopenai = "ftp://x"\n', "is not an http(s) base URL"),
        ("[srv]\n", "unknown table(s) ['srv']"),
        ("[server\n", "server config"),
    ],
)
def test_bad_config_says_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "server.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_server_config(path)
    assert message in str(caught.value)


def test_serve_refuses_a_malformed_upstream_flag_in_one_line() -> None:
    result = CliRunner().invoke(app, ["serve", "--upstream", "openai"])
    assert result.exit_code == 2
    assert "write NAME=BASE_URL" in result.output
    missing = CliRunner().invoke(app, ["serve", "--config", "/nonexistent/server.toml"])
    assert missing.exit_code != 0 and "does not exist" in missing.output
