"""The Redactor on its own (no engine): literal secrets, secret shapes, secret keys."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from handlers.envfile import read_env_file
from handlers.redact import (
    MASK,
    Redactor,
    env_list_to_dict,
    secret_values,
    trie_pattern,
)
from tests.rig.stack import REFERENCE_DIR

DIFY_ENV = read_env_file(REFERENCE_DIR / ".env.example").values


@pytest.fixture(scope="module")
def stock() -> Redactor:
    """What a stock Dify install gives the redactor: .env.example, as api's environment too."""
    return Redactor.from_sources(DIFY_ENV, [f"{k}={v}" for k, v in DIFY_ENV.items()])


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # credentials inside URLs: the user and host stay readable
        (
            "db postgresql://postgres:hunter2pw@db:5432/dify up",
            "db postgresql://postgres:[REDACTED]@db:5432/dify up",
        ),
        ("broker redis://:s3cretpw@redis:6379/1", "broker redis://:[REDACTED]@redis:6379/1"),
        # Slack tokens and webhooks
        ("bot xoxb-1234567890-abcdefghijkl ok", "bot [REDACTED] ok"),
        ("user xoxp-1234-5678-abcdefgh", "user [REDACTED]"),
        ("app xapp-1-A0123ABC-1234567890-0123456789abcdef", "app [REDACTED]"),
        (
            "hook https://hooks.slack.com/services/T000/B000/XXXXXXXX sent",
            "hook https://hooks.slack.com/[REDACTED] sent",
        ),
        # headers
        ("Authorization: Bearer abc.def-ghi_123", "Authorization: Bearer [REDACTED]"),
        ('{"authorization": "Basic dXNlcjpwYXNz"}', '{"authorization": "Basic [REDACTED]"}'),
        ("curl -H 'Authorization: token ghx123456'", "curl -H 'Authorization: token [REDACTED]'"),
        ("sent bearer eyJhbGciOi.x.y", "sent bearer [REDACTED]"),
        ("Cookie: session=abc; csrf=def", "Cookie: [REDACTED]"),
        # API key shapes
        ("key sk-proj-Abcdefghijklmnop1234", "key [REDACTED]"),
        ("SECRET_KEY sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U", "SECRET_KEY [REDACTED]"),
        ("aws AKIAIOSFODNN7EXAMPLE done", "aws [REDACTED] done"),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [REDACTED]"),
        ("pat github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "pat [REDACTED]"),
        ("gl glpat-abcdefghij1234567890", "gl [REDACTED]"),
        ("google AIzaSyA-abcdefghijklmnopqrstuvwxyz12345", "google [REDACTED]"),
        ("hf hf_abcdefghijklmnopqrstuvwxyzABCDEF", "hf [REDACTED]"),
        ("stripe sk_live_abcdefghijklmnop1234", "stripe [REDACTED]"),
        ("dify app-abcdefghijklmnopqrstuvwx called", "dify [REDACTED] called"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0",
            "jwt [REDACTED]",
        ),
        # secret-looking keys (the .env rule), values in any quoting
        ("password=hunter2 user=bob", "password=[REDACTED] user=bob"),
        ("DB_PASSWORD: abc", "DB_PASSWORD: [REDACTED]"),
        ('{"api_key": "a,b c", "model": "llama3"}', '{"api_key": "[REDACTED]", "model": "llama3"}'),
        ("{'secret': 'x y'}", "{'secret': '[REDACTED]'}"),
        ("url?token=abc123&page=2", "url?token=[REDACTED]&page=2"),
        ("X-Api-Key: 0123abcd", "X-Api-Key: [REDACTED]"),
        # and what must stay: counts, expiries, booleans, words merely containing "key"
        ("max_tokens=100 prompt_tokens=12 token_count=15", None),
        ("ACCESS_TOKEN_EXPIRE_MINUTES=60 monkey=banana", None),
        ("password=true password=null secret=***", None),
        ("HTTPConnectionPool(host='127.0.0.1', port=11434): Max retries", None),
        ("no secrets here: GET /console/api/apps 200 12ms", None),
    ],
)
def test_shapes_and_keys(line: str, expected: str | None) -> None:
    assert Redactor().redact(line) == (line if expected is None else expected)


def test_literal_secrets_from_env_and_container() -> None:
    redactor = Redactor.from_sources(
        {"DB_PASSWORD": "pw-from-dotenv-1", "DB_USERNAME": "postgres", "LOG_LEVEL": "INFO"},
        ["PLUGIN_DAEMON_KEY=key-from-container-2", "PATH=/usr/bin", "HOSTNAME=abc"],
        extra=["xoxb-own-bot-token"],
    )
    text = "a pw-from-dotenv-1 b key-from-container-2 c xoxb-own-bot-token d postgres INFO"
    assert redactor.redact(text) == f"a {MASK} b {MASK} c {MASK} d postgres INFO"


