"""Reading Dify's `.env` without interpreting it, and telling secret keys from plain ones.

python-dotenv's parser is the reference (it is what Compose's own parser was modelled on), but
with interpolate=False: `$` in Dify's values is data, not a reference.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from config.i18n import gettext as _
from handlers.results import HandlerError

# A key is secret when any of its words is one of these (PASSWORD, DB_PASSWORD, SECRET_KEY,
# PLUGIN_DAEMON_KEY, SLACK_BOT_TOKEN, SENTRY_DSN, ...).
SECRET_WORDS = frozenset(
    {
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
        "AUTHTOKEN",
        "PRIVATE",
        "SIGNATURE",
        "CERT",
        "SALT",
        "PASSPHRASE",
        "SECRETKEY",
        "APIKEY",
        "ACCESSKEY",
    }
)
# ... or when it contains one of these anywhere, glued to other words or not (PGPASSWORD,
# GOOGLE_APPLICATION_CREDENTIALS, SSH_KEY_PASSPHRASE, GCS_SERVICE_ACCOUNT_JSON_BASE64). Parts
# that span words are written with "_", which stands for any separator.
SECRET_PARTS = (
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "APIKEY",
    "ACCESSKEY",
    "SECRETKEY",
    "AUTHTOKEN",
    "CONNECTION_STRING",
    "JSON_BASE64",
)
# ... or when its last word is PWD after another word (MYSQL_PWD, ORACLE_PWD; a lone PWD is the
# shell's working directory).
SECRET_LAST_WORDS = frozenset({"PWD"})
# Keys that match a rule above but hold no secret (masking them would hide useful evidence).
NOT_SECRET = frozenset(
    {
        "PLUGIN_S3_USE_AWS_MANAGED_IAM",
        "KEY_PREFIX",
    }
)


# A key whose last word is one of these describes a secret (its lifetime, its kind, a file
# name, whose it is) rather than holding one: ACCESS_TOKEN_EXPIRE_MINUTES,
# OPENSEARCH_AUTH_METHOD, WEAVIATE_AUTHENTICATION_APIKEY_USERS, ...
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
        "USER",
        "USERS",
        "USERNAME",
    }
)

_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")


def key_words(key: str) -> list[str]:
    """The words of a key as the secret rule sees them: upper case, split at anything that is
    not a letter or digit (DB_PASSWORD, db.password and db-password are the same words)."""
    return [word for word in _NOT_ALNUM.split(key.upper()) if word]


def is_secret_key(key: str) -> bool:
    upper = key.upper()
    if upper in NOT_SECRET:
        return False
    words = key_words(key)
    if not words or words[-1] in METADATA_WORDS:
        return False
    if any(word in SECRET_WORDS for word in words):
        return True
    if len(words) > 1 and words[-1] in SECRET_LAST_WORDS:
        return True
    joined = "_".join(words)
    return any(part in joined for part in SECRET_PARTS)


@dataclass(frozen=True)
class EnvFile:
    path: Path | None  # where it was read from; None for text of unknown origin
    values: dict[str, str]  # last assignment wins, as in Compose
    text: str  # for reading and showing: invalid UTF-8 bytes are U+FFFD here
    # 1-based numbers of the lines holding bytes that are not UTF-8 (Compose v1 refuses such a
    # file; v2 passes the bytes through): a finding names them, an edit keeps them as they are.
    undecodable: tuple[int, ...] = ()

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self.values.get(key)
        return default if value is None else value

    def secret_values(self, min_length: int = 4) -> set[str]:
        """The known secrets of this file, for redaction elsewhere (see secret_values_of);
        placeholders come from the `.env.example` beside `path`."""
        return secret_values_of(self.values, self.path, min_length)


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


# Passwords inside URLs found in environment values are secrets too (CELERY_BROKER_URL holds
# REDIS_PASSWORD, SQLALCHEMY DSNs hold DB_PASSWORD, HTTP_PROXY holds the proxy's) even when
# their key looks harmless. The user information runs from after `scheme://` (or the start:
# proxies are often written without a scheme) to the LAST `@`, and the password from its first
# `:`: a password with an unencoded `/`, `#` or `@` is still all of it.
_USERINFO = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]{0,32}://)?(?P<userinfo>\S*)@[^@\s]*$")


def url_password(value: str) -> str | None:
    """The password in a URL-like value (`scheme://user:pw@host`, `user:pw@host:port`)."""
    match = _USERINFO.match(value.strip()) if "@" in value else None
    if match is None:
        return None
    _, colon, password = match.group("userinfo").partition(":")
    return password if colon and password else None


def secret_values_of(
    values: Mapping[str, str], env_path: Path | None = None, min_length: int = 4
) -> set[str]:
    """The known secrets of an environment (`.env` values, a container's Config.Env).

    The values of secret-looking keys (is_secret_key), and passwords inside URL values. A value
    is never taken out because a non-secret key holds it too (ORACLE_PWD equal to DB_PASSWORD
    is still a password). Left out: booleans, and short public placeholders from Dify's
    `.env.example` ("dify", "admin", "xxx": masking every "dify" would make reports
    unreadable; a real secret the user chose is never one of them, and a long public default
    still is masked), read beside `env_path` (Dify's folder; without it only the built-in list,
    never the working directory).
    """
    placeholders = public_placeholders(env_path)
    found = {
        v
        for k, v in values.items()
        if v
        and len(v) >= min_length
        and is_secret_key(k)
        and v.lower() not in ("true", "false", "none", "null")
        and not (len(v) < PLACEHOLDER_MAX and v in placeholders)
    }
    for value in values.values():
        password = url_password(value or "")
        if password and len(password) >= min_length:
            found.add(password)
    return found


def public_placeholders(env_path: Path | None) -> frozenset[str]:
    """Short placeholder values of Dify's `.env.example` beside `env_path` (the real Dify
    folder, never the working directory), plus the built-in list; only the built-in list when
    no path is known or no example lies there."""
    if env_path is None:
        return BUILTIN_PLACEHOLDERS
    example = env_path.parent / ".env.example"
    try:
        text = decode_for_reading(example.read_bytes())
    except OSError:
        return BUILTIN_PLACEHOLDERS
    values = dotenv_parse(text)
    return BUILTIN_PLACEHOLDERS | {v for v in values.values() if v and len(v) < PLACEHOLDER_MAX}


# --- bytes <-> text -----------------------------------------------------------------------------
# `.env` is bytes. Two decodings, for two purposes:
# - for reading and showing (values, findings, diffs): invalid UTF-8 becomes U+FFFD, so nothing
#   downstream (a terminal, a JSON body, a Slack message) can choke on it;
# - for editing: surrogateescape, so an edit of one line writes every other byte back exactly,
#   the undecodable ones included (encode_for_writing is the inverse).
def decode_for_reading(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def decode_for_editing(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def encode_for_writing(text: str) -> bytes:
    """Inverse of decode_for_editing: `encode_for_writing(decode_for_editing(b)) == b`."""
    return text.encode("utf-8", errors="surrogateescape")


def undecodable_lines(data: bytes) -> tuple[int, ...]:
    """1-based numbers of the lines of `data` that are not valid UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return ()
    found = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            found.append(number)
    return tuple(found)


