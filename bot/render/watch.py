"""The watch's notices as Slack messages: the alert (edited in place as things change) and the
lines that go into its thread. Every text from a finding is escaped (`escape`: & < >)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.render.check import EMOJI
from bot.render.limits import (
    MAX_FALLBACK,
    actions,
    code_block,
    context,
    escape,
    header,
    section,
    truncate,
)
from config.i18n import gettext as _
from config.i18n import ngettext
from handlers.history_timeline import span
from handlers.results import Finding, Report, Status
from handlers.watch import ActionDone, Incident, Member, Notice

log = logging.getLogger(__name__)

ButtonFn = Callable[[Finding, Report], "dict[str, Any] | None"]
# Actions that may have repaired something; mutes and previews did not.
REPAIRS = ("fix-env:apply", "fix-env:undo", "restart")
DONE_OUTCOMES = ("applied", "undone", "ok", "still-failing")


def clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M UTC")


def _stopped(incident: Incident) -> bool:
    return incident.situation == "dify-stopped"


def title(incident: Incident, now: float) -> str:
    host = incident.host
    open_members = [m for m in incident.members if m.open]
    if incident.closed_at is not None:
        took = span(incident.closed_at - incident.opened_at)
        return (
            EMOJI[Status.OK]
            + " "
            + _("Resolved on {host} after {took}").format(host=host, took=took)
        )
    if _stopped(incident) and all(
        m.finding.id in ("dify.project", "dify.containers") for m in open_members
    ):
        return ":double_vertical_bar: " + _(
            "Dify is stopped on {host} (no containers of its project)"
        ).format(host=host)
    if [m.finding.id for m in open_members] == ["docker.engine"]:
        return EMOJI[Status.FAIL] + " " + _("Docker engine unreachable on {host}").format(host=host)
    count = len(open_members)
    worst = (
        Status.FAIL if any(m.finding.status is Status.FAIL for m in open_members) else (Status.WARN)
    )
    return ":rotating_light: " + ngettext(
        "Dify ↔ Ollama on {host}: {count} problem {emoji}",
        "Dify ↔ Ollama on {host}: {count} problems {emoji}",
        count,
    ).format(host=host, count=count, emoji=EMOJI[worst])


def _member_text(member: Member, now: float) -> str:
    seen = member.finding
    if not member.open:
        return (
            EMOJI[Status.OK]
            + " "
            + _("{summary} {id} recovered at {time}").format(
                summary=f"~{escape(truncate(seen.summary, 300))}~",
                id=f"`{seen.id}`",
                time=clock(member.recovered_at or now),
            )
        )
    head = f"{EMOJI[seen.status]} *{escape(truncate(seen.summary, 500))}*  `{seen.id}`"
    changed = "\n" + _("_was {was}, {status} since {time}_").format(
        was=member.was, status=seen.status, time=clock(member.since)
    )
    if member.flaps:
        changed += " · " + ngettext(
            "flapping: bad again {count} time", "flapping: bad again {count} times", member.flaps
        ).format(count=member.flaps)
    if seen.id == "dify.containers" and seen.metrics.get("containers") == 0:
        changed += "\n" + _(
            "_No container of the project exists: taken down on purpose (`docker compose "
            "down`)? I stay quiet until it is back._"
        )
    remedy = (
        "\n" + _("*Fix:* {remedy}").format(remedy=escape(truncate(seen.remedy, 900)))
        if seen.remedy
        else ""
    )
    room = 2900 - len(head) - len(changed) - len(remedy)
    evidence = f"\n{code_block(seen.detail, room)}" if seen.detail and room > 40 else ""
    return head + changed + evidence + remedy


def _buttons(member: Member, report: Report | None, makers: Sequence[ButtonFn]) -> list[Any]:
    if report is None or not member.open:
        return []
    finding = report.finding(member.finding.id) or member.finding.to_finding()
    elements = []
    for make in makers:
        try:
            element = make(finding, report)
        except Exception:  # a plug-in's bug must not cost the alert
            log.exception("finding button maker failed for %s", finding.id)
            continue
        if element is not None:
            elements.append(element)
    return elements


def render_alert(
    incident: Incident,
    now: float,
    report: Report | None = None,
    finding_buttons: Sequence[ButtonFn] = (),
) -> tuple[str, list[dict[str, Any]]]:
    """The alert message (parent of the thread): (fallback text, blocks)."""
    blocks: list[dict[str, Any]] = [header(title(incident, now))]
    members = sorted(incident.members, key=lambda m: (not m.open, m.since))
    for member in members[:20]:
        blocks.append(section(_member_text(member, now)))
        buttons = _buttons(member, report, finding_buttons)
        if buttons:
            blocks.append(actions(buttons))
    notes = [
        _("opened {time}").format(time=clock(incident.opened_at)),
        _("incident {id}").format(id=f"`{escape(incident.id)}`"),
    ]
    if incident.flaps:
        notes.append(
            ngettext("{count} flap", "{count} flaps", incident.flaps).format(count=incident.flaps)
        )
    if incident.closed_at is None:
        notes.append(_("silence it: `/dify-ollama mute 30m [FINDING]`"))
    blocks.append(context(" · ".join(notes)))
    open_ids = [m.finding.id for m in incident.members if m.open]
    text = title(incident, now) + (": " + ", ".join(open_ids) if open_ids else "")
    return truncate(text, MAX_FALLBACK), blocks[:50]


def _by(actions_done: Sequence[ActionDone]) -> str:
    repairs = [
        a for a in actions_done if a.command.startswith(REPAIRS) and a.outcome in DONE_OUTCOMES
    ]
    if not repairs:
        return _("on its own (no fix-env or restart ran meanwhile)")
    parts = [
        _("{who} ({command} at {time})").format(
            who=f"<@{escape(a.user)}>", command=f"`{escape(a.command)}`", time=clock(a.at)
        )
        for a in repairs[-3:]
    ]
    return _("by {people}").format(people=", ".join(parts))


def render_thread_line(notice: Notice, now: float) -> str | None:
    """The line a notice adds to the alert's thread (None: `opened` and `updated` add none)."""
    incident = notice.incident
    members = [m for m in (incident.member(i) for i in notice.finding_ids) if m is not None]

    def lines(emoji: str, what: str) -> str:
        return "\n".join(
            f"{emoji} "
            + what.format(id=f"`{m.finding.id}`", summary=escape(truncate(m.finding.summary, 400)))
            for m in members
        )

    if notice.kind == "joined":
        return lines(EMOJI[Status.FAIL], _("{id} is failing now too: {summary}"))
    if notice.kind == "changed":
        return "\n".join(
            ":arrows_counterclockwise: "
            + _("{id} changed, now {status}: {summary}").format(
                id=f"`{m.finding.id}`",
                status=m.finding.status,
                summary=escape(truncate(m.finding.summary, 400)),
            )
            for m in members
        )
    if notice.kind == "flapping":
        return "\n".join(
            ":repeat: "
            + _(
                "{id} is flapping (bad, good, bad again). I keep the count in the alert above "
                "and say here when it settles."
            ).format(id=f"`{m.finding.id}`")
            for m in members
        )
    if notice.kind == "recovered":
        return lines(EMOJI[Status.OK], _("{id} recovered: {summary}"))
    if notice.kind == "closed":
        took = span((incident.closed_at or now) - incident.opened_at)
        return (
            EMOJI[Status.OK]
            + " "
            + _("Recovered after {took}, {by}.").format(took=took, by=_by(notice.actions))
        )
    return None
