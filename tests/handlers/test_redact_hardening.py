"""Redaction hardening (issue 11): linear time on hostile text, a cut with a marker for absurd
lines, more secret keys, secrets that are never dropped, PGP blocks, base64 and hex forms, and
placeholders read from Dify's folder, never from the working directory. No engine needed."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from handlers import env_edit
from handlers.envfile import is_secret_key, parse_env_text, read_env_file, secret_values_of
from handlers.redact import (
    MASK,
    MAX_LINE,
    Redactor,
    log_key_is_secret,
    redactor_for,
    secret_values,
)

# --- linear time ------------------------------------------------------------------------------
# Each unit repeated makes one pass of the old redactor quadratic or worse (the 24 kB
# `keykeykey...` line took 6 s). The test compares the cost per character at two sizes 8x apart:
# linear stays about the same, quadratic grows 8x. Relative, so a slow machine does not fail it.
HOSTILE = [
    "key",
    "key_",
    "PASSWORD",
    "pass",
    "authorization",
    "eyJ-",
    "xoxb-",
    'key="\\"',
    'key="',
    "key='",
    '{"token": "',
    "=:",
    "token:=",
    "://a:b",
    "http://u:p@h ",
    "Authorization: Bearer ",
    "-----BEGIN RSA PRIVATE KEY-----\n",
    "-----BEGIN ",
    "A",
]


def _cost_per_char(redactor: Redactor, unit: str, size: int) -> float:
    text = (unit * (size // len(unit) + 1))[:size]
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        redactor.redact(text)
        best = min(best, time.process_time() - started)
    return max(best, 1e-6) / size


@pytest.mark.timeout(120)
@pytest.mark.parametrize("unit", HOSTILE)
def test_redaction_time_grows_linearly_on_hostile_text(unit: str) -> None:
    redactor = Redactor(frozenset({"canary-Zq81xT0pW", "hunter22hunter"}))
    small = _cost_per_char(redactor, unit, 16_000)
    large = _cost_per_char(redactor, unit, 128_000)
    # 8x the text: a quadratic pass costs 8x more per character; allow noise up to 3x.
    assert large / small < 3.0, (unit, small, large)


def test_an_absurd_line_is_cut_with_a_marker_and_the_cut_splits_no_secret() -> None:
    secret = "canary-Zq81xT0pW-long-secret"
    redactor = Redactor(frozenset({secret}))
    # The secret straddles MAX_LINE: the cut moves back to its start, so no prefix shows.
    line = "x" * (MAX_LINE - 10) + " " + secret + " " + "y" * 500_000
    out, count = redactor.redact_counted(line + "\nnext line\n")
    assert secret[:8] not in out
    assert "characters cut]" in out and out.endswith("\nnext line\n")
    assert len(out) < MAX_LINE + 100
    assert count == 0  # the secret went with the cut, not into the output


def test_an_url_password_at_the_cut_is_not_left_half() -> None:
    line = "z" * (MAX_LINE - 20) + " https://bob:hunter22hunter@db.example/x" + "q" * 70_000
    out = Redactor().redact(line)
    assert "hunter" not in out and "characters cut]" in out


# --- the key rule -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        "ORACLE_PWD",
        "MYSQL_PWD",
        "PGPASSWORD",
        "SSH_KEY_PASSPHRASE",
        "GPG_PASSPHRASE_FILE_CONTENT",
        "NGROK_AUTHTOKEN",
        "AWS_SECRETKEY",
        "GCS_SERVICE_ACCOUNT_JSON_BASE64",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_CREDENTIALS_JSON",
        "DB_PASSWORD",
        "SECRET_KEY",
    ],
)
def test_secret_keys_the_old_rule_missed(key: str) -> None:
    assert is_secret_key(key)
    assert log_key_is_secret(key)
    value = "Zq81xT0pW-value"
    assert Redactor().redact(f"{key}={value} next") == f"{key}={MASK} next"


@pytest.mark.parametrize(
    "key",
    ["PWD", "OLDPWD", "max_tokens", "ACCESS_TOKEN_EXPIRE_MINUTES", "KEY_PREFIX", "monkey"],
)
def test_keys_that_stay_plain(key: str) -> None:
    assert not is_secret_key(key)
    assert Redactor().redact(f"{key}=/app/api") == f"{key}=/app/api"


def test_a_value_is_never_taken_out_because_a_plain_key_holds_it_too() -> None:
    # ORACLE_PWD was a plain key before; DB_PASSWORD's value, equal to it, was then dropped.
    values = {"DB_PASSWORD": "Zq81xT0pW-shared", "ORACLE_PWD": "Zq81xT0pW-shared"}
    assert secret_values(values) == {"Zq81xT0pW-shared"}
    values = {"DB_PASSWORD": "Zq81xT0pW-shared", "DB_NAME_NOTE": "Zq81xT0pW-shared"}
    assert secret_values(values) == {"Zq81xT0pW-shared"}
    assert "Zq81xT0pW" not in Redactor.from_sources(values).redact("db Zq81xT0pW-shared up")


def test_passwords_in_proxy_urls_without_scheme_or_with_unencoded_characters() -> None:
    values = {
        "HTTP_PROXY": "bob:pa/ss#w0rd@proxy.corp:3128",
        "HTTPS_PROXY": "http://alice:s3c@ret/x@proxy.corp:3129",
    }
    assert secret_values(values) == {"pa/ss#w0rd", "s3c@ret/x"}


def test_fix_env_diff_masks_an_oracle_pwd_context_line() -> None:
    old = "ORACLE_PWD=Zq81xT0pW-oracle\nOPENAI_API_BASE=http://127.0.0.1:11434/v1\n"
    new, _ = env_edit.set_values(old, {"OPENAI_API_BASE": "http://host.docker.internal:11434/v1"})
    diff = env_edit.masked_diff(
        old, new, ".env", redactor_for(env_values=parse_env_text(old).values)
    )
    assert "ORACLE_PWD=" in diff  # the context line is there ...
    assert "Zq81xT0pW" not in diff  # ... with its value masked


# --- more secret forms ------------------------------------------------------------------------
PGP = """-----BEGIN PGP PRIVATE KEY BLOCK-----
Version: GnuPG v2