# The plain lines Dify's `.env` files are made of (`KEY=value`, `# comment`, blank), which
# python-dotenv reads in 10 ms (1.13.3's `.env.example`, quiet machine) and this in 1 ms, with
# the same result: a key of these characters, `=`, an unquoted value. Anything else outside
# comments (a quote, a backslash, a line without `=`, `export`, a tab or any whitespace but the
# space, non-ASCII) or a `\r` anywhere sends the whole text to python-dotenv
# (tests/adversarial/test_fuzz_envfile.py compares the two).
_PLAIN_LINE = re.compile(r" *([A-Za-z_][A-Za-z0-9_.-]*) *(= *)(.*)")
_NOT_PLAIN = re.compile(r"[^ -~\n]|[\\'\"]")  # outside printable ASCII and \n, or \ ' "
_INLINE_COMMENT = re.compile(r"\s+#.*")  # python-dotenv's own rule for an unquoted value


def plain_dotenv_items(text: str) -> list[tuple[str, str]] | None:
    """python-dotenv's reading of `text` (no interpolation) when every line is plain (see
    above); None when one is not."""
    if "\r" in text:
        return None
    items = []
    for line in text.split("\n"):
        start = line.lstrip(" ")
        if not start or start[0] == "#":  # a comment may hold anything but a line end
            continue
        if start.startswith("export ") or _NOT_PLAIN.search(line):
            return None
        match = _PLAIN_LINE.fullmatch(line)
        if match is None:
            return None
        key, equals, rest = match.groups()
        if not rest or (len(equals) > 1 and rest[0] == "#"):
            items.append((key, ""))  # `KEY=`, and `KEY= # note`: an empty value
        else:
            items.append((key, _INLINE_COMMENT.sub("", rest).rstrip()))
    return items


