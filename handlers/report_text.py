"""A check Report as plain text: what `dify-ollama check` prints, and the full report the Slack
app attaches when its message had to leave findings out. One renderer for both."""

from __future__ import annotations

import re
import textwrap

from config.i18n import gettext as _
from handlers.results import Report, Status
from handlers.text_width import display_width, ljust, wrap_wide

COLOR = {Status.OK: "32", Status.WARN: "33", Status.FAIL: "31", Status.SKIP: "2"}


def label(status: Status) -> str:
    """The status word of a report line, in the current language."""
    return {
        Status.OK: _("ok"),
        Status.WARN: _("WARN"),
        Status.FAIL: _("FAIL"),
        Status.SKIP: _("skip"),
    }[status]


def _paint(text: str, status: Status, color: bool) -> str:
    return f"\033[{COLOR[status]}m{text}\033[0m" if color else text


# A `command in backticks` is one unit: a line break inside it would break copy and paste.
_CODE = re.compile(r"`[^`\n]{1,200}`")
_GLUE = "\x00"  # stands for a space inside such a span while wrapping


def wrap_text(
    text: str, width: int, initial_indent: str = "", subsequent_indent: str = ""
) -> list[str]:
    """textwrap.wrap, except that words, paths, URLs and `commands` are never cut (a single
    word longer than the width gets a line of its own; a command that cannot fit on one line
    is wrapped at its spaces). Text with wide (Chinese) characters is wrapped by columns."""
    if display_width(text) != len(text):
        return wrap_wide(text, width, initial_indent, subsequent_indent)
    room = width - len(subsequent_indent)

    def glue(match: re.Match[str]) -> str:
        span = match.group(0)
        return span.replace(" ", _GLUE) if len(span) <= room else span

    glued = _CODE.sub(glue, text)
    lines = textwrap.wrap(
        glued,
        width,
        initial_indent=initial_indent,
        subsequent_indent=subsequent_indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [line.replace(_GLUE, " ") for line in lines]


def _indent(label: str, text: str, width: int = 100) -> list[str]:
    lines = []
    for i, paragraph in enumerate(text.splitlines() or [""]):
        prefix = "    " + ljust(label, 9) if i == 0 else " " * 13
        lines += wrap_text(paragraph, width, prefix, " " * 13) or [prefix]
    return lines


def _wrap(text: str, width: int, indent: int) -> list[str]:
    """`text` wrapped to `width`, continuation lines indented by `indent` spaces."""
    return wrap_text(text, width, subsequent_indent=" " * indent) or [text]


def render_text(report: Report, color: bool = False, width: int = 100) -> str:
    """The report, every line within `width` columns (but for a single word longer than
    that). Colour codes are added after wrapping, so they never count as columns."""
    failing = sum(f.status is Status.FAIL for f in report.findings)
    warning = sum(f.status is Status.WARN for f in report.findings)
    where = report.context.get("dify_dir")
    where = _("Dify not found") if where is None else where
    head = _(
        "Dify -> Ollama check: {verdict} ({failing} failing, {warning} warning) "
        "in {ms} ms, host {host}, {where}"
    ).format(
        verdict=label(report.status).upper(),
        failing=failing,
        warning=warning,
        ms=report.duration_ms,
        host=report.context.get("host", "?"),
        where=where,
    )
    out = [_paint(line, report.status, color) for line in _wrap(head, width, 2)]
    out.append("")
    id_width = max(len(f.id) for f in report.findings) if report.findings else 10
    for finding in report.findings:
        word = ljust(label(finding.status), 4)
        row = _wrap(f"  {word}  {finding.id:<{id_width}}  {finding.summary}", width, 10 + id_width)
        # only the status label is coloured: it is the first thing on the first line
        out.append(row[0].replace(word, _paint(word, finding.status, color), 1))
        out += row[1:]
    problems = [f for f in report.findings if f.status in (Status.FAIL, Status.WARN)]
    if problems:
        out += ["", _("What to do:")]
        for finding in problems:
            title = f"  {label(finding.status)} {finding.id}: {finding.summary}"
            out += [_paint(line, finding.status, color) for line in _wrap(title, width, 4)]
            if finding.detail:
                out += _indent(_("evidence"), finding.detail, width)
            if finding.remedy:
                out += _indent(_("remedy"), finding.remedy, width)
            if finding.fixable:
                out += _indent(_("fix"), _("`dify-ollama fix-env` can repair this"), width)
    return "\n".join(out) + "\n"
