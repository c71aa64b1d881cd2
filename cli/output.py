"""How the CLI prints: progress lines (none with --json), check reports (coloured on a tty
unless NO_COLOR is set) and plain text blocks, all wrapped to the terminal's width."""

from __future__ import annotations

import os
import shutil
import sys

from handlers.report_text import render_text, wrap_text
from handlers.results import Progress, Report, no_progress
from handlers.text_width import display_width

MIN_WIDTH, MAX_WIDTH = 40, 120  # narrower is unreadable; wider lines are hard to follow


def width() -> int:
    """COLUMNS, else the terminal's width, else 80 (a pipe, a file): between 40 and 120."""
    columns = shutil.get_terminal_size((80, 24)).columns
    return max(MIN_WIDTH, min(MAX_WIDTH, columns))


def color_enabled(stream: object = None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set to anything (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream or sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def fit(text: str, columns: int | None = None) -> str:
    """Wrap each line longer than the width, continuing at its own indent plus two spaces.
    Words and `commands` are never cut: a path, a URL or a command stays whole and copyable."""
    columns = columns or width()
    out: list[str] = []
    for line in text.split("\n"):
        if display_width(line) <= columns:
            out.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip(" ")))
        out += wrap_text(line.strip(" "), columns, indent, indent + "  ") or [line]
    return "\n".join(out)


def progress(json_output: bool) -> Progress:
    """Progress lines on stdout, flushed as they come; nothing when the output is JSON."""
    if json_output:
        return no_progress
    return lambda text: print(fit(f"  ... {text}"), flush=True)


def print_report(report: Report) -> None:
    print(render_text(report, color=color_enabled(), width=width()), end="")
