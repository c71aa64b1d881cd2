"""Settings: the variables, conversions, bounds and one-line errors that never echo a value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.settings import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    settings = Settings()
    assert settings.ollama_url == "http://127.0.0.1:11434"
    assert settings.check_timeout == 3.0 and settings.port == 3000
    assert settings.fix_database is True and settings.allowed_channels == ()
    assert settings.state_path == Path("~/.local/state/dify-ollama-bot").expanduser()
    assert settings.audit_path == settings.state_path / "audit.jsonl"


def test_environment_wins_over_the_env_file_and_case_does_not_matter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "bot.env"
    env_file.write_text("CHECK_TIMEOUT=7\nport=4000\nOPERATORS=U1, U2 S3\nUNRELATED=x\n")
    monkeypatch.setenv("DIFY_OLLAMA_BOT_ENV", str(env_file))
    monkeypatch.setenv("check_timeout", "2.5")
    monkeypatch.setenv("FIX_DATABASE", "off")
    monkeypatch.setenv("DIFY_DIR", "  ")  # blank: unset
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1-2-secret")
    settings = load_settings()
    assert settings.check_timeout == 2.5 and settings.port == 4000
    assert settings.operators == ("U1", "U2", "S3")
    assert settings.fix_database is False and settings.dify_dir is None
    assert isinstance(settings.slack_bot_token, SecretStr)
    assert settings.slack_bot_token.get_secret_value() == "xoxb-1-2-secret"
    assert "xoxb" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("check_timeout", "-7"),
        ("check_timeout", "121"),
        ("check_timeout", "nan"),
        ("check_timeout", "xoxb-123-secret"),
        ("port", "70000"),
        ("port", "80.5"),
        ("worker_threads", "0"),
        ("ollama_url", "ftp://xoxb-secret@host"),
        ("ollama_url", "http://host:notaport"),
        ("fix_database", "maybe-xoxb-secret"),
    ],
)
def test_bad_values_name_the_variable_and_never_echo_it(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name.upper(), value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(name.upper() + ":"), message
    assert value not in message and "xoxb" not in message


def test_several_bad_values_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(port=0, check_timeout=-1)
    assert "PORT:" in str(caught.value) and "CHECK_TIMEOUT:" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_explicit_values_are_converted_like_variables() -> None:
    settings = Settings(dify_dir="/opt/dify/docker", audit_channel="", ollama_url="http://h:1/")  # type: ignore[arg-type]
    assert settings.dify_dir == Path("/opt/dify/docker") and settings.audit_channel is None
    assert settings.ollama_url == "http://h:1"


def test_help_loads_neither_settings_nor_pydantic() -> None:
    """`dify-ollama --help` only imports what it prints (issue 12: under 0.15 s)."""
    code = (
        "import sys, runpy\n"
        "sys.argv = ['dify-ollama', '--help']\n"
        "try:\n    runpy.run_module('cli.main', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('pydantic', 'docker', 'httpx', 'yaml', 'slack_sdk', 'slack_bolt',"
        " 'gunicorn', 'handlers.engine') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    assert "HEAVY []" in out, out