lQOYBF5xXJ0BCADT0aQzExampleExampleExampleExampleExampleAAAAAA
=abcd
-----END PGP PRIVATE KEY BLOCK-----"""


def test_pgp_private_key_blocks_whole_and_line_by_line() -> None:
    whole = Redactor().redact("before\n" + PGP + "\nafter")
    assert "lQOYBF5x" not in whole and "Version" not in whole
    assert whole.startswith("before\n-----BEGIN PGP PRIVATE KEY BLOCK-----") and whole.endswith(
        "after"
    )
    lines = [line for line, _ in Redactor().redact_lines(["before", *PGP.split("\n"), "after"])]
    assert lines[0] == "before" and lines[-1] == "after"
    assert not any("lQOYBF5x" in line or "GnuPG" in line for line in lines)


@pytest.mark.parametrize("prefix", [b"", b"u", b"us", b"user:"])
def test_base64_of_a_known_secret_at_any_alignment(prefix: bytes) -> None:
    secret = "Zq81xT0pW-secret!"
    blob = base64.b64encode(prefix + secret.encode() + b":tail").decode()
    out = Redactor(frozenset({secret})).redact(f"config={blob} done")
    assert out == f"config={MASK} done" or blob not in out
    # the secret's own characters are gone from the base64 text
    inner = base64.b64encode(secret.encode()).decode()[:12]
    assert inner not in out


def test_hex_of_a_known_secret() -> None:
    secret = "Zq81xT0pW-secret"
    for form in (secret.encode().hex(), secret.encode().hex().upper()):
        assert Redactor(frozenset({secret})).redact(f"dump {form} end") == f"dump {MASK} end"


# --- placeholders: Dify's folder, not the working directory ------------------------------------
def _in_dir(folder: Path, fn: Callable[[], object]) -> object:
    before = Path.cwd()
    os.chdir(folder)
    try:
        return fn()
    finally:
        os.chdir(before)


def test_placeholders_come_from_difys_folder_not_the_working_directory(tmp_path: Path) -> None:
    dify = tmp_path / "dify" / "docker"
    dify.mkdir(parents=True)
    (dify / ".env.example").write_text("VECTOR_API_KEY=zq81pub\n")  # a short public placeholder
    (dify / ".env").write_text("VECTOR_API_KEY=zq81pub\nDB_PASSWORD=wq72sec\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".env.example").write_text("DB_PASSWORD=wq72sec\n")  # would hide the real one

    env = read_env_file(dify / ".env")
    from_folder = _in_dir(elsewhere, env.secret_values)
    assert from_folder == {"wq72sec"}
    # A mapping without a path gets the built-in placeholders only, whatever the cwd holds.
    assert _in_dir(elsewhere, lambda: secret_values_of(env.values)) == {"zq81pub", "wq72sec"}
    assert _in_dir(elsewhere, lambda: secret_values(env.values, env_path=dify / ".env")) == {
        "wq72sec"
    }
    redactor = _in_dir(elsewhere, lambda: Redactor.from_sources(env.values, env_path=dify / ".env"))
    assert isinstance(redactor, Redactor)
    assert redactor.redact("pw wq72sec and zq81pub") == f"pw {MASK} and zq81pub"
