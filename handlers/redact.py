"""Redaction of secrets from text before it leaves the host (logs into Slack or a terminal).

Every pass runs in time linear in the text, whatever the text is (a log line is written by
whoever can type into Dify: a chat prompt is attacker-controlled input). The passes:
0. lines longer than MAX_LINE characters are cut, with a visible marker (`[... N characters
   cut]`); the cut is moved back to the start of any secret it would split;
1. literal secrets: the values of secret-looking keys in Dify's `.env` and in the container's
   environment (plus URL-embedded passwords and the bot's own tokens) in several forms (as is,
   percent-encoded, JSON-escaped, base64 at any alignment, hex), found all at once by an
   Aho-Corasick automaton (ahocorasick-rs: one pass over the text whatever the number of
   forms, 5-10x faster than the same literals as one regular expression); every occurrence,
   overlapping ones included. Text the automaton cannot take (a lone surrogate) goes to the
   same literals as one regular-expression alternation built as a prefix trie;
2. shapes, all in one expression: credentials inside URLs, Slack tokens and webhooks,
   Authorization / Cookie headers, `Bearer <token>`, common API-key formats, JWTs; PEM and PGP
   private key blocks by a bounded search per block;
3. `key=value` / `"key": "value"` pairs whose key looks secret: the `.env` rule compiled into
   the expression itself, so no Python runs for a key that is not secret.

Every pass finds spans of the original text; the spans are merged before anything is replaced,
so overlapping secrets are masked as one and no pass can hide a secret from another.

Passes 2 and 3 are regular expressions whose every match contains one of a few anchor words
(`://`, `bearer`, `xox`, `key`, `password`, ...) on the line where it starts, and no match
spans a newline. On an ASCII text an Aho-Corasick automaton finds those words in the
lowered text first: a pass with none is skipped, a pass with few runs on the lines holding them
only (the same matches: each line is scanned from its start, with the same look-around), and a
pass with many runs over the whole text. Python's regex engine pays about 50 ns at every
position whose character may start a match, so skipping the lines without an anchor is most of
the speed on an ordinary log.

Linear time by construction: every repeat is bounded or cannot backtrack (its character class
excludes what follows it, or it is possessive), every lookbehind has a fixed width and is
checked after a literal, every expression starts with a literal character (the engine skips
impossible starts in C, and tries one group of alternatives, not all, where one may start),
and an attempt that scans far either matches (and consumes what it scanned) or cannot start
again inside what it scanned. bench/bench_redact.py measures it on pathological inputs.

Every redacted value becomes `[REDACTED]`; what identifies the value (the key, the URL's user,
the auth scheme) stays, because that is what an on-call engineer needs to read the log.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import operator
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import ahocorasick_rs

from handlers.envfile import (
    METADATA_WORDS,
    SECRET_LAST_WORDS,
    SECRET_PARTS,
    SECRET_WORDS,
    is_secret_key,
    key_words,
    secret_values_of,
)

if TYPE_CHECKING:
    from config.settings import Settings

MASK = "[REDACTED]"
# A line longer than this is cut before redaction (the logs path already cuts far shorter
# lines, at 44 kB, before they get here): bounds the work for one line whatever the passes do.
MAX_LINE = 65_536
# How far around a cut to look for a secret the cut would split.
_CUT_WINDOW = 4096
# redact_lines runs the passes on this many lines at a time.
BATCH_LINES = 256
# A PEM/PGP private key block without its END line hides this many characters after BEGIN.
PEM_MAX = 16_000

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


# Characters in the order they are common in log text: where the engine tries alternatives that
# each start with a different character, it tries them in order, so common ones go first.
_FREQUENT = "etaoinsrhldcumfpgwybvkxjqz0123456789ETAOINSRHLDCUMFPGWYBVKXJQZ /:=._-,\"'"


def _by_frequency(char: str) -> tuple[int, str]:
    rank = _FREQUENT.find(char)
    return (rank if rank >= 0 else len(_FREQUENT), char)


def _trie_pattern(words: Iterable[str], whole_token: bool = False) -> str:
    """One regex alternation for many literals, factored as a prefix trie.

    At each node the children start with different characters, so the engine follows one path
    instead of trying every literal at every position; a word that is a prefix of another is an
    optional tail, tried after the longer continuation, so the longest literal wins. Every
    top-level branch starts with a literal character, which lets the engine skip positions that
    cannot start a secret, and the branches are ordered by how common their character is in
    log text (the engine tries them in order). `whole_token`: the literal must not touch a
    letter or digit on either side (checked after the literal start, to keep it fast).
    The work at one position is bounded by the length of the longest literal.
    """
    root: dict[str, Any] = {}
    end = ""  # key marking "a word ends here" (no real character is empty)
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[end] = {}

    def emit(node: dict[str, Any], top: bool) -> str:
        branches = []
        for char in sorted((k for k in node if k != end), key=_by_frequency):
            child = node[char]
            prefix = re.escape(char)
            width = 1
            # Path compression: a chain of single children becomes one literal.
            while len(child) == 1 and end not in child:
                (next_char, child) = next(iter(child.items()))
                prefix += re.escape(next_char)
                width += 1
            if top and whole_token:
                # After the literal (cheap to fail), not before: most positions fail there.
                prefix += f"(?<![A-Za-z0-9].{{{width}}})"
            branches.append(prefix + (emit(child, False) if child.keys() - {end} else ""))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end in node:
            return "(?:" + body + ")?"
        return body

    # Greedy optional tails backtrack to a shorter literal when the boundary check fails.
    return emit(root, True) + (r"(?![A-Za-z0-9])" if whole_token else "")


def _base64_forms(data: bytes) -> set[str]:
    """The base64 text of `data` wherever it sits inside a longer base64 string.

    Encoded after 0, 1 or 2 other bytes, the secret's characters fall differently into 6-bit
    groups; the characters that depend only on the secret (not on its neighbours) are the same
    in every encoding that contains it at that alignment (`Basic base64(user:password)`, a
    base64 JSON credential). Standard and URL-safe alphabets, and the whole padded encoding.
    """
    forms = {base64.b64encode(data).decode()}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode()
        first = -(-8 * offset // 6)  # the first character holding no neighbour's bits
        last = 8 * (offset + len(data)) // 6
        forms.add(encoded[first:last])
    forms |= {f.replace("+", "-").replace("/", "_") for f in forms}
    return {f for f in forms if len(f) >= SHORT_SECRET}


def _variants(value: str) -> set[str]:
    """The forms a secret takes in logs: as is, percent-encoded (in URLs), JSON-escaped,
    base64 (anywhere inside a base64 text) and hex."""
    raw = value.encode("utf-8", "surrogateescape")
    forms = {value, quote(value, safe=""), json.dumps(value)[1:-1], raw.hex(), raw.hex().upper()}
    forms |= _base64_forms(raw)
    return {f for f in forms if f}


def secret_values(
    values: Mapping[str, str], min_length: int = MIN_SECRET, env_path: Path | None = None
) -> set[str]:
    """The known secrets of an environment (see handlers.envfile.secret_values_of): values of
    secret-looking keys, never minus what a non-secret key holds too, plus URL passwords;
    placeholders from the `.env.example` beside `env_path` (Dify's folder), never the cwd."""
    return secret_values_of(values, env_path, min_length)


def environment_secrets(
    envs: Iterable[Mapping[str, str] | Iterable[str]], env_path: Path | None = None
) -> set[str]:
    """The known secrets of several environments (containers' Config.Env, as Docker's
    ["KEY=value"] lists or as dicts), for a scrubber that must hide whatever any container
    holds: a proxy password quoted back by curl, a DSN in an error. Pass the result as
    `Redactor.from_sources(..., extra=...)`."""
    found: set[str] = set()
    for env in envs:
        values = dict(env) if isinstance(env, Mapping) else env_list_to_dict(env)
        found |= secret_values(values, env_path=env_path)
    return found


def env_list_to_dict(env: Iterable[str] | None) -> dict[str, str]:
    """Docker's Config.Env (["KEY=value", ...]) as a dict; the last assignment wins."""
    result: dict[str, str] = {}
    for item in env or ():
        key, sep, value = item.partition("=")
        if sep:
            result[key] = value
    return result


# --- passes 2 and 3: shapes and secret keys ----------------------------------------------------
# Two expressions, each scanned once: the shapes (all of them in one alternation) and the secret
# keys. Every alternative starts with a literal character (both cases spelled out where the word
# is case-insensitive; word boundaries are a lookbehind after that first character), and the
# alternatives are grouped by that character: Python's regex engine then skips, at C speed,
# every position whose character cannot start a match, and where one can, tries one group
# instead of every alternative. (`(?i)\bbearer` scans at ~50 MB/s, `B(?i:earer)|b(?i:earer)`
# at ~270 MB/s.) The capturing group of an alternative is what gets masked (the rest, e.g.
# `Authorization: Bearer `, stays); an alternative without one is masked whole.


def _alternation(alternatives: Iterable[tuple[str, str]]) -> str:
    """(first character, the rest) as one alternation grouped by first character."""
    groups: dict[str, list[str]] = {}
    for first, rest in alternatives:
        groups.setdefault(first, []).append(rest)
    order = sorted(groups, key=_by_frequency)
    branches = []
    for first in order:
        rests = groups[first]
        body = rests[0] if len(rests) == 1 else "(?:" + "|".join(rests) + ")"
        branches.append(re.escape(first) + body)
    return "(?:" + "|".join(branches) + ")"


def _both_cases(word: str, rest: str, boundary: str = "") -> list[tuple[str, str]]:
    """A case-insensitive word as (first character, rest) for each case of its first letter;
    `rest` follows the word. `boundary` is a lookbehind about what precedes the word, with
    `{n}` standing for the word's length: it is checked after the word (most candidates fail
    on the word itself, more cheaply)."""
    tail = f"(?i:{re.escape(word[1:])})" if word[1:] else ""
    check = boundary.replace("{n}", f"{{{len(word)}}}")
    return [(c, tail + check + rest) for c in dict.fromkeys((word[0].upper(), word[0].lower()))]


# What may not precede a word or token (checked after it, `{n}` = its length).
_NOT_AFTER_WORD = r"(?<![A-Za-z0-9_].{n})"
_NOT_AFTER_ALNUM = r"(?<![A-Za-z0-9].{n})"


_AUTH_SCHEMES = "bearer|basic|token|digest|apikey|api-key|key|negotiate|ntlm"
_AUTH_VALUE = rf"[\"']?[ \t]*+[:=][ \t]*+[\"']?(?:(?i:{_AUTH_SCHEMES})[ \t]+)?([^\s\"',;]+)"
_COOKIE_VALUE = r"[\"']?[ \t]*+:[ \t]*+([^\n\"']+)"
# Tokens, as (literal start, the rest): each must not continue a word; no group: masked whole.
_TOKENS = (
    ("xox", r"[abposr]-[A-Za-z0-9-]{8,}"),
    ("xoxe", r"(?:\.xox[a-z])?-[0-9]-[A-Za-z0-9-]{8,}"),
    ("xapp-", r"[0-9]-[A-Za-z0-9-]{8,}"),
    ("sk-", r"(?:proj-|ant-|live-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}"),
    ("sk_", r"(?:live|test)_[A-Za-z0-9]{16,}"),
    ("rk_", r"(?:live|test)_[A-Za-z0-9]{16,}"),
    *(
        (aws, r"[A-Z0-9]{16}\b")
        for aws in ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA")
    ),
    ("gh", r"[pousr]_[A-Za-z0-9]{30,}"),
    ("github_pat_", r"[A-Za-z0-9_]{22,}"),
    ("gl", r"(?:pat|dt|rt|ptt|cbt|soat)-[A-Za-z0-9_-]{20,}"),
    ("AIza", r"[0-9A-Za-z_-]{35}"),
    ("hf_", r"[A-Za-z0-9]{30,}"),
    ("app-", r"[A-Za-z0-9]{24}\b"),
    ("dataset-", r"[A-Za-z0-9]{24}\b"),
)


def _token(start: str, rest: str, boundary: str = _NOT_AFTER_WORD) -> tuple[str, str]:
    check = boundary.replace("{n}", f"{{{len(start)}}}")
    return (start[0], re.escape(start[1:]) + check + rest)


_SHAPES = re.compile(
    _alternation(
        [
            # scheme://user:password@host -> scheme://user:[REDACTED]@host. Neither class holds
            # what follows it, so nothing backtracks, and a scan stops at the next `/`, which
            # every other start contains.
            (":", r"//[^\s:/?#@\"'<>]{0,256}:([^\s/?#@\"'<>]{1,256})(?=@)"),
            ("h", r"ttps://hooks\.slack\.com/((?:services|workflows|triggers)/[A-Za-z0-9/_-]+)"),
            *_both_cases("authorization", _AUTH_VALUE),
            *_both_cases("proxy-authorization", _AUTH_VALUE),
            *_both_cases("cookie", _COOKIE_VALUE),
            *_both_cases("set-cookie", _COOKIE_VALUE),
            *_both_cases("bearer", r"[ \t]++([A-Za-z0-9._~+/=-]{6,})", _NOT_AFTER_WORD),
            *(_token(start, rest) for start, rest in _TOKENS),
            # A JWT may not start inside another run of its own characters (`-` included): else
            # `eyJ-eyJ-eyJ-...` would rescan the rest of the run from every `eyJ`.
            _token(
                "eyJ",
                r"[A-Za-z0-9_-]{10,}+\.eyJ[A-Za-z0-9_-]{10,}+\.[A-Za-z0-9_-]{10,}",
                r"(?<![A-Za-z0-9_-].{n})",
            ),
        ]
    )
)

# What every match of _SHAPES contains, lowered, on the line where it starts: the literal start
# of each alternative, or a word every such start contains or is followed by on its line
# (`proxy-authorization` holds `authorization`, the Slack webhook `://`, a JWT `.eyj`). The
# longer the words, the fewer ordinary lines they pick: `ghp_`, not `gh` (high, light).
_SHAPE_ANCHORS = (
    "://",
    "authorization",
    "cookie",
    "bearer",
    ".eyj",
    *(f"xox{c}-" for c in "abposr"),
    "xoxe",
    *(start.lower() for start, _ in _TOKENS if not start.startswith(("xox", "gh", "gl"))),
    *(f"gh{c}_" for c in "pousr"),
    *(f"gl{kind}-" for kind in ("pat", "dt", "rt", "ptt", "cbt", "soat")),
)


# PEM (`-----BEGIN RSA PRIVATE KEY-----`, `ENCRYPTED PRIVATE KEY`, ...) and OpenPGP
# (`-----BEGIN PGP PRIVATE KEY BLOCK-----`) private keys: everything after the BEGIN line up
# to and including the END line goes; with no END line, the next PEM_MAX characters.
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")


def _pem_spans(text: str) -> list[tuple[int, int]]:
    """Private key blocks. Linear: each search starts where the last block ended, and the END
    is looked for within PEM_MAX characters only."""
    spans: list[tuple[int, int]] = []
    if "-----BEGIN " not in text:  # a substring test is cheaper than a search per log line
        return spans
    begin = _PEM_BEGIN.search(text)
    while begin is not None:
        body = begin.end()
        end = _PEM_END.search(text, body, body + PEM_MAX + 64)
        stop = end.end() if end is not None else min(len(text), body + PEM_MAX)
        spans.append((body, stop))
        begin = _PEM_BEGIN.search(text, stop)
    return spans


# Anchored on a secret word of the `.env` rule (handlers/envfile.py: a literal start keeps the
# scan fast), the key's verdict is compiled into the expression: the word must be a whole word
# (or a part such as PASSWORD, which counts anywhere), and the key's last word must not say
# that it describes the secret (…_EXPIRE_MINUTES) or, in a log line, counts it (token_count).
# What comes before the anchor cannot change the verdict, so it is never read. The rest of the
# key after the anchor is bounded (_KEY_TAIL), so `key_key_key_...` costs a constant per word.
_KEY_TAIL = 24
_KEY_CHAR = "[A-Za-z0-9_.-]"
_SEPARATOR = "[_.-]"


def _key_pattern() -> str:
    # A part counts anywhere in the key (PGPASSWORD); a whole word only as a word; a whole word
    # that holds a part is already found as that part.
    parts = [p.split("_") for p in SECRET_PARTS]
    single_parts = {p[0] for p in parts if len(p) == 1}
    alternatives = []
    for words in parts:
        joined = "".join(f"{_SEPARATOR}{{1,8}}(?i:{w})" for w in words[1:])
        alternatives += _both_cases(words[0], joined)
    for word in sorted(SECRET_WORDS):
        if not any(part in word for part in single_parts):
            after = "(?![A-Za-z0-9])" + ("(?=[_.-])" if word in METADATA_WORDS else "")
            alternatives += _both_cases(word, after, _NOT_AFTER_ALNUM)
    # The separator: what follows a key (a quote closing a JSON key, spaces, `:` or `=`).
    separator = r"[\"']?[ \t]{0,16}+[:=]"
    # PWD counts as the last word after another word (MYSQL_PWD), not alone (the shell's PWD).
    for word in sorted(SECRET_LAST_WORDS):
        alternatives += _both_cases(
            word,
            f"(?![A-Za-z0-9])(?={_SEPARATOR}{{0,8}}{separator})",
            r"(?<=[A-Za-z0-9][_.-].{n})",
        )
    # The last word is not one of these: one fixed-width lookbehind per word length, preceded
    # by a character that ends the word before (the key's first word is an anchor, never one
    # of these: SIGNATURE, the one secret word that also describes, needs a word after it).
    metadata = sorted(METADATA_WORDS | _LOG_METADATA_WORDS)
    not_metadata = "".join(
        f"(?<![^A-Za-z0-9](?i:{'|'.join(w for w in metadata if len(w) == n)}))"
        for n in sorted({len(w) for w in metadata})
    )
    # Values that say nothing (booleans, null, 0/1, ***, xxx, a mask already there) stay; the
    # first character is checked alone first, since most values fail there.
    plain = r"(?:(?i:true|false|null|none|nil)|0|1|[*xX•]+)"
    starts_plain = r"(?=[tTfFnN01*xX•\[])"
    bare = r"[^\s\"'&,;<>\[\]{}()]"
    # A quoted value without its closing quote is masked to the end of the line: the match then
    # consumes what it scanned, so no start rescans it. Possessive runs, not a repeated
    # alternation per character (several times faster on long values).
    double = r"(?:[^\"\\\n]|\\.)(?:[^\"\\\n]++|\\.)*+"
    value = (
        rf"(?:\"(?!{starts_plain}(?:{plain}\"|\[REDACTED\]))({double})\"?"
        rf"|'(?!{starts_plain}(?:{plain}'|\[REDACTED\]))([^'\n]++)'?"
        rf"|(?!{starts_plain}{plain}(?!{bare}))({bare}++))"
    )
    # The rest of the key, then the separator looked for before the last word is judged: most
    # candidates have none, and fail there. A key that ends with its anchor (`key=`, `"token":`,
    # the common case) needs no judging: no anchor's last word describes a secret (a word that
    # may, SIGNATURE, requires a word after it), and the lookbehinds are half the cost of a
    # match in text dense with pairs.
    return (
        _alternation(alternatives)
        + f"(?:(?={separator})|{_KEY_CHAR}{{1,{_KEY_TAIL}}}+(?={separator})"
        + not_metadata
        + ")"
        + separator
        + r"[ \t]{0,16}+"
        + value
    )


_KEY_VALUE = re.compile(_key_pattern())
# The words _key_pattern anchors on, lowered (every match starts with one, in some case).
_KEY_ANCHORS = tuple(
    sorted(
        {part.split("_")[0].lower() for part in SECRET_PARTS}
        | {word.lower() for word in SECRET_WORDS | SECRET_LAST_WORDS}
    )
)


def _match_spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    """What `pattern` masks in `text`: each match's capturing group, or the whole match
    (sorted and disjoint, as finditer yields them)."""
    return [match.span(match.lastindex or 0) for match in pattern.finditer(text)]


# More anchors than one per this many characters: the expression over the whole text (walking
# the lines of so many anchors in Python would cost more).
_DENSE = 64
# A text longer than this is judged dense or not by its start first (listing the anchors of a
# text full of them costs a tenth of the pass it then runs anyway).
_SAMPLE = 8192
_SHAPE_FINDER = ahocorasick_rs.AhoCorasick(list(_SHAPE_ANCHORS))
_KEY_FINDER = ahocorasick_rs.AhoCorasick(list(_KEY_ANCHORS))


def _anchored_spans(
    pattern: re.Pattern[str], finder: ahocorasick_rs.AhoCorasick, text: str, lowered: str
) -> list[tuple[int, int]]:
    """`_match_spans(pattern, text)`, scanning only the lines that hold one of the pass's anchors
    (`lowered`: `text.lower()` of an ASCII text, so positions agree). Each line is scanned from
    its start up to and including its newline: no match of these passes spans a newline, so the
    whole-text scan is at a line's start afresh too, and the look-arounds see what they would
    (a lookbehind sees before `pos`; nothing looks past a newline). Linear: the lines are
    visited in order, each once."""
    if len(text) > _SAMPLE and (
        len(finder.find_matches_as_indexes(lowered[:_SAMPLE])) * _DENSE > _SAMPLE
    ):
        return _match_spans(pattern, text)  # dense from the start: skip listing every anchor
    anchors = finder.find_matches_as_indexes(lowered)
    if not anchors:
        return []
    if len(anchors) * _DENSE > len(text):
        return _match_spans(pattern, text)
    spans: list[tuple[int, int]] = []
    scanned = 0  # the end of the last line scanned
    for _, start, _ in anchors:
        if start < scanned:
            continue
        line_start = text.rfind("\n", scanned, start) + 1 or scanned
        line_end = text.find("\n", start)
        scanned = len(text) if line_end < 0 else line_end + 1
        spans += (m.span(m.lastindex or 0) for m in pattern.finditer(text, line_start, scanned))
    return spans


def log_key_is_secret(key: str) -> bool:
    """The verdict _KEY_VALUE compiles in, as plain Python (for tests): the `.env` rule, and
    in a log line also not a count, a name or a location of a secret (token_count)."""
    words = key_words(key)
    return is_secret_key(key) and bool(words) and words[-1] not in _LOG_METADATA_WORDS


# --- putting it together ----------------------------------------------------------------------
def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, overlapping or touching spans joined."""
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            if end > last_end:
                merged[-1] = (last_start, end)
        else:
            merged.append((start, end))
    return merged


# At most this many spans from the other passes are put into one pass's many, one by one.
_FEW = 64


def _union(
    found: list[list[tuple[int, int]]], apart: list[tuple[int, int]] | None = None
) -> list[tuple[int, int]]:
    """The passes' spans merged. Usually one pass finds (nearly) everything: its spans are
    sorted and disjoint unless they came from the literal pass (overlapping starts), and the
    few others are put in by bisection instead of sorting and walking every span in Python
    (text dense with secret pairs holds 100 000 spans per MB). `apart`: a pass's list whose
    spans are known to be sorted with a gap between any two (the key=value pass: a key stands
    between two values), so it needs no check."""
    found.sort(key=len)
    big = found[-1]
    small = [span for spans in found[:-1] for span in spans]
    if len(small) > _FEW or (
        big is not apart
        and not all(map(operator.lt, map(itemgetter(1), big[:-1]), map(itemgetter(0), big[1:])))
    ):
        return _merge([span for spans in found for span in spans])
    if not small:
        return big
    result = list(big)
    for start, end in _merge(small):
        low = bisect.bisect_left(result, start, key=itemgetter(1))  # first that ends at or after
        high = bisect.bisect_right(result, end, key=itemgetter(0))  # first that starts after
        if low < high:
            start, end = min(start, result[low][0]), max(end, result[high - 1][1])
        result[low:high] = [(start, end)]
    return result


_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _is_whole_token(text: str, start: int, end: int) -> bool:
    """No ASCII letter or digit touches text[start:end] on either side (the trie's
    `whole_token` rule, for a short secret)."""
    return (start == 0 or text[start - 1] not in _ALNUM) and (
        end == len(text) or text[end] not in _ALNUM
    )


@dataclass
class Redactor:
    """Built once per request from the known secrets; `redact()` is safe to call from threads."""

    literals: frozenset[str] = frozenset()
    # The literal forms (long ones first, then the short ones, which must be whole tokens), and
    # the automaton that finds them (None without forms).
    _forms: tuple[str, ...] = field(init=False, default=(), repr=False)
    _first_short: int = field(init=False, default=0, repr=False)
    _batchable: bool = field(init=False, default=True, repr=False)  # no form holds a newline
    _automaton: ahocorasick_rs.AhoCorasick | None = field(init=False, default=None, repr=False)
    _compiled: tuple[re.Pattern[str], ...] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        long_forms: set[str] = set()
        short_forms: set[str] = set()
        for value in self.literals:
            if len(value) < MIN_SECRET or value.lower() in COMMON_WORDS:
                continue
            for form in _variants(value):
                (short_forms if len(form) < SHORT_SECRET else long_forms).add(form)
        self._forms = (*sorted(long_forms), *sorted(short_forms))
        self._first_short = len(long_forms)
        self._batchable = not any("\n" in form for form in self._forms)
        if self._forms:  # (a secret with a lone surrogate fails in _variants already)
            self._automaton = ahocorasick_rs.AhoCorasick(list(self._forms))

    @property
    def _literal_res(self) -> tuple[re.Pattern[str], ...]:
        """The same literals as regular expressions (for text with a lone surrogate), built
        and compiled once, on first use (most redactors never need them; building the tries
        is most of a redactor's construction); two threads racing here build the same thing.
        Two expressions, not one alternation of both: each keeps a literal-character start,
        which the engine scans for at C speed."""
        if self._compiled is None:
            long_forms = self._forms[: self._first_short]
            short_forms = self._forms[self._first_short :]
            patterns = []
            if long_forms:
                patterns.append(_trie_pattern(long_forms))
            if short_forms:  # see SHORT_SECRET
                patterns.append(_trie_pattern(short_forms, whole_token=True))
            self._compiled = tuple(re.compile(p) for p in patterns)
        return self._compiled

    @classmethod
    def from_sources(
        cls,
        env_values: Mapping[str, str] | None = None,
        container_env: Mapping[str, str] | Iterable[str] | None = None,
        extra: Iterable[str] = (),
        env_path: Path | None = None,
    ) -> Redactor:
        """From Dify's `.env` values, the container's environment (dict or Docker's
        ["KEY=value"] list) and any extra known secrets (the bot's own tokens). `env_path`:
        where that `.env` lives (its `.env.example` names the public placeholders)."""
        found: set[str] = set()
        if env_values:
            found |= secret_values(env_values, env_path=env_path)
        if container_env:
            env = (
                dict(container_env)
                if isinstance(container_env, Mapping)
                else env_list_to_dict(container_env)
            )
            found |= secret_values(env, env_path=env_path)
        found |= {v for v in extra if v and len(v) >= MIN_SECRET}
        return cls(frozenset(found))

    # --- the passes ---------------------------------------------------------------------------
    def _literal_spans(self, text: str) -> list[tuple[int, int]]:
        """Where known secrets are, overlapping ones included: every occurrence of every form
        (a Python step per occurrence, and known secrets in a log are rare); a short form only
        as a whole token. The union is what the regex path finds (`_literal_spans_re`)."""
        if self._automaton is None:
            return self._literal_spans_re(text)
        try:
            matches = self._automaton.find_matches_as_indexes(text, overlapping=True)
        except UnicodeEncodeError:  # a lone surrogate in the text (surrogateescape'd bytes)
            return self._literal_spans_re(text)
        if not matches:
            return []
        first_short = self._first_short
        return [
            (start, end)
            for form, start, end in matches
            if form < first_short or _is_whole_token(text, start, end)
        ]

    def _literal_spans_re(self, text: str) -> list[tuple[int, int]]:
        """The literal pass as regular expressions (each start is searched again one character
        after the last, so overlapping secrets are all found)."""
        found: list[tuple[int, int]] = []
        for literal in self._literal_res:
            match = literal.search(text)
            while match is not None:
                found.append(match.span())
                match = literal.search(text, match.start() + 1)
        return found

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where secrets are in `text`: the union of every pass's findings, merged.

        Working on spans of the original text (instead of replacing pass after pass) means no
        pass can hide a secret from another: a literal that is a prefix of a longer token, or
        two overlapping secrets, are masked as one.
        """
        # Every key=value match holds a `:` or `=` (two scans in C, far cheaper than the pass).
        has_separator = ":" in text or "=" in text
        if text.isascii():  # (faster than the whole-text scans from 16 characters up)
            lowered = text.lower()  # ASCII: the same length, the same positions
            shapes = _anchored_spans(_SHAPES, _SHAPE_FINDER, text, lowered)
            keys = _anchored_spans(_KEY_VALUE, _KEY_FINDER, text, lowered) if has_separator else []
        else:
            shapes = _match_spans(_SHAPES, text)
            keys = _match_spans(_KEY_VALUE, text) if has_separator else []
        found = [
            spans for spans in (self._literal_spans(text), _pem_spans(text), shapes, keys) if spans
        ]
        if not found:
            return []
        return _union(found, keys)

    def _safe_cut(self, text: str, cut: int, line_end: int) -> int:
        """`cut` moved back to the start of any secret it would split (bounded look around)."""
        low = max(0, cut - _CUT_WINDOW)
        window = text[low : min(line_end, cut + _CUT_WINDOW)]
        spans = [*self._literal_spans(window), *(m.span() for m in _SHAPES.finditer(window))]
        starts = [low + start for start, end in spans if start < cut - low < end]
        return min([cut, *starts])

    def _cut_long_lines(self, text: str) -> str:
        """Lines longer than MAX_LINE cut there, with a marker saying how much went. One
        `rfind` per MAX_LINE characters finds them (a window without a newline)."""
        if len(text) <= MAX_LINE:
            return text
        pieces = []
        position = 0  # where the text not yet copied starts
        line_start = 0
        while len(text) - line_start > MAX_LINE:
            newline = text.rfind("\n", line_start, line_start + MAX_LINE + 1)
            if newline >= 0:
                line_start = newline + 1
                continue
            line_end = text.find("\n", line_start + MAX_LINE)
            line_end = len(text) if line_end < 0 else line_end
            cut = self._safe_cut(text, line_start + MAX_LINE, line_end)
            pieces += [text[position:cut], f"[... {line_end - cut} characters cut]"]
            position = line_start = line_end
        pieces.append(text[position:])
        return "".join(pieces)

    def redact_counted(self, text: str) -> tuple[str, int]:
        """`text` with every secret replaced by [REDACTED], and how many were replaced
        (overlapping or adjacent secrets count once)."""
        if len(text) < MIN_SECRET:  # nothing this short can be masked (a log's blank lines)
            return text, 0
        text = self._cut_long_lines(text)
        spans = self.spans(text)
        if not spans:
            return text, 0
        pieces = []
        last = 0
        for start, end in spans:  # (a plain loop: a third faster than zip over two lists)
            pieces.append(text[last:start])
            last = end
        pieces.append(text[last:])
        return MASK.join(pieces), len(spans)

    def redact(self, text: str) -> str:
        return self.redact_counted(text)[0]

    def redact_lines(self, lines: Iterable[str]) -> Iterator[tuple[str, int]]:
        """Line by line (a log stream), keeping private key blocks redacted across lines.

        Lines are taken BATCH_LINES at a time (list.extend keeps what the source gave before it
        failed; those lines are yielded, then its error raised). A batch of ordinary lines is
        redacted by one run of the passes over the lines joined by newlines (a pass costs a few
        microseconds to start, as much as a short line's scan), with the same result as line by
        line: no pass matches across a newline (no literal form holds one, else nothing is
        joined), a boundary check sees a newline as it sees the start or end of a line, and each
        line's spans are merged and counted on their own. A batch with a PEM BEGIN, a line with
        a newline inside, a line longer than MAX_LINE, or one that starts inside a key block goes
        line by line.
        """
        inside_key = 0
        iterator = iter(lines)
        while True:
            batch: list[str] = []
            error: BaseException | None = None
            try:
                batch.extend(itertools.islice(iterator, BATCH_LINES))
            except BaseException as exc:  # the source failed: what it gave goes out first
                error = exc
            joined = "\n".join(batch)
            if (
                len(batch) > 1
                and not inside_key
                and self._batchable
                and "-----BEGIN" not in joined
                and joined.count("\n") == len(batch) - 1
                and max(map(len, batch)) <= MAX_LINE
            ):
                yield from self._redact_batch(batch, joined)
            else:
                for line in batch:
                    if inside_key:
                        if "-----END" in line and "PRIVATE KEY" in line:
                            inside_key = 0
                            yield MASK, 1
                            continue
                        inside_key -= 1  # bounded: a BEGIN without END hides 200 lines at most
                        yield MASK, 1
                        continue
                    if "-----BEGIN" in line:
                        begin = _PEM_BEGIN.search(line)
                        if begin is not None and _PEM_END.search(line, begin.end()) is None:
                            inside_key = 200
                    yield self.redact_counted(line)
            if error is not None:
                raise error
            if len(batch) < BATCH_LINES:
                return

    def _redact_batch(self, batch: list[str], text: str) -> Iterator[tuple[str, int]]:
        """Each line of `batch` redacted and counted, by one run of the passes over `text`, the
        lines joined by newlines (no span crosses one: see redact_lines)."""
        spans = self.spans(text)
        if not spans:
            yield from zip(batch, itertools.repeat(0))
            return
        if any("\n" in text[start:end] for start, end in spans):
            # Never expected (see redact_lines); if a span ever did cross lines, masking by
            # lines from it could unmask a part: the lines go one by one instead.
            yield from (self.redact_counted(line) for line in batch)
            return
        index, total = 0, len(spans)
        end = -1
        for line in batch:
            start, end = end + 1, end + 1 + len(line)
            if index == total or spans[index][0] >= end:
                yield line, 0
                continue
            pieces, last, first = [], start, index
            while index < total and spans[index][0] < end:
                span_start, last_end = spans[index]
                pieces.append(text[last:span_start])
                last = last_end
                index += 1
            pieces.append(text[last:end])
            yield MASK.join(pieces), index - first


# --- the one way to build a Redactor ------------------------------------------------------------
def own_secrets(settings: Settings) -> list[str]:
    """The bot's own tokens: they must never reach Slack, a log or the terminal either."""
    tokens = (settings.slack_bot_token, settings.slack_app_token, settings.slack_signing_secret)
    return [token.get_secret_value() for token in tokens if token is not None]


def redactor_for(
    settings: Settings | None = None,
    *,
    env_values: Mapping[str, str] | None = None,
    container_env: Mapping[str, str] | Iterable[str] | None = None,
    env_path: Path | None = None,
    extra: Iterable[str] = (),
) -> Redactor:
    """A Redactor for everything that leaves the host: the secrets in Dify's `.env` values and
    a container's environment (dict or Docker's ["KEY=value"] list), plus the bot's own tokens
    from `settings`. `env_path`: where that `.env` lives (the `.env.example` beside it names
    Dify's public placeholders). `extra`: more known secrets (e.g. `environment_secrets` of
    several containers). Every caller builds its redactor here, so all mask alike."""
    own = own_secrets(settings) if settings is not None else []
    return Redactor.from_sources(env_values, container_env, [*own, *extra], env_path=env_path)


def pass_spans(text: str, anchored: bool) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """What passes 2 and 3 (shapes, key=value) find in an ASCII `text`: on the lines their
    anchors pick (`anchored`, the fast path) or over the whole text; the two must agree (for
    their tests)."""
    if not anchored:
        return _match_spans(_SHAPES, text), _match_spans(_KEY_VALUE, text)
    lowered = text.lower()
    return (
        _anchored_spans(_SHAPES, _SHAPE_FINDER, text, lowered),
        _anchored_spans(_KEY_VALUE, _KEY_FINDER, text, lowered),
    )


def trie_pattern(words: Iterable[str], whole_token: bool = False) -> str:
    """The literal pass's alternation for `words` (see `_trie_pattern`), for its own tests."""
    return _trie_pattern(words, whole_token)
