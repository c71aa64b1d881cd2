"""A reader for the subset of GNU gettext's .po format the catalogs use, and the .mo bytes the
stdlib `gettext` reads: the .po file is the source of truth, compiled in memory when a language
is chosen, so a fresh clone needs no build step.

The subset: `#` comments (a `#, fuzzy` entry is skipped, as msgfmt does), `msgctxt`, `msgid`,
`msgid_plural`, `msgstr`, `msgstr[N]`, strings continued on the next lines, and the C escapes
\\n \\t \\r \\" \\\\. Anything else is a PoError naming the line."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
KEYWORDS = ("msgctxt", "msgid_plural", "msgid", "msgstr")
_ESCAPE = re.compile(r'\\([nrt"\\])')


class PoError(ValueError):
    """A .po file this reader does not accept; the message names the file and line."""


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: list[str] = field(default_factory=list)  # one per plural form, or just one
    fuzzy: bool = False
    line: int = 0


def unquote(text: str, where: str) -> str:
    """The value of one quoted .po string (`"..."`, escapes resolved)."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise PoError(f"{where}: expected a quoted string")
    body = text[1:-1]
    # Pieces between escapes: `a\"b` -> ["a", '"', "b"] (odd indexes are escaped characters).
    pieces = _ESCAPE.split(body)
    for index in range(0, len(pieces), 2):
        if '"' in pieces[index]:
            raise PoError(f"{where}: unescaped quote in {text[:40]}")
        if "\\" in pieces[index]:
            raise PoError(f"{where}: unknown escape in {text[:40]}")
    for index in range(1, len(pieces), 2):
        pieces[index] = ESCAPES[pieces[index]]
    return "".join(pieces)


def parse(text: str, name: str = "<po>") -> list[Entry]:
    """Every entry of a .po file's text, in file order (the header entry, msgid "", included)."""
    entries: list[Entry] = []
    entry = Entry()
    started = False  # the current entry has a keyword already
    target: tuple[str, int] | None = None  # which field a continuation string extends

    def finish() -> None:
        nonlocal entry, started, target
        if started:
            if not entry.msgstr:
                raise PoError(f"{name}:{entry.line}: msgid without msgstr")
            entries.append(entry)
        entry, started, target = Entry(), False, None

    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{name}:{number}"
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#"):
            if started and target is not None and target[0] == "msgstr":
                finish()  # a comment begins the next entry
            if line.startswith("#,") and "fuzzy" in {f.strip() for f in line[2:].split(",")}:
                entry.fuzzy = True
            continue
        if line.startswith('"'):
            if target is None:
                raise PoError(f"{where}: a string continues no keyword")
            extend(entry, target, unquote(line, where))
            continue
        keyword, _, rest = line.partition(" ")
        index = 0
        if keyword.startswith("msgstr[") and keyword.endswith("]"):
            digits = keyword[7:-1]
            if not digits.isdigit():
                raise PoError(f"{where}: bad plural index {keyword}")
            keyword, index = "msgstr", int(digits)
        if keyword not in KEYWORDS:
            raise PoError(f"{where}: unknown keyword {keyword[:30]!r}")
        if keyword in ("msgctxt", "msgid") and started and entry.msgstr:
            finish()
        if not started:
            entry.line = number
        started = True
        if keyword == "msgstr" and index != len(entry.msgstr):
            raise PoError(f"{where}: msgstr[{index}] out of order")
        if keyword == "msgstr":
            entry.msgstr.append("")
        target = (keyword, index)
        extend(entry, target, unquote(rest.strip(), where), first=True)
    finish()
    return entries


def extend(entry: Entry, target: tuple[str, int], value: str, first: bool = False) -> None:
    keyword, index = target
    if keyword == "msgstr":
        entry.msgstr[index] += value
    elif keyword == "msgid":
        entry.msgid = value if first else entry.msgid + value
    elif keyword == "msgid_plural":
        entry.msgid_plural = value if first else (entry.msgid_plural or "") + value
    else:
        entry.msgctxt = value if first else (entry.msgctxt or "") + value


def read(path: Path) -> list[Entry]:
    return parse(path.read_text(encoding="utf-8"), str(path))


def compile_mo(entries: list[Entry]) -> bytes:
    """GNU .mo bytes (little endian, revision 0) of the translated, non-fuzzy entries: what
    `gettext.GNUTranslations` reads. An untranslated entry is left out, so English shows."""
    pairs: dict[bytes, bytes] = {}
    for entry in entries:
        if entry.fuzzy and entry.msgid:
            continue
        if entry.msgid and not all(entry.msgstr):
            continue
        key = entry.msgid
        if entry.msgid_plural is not None:
            key += "\0" + entry.msgid_plural
        if entry.msgctxt is not None:
            key = entry.msgctxt + "\x04" + key
        pairs[key.encode("utf-8")] = "\0".join(entry.msgstr).encode("utf-8")
    keys = sorted(pairs)
    ids = b"".join(k + b"\0" for k in keys)
    strs = b"".join(pairs[k] + b"\0" for k in keys)
    start = 7 * 4 + 16 * len(keys)  # header, then the two offset tables
    offsets: list[int] = []
    position = 0
    for k in keys:
        offsets += [len(k), start + position]
        position += len(k) + 1
    strs_start = start + len(ids)
    position = 0
    for k in keys:
        offsets += [len(pairs[k]), strs_start + position]
        position += len(pairs[k]) + 1
    header = struct.pack("<Iiiiiii", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + 8 * len(keys), 0, 0)
    return header + struct.pack(f"<{len(offsets)}i", *offsets) + ids + strs
