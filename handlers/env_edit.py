"""Editing one assignment in Dify's `.env` without touching any other byte.

Not python-dotenv's set_key: it changes the owner, never fsyncs, replaces a symlinked `.env`
with a plain file, drops inline comments and `export`, and quotes by default. Here the line is
located with a small parser, only the value's characters are replaced (its quotes, `export`,
spacing, inline comment and line ending stay), and the result is verified by parsing the whole
file again: the edited key has the new value and every other key the value it had.
Values Compose and python-dotenv could read differently are refused outright.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from handlers import backup
from handlers.envfile import encode_for_writing, is_secret_key, parse_env_text
from handlers.redact import MASK, Redactor
from handlers.results import HandlerError
from handlers.urls import hide_credentials

# `  export KEY = value  # comment`: lead, export, key, separator, rest (value + comment). The
# lead of the first line may hold a byte order mark, which is not part of the key.
_ASSIGN = re.compile(
    r"^(?P<lead>\ufeff?[ \t]*)(?P<export>export[ \t]+)?(?P<key>[A-Za-z_][A-Za-z0-9_.]*)"
    r"(?P<sep>[ \t]*=[ \t]*)(?P<rest>.*)$"
)


def check_value(key: str, value: str) -> None:
    """Refuse values whose reading differs between Compose and python-dotenv, or that could
    break the line: newlines, quotes, `$`, backslashes and ` #`. The value is never echoed."""
    problems = []
    if "\n" in value or "\r" in value or "\x00" in value:
        problems.append("a line break")
    if "'" in value or '"' in value or "`" in value:
        problems.append("a quote")
    if "$" in value:
        problems.append("`$`")
    if "\\" in value:
        problems.append("a backslash")
    if re.search(r"[ \t]#", value):
        problems.append("` #`")
    if value != value.strip():
        problems.append("leading or trailing spaces")
    if problems:
        raise HandlerError(
            f"refusing to write {key}: the value contains {', '.join(problems)}, which Compose "
            "and python-dotenv read differently; set it by hand"
        )


@dataclass(frozen=True)
class _Line:
    text: str  # without its line ending
    ending: str  # "\n", "\r\n", "\r" or "" (last line without one)


def _split(text: str) -> list[_Line]:
    lines = []
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        lines.append(_Line(body, raw[len(body) :]))
    return lines


def _value_span(rest: str) -> tuple[int, int, str] | None:
    """(start, end, quote) of the value inside `rest`; None when it cannot be edited safely."""
    if rest[:1] in ("'", '"'):
        quote = rest[0]
        i = 1
        while i < len(rest):
            if quote == '"' and rest[i] == "\\":
                i += 2
                continue
            if rest[i] == quote:
                return 1, i, quote
            i += 1
        return None  # the quoted value continues on the next line
    comment = re.search(r"[ \t]+#", rest)
    end = comment.start() if comment else len(rest.rstrip(" \t"))
    return 0, end, ""


@dataclass(frozen=True)
class LineEdit:
    key: str
    index: int | None  # line index edited; None: appended
    old: str | None  # old line (without ending)
    new: str


def plan_set(text: str, key: str, value: str) -> LineEdit | None:
    """The one-line edit that sets KEY=value (the last assignment, as Compose reads it).

    None when the file already has that value. Raises HandlerError for values refused by
    `check_value` or a line that cannot be edited safely.
    """
    check_value(key, value)
    current = parse_env_text(text).values
    if current.get(key) == value:
        return None
    lines = _split(text)
    for index in range(len(lines) - 1, -1, -1):
        match = _ASSIGN.match(lines[index].text)
        if not match or match.group("key") != key:
            continue
        rest = match.group("rest")
        span = _value_span(rest)
        if span is None:
            raise HandlerError(
                f"{key} in .env has a quoted value spanning several lines: edit it by hand"
            )
        start, end, _quote = span
        head = lines[index].text[: match.start("rest")]
        new = head + rest[:start] + value + rest[end:]
        return LineEdit(key, index, lines[index].text, new)
    return LineEdit(key, None, None, f"{key}={value}")


def apply_edits(text: str, edits: list[LineEdit]) -> str:
    """The text with the edits applied; verified by parsing old and new text."""
    lines = _split(text)
    ending = "\r\n" if any(line.ending == "\r\n" for line in lines) else "\n"
    appended: list[str] = []
    for edit in edits:
        if edit.index is None:
            appended.append(edit.new)
        else:
            if lines[edit.index].text != edit.old:
                raise HandlerError(".env changed while it was being edited; nothing was written")
            lines[edit.index] = _Line(edit.new, lines[edit.index].ending)
    if appended and lines and lines[-1].ending == "":
        lines[-1] = _Line(lines[-1].text, ending)
    lines.extend(_Line(line, ending) for line in appended)
    new_text = "".join(line.text + line.ending for line in lines)
    _verify(text, new_text, edits)
    return new_text


def _verify(old_text: str, new_text: str, edits: list[LineEdit]) -> None:
    before = parse_env_text(old_text).values
    after = parse_env_text(new_text).values
    wanted = dict(before)
    for edit in edits:
        value = parse_env_text(edit.new + "\n").values.get(edit.key)
        wanted[edit.key] = value if value is not None else ""
    if after != wanted:
        changed = sorted(k for k in set(after) | set(wanted) if after.get(k) != wanted.get(k))
        raise HandlerError(
            "the edited .env would not read back as intended (keys: "
            + ", ".join(changed[:5])
            + "); nothing was written"
        )


def set_values(text: str, values: dict[str, str]) -> tuple[str, list[LineEdit]]:
    """Apply KEY=value settings to the text; returns the new text and the edits made."""
    edits = [e for key, value in values.items() if (e := plan_set(text, key, value)) is not None]
    return (apply_edits(text, edits) if edits else text), edits


def write_text(path: Path, new_text: str, expected_sha256: str | None) -> Path:
    """Write the new `.env` atomically, unless the file changed since it was read."""
    current = backup.read_bytes(backup.resolve_target(path))
    if backup.sha256(current) != expected_sha256:
        raise HandlerError(
            f"{path} changed since the plan was made; nothing was written (run fix-env again)"
        )
    # surrogateescape: bytes of the file that are not UTF-8 (read with decode_for_editing)
    # are written back exactly as they were.
    return backup.atomic_write(path, encode_for_writing(new_text))


# --- preview ------------------------------------------------------------------------------
def mask_line(line: str, redactor: Redactor | None = None) -> str:
    """A .env line with the value of a secret key hidden, then `mask_text`."""
    match = _ASSIGN.match(line)
    if match and is_secret_key(match.group("key")):
        rest = match.group("rest")
        span = _value_span(rest)
        if span is None:
            return line[: match.start("rest")] + MASK
        start, end, _ = span
        if end > start:
            line = line[: match.start("rest")] + rest[:start] + MASK + rest[end:]
    return mask_text(line, redactor)


def mask_text(text: str, redactor: Redactor | None = None) -> str:
    """`text` through the redactor (known secrets, token shapes, secret keys), with every
    URL's userinfo hidden as well."""
    return hide_credentials((redactor or Redactor()).redact(text))


def masked_diff(
    old_text: str,
    new_text: str,
    label: str,
    redactor: Redactor | None = None,
    old_label: str | None = None,
    context: int = 1,
) -> str:
    """A unified diff with every secret value masked (the values of secret-named keys, any
    known secret value wherever it appears, and credentials inside URLs)."""
    old_lines = [mask_line(line, redactor) for line in old_text.splitlines()]
    new_lines = [mask_line(line, redactor) for line in new_text.splitlines()]
    diff = difflib.unified_diff(
        old_lines,
        new_lines,
        fromfile=old_label or label,
        tofile=label,
        n=context,
        lineterm="",
    )
    return "\n".join(diff)
