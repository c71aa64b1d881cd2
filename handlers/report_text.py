"""A check Report as plain text: what `dify-ollama check` prints, and the full report the Slack
app attaches when its message had to leave findings out. One renderer for both."""

from __future__ import annotations

import textwrap

from handlers.results import Report, Status

LABEL = {Status.OK: "ok", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "skip"}
COLOR = {Status.OK: "32", Status.WARN: "33", Status.FAIL: "31", Status.SKIP: "2"}


def _paint(text: str, status: Status, color: bool) -> str:
    return f"\033[{COLOR[status]}m{text}\033[0m" if color else text


def _indent(label: str, text: str, width: int = 100) -> list[str]:
    lines = []
    for i, paragraph in enumerate(text.splitlines() or [""]):
        prefix = f"    {label:<9}" if i == 0 else " " * 13
        lines += textwrap.wrap(
            paragraph,
            width,
            initial_indent=prefix,
            subsequent_indent=" " * 13,
            break_on_hyphens=False,
        ) or [prefix]
    return lines


def render_text(report: Report, color: bool = False) -> str:
    failing = sum(f.status is Status.FAIL for f in report.findings)
    warning = sum(f.status is Status.WARN for f in report.findings)
    where = report.context.get("dify_dir", "Dify not found")
    verdict = LABEL[report.status].upper()
    head = (
        f"Dify -> Ollama check: {verdict} ({failing} failing, {warning} warning) "
        f"in {report.duration_ms} ms, host {report.context.get('host', '?')}, {where}"
    )
    out = [_paint(head, report.status, color), ""]
    width = max(len(f.id) for f in report.findings) if report.findings else 10
    for finding in report.findings:
        tag = _paint(f"{LABEL[finding.status]:<4}", finding.status, color)
        out.append(f"  {tag}  {finding.id:<{width}}  {finding.summary}")
    problems = [f for f in report.findings if f.status in (Status.FAIL, Status.WARN)]
    if problems:
        out += ["", "What to do:"]
        for finding in problems:
            out.append(
                _paint(
                    f"  {LABEL[finding.status]} {finding.id}: {finding.summary}",
                    finding.status,
                    color,
                )
            )
            if finding.detail:
                out += _indent("evidence", finding.detail)
            if finding.remedy:
                out += _indent("remedy", finding.remedy)
            if finding.fixable:
                out += _indent("fix", "`dify-ollama fix-env` can repair this")
    return "\n".join(out) + "\n"
