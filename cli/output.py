"""How the CLI prints: progress lines (none with --json) and check reports (coloured on a tty)."""

from __future__ import annotations

import sys

from handlers.report_text import render_text
from handlers.results import Progress, Report, no_progress


def progress(json_output: bool) -> Progress:
    """Progress lines on stdout, flushed as they come; nothing when the output is JSON."""
    if json_output:
        return no_progress
    return lambda text: print(f"  ... {text}", flush=True)


def print_report(report: Report) -> None:
    print(render_text(report, color=sys.stdout.isatty()), end="")
