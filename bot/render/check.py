"""A check Report as a Slack message: verdict header, one line per finding, evidence and remedy
for each problem, buttons from the registry, and a context line. Always within Slack's limits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.render.limits import (
    MAX_ACTIONS,
    MAX_BLOCKS,
    MAX_FALLBACK,
    MAX_MESSAGE_TEXT,
    MAX_SECTION,
    actions,
    code_block,
    context,
    header,
    section,
    split_lines,
    text_size,
    truncate,
)
from bot.render.mrkdwn import code, escape
from config.i18n import gettext as _
from config.i18n import ngettext
from handlers.results import Finding, Report, Status

log = logging.getLogger(__name__)

EMOJI = {
    Status.OK: ":white_check_mark:",
    Status.WARN: ":warning:",
    Status.FAIL: ":x:",
    Status.SKIP: ":white_circle:",
}
_ORDER = {Status.FAIL: 0, Status.WARN: 1, Status.OK: 2, Status.SKIP: 3}

ButtonFn = Callable[[Finding, Report], "dict[str, Any] | None"]

# Characters of the message's texts: the passed findings' list, the note naming the problems
# left out, and the least a problem's section is worth showing.
PASSED_TEXT = 1500
HIDDEN_TEXT = 1200
MIN_PROBLEM_TEXT = 300


@dataclass(frozen=True)
class Rendered:
    text: str  # fallback text (notifications, screen readers)
    blocks: list[dict[str, Any]]
    degraded: bool  # something was left out: the caller may attach the full text


def verdict(report: Report) -> str:
    if report.status is Status.SKIP:
        return EMOJI[Status.SKIP] + " " + _("Dify ↔ Ollama: nothing could be checked")
    failing = sum(1 for f in report.findings if f.status is Status.FAIL)
    warnings = sum(1 for f in report.findings if f.status is Status.WARN)
    if failing and warnings:
        problems = ngettext(
            "Dify ↔ Ollama: {count} problem", "Dify ↔ Ollama: {count} problems", failing
        ).format(count=failing)
        extra = ngettext("{count} warning", "{count} warnings", warnings).format(count=warnings)
        return (
            EMOJI[Status.FAIL]
            + " "
            + _("{problems}, {warnings}").format(problems=problems, warnings=extra)
        )
    if failing:
        return (
            EMOJI[Status.FAIL]
            + " "
            + ngettext(
                "Dify ↔ Ollama: {count} problem", "Dify ↔ Ollama: {count} problems", failing
            ).format(count=failing)
        )
    if warnings:
        return (
            EMOJI[Status.WARN]
            + " "
            + ngettext(
                "Dify ↔ Ollama: works, {count} warning",
                "Dify ↔ Ollama: works, {count} warnings",
                warnings,
            ).format(count=warnings)
        )
    return EMOJI[Status.OK] + " " + _("Dify ↔ Ollama: healthy")


def _problem_text(finding: Finding, limit: int = MAX_SECTION) -> str:
    """The finding's section, at most `limit` characters: head and remedy first, the
    evidence gets what is left (cut with an ellipsis)."""
    # The id is the stable handle alerts and scripts key on: show it where people act.
    head = f"{EMOJI[finding.status]} *{escape(finding.summary)}*  {code(finding.id)}"
    remedy = (
        "\n" + _("*Fix:* {remedy}").format(remedy=escape(finding.remedy)) if finding.remedy else ""
    )
    head = truncate(head, min(600, limit // 3))
    remedy = truncate(remedy, min(1000, limit // 3))
    room = limit - len(head) - len(remedy) - 1
    evidence = f"\n{code_block(finding.detail, room)}" if finding.detail and room > 20 else ""
    return head + evidence + remedy


def _buttons(finding: Finding, report: Report, makers: Sequence[ButtonFn]) -> list[dict[str, Any]]:
    elements: list[dict[str, Any]] = []
    for make in makers:
        try:
            element = make(finding, report)
        except Exception:  # a plug-in's bug must not cost the report
            log.exception("finding button maker failed for %s", finding.id)
            continue
        if element is not None:
            elements.append(element)
    return elements[:MAX_ACTIONS]


def _context_line(report: Report, requested_by: str | None, notes: Sequence[str]) -> dict[str, Any]:
    parts = [f"{escape(key)} {code(value)}" for key, value in report.context.items() if value]
    parts.append(f"{report.duration_ms / 1000:.1f} s")
    if requested_by:
        parts.append(_("asked by {who}").format(who=requested_by))
    return context(" · ".join(parts), *notes)


def render_report(
    report: Report,
    *,
    requested_by: str | None = None,
    finding_buttons: Sequence[ButtonFn] = (),
    notes: Sequence[str] = (),
    report_buttons: Sequence[dict[str, Any]] = (),
    max_blocks: int = MAX_BLOCKS,
    max_text: int = MAX_MESSAGE_TEXT,
) -> Rendered:
    """The report within Slack's limits: `max_blocks` blocks whose texts add up to at most
    `max_text` characters. Problems share what the header, the passed list and the context
    line leave; when evidence had to be cut or a problem left out, `degraded` says so and the
    caller attaches the whole report as a file. `report_buttons`: one row of buttons about
    the whole report (e.g. "Chat test"), kept above the context line."""
    findings = sorted(report.findings, key=lambda f: _ORDER[f.status])
    problems = [f for f in findings if f.status in (Status.FAIL, Status.WARN)]
    passed = [f for f in findings if f.status not in (Status.FAIL, Status.WARN)]

    top = header(verdict(report))
    end = _context_line(report, requested_by, notes)
    degraded = False

    passed_lines = [f"{EMOJI[f.status]} {escape(f.summary)}" for f in passed]
    chunks = split_lines(passed_lines, PASSED_TEXT)
    if len(chunks) > 1:
        degraded = True
        kept = chunks[0].count("\n") + 1
        note = "\n" + _("_…and {count} more passed_").format(count=len(passed_lines) - kept)
        chunks = [truncate(chunks[0], PASSED_TEXT - len(note)) + note]
    passed_blocks = [section(c) for c in chunks]
    if not report.findings:
        passed_blocks.append(section(_("_No findings: nothing was checked._")))

    row_end = [actions(list(report_buttons)[:MAX_ACTIONS])] if report_buttons else []
    fixed = [top, *passed_blocks, *row_end, end]
    chars = max_text - text_size(fixed) - (HIDDEN_TEXT if problems else 0)
    slots = max_blocks - len(fixed) - (1 if problems else 0)
    problem_blocks: list[dict[str, Any]] = []
    shown = 0
    for index, finding in enumerate(problems):
        buttons = _buttons(finding, report, finding_buttons)
        row = [actions(buttons)] if buttons else []
        need = 1 + len(row)
        # An equal share of what is left for this problem and the ones after it.
        share = chars // (len(problems) - index) - text_size(row)
        limit = min(MAX_SECTION, share)
        if need > slots or limit < MIN_PROBLEM_TEXT:
            break
        text = _problem_text(finding, limit)
        degraded = degraded or text != _problem_text(finding)
        problem_blocks += [section(text), *row]
        chars -= text_size(problem_blocks[-need:])
        slots -= need
        shown += 1
    hidden = problems[shown:]

    blocks = [top, *problem_blocks, *passed_blocks]
    if hidden:
        degraded = True
        lines = [f"{EMOJI[f.status]} {escape(f.summary)}" for f in hidden]
        title = ngettext(
            "*{count} more problem (all details in the attached report):*",
            "*{count} more problems (all details in the attached report):*",
            len(hidden),
        ).format(count=len(hidden))
        blocks.append(section(split_lines([title, *lines], HIDDEN_TEXT)[0]))
    blocks += [*row_end, end]

    text = verdict(report)
    if problems:
        # The notification text is mrkdwn too: finding text comes from Dify and the host.
        text += ": " + "; ".join(escape(f.summary) for f in problems[:5])
    return Rendered(text=truncate(text, MAX_FALLBACK), blocks=blocks, degraded=degraded)


def render_finding(finding: Finding, title: str, requested_by: str | None = None) -> Rendered:
    """One finding on its own (a button's answer, e.g. the chat test): its line, evidence and
    remedy, and who asked."""
    text = f"{title}: {escape(finding.summary)}"
    blocks = [section(_problem_text(finding))]
    who = _("asked by {who}").format(who=requested_by) + " · " if requested_by else ""
    blocks.append(context(f"{who}{finding.duration_ms / 1000:.1f} s"))
    return Rendered(text=truncate(text, MAX_FALLBACK), blocks=blocks, degraded=False)