def test_literal_secret_in_percent_and_json_encoded_forms() -> None:
    redactor = Redactor(frozenset({'p@ss/w"rd:1'}))
    assert redactor.redact("quoted p%40ss%2Fw%22rd%3A1 end") == f"quoted {MASK} end"
    assert redactor.redact('{"v": "p@ss/w\\"rd:1"}') == '{"v": "' + MASK + '"}'


def test_short_secrets_only_as_whole_tokens() -> None:
    redactor = Redactor(frozenset({"ab12x"}))
    assert redactor.redact("auth ab12x ok, ab12xy, xab12x, (ab12x)") == (
        f"auth {MASK} ok, ab12xy, xab12x, ({MASK})"
    )


def test_overlapping_secrets_and_a_secret_prefix_of_a_token() -> None:
    redactor = Redactor(frozenset({"abcdef12", "def12ghijk", "xoxb-1234"}))
    assert redactor.redact("x abcdef12ghijk y") == f"x {MASK} y"
    # The literal is a prefix of a longer Slack token: the whole token goes, not just the prefix.
    assert redactor.redact("t xoxb-1234567890-abcdefghij z") == f"t {MASK} z"


def test_longest_literal_wins() -> None:
    redactor = Redactor(frozenset({"secretvalue", "secretvalue-extended"}))
    assert redactor.redact("[secretvalue-extended]") == f"[{MASK}]"


def test_stock_dify_env_does_not_wreck_the_log(stock: Redactor) -> None:
    # Placeholders that non-secret keys share (dify, admin, difyai, elastic), and ordinary words.
    line = "db=dify user=admin bucket=difyai es=elastic: the password check failed for dify-api"
    assert stock.redact(line) == line
    # Dify's published default secrets are real secrets on most installs.
    assert stock.redact("auth difyai123456 ok") == f"auth {MASK} ok"
    assert stock.redact("sandbox key dify-sandbox") == f"sandbox key {MASK}"


def test_secret_values_rule() -> None:
    values = {
        "DB_PASSWORD": "pw123456",
        "DB_DATABASE": "dify",
        "QDRANT_API_KEY": "dify",  # shared with a non-secret key: evidence, not a secret
        "CELERY_BROKER_URL": "redis://:brokerpw1@redis:6379/1",  # a password inside a URL
        "ACCESS_TOKEN_EXPIRE_MINUTES": "60",
        "SHORT_KEY": "abc",  # shorter than 4
    }
    assert secret_values(values) == {"pw123456", "brokerpw1"}
    assert env_list_to_dict(["A=1", "B=x=y", "NOEQUALS", "A=2"]) == {"A": "2", "B": "x=y"}


def test_private_key_block_across_lines() -> None:
    lines = [
        "loading key",
        "-----BEGIN RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEAxyz",
        "abcdefghijklmnop",
        "-----END RSA PRIVATE KEY-----",
        "after",
    ]
    out = [line for line, _ in Redactor().redact_lines(lines)]
    assert out == [
        "loading key",
        f"-----BEGIN RSA PRIVATE KEY-----{MASK}",
        MASK,
        MASK,
        MASK,
        "after",
    ]
    whole = Redactor().redact("\n".join(lines))
    assert "MIIE" not in whole and whole.endswith("after")


def test_counts() -> None:
    text, count = Redactor(frozenset({"difyai123456"})).redact_counted(
        "redis://:difyai123456@r password=difyai123456 Bearer abcdefgh"
    )
    assert count == 3 and text == f"redis://:{MASK}@r password={MASK} Bearer {MASK}"


def test_trie_matches_like_a_naive_alternation() -> None:
    rng = random.Random(7)
    words = {"".join(rng.choices("ab1-.", k=rng.randint(3, 9))) for _ in range(300)}
    trie = re.compile(trie_pattern(words))
    naive = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)))
    for _ in range(300):
        text = "".join(rng.choices("ab1-.x ", k=60))
        assert [m.span() for m in trie.finditer(text)] == [m.span() for m in naive.finditer(text)]


def test_env_file_helper_matches(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("SECRET_KEY=abcdefgh1234\nLOG_LEVEL=INFO\n")
    redactor = Redactor.from_sources(read_env_file(env).values)
    assert redactor.redact("k=abcdefgh1234 INFO") == f"k={MASK} INFO"
