"""Compose's own `.env` / `env_file` parser, so values come out as the containers get them.

Docker Compose v2 (compose-spec/compose-go `dotenv`) differs from python-dotenv in ways that
change values: unquoted values lose a trailing ` # comment` and trailing blanks and are
interpolated; `'single'` quotes are literal; `"double"` quotes take `\\n`, `\\t`, `\\$`, `\\"`,
`\\\\` and `\\0ooo` escapes and are interpolated; `KEY: value` and `export KEY=value` are
accepted; a bare `KEY` line takes the value from the lookup (or is skipped). Interpolation
looks a name up first in `lookup` (the project environment), then in the values this parse
has produced so far: that order is Compose's, and it matters when both hold the name.

One pass over the text with indices (no re-slicing of the rest), so linear in its length.
"""

from __future__ import annotations

import io
import re
import unicodedata

from dotenv.parser import parse_stream

from handlers.compose_interpolation import Lookup, substitute
from handlers.envfile import plain_dotenv_items
from handlers.results import HandlerError

_LINE_SPACE = frozenset("\t\v\f\r \x85\xa0")  # Compose's isSpace: blanks, not line breaks
_KEY_PUNCT = frozenset("_.-[]")
_EXPORT = re.compile(r"export[ \t\v\f\r\x85\xa0]+")
_ESCAPE = re.compile(r"\\(?:[abcfnrtv$\"\\]|0[0-9]{0,3})")
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "c": "\\c",  # not a Go escape: Compose leaves it as written
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    '"': '"',
    "\\": "\\",
    "$": "$$",  # a literal `$` for the interpolation that follows
}


class EnvFileError(HandlerError):
    """An env file Compose would refuse to read (bad key, unterminated quote)."""


def parse(
    text: str, lookup: Lookup | None = None, into: dict[str, str] | None = None, source: str = ""
) -> dict[str, str]:
    """Parse env-file text the way Compose does; values go into `into` (returned)."""
    out: dict[str, str] = {} if into is None else into
    outer: Lookup = lookup or (lambda _k: None)

    def resolve(key: str) -> str | None:
        value = outer(key)
        return value if value is not None else out.get(key)

    if text.startswith("\ufeff"):
        text = text[1:]
    where = f"{source}: " if source else ""
    n = len(text)
    pos, line = 0, 1
    while True:
        # -- the next statement: skip blanks, line breaks and comment lines
        while pos < n and (text[pos].isspace() or text[pos] == "#"):
            if text[pos] == "#":
                nl = text.find("\n", pos)
                pos = n if nl < 0 else nl
                continue
            if text[pos] == "\n":
                line += 1
            pos += 1
        if pos >= n:
            return out
        # -- the key (`export ` prefix, then up to `=`, `:` or a line break)
        m = _EXPORT.match(text, pos)
        if m:
            pos = m.end()
        key_start, key_end, sep = pos, n, ""
        i = pos
        while i < n:
            ch = text[i]
            if ch in "=:\n":
                key_end, sep = i, ch
                break
            if ch not in _LINE_SPACE and ch not in _KEY_PUNCT and not _word_char(ch):
                first_line = text[pos : _line_end(text, pos)]
                raise EnvFileError(
                    f"{where}line {line}: unexpected character {ch!r} in variable name "
                    f"{first_line[:60]!r}"
                )
            i += 1
        if sep:
            key, pos = text[key_start:key_end].rstrip(), key_end + 1
        else:  # no `=` before the end: Compose reads the rest as the value of key ""
            key, pos = "", key_start
        inherited = sep == "\n"
        if inherited and " " not in key:
            line += 1
        while pos < n and text[pos] in _LINE_SPACE:
            pos += 1
        if " " in key:
            raise EnvFileError(f"{where}line {line}: key cannot contain a space")
        if inherited:
            value = outer(key)
            if value is not None:
                out[key] = value
            continue
        # -- the value
        quote = text[pos] if pos < n and text[pos] in "'\"" else ""
        if not quote:
            nl = text.find("\n", pos)
            raw = text[pos : n if nl < 0 else nl]
            pos = n if nl < 0 else nl + 1
            line += 1
            raw = raw.split(" #", 1)[0].rstrip()
            out[key] = substitute(raw, resolve)
            continue
        chars: list[str] = []
        escaped = False
        i = pos + 1
        while i < n:
            ch = text[i]
            if ch == "\n":
                line += 1
            if ch != quote:
                if not escaped and ch == "\\":
                    escaped = True
                elif escaped:
                    escaped = False
                    chars.append("\\" + ch)
                else:
                    chars.append(ch)
                i += 1
                continue
            if escaped:  # \" inside "..." (or \' inside '...') is the quote itself
                escaped = False
                chars.append(ch)
                i += 1
                continue
            break
        else:
            first_line = text[pos : _line_end(text, pos)]
            raise EnvFileError(f"{where}line {line}: unterminated quoted value {first_line[:60]!r}")
        value = "".join(chars)
        if quote == '"':
            value = substitute(_expand_escapes(value), resolve)
        out[key] = value
        pos = i + 1


