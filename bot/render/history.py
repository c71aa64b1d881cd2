"""The history timeline as a Slack message (the PNG chart follows in its thread)."""

from __future__ import annotations

from typing import Any

from bot.render.check import EMOJI
from bot.render.limits import MAX_FALLBACK, context, escape, header, section, split_lines, truncate
from handlers.history_timeline import Timeline, span, stamp
from handlers.results import Status

MAX_INCIDENTS = 30


def render_timeline(timeline: Timeline, window: str) -> tuple[str, list[dict[str, Any]]]:
    count = len(timeline.incidents)
    title = (
        f":bar_chart: History of the last {window}: {count} incident{'s' * (count != 1)}, "
        f"{timeline.checks} checks"
    )
    blocks: list[dict[str, Any]] = [header(title)]
    lines = []
    for incident in list(reversed(timeline.incidents))[:MAX_INCIDENTS]:
        end = stamp(incident.end) if incident.end is not None else "*ongoing*"
        findings = ", ".join(f"`{escape(f)}`" for f in incident.findings[:12])
        line = (
            f"{EMOJI[incident.worst]} {stamp(incident.start)} → {end} "
            f"({span(incident.duration(timeline.now))}): {findings}"
        )
        for action in incident.actions[:5]:
            line += (
                f"\n      ↳ {stamp(action.at)} `{escape(action.command)}` by "
                f"<@{escape(action.user)}>: {escape(action.outcome)}"
            )
        lines.append(line)
    if not timeline.checks:
        lines.append("_No check recorded in this window._")
    elif not lines:
        lines.append(f"{EMOJI[Status.OK]} No incident: every check passed.")
    blocks.extend(section(chunk) for chunk in split_lines(lines)[:40])
    if len(timeline.incidents) > MAX_INCIDENTS:
        blocks.append(
            context(f"{len(timeline.incidents) - MAX_INCIDENTS} older incidents left out")
        )
    if timeline.problem:
        blocks.append(context(f":warning: {escape(timeline.problem)}"))
    return truncate(title, MAX_FALLBACK), blocks[:50]
