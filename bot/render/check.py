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
    MAX_SECTION,
    actions,
    code_block,
    context,
    header,
    section,
    split_lines,
    truncate,
)
from bot.render.mrkdwn import code, escape
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

# Blocks kept back from problems: header, passed list (up to 2), overflow note, context.
_RESERVED = 5
_MAX_PASSED_SECTIONS = 2


@dataclass(frozen=True)
class Rendered:
    text: str  # fallback text (notifications, screen readers)
    blocks: list[dict[str, Any]]
    degraded: bool  # something was left out: the caller may attach the full text


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def verdict(report: Report) -> str:
    failing = sum(1 for f in report.findings if f.status is Status.FAIL)
    warnings = sum(1 for f in report.findings if f.status is Status.WARN)
    if failing:
        extra = f", {warnings} warning{'s' * (warnings != 1)}" if warnings else ""
        return f"{EMOJI[Status.FAIL]} Dify ↔ Ollama: {failing} problem{'s' * (failing != 1)}{extra}"
    if warnings:
        return (
            f"{EMOJI[Status.WARN]} Dify ↔ Ollama: works, {warnings} warning{'s' * (warnings != 1)}"
        )
    return f"{EMOJI[Status.OK]} Dify ↔ Ollama: healthy"


def _problem_text(finding: Finding) -> str:
    # The id is the stable handle alerts and scripts key on: show it where people act.
    head = f"{EMOJI[finding.status]} *{escape(finding.summary)}*  {code(finding.id)}"
    remedy = f"\n*Fix:* {escape(finding.remedy)}" if finding.remedy else ""
    head = truncate(head, 600)
    remedy = truncate(remedy, 1000)
    room = MAX_SECTION - len(head) - len(remedy) - 1
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
        parts.append(f"asked by {requested_by}")
    return context(" · ".join(parts), *notes)


def render_report(
    report: Report,
    *,
    requested_by: str | None = None,
    finding_buttons: Sequence[ButtonFn] = (),
    notes: Sequence[str] = (),
    max_blocks: int = MAX_BLOCKS,
) -> Rendered:
    findings = sorted(report.findings, key=lambda f: _ORDER[f.status])
    problems = [f for f in findings if f.status in (Status.FAIL, Status.WARN)]
    passed = [f for f in findings if f.status not in (Status.FAIL, Status.WARN)]

    blocks: list[dict[str, Any]] = [header(verdict(report))]
    degraded = False

    budget = max_blocks - _RESERVED
    shown = 0
    for finding in problems:
        buttons = _buttons(finding, report, finding_buttons)
        need = 2 if buttons else 1
        if need > budget:
            break
        blocks.append(section(_problem_text(finding)))
        if buttons:
            blocks.append(actions(buttons))
        budget -= need
        shown += 1
    hidden = problems[shown:]

    passed_lines = [f"{EMOJI[f.status]} {escape(f.summary)}" for f in passed]
    chunks = split_lines(passed_lines)
    if len(chunks) > _MAX_PASSED_SECTIONS:
        degraded = True
        chunks = chunks[:_MAX_PASSED_SECTIONS]
        kept = sum(c.count("\n") + 1 for c in chunks)
        note = f"\n_…and {len(passed_lines) - kept} more passed_"
        chunks[-1] = truncate(chunks[-1], MAX_SECTION - len(note)) + note
    blocks.extend(section(c) for c in chunks)

    if hidden:
        degraded = True
        lines = [f"{EMOJI[f.status]} {escape(f.summary)}" for f in hidden]
        title = f"*{_plural(len(hidden), 'more problem')} (all details in the attached report):*"
        blocks.append(section(split_lines([title, *lines])[0]))

    if not report.findings:
        blocks.append(section("_No findings: nothing was checked._"))

    blocks.append(_context_line(report, requested_by, notes))
    if len(blocks) > max_blocks:  # cannot happen with the budget above; never fail anyway
        degraded = True
        blocks = [*blocks[: max_blocks - 1], blocks[-1]]

    text = verdict(report)
    if problems:
        # The notification text is mrkdwn too: finding text comes from Dify and the host.
        text += ": " + "; ".join(escape(f.summary) for f in problems[:5])
    return Rendered(text=truncate(text, MAX_FALLBACK), blocks=blocks, degraded=degraded)
