"""The bot's settings: environment variables, then the bot's own env file.

The env file is `DIFY_OLLAMA_BOT_ENV` (a path) or `./dify-ollama-bot.env`. It is never `.env`:
people run this tool from Dify's docker folder, and Dify's `.env` holds ~700 keys and its secrets.

A plain dataclass, validated by hand: pydantic-settings cost 0.25 s of import on every command
(more than the whole `check` on a healthy stack), for twenty fields of five kinds. One field is
one line below; its annotation picks the conversion (`_CONVERT`), its metadata the bounds.
Every error names the variable and never echoes its value (it may be a token).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_ENV_FILE = "dify-ollama-bot.env"
SLACK_DEFAULT_API_URL = "https://slack.com/api/"

TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})


class ConfigError(Exception):
    """A missing or invalid setting, explained in one line that names the variable."""


class SecretStr:
    """A string that does not show itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')" if self._value else "SecretStr('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as http://127.0.0.1:11434")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value.rstrip("/") if parts.path in ("", "/") else value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


def _optional_text(value: object) -> str | None:
    if value is None:
        return None
    text = _text(value)
    return None if not text.strip() else text


def _path(value: object) -> Path:
    if isinstance(value, Path):
        return value
    return Path(_text(value))


def _optional_path(value: object) -> Path | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _path(value)


def _number(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(_text(value).strip())
    except ValueError:
        raise ValueError("must be a number") from None


def _integer(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = _text(value).strip() if isinstance(value, str) else ""
    if not text.lstrip("+-").isdigit():
        raise ValueError("must be a whole number")
    return int(text)


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("must be true or false")


def _secret(value: object) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(_text(value))


def _comma_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.replace(" ", ",").split(",") if part.strip())
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(str(part) for part in value)
    raise ValueError("must be a comma-separated list")


# The conversion of each annotation used below (with `from __future__ import annotations`
# dataclass field types are these strings).
_CONVERT: dict[str, Callable[[object], Any]] = {
    "str": _text,
    "str | None": _optional_text,
    "Path": _path,
    "Path | None": _optional_path,
    "float": _number,
    "int": _integer,
    "bool": _boolean,
    "SecretStr | None": _secret,
    "tuple[str, ...]": _comma_list,
}
URL = {"url": True}


def _bounds(low: float, high: float, *, above: bool = False) -> dict[str, Any]:
    """Metadata: the value lies in [low, high] (`above`: strictly greater than low)."""
    return {"low": low, "high": high, "above": above}


def _check(value: Any, meta: Mapping[str, Any]) -> Any:
    if meta.get("url"):
        return _http_url(value)
    if "low" in meta:
        low, high = meta["low"], meta["high"]
        if isinstance(value, float) and math.isnan(value):
            raise ValueError("must be a number")
        if meta["above"] and not value > low:
            raise ValueError(f"must be greater than {low:g}")
        if not meta["above"] and value < low:
            raise ValueError(f"must be at least {low:g}")
        if value > high:
            raise ValueError(f"must be at most {high:g}")
    return value


@dataclass(frozen=True, kw_only=True)
class Settings:
    # Dify host
    dify_dir: Path | None = None
    dify_compose_project: str | None = None
    ollama_url: str = field(default="http://127.0.0.1:11434", metadata=URL)
    check_timeout: float = field(default=3.0, metadata=_bounds(0, 120, above=True))
    chat_timeout: float = field(default=60.0, metadata=_bounds(0, 900, above=True))
    docker_host: str | None = None

    # Repairs (fix-env)
    fix_ollama_url: str = field(default="http://host.docker.internal:11434/v1", metadata=URL)
    fix_ollama_base_url: str = field(default="http://host.docker.internal:11434", metadata=URL)
    fix_database: bool = True
    backup_dir: Path | None = None  # default: <state_dir>/backups
    state_dir: Path = Path("~/.local/state/dify-ollama-bot")

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = field(default=SLACK_DEFAULT_API_URL, metadata=URL)
    port: int = field(default=3000, metadata=_bounds(1, 65535))
    allowed_channels: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    audit_log: Path | None = None  # default: <state_dir>/audit.jsonl
    audit_channel: str | None = None
    reply_ephemeral: bool = False
    worker_threads: int = field(default=4, metadata=_bounds(1, 64))

    def __post_init__(self) -> None:
        problems = []
        for spec in fields(self):
            convert = _CONVERT[str(spec.type)]
            try:
                value = _check(convert(getattr(self, spec.name)), spec.metadata)
            except (ValueError, TypeError) as exc:
                problems.append(f"{spec.name.upper()}: {exc}")
                continue
            object.__setattr__(self, spec.name, value)
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def state_path(self) -> Path:
        return self.state_dir.expanduser()

    @property
    def backup_path(self) -> Path:
        return (self.backup_dir or self.state_path / "backups").expanduser()

    @property
    def audit_path(self) -> Path:
        return (self.audit_log or self.state_path / "audit.jsonl").expanduser()


def env_file_path(environ: Mapping[str, str] | None = None) -> Path | None:
    environ = os.environ if environ is None else environ
    explicit = environ.get("DIFY_OLLAMA_BOT_ENV")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"DIFY_OLLAMA_BOT_ENV: no such file: {path}")
        return path
    default = Path(DEFAULT_ENV_FILE)
    return default if default.is_file() else None


def _env_file_values(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values  # only when there is a file: it costs an import

    try:
        raw = dotenv_values(path, interpolate=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"DIFY_OLLAMA_BOT_ENV: cannot read {path}: {exc}") from None
    return {key: value for key, value in raw.items() if value is not None}


def load_settings(**overrides: object) -> Settings:
    """Settings from the bot's env file, then the environment (which wins), then `overrides`;
    names are matched without regard to case. Raises ConfigError, one line per bad variable."""
    env_file = env_file_path()
    if env_file is not None and env_file.name == ".env":
        raise ConfigError(
            f"DIFY_OLLAMA_BOT_ENV: {env_file} looks like Dify's .env; give the bot its own file"
        )
    names = {spec.name for spec in fields(Settings)}
    values: dict[str, Any] = {}
    sources = [_env_file_values(env_file) if env_file is not None else {}, os.environ]
    for source in sources:
        for key, value in source.items():
            if key.lower() in names:
                values[key.lower()] = value
    values.update(overrides)
    return Settings(**values)
