"""The bot's settings: environment variables, then the bot's own env file.

The env file is `DIFY_OLLAMA_BOT_ENV` (a path) or `./dify-ollama-bot.env`. It is never `.env`:
people run this tool from Dify's docker folder, and Dify's `.env` holds ~700 keys and its secrets.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config import i18n

DEFAULT_ENV_FILE = "dify-ollama-bot.env"
SLACK_DEFAULT_API_URL = "https://slack.com/api/"

CommaList = Annotated[tuple[str, ...], NoDecode]


class ConfigError(Exception):
    """A missing or invalid setting, explained in one line that names the variable."""


def _split(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.replace(" ", ",").split(",") if part.strip())
    return value


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) URL such as http://127.0.0.1:11434")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"{name} has an invalid port") from exc
    return value.rstrip("/") if parts.path in ("", "/") else value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None,  # chosen at load time, see load_settings
        extra="ignore",
        hide_input_in_errors=True,
        case_sensitive=False,
    )

    # Dify host
    dify_dir: Path | None = None
    dify_compose_project: str | None = None
    ollama_url: str = "http://127.0.0.1:11434"
    check_timeout: float = Field(default=3.0, gt=0, le=120)
    # dify.chat's own deadline: a cold load of a large model takes minutes, a check must not.
    chat_timeout: float = Field(default=60.0, gt=0, le=900)
    docker_host: str | None = None
    # Many hosts (config/hosts.py): unset, the only host is this one ("local").
    hosts_file: Path | None = None

    # Repairs (fix-env)
    fix_ollama_url: str = "http://host.docker.internal:11434/v1"
    fix_ollama_base_url: str = "http://host.docker.internal:11434"
    fix_database: bool = True
    backup_dir: Path | None = None  # default: <state_dir>/backups
    state_dir: Path = Path("~/.local/state/dify-ollama-bot")

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = SLACK_DEFAULT_API_URL
    port: int = Field(default=3000, ge=1, le=65535)
    allowed_channels: CommaList = ()
    operators: CommaList = ()
    audit_log: Path | None = None  # default: <state_dir>/audit.jsonl
    audit_channel: str | None = None
    reply_ephemeral: bool = False
    worker_threads: int = Field(default=4, ge=1, le=64)

    # Running as a service (bot/logsetup.py, bot/health_server.py)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    health_port: int | None = Field(default=None, ge=1, le=65535)  # Socket Mode's /healthz
    health_host: str = "127.0.0.1"

    # Watch, history, metrics (docs/slack.md: "Watching")
    watch_channel: str | None = None  # set: `serve` watches and alerts there
    # Tests lower the 10 s minimum to run a watch for seconds; not a user setting.
    watch_interval_floor: float = Field(default=10.0, ge=0.2, le=10.0)
    watch_interval: float = Field(default=60.0, le=86400)
    watch_fail_after: int = Field(default=2, ge=1, le=20)
    history_days: int = Field(default=30, ge=1, le=3650)
    metrics_enabled: bool = False
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"

    # Language of every user-facing text (config/i18n.py; `--lang` overrides it for one run)
    bot_language: str = i18n.DEFAULT

    _split_lists = field_validator("allowed_channels", "operators", mode="before")(_split)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _fold_case(cls, value: object, info: object) -> object:
        if not isinstance(value, str):
            return value
        return (
            value.strip().upper()
            if getattr(info, "field_name", "") == "log_level"
            else (value.strip().lower())
        )

    @field_validator("bot_language")
    @classmethod
    def _language(cls, value: str) -> str:
        return i18n.normalize(value)  # its UnknownLanguage is a ValueError: one line

    @field_validator("health_port", mode="before")
    @classmethod
    def _blank_port_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("ollama_url", "fix_ollama_url", "fix_ollama_base_url", "slack_api_url")
    @classmethod
    def _urls(cls, value: str, info: object) -> str:
        name = getattr(info, "field_name", "url").upper()
        return _http_url(name, value)

    @field_validator("watch_interval")
    @classmethod
    def _watch_interval_floor(cls, value: float, info: ValidationInfo) -> float:
        floor = float(info.data.get("watch_interval_floor", 10.0))
        if value < floor:
            raise ValueError(f"must be at least {floor:g} seconds")
        return value

    @field_validator(
        "dify_compose_project", "docker_host", "audit_channel", "watch_channel", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "dify_dir", "backup_dir", "audit_log", "metrics_port", "hosts_file", mode="before"
    )
    @classmethod
    def _blank_path_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def state_path(self) -> Path:
        return self.state_dir.expanduser()

    @property
    def backup_path(self) -> Path:
        return (self.backup_dir or self.state_path / "backups").expanduser()

    @property
    def audit_path(self) -> Path:
        return (self.audit_log or self.state_path / "audit.jsonl").expanduser()

    @property
    def metrics_on(self) -> bool:
        return self.metrics_enabled or self.metrics_port is not None


def env_file_path(environ: dict[str, str] | None = None) -> Path | None:
    environ = dict(os.environ) if environ is None else environ
    explicit = environ.get("DIFY_OLLAMA_BOT_ENV")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"DIFY_OLLAMA_BOT_ENV: no such file: {path}")
        return path
    default = Path(DEFAULT_ENV_FILE)
    return default if default.is_file() else None


ALL_SETTINGS = frozenset(Settings.model_fields)


def load_settings(needs: Collection[str] | None = None, **overrides: object) -> Settings:
    """Load settings, turning any validation error into one ConfigError line per bad variable.

    `needs`: the fields the caller uses (None: all). An invalid value of any other field is
    not an error; that field keeps its default, which the caller never reads."""
    env_file = env_file_path()
    if env_file is not None and env_file.name == ".env":
        raise ConfigError(
            f"DIFY_OLLAMA_BOT_ENV: {env_file} looks like Dify's .env; give the bot its own file"
        )
    wanted = ALL_SETTINGS if needs is None else frozenset(needs)
    unused: dict[str, object] = {}
    for _ in range(len(ALL_SETTINGS)):  # each round sets aside at least one unused field
        try:
            values = {**unused, **overrides}
            return Settings(_env_file=env_file, **values)  # type: ignore[call-arg,arg-type]
        except ValidationError as exc:
            lines = []
            for error in exc.errors(include_input=False, include_url=False):
                field = str(error["loc"][0]) if error["loc"] else ""
                if field in ALL_SETTINGS and field not in wanted:
                    unused[field] = Settings.model_fields[field].default
                    continue
                message = str(error["msg"]).removeprefix("Value error, ")
                lines.append(f"{field.upper() or 'settings'}: {message}")
            if lines:
                raise ConfigError("; ".join(lines)) from None
    raise ConfigError("settings: could not be loaded")
