"""Terminal columns of text with East Asian wide characters (a Chinese character takes two
columns), and wrapping such text: Chinese has no spaces, so a line may break between any two
wide characters, but never inside an ASCII word, a path, a URL or a `command`, and never
before closing punctuation."""

from __future__ import annotations

import re
import unicodedata

# The ranges of wide characters a catalog uses (CJK, Hangul, full-width forms): the tokenizer's
# classes; the column count itself comes from unicodedata.
_WIDE_RANGES = (
    "\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf"
    "\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6"
)
# One token each: a `code span` (bounded), a run of spaces, one wide character, a run of
# other characters (an ASCII word, a path, a URL), or a lone backtick. No nested repeats:
# linear in the text's length.
_TOKEN = re.compile(
    rf"`[^`\n]{{1,200}}`|\s+|[{_WIDE_RANGES}]|[^\s`{_WIDE_RANGES}]+|`",
)
# Never at the start of a line (Chinese line breaking rules, the common part).
NO_LINE_START = frozenset("，。、；：！？）》」』】…,.;:!?)")
NO_LINE_END = frozenset("（《「『【")


def char_width(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns `text` takes in a terminal."""
    if text.isascii():
        return len(text)
    return sum(char_width(c) for c in text)


def ljust(text: str, columns: int) -> str:
    """`text` padded with spaces to `columns` terminal columns (str.ljust counts characters)."""
    return text + " " * max(0, columns - display_width(text))


def _tokens(text: str, room: int) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        parts = [token]
        if token.startswith("`") and len(token) > 1 and display_width(token) > room:
            # a command that cannot fit on one line is wrapped at its spaces
            parts = [p for p in re.split(r"( +)", token) if p]
        for part in parts:
            previous = tokens[-1] if tokens else " "
            glued = not previous.isspace() and not part.isspace()
            if glued and (part[0] in NO_LINE_START or previous[-1] in NO_LINE_END):
                tokens[-1] += part
            else:
                tokens.append(part)
    return [t for t in tokens if t]


def wrap_wide(
    text: str, width: int, initial_indent: str = "", subsequent_indent: str = ""
) -> list[str]:
    """Greedy wrap by terminal columns. A single token wider than the line gets a line of its
    own, as textwrap does with break_long_words=False."""
    room = width - display_width(subsequent_indent)
    lines: list[str] = []
    line, used, filled = initial_indent, display_width(initial_indent), False
    # Spaces are kept as written (aligned columns), except where a line breaks; leading
    # spaces of the text stay, as with textwrap.
    gap = ""
    for token in _tokens(text.expandtabs(), room):
        if token.isspace():
            gap = " " * len(token) if (filled or (not lines and not initial_indent)) else ""
            if not filled:
                line, used, gap = line + gap, used + len(gap), ""
            continue
        needed = display_width(token)
        if filled and used + len(gap) + needed > width:
            lines.append(line)
            line, used, gap = subsequent_indent, display_width(subsequent_indent), ""
        line += gap + token
        used += len(gap) + needed
        filled, gap = True, ""
    if filled:
        lines.append(line)
    return lines
