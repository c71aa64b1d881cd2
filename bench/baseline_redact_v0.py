"""BASELINE for bench/bench_redact.py: handlers/redact.py as it was before the linear-time
rewrite (commit 4e73c77), unchanged but for this paragraph and its imports, so the benchmark can
compare both in one run. Its key pass rescans the rest of a word from every secret word in
it (`keykeykey...`: quadratic); do not use it for anything else.

Redaction of secrets from text before it leaves the host (logs into Slack or a terminal).

Three passes, each one compiled regular expression scanning the text once:
1. literal secrets: the values of secret-looking keys in Dify's `.env` and in the container's
   environment (plus URL-embedded passwords and the bot's own tokens), as one alternation built
   as a prefix trie, so the longest secret wins at any position;
2. shapes: credentials inside URLs, Slack tokens and webhooks, Authorization / Cookie headers,
   `Bearer <token>`, common API-key formats, JWTs, PEM private keys;
3. `key=value` / `"key": "value"` pairs whose key looks secret (same rule as `.env`).

Every redacted value becomes `[REDACTED]`; what identifies the value (the key, the URL's user,
the auth scheme) stays, because that is what an on-call engineer needs to read the log.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from bench.baseline_envfile_v0 import EnvFile, is_secret_key

MASK = "[REDACTED]"

# Shorter literal secrets are only redacted as whole tokens: a 5-letter password replaced inside
# every word that contains it would make the log unreadable, and such a value inside a longer
# word is not the secret anyway.
SHORT_SECRET = 8
MIN_SECRET = 4
# Values of secret keys that are ordinary words in log text (Dify's .env.example uses several as
# placeholders). They are still redacted after a secret key (`password=admin`), just not
# everywhere they appear as words.
COMMON_WORDS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "admin",
        "root",
        "postgres",
        "default",
        "example",
        "test",
        "user",
        "username",
        "token",
        "none",
        "null",
        "true",
        "false",
        "changeme",
    }
)
# Keys that contain a secret word but, in log lines, count or describe something.
_LOG_METADATA_WORDS = frozenset(
    {
        "COUNT",
        "COUNTS",
        "LIMIT",
        "USAGE",
        "TOTAL",
        "NAME",
        "FILE",
        "PATH",
        "LEN",
        "NUM",
        "URL",
        "URI",
        "HOST",
        "PORT",
        "ENDPOINT",
        "ID",
        "IDS",
        "PREFIX",
    }
)


def _trie_pattern(words: Iterable[str], whole_token: bool = False) -> str:
    """One regex alternation for many literals, factored as a prefix trie.

    At each node the children start with different characters, so the engine follows one path
    instead of trying every literal at every position; a word that is a prefix of another is an
    optional tail, tried after the longer continuation, so the longest literal wins. Every
    top-level branch starts with a literal character, which lets the engine skip positions that
    cannot start a secret. `whole_token`: the literal must not touch a letter or digit on
    either side (checked after the first character, to keep that fast start).
    """
    root: dict[str, dict] = {}
    end = ""  # key marking "a word ends here" (no real character is empty)
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[end] = {}

    def emit(node: dict[str, dict], top: bool) -> str:
        branches = []
        for char in sorted(k for k in node if k != end):
            child = node[char]
            prefix = re.escape(char) + (r"(?<![A-Za-z0-9].)" if top and whole_token else "")
            # Path compression: a chain of single children becomes one literal.
            while len(child) == 1 and end not in child:
                (next_char, child) = next(iter(child.items()))
                prefix += re.escape(next_char)
            branches.append(prefix + (emit(child, False) if child.keys() - {end} else ""))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end in node:
            return "(?:" + body + ")?"
        return body

    # Greedy optional tails backtrack to a shorter literal when the boundary check fails.
    return emit(root, True) + (r"(?![A-Za-z0-9])" if whole_token else "")


def _variants(value: str) -> set[str]:
    """The forms a secret takes in logs: as is, percent-encoded (in URLs), JSON-escaped."""
    forms = {value, quote(value, safe=""), json.dumps(value)[1:-1]}
    return {f for f in forms if f}


# Passwords inside URLs found in environment values are secrets too (CELERY_BROKER_URL holds
# REDIS_PASSWORD, SQLALCHEMY DSNs hold DB_PASSWORD) even when their key looks harmless.
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:([^\s/?#@]+)@")


def secret_values(values: Mapping[str, str], min_length: int = MIN_SECRET) -> set[str]:
    """Values of secret-looking keys in an environment (the `.env` rule), minus values that a
    non-secret key holds too (`dify` is both DB_DATABASE and a placeholder API key in Dify's
    .env.example: it is evidence, not a secret), plus passwords embedded in URL values."""
    found = EnvFile(Path(".env"), dict(values), "").secret_values(min_length=min_length)
    public = {v for k, v in values.items() if v and not is_secret_key(k)}
    found -= public
    for value in values.values():
        for match in _URL_PASSWORD.finditer(value or ""):
            if len(match.group(1)) >= min_length:
                found.add(match.group(1))
    return found


def env_list_to_dict(env: Iterable[str] | None) -> dict[str, str]:
    """Docker's Config.Env (["KEY=value", ...]) as a dict; the last assignment wins."""
    result: dict[str, str] = {}
    for item in env or ():
        key, sep, value = item.partition("=")
        if sep:
            result[key] = value
    return result


