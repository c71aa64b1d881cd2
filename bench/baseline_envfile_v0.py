"""BASELINE for bench/bench_redact.py: handlers/envfile.py before the hardening (commit 4e73c77).

Reading Dify's `.env` without interpreting it, and telling secret keys from plain ones.

python-dotenv's parser is the reference (it is what Compose's own parser was modelled on), but
with interpolate=False: `$` in Dify's values is data, not a reference.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from handlers.results import HandlerError

# A key is secret when any of its words is one of these (PASSWORD, DB_PASSWORD, SECRET_KEY,
# PLUGIN_DAEMON_KEY, SLACK_BOT_TOKEN, SENTRY_DSN, ...).
SECRET_WORDS = (
    "PASSWORD",
    "PASSWD",
    "PASS",
    "SECRET",
    "KEY",
    "TOKEN",
    "DSN",
    "CREDENTIAL",
    "CREDENTIALS",
    "AUTH",
    "PRIVATE",
    "SIGNATURE",
    "CERT",
    "SALT",
    "CONNECTION_STRING",
)
# Keys that match a word above but hold no secret (masking them would hide useful evidence).
NOT_SECRET = frozenset(
    {
        "PLUGIN_S3_USE_AWS_MANAGED_IAM",
        "KEY_PREFIX",
    }
)


# A key whose last word is one of these describes a secret (its lifetime, its kind, a file
# name) rather than holding one: ACCESS_TOKEN_EXPIRE_MINUTES, OPENSEARCH_AUTH_METHOD, ...
METADATA_WORDS = frozenset(
    {
        "MINUTES",
        "HOURS",
        "DAYS",
        "SECONDS",
        "EXPIRY",
        "ENABLED",
        "VERSION",
        "FILENAME",
        "PROVIDER",
        "REQS",
        "METHOD",
        "TYPE",
        "COUNTING",
        "SIGNATURE",
        "PREFIX",
        "LENGTH",
        "SIZE",
    }
)


def is_secret_key(key: str) -> bool:
    upper = key.upper()
    if upper in NOT_SECRET:
        return False
    words = re.split(r"[^A-Z0-9]+", upper)
    if words and words[-1] in METADATA_WORDS:
        return False
    if any(word in SECRET_WORDS for word in words):
        return True
    return any(compound in upper for compound in ("CONNECTION_STRING", "APIKEY", "ACCESSKEY"))


@dataclass(frozen=True)
class EnvFile:
    path: Path
    values: dict[str, str]  # last assignment wins, as in Compose
    text: str

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self.values.get(key)
        return default if value is None else value

    def secret_values(self, min_length: int = 4) -> set[str]:
        """The values of secret-looking keys, for redaction elsewhere.

        Short placeholder words from Dify's `.env.example` ("dify", "admin", "xxx") are left
        out: they are public, and masking every "dify" would make reports unreadable. A real
        secret the user chose is never one of them; a long public default still is masked.
        """
        placeholders = public_placeholders(self.path)
        return {
            v
            for k, v in self.values.items()
            if v
            and len(v) >= min_length
            and is_secret_key(k)
            and v.lower() not in ("true", "false", "none", "null")
            and not (len(v) < PLACEHOLDER_MAX and v in placeholders)
        }


PLACEHOLDER_MAX = 8
# Dify 1.x .env.example's short placeholder values of secret-looking keys; used when no
# .env.example lies beside the .env.
BUILTIN_PLACEHOLDERS = frozenset(
    {
        "dify",
        "difyai",
        "admin",
        "password",
        "xxx",
        "your-ak",
        "your-sk",
        "111",
        "elastic",
        "Dify@123",
        "root",
        "postgres",
        "secret",
    }
)


def public_placeholders(env_path: Path) -> frozenset[str]:
    example = env_path.parent / ".env.example"
    try:
        text = example.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return BUILTIN_PLACEHOLDERS
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return BUILTIN_PLACEHOLDERS | {v for v in values.values() if v and len(v) < PLACEHOLDER_MAX}


def parse_env_text(text: str, path: Path = Path(".env")) -> EnvFile:
    raw = dotenv_values(stream=io.StringIO(text), interpolate=False)
    values = {k: (v if v is not None else "") for k, v in raw.items()}
    return EnvFile(path, values, text)


def read_env_file(path: Path) -> EnvFile:
    """Read `.env`; a missing or unreadable file is a HandlerError saying which and why."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HandlerError(f"{path} does not exist") from None
    except PermissionError:
        raise HandlerError(f"{path} is not readable by this user (permission denied)") from None
    except IsADirectoryError:
        raise HandlerError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise HandlerError(f"{path} could not be read: {exc.strerror or exc}") from None
    text = data.decode("utf-8", errors="replace")
    return parse_env_text(text, path)
