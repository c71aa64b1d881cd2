"""The history timeline as a Slack message (the PNG chart follows in its thread)."""

from __future__ import annotations

from typing import Any

from bot.render.check import EMOJI
from bot.render.limits import MAX_FALLBACK, context, escape, header, section, split_lines, truncate
from config.i18n import gettext as _
from config.i18n import ngettext
from handlers.history_timeline import Timeline, span, stamp
from handlers.results import Status

MAX_INCIDENTS = 30


def render_timeline(timeline: Timeline, window: str) -> tuple[str, list[dict[str, Any]]]:
    count = len(timeline.incidents)
    title = ":bar_chart: " + ngettext(
        "History of the last {window}: {count} incident, {checks} checks",
        "History of the last {window}: {count} incidents, {checks} checks",
        count,
    ).format(window=window, count=count, checks=timeline.checks)
    blocks: list[dict[str, Any]] = [header(title)]
    lines = []
    for incident in list(reversed(timeline.incidents))[:MAX_INCIDENTS]:
        end = stamp(incident.end) if incident.end is not None else _("*ongoing*")
        findings = ", ".join(f"`{escape(f)}`" for f in incident.findings[:12])
        line = (
            f"{EMOJI[incident.worst]} {stamp(incident.start)} → {end} "
            f"({span(incident.duration(timeline.now))}): {findings}"
        )
        for action in incident.actions[:5]:
            line += "\n      ↳ " + _("{time} {command} by {who}: {outcome}").format(
                time=stamp(action.at),
                command=f"`{escape(action.command)}`",
                who=f"<@{escape(action.user)}>",
                outcome=escape(action.outcome),
            )
        lines.append(line)
    if not timeline.checks:
        lines.append(_("_No check recorded in this window._"))
    elif not lines:
        lines.append(f"{EMOJI[Status.OK]} " + _("No incident: every check passed."))
    blocks.extend(section(chunk) for chunk in split_lines(lines)[:40])
    if len(timeline.incidents) > MAX_INCIDENTS:
        blocks.append(
            context(
                _("{count} older incidents left out").format(
                    count=len(timeline.incidents) - MAX_INCIDENTS
                )
            )
        )
    if timeline.problem:
        blocks.append(context(f":warning: {escape(timeline.problem)}"))
    return truncate(title, MAX_FALLBACK), blocks[:50]