# --- pass 2: shapes --------------------------------------------------------------------------
# Every pattern starts with a literal character (case variants spelled out, word boundaries
# checked by a lookbehind after that first character): Python's regex engine then skips, at C
# speed, every position whose character cannot start a match. `(?i)\bbearer` scans at
# ~50 MB/s, `B(?i:earer)|b(?i:earer)` at ~270 MB/s. A group named `value` is what gets masked
# (the rest of the match, e.g. `Authorization: Bearer `, stays); without one the whole match.
_BOUNDARY = r"(?<![A-Za-z0-9_].)"  # placed after the first character


def _words(*words: str, boundary: bool = False) -> str:
    """Case-insensitive words as alternatives that each start with a literal character."""
    alternatives = []
    for word in words:
        for first in dict.fromkeys((word[0].upper(), word[0].lower())):
            tail = f"(?i:{re.escape(word[1:])})" if word[1:] else ""
            alternatives.append(re.escape(first) + (_BOUNDARY if boundary else "") + tail)
    return "(?:" + "|".join(alternatives) + ")"


def _tokens(*patterns: str) -> str:
    """Token shapes: each starts with a literal and must not continue a word."""
    return "(?:" + "|".join(p[0] + _BOUNDARY + p[1:] for p in patterns) + ")"


_AUTH_SCHEMES = "bearer|basic|token|digest|apikey|api-key|key|negotiate|ntlm"
_SHAPES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern)
    for pattern in (
        # scheme://user:password@host -> scheme://user:[REDACTED]@host
        r"://[^\s:/?#@\"'<>]{0,256}:(?P<value>[^\s/?#@\"'<>]{1,256})@",
        r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----(?P<value>[\s\S]{0,16000}?"
        r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|\Z))",
        r"https://hooks\.slack\.com/(?P<value>(?:services|workflows|triggers)/[A-Za-z0-9/_-]+)",
        _words("authorization", "proxy-authorization")
        + r"[\"']?[ \t]*[:=][ \t]*[\"']?"
        + rf"(?:(?i:{_AUTH_SCHEMES})[ \t]+)?(?P<value>[^\s\"',;]+)",
        _words("cookie", "set-cookie") + r"[\"']?[ \t]*:[ \t]*(?P<value>[^\n\"']+)",
        _words("bearer", boundary=True) + r"[ \t]+(?P<value>[A-Za-z0-9._~+/=-]{6,})",
        _tokens(
            r"xox[abposr]-[A-Za-z0-9-]{8,}",
            r"xoxe(?:\.xox[a-z])?-[0-9]-[A-Za-z0-9-]{8,}",
            r"xapp-[0-9]-[A-Za-z0-9-]{8,}",
            r"sk-(?:proj-|ant-|live-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}",
            r"sk_(?:live|test)_[A-Za-z0-9]{16,}",
            r"rk_(?:live|test)_[A-Za-z0-9]{16,}",
            r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z0-9]{16}\b",
            r"gh[pousr]_[A-Za-z0-9]{30,}",
            r"github_pat_[A-Za-z0-9_]{22,}",
            r"gl(?:pat|dt|rt|ptt|cbt|soat)-[A-Za-z0-9_-]{20,}",
            r"AIza[0-9A-Za-z_-]{35}",
            r"hf_[A-Za-z0-9]{30,}",
            r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
            r"app-[A-Za-z0-9]{24}\b",
            r"dataset-[A-Za-z0-9]{24}\b",
        ),
    )
)

# --- pass 3: secret-looking keys -------------------------------------------------------------
# Anchored on the secret word (a literal start keeps the scan fast); the rest of the key is
# found backwards in the callback and judged by the `.env` rule (is_secret_key).
_KEY_VALUE = re.compile(
    _words(
        "pass",
        "pwd",
        "secret",
        "key",
        "token",
        "dsn",
        "credential",
        "auth",
        "private",
        "signature",
        "salt",
        "cert",
    )
    + r"""[A-Za-z0-9_.-]*["']?[ \t]*[:=][ \t]*"""
    + r"""(?:"(?P<dq>(?:[^"\\\n]|\\.){1,2048})"|'(?P<sq>[^'\n]{1,2048})'"""
    + r"""|(?P<bare>[^\s"'&,;<>\[\]{}()]{1,2048}))"""
)
_KEY_END = re.compile(r"[\"' \t:=]")
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_PLAIN_VALUES = frozenset({"true", "false", "null", "none", "nil", "''", '""', "0", "1"})


@functools.lru_cache(maxsize=4096)  # log lines repeat the same few keys
def _secret_log_key(key: str) -> bool:
    if not is_secret_key(key):
        return False
    words = re.split(r"[^A-Z0-9]+", key.upper())
    return not (words and words[-1] in _LOG_METADATA_WORDS)