@functools.lru_cache(maxsize=8)
def _dotenv_items(text: str) -> tuple[tuple[str, str | None], ...]:
    plain = plain_dotenv_items(text)
    if plain is not None:
        return tuple(dict(plain).items())  # (a key given twice: its last value, first place)
    from dotenv import dotenv_values  # here: `--help` of the commands need not pay for it

    return tuple(dotenv_values(stream=io.StringIO(text), interpolate=False).items())


def dotenv_parse(text: str) -> dict[str, str | None]:
    """python-dotenv's reading of `text` (no interpolation), remembered by content: one check
    reads the same `.env` and `.env.example` several times (probes, the redactor, every
    container's secrets), and python-dotenv takes ~60 ms per Dify `.env` (plain text takes the
    fast path, `plain_dotenv_items`). Keyed by the text itself, so a changed file is always
    parsed again."""
    return dict(_dotenv_items(text))


def parse_env_text(text: str, path: Path | None = None) -> EnvFile:
    # A UTF-8 byte order mark (Windows editors write one) is not part of the first key: Compose
    # reads the file as utf-8-sig (v1) and drops it (v2).
    raw = dotenv_parse(text.removeprefix("\ufeff"))
    values = {k: (v if v is not None else "") for k, v in raw.items()}
    return EnvFile(path, values, text)


def parse_env_bytes(data: bytes, path: Path | None = None) -> EnvFile:
    """`.env` bytes as an EnvFile; never raises on undecodable bytes (see `undecodable`)."""
    env = parse_env_text(decode_for_reading(data), path)
    bad = undecodable_lines(data)
    return EnvFile(env.path, env.values, env.text, bad) if bad else env


# A keeper of parses by the bytes parsed: memo(kind, data, parse) -> parse() or a kept copy.
ParseMemo = Callable[[str, bytes, Callable[[], EnvFile]], EnvFile]


def read_env_file(path: Path, memo: ParseMemo | None = None) -> EnvFile:
    """Read `.env`; a missing or unreadable file is a HandlerError saying which and why.
    `memo` (a long-running process's) may hand back the parse of the very same bytes."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HandlerError(_("{path} does not exist").format(path=path)) from None
    except PermissionError:
        raise HandlerError(
            _("{path} is not readable by this user (permission denied)").format(path=path)
        ) from None
    except IsADirectoryError:
        raise HandlerError(_("{path} is a directory, not a file").format(path=path)) from None
    except OSError as exc:
        raise HandlerError(
            _("{path} could not be read: {error}").format(path=path, error=exc.strerror or exc)
        ) from None
    if memo is not None:
        return memo(f"env:{path}", data, lambda: parse_env_bytes(data, path))
    return parse_env_bytes(data, path)