def _word_char(ch: str) -> bool:
    """unicode.IsLetter or unicode.IsNumber."""
    return ch.isalpha() or unicodedata.category(ch)[0] == "N"


def _line_end(text: str, pos: int) -> int:
    nl = text.find("\n", pos)
    return len(text) if nl < 0 else nl


def _expand_escapes(value: str) -> str:
    def one(m: re.Match[str]) -> str:
        seq = m.group()
        if seq.startswith("\\0"):
            digits = seq[2:]
            # Go's UnquoteChar wants exactly three octal digits after the backslash
            if len(digits) == 3 and all(c in "01234567" for c in digits):
                return chr(int(digits, 8))
            return seq
        return _SIMPLE_ESCAPES[seq[1]]

    return _ESCAPE.sub(one, value)


def parse_v1(
    text: str,
    lookup: Lookup,
    into: dict[str, str] | None = None,
    bare: Lookup | None = None,
) -> dict[str, str]:
    """Parse env-file text the way Compose v1 (docker-compose 1.29) does: python-dotenv's
    parser, then its `${NAME}` / `${NAME:-default}` expansion (the default applies when NAME
    is unset), looking a name up in this file's values first, then in `lookup`. A bare `KEY`
    takes `bare(KEY)` (v1: the project environment, for an env_file) or is left out."""
    out: dict[str, str] = {} if into is None else into
    # Every assignment in order (a key set twice is expanded with the values before it); plain
    # text by the fast reader, which gives python-dotenv's bindings ten times faster.
    plain = plain_dotenv_items(text)
    bindings = (
        plain if plain is not None else ((b.key, b.value) for b in parse_stream(io.StringIO(text)))
    )
    for key, raw in bindings:
        if key is None:
            continue  # a comment or a blank line
        if raw is None:
            value = bare(key) if bare is not None else None
            if value is not None:
                out[key] = value
            continue

        def resolve(name: str) -> str | None:
            return out[name] if name in out else lookup(name)

        out[key] = _expand_posix(raw, resolve)
    return out


def _expand_posix(value: str, lookup: Lookup) -> str:
    """python-dotenv's expansion: `${NAME}` and `${NAME:-default}`, nothing else (no `$NAME`,
    no nesting); one scan with str.find."""
    if "${" not in value:
        return value
    out: list[str] = []
    i = 0
    while True:
        j = value.find("${", i)
        close = value.find("}", j + 2) if j >= 0 else -1
        if j < 0 or close < 0:
            out.append(value[i:])
            return "".join(out)
        inner = value[j + 2 : close]
        name, colon, default = inner.partition(":")
        if colon and not default.startswith("-"):
            out.append(value[i : j + 1])  # not a variable here: keep the `$`, look further on
            i = j + 1
            continue
        found = lookup(name)
        out.append(value[i:j])
        out.append(found if found is not None else default[1:] if colon else "")
        i = close + 1