@dataclass
class Redactor:
    """Built once per request from the known secrets; `redact()` is safe to call from threads."""

    literals: frozenset[str] = frozenset()
    _literal_res: tuple[re.Pattern[str], ...] = field(init=False, default=(), repr=False)

    def __post_init__(self) -> None:
        long_forms: set[str] = set()
        short_forms: set[str] = set()
        for value in self.literals:
            if len(value) < MIN_SECRET or value.lower() in COMMON_WORDS:
                continue
            for form in _variants(value):
                (short_forms if len(form) < SHORT_SECRET else long_forms).add(form)
        # Two expressions, not one alternation of both: each keeps a literal-character start,
        # which the engine scans for at C speed (together they ran 3x slower).
        patterns = []
        if long_forms:
            patterns.append(_trie_pattern(long_forms))
        if short_forms:
            patterns.append(_trie_pattern(short_forms, whole_token=True))  # see SHORT_SECRET
        self._literal_res = tuple(re.compile(p) for p in patterns)

    @classmethod
    def from_sources(
        cls,
        env_values: Mapping[str, str] | None = None,
        container_env: Mapping[str, str] | Iterable[str] | None = None,
        extra: Iterable[str] = (),
    ) -> Redactor:
        """From Dify's `.env` values, the container's environment (dict or Docker's
        ["KEY=value"] list) and any extra known secrets (the bot's own tokens)."""
        found: set[str] = set()
        if env_values:
            found |= secret_values(env_values)
        if container_env:
            env = (
                dict(container_env)
                if isinstance(container_env, Mapping)
                else env_list_to_dict(container_env)
            )
            found |= secret_values(env)
        found |= {v for v in extra if v and len(v) >= MIN_SECRET}
        return cls(frozenset(found))

    # --- the three passes ---------------------------------------------------------------------
    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where secrets are in `text`: the union of every pass's findings, merged.

        Working on spans of the original text (instead of replacing pass after pass) means no
        pass can hide a secret from another: a literal that is a prefix of a longer token, or
        two overlapping secrets, are masked as one.
        """
        found: list[tuple[int, int]] = []
        for literal in self._literal_res:
            # Every start, overlapping literals included: search again one character after
            # each match (a Python step per match only; matches are rare).
            match = literal.search(text)
            while match is not None:
                found.append(match.span())
                match = literal.search(text, match.start() + 1)
        for shape in _SHAPES:
            masked = "value" in shape.groupindex
            for match in shape.finditer(text):
                found.append(match.span("value") if masked else match.span())
        for match in _KEY_VALUE.finditer(text):
            span = _key_value_span(match)
            if span is not None:
                found.append(span)
        if not found:
            return []
        found.sort()
        merged = [found[0]]
        for start, end in found[1:]:
            last_start, last_end = merged[-1]
            if start <= last_end:
                if end > last_end:
                    merged[-1] = (last_start, end)
            else:
                merged.append((start, end))
        return merged

    def redact_counted(self, text: str) -> tuple[str, int]:
        """`text` with every secret replaced by [REDACTED], and how many were replaced."""
        spans = self.spans(text)
        if not spans:
            return text, 0
        pieces = []
        position = 0
        for start, end in spans:
            pieces.append(text[position:start])
            pieces.append(MASK)
            position = end
        pieces.append(text[position:])
        return "".join(pieces), len(spans)

    def redact(self, text: str) -> str:
        return self.redact_counted(text)[0]

    def redact_lines(self, lines: Iterable[str]) -> Iterator[tuple[str, int]]:
        """Line by line (a log stream), keeping PEM blocks redacted across lines."""
        inside_key = 0
        for line in lines:
            if inside_key:
                if "PRIVATE KEY-----" in line and "-----END" in line:
                    inside_key = 0
                    yield MASK, 1
                    continue
                inside_key -= 1  # bounded: a BEGIN without END stops hiding after 200 lines
                yield MASK, 1
                continue
            if "-----BEGIN" in line and "PRIVATE KEY-----" in line and "-----END" not in line:
                inside_key = 200
            yield self.redact_counted(line)


def _key_value_span(match: re.Match[str]) -> tuple[int, int] | None:
    """The value's span when the whole key (found backwards from the secret word) is secret."""
    source = match.string
    start = begin = match.start()
    # The rest of the key, backwards; bounded so a long word costs little.
    while begin > 0 and start - begin < 64 and source[begin - 1] in _KEY_CHARS:
        begin -= 1
    key = _KEY_END.split(source[begin : match.end()], maxsplit=1)[0]
    group = next(g for g in ("dq", "sq", "bare") if match.group(g) is not None)
    value = match.group(group)
    if (
        not _secret_log_key(key)
        or value.lower() in _PLAIN_VALUES
        or value.startswith(MASK)
        or set(value) <= {"*", "x", "X", "•"}
    ):
        return None
    return match.span(group)
