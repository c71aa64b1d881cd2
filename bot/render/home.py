"""The App Home tab: per host, the status of every finding, the last check, the open alert,
the mutes, and buttons to run a check or open the history. Texts are escaped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.render.check import EMOJI
from bot.render.limits import actions, context, escape, header, section, split_lines, truncate
from bot.render.watch import clock
from bot.subcommands import ACTION_PREFIX, button
from config.i18n import gettext as _
from handlers.history_timeline import stamp
from handlers.results import Status
from handlers.watch import Incident
from handlers.watch_store import Mute

HOME_CHECK = ACTION_PREFIX + "home:check"
HOME_HISTORY = ACTION_PREFIX + "home:history"
MAX_HOME_BLOCKS = 100  # Slack's limit for a Home tab view


@dataclass(frozen=True)
class HostView:
    """What the Home tab shows of one host."""

    host: str
    checked_at: float | None
    trigger: str | None
    findings: tuple[tuple[str, Status, str], ...]  # (id, status, summary)
    incident: Incident | None
    mutes: tuple[Mute, ...]
    watching: str | None  # the watch channel, None when the watch is off
    problem: str | None = None  # the history is unavailable: why


def _host_blocks(view: HostView, now: float) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [header(_("Host {host}").format(host=view.host))]
    if view.checked_at is None:
        blocks.append(section(_("_No check recorded yet._ Run one with the button below.")))
    else:
        worst = Status.OK
        for _id, status, _summary in view.findings:
            if status is Status.FAIL or (status is Status.WARN and worst is Status.OK):
                worst = status
        lines = [
            f"{EMOJI[status]} `{fid}` {escape(truncate(summary, 200))}"
            for fid, status, summary in view.findings
        ]
        blocks.append(
            section(
                f"{EMOJI[worst]} "
                + _("*Last check* {time} ({trigger})").format(
                    time=stamp(view.checked_at), trigger=escape(view.trigger or "?")
                )
            )
        )
        blocks.extend(section(chunk) for chunk in split_lines(lines)[:4])
    if view.incident is not None:
        open_ids = [m.finding.id for m in view.incident.members if m.open]
        blocks.append(
            section(
                ":rotating_light: "
                + _("*Open alert* since {time}: {findings}").format(
                    time=clock(view.incident.opened_at),
                    findings=", ".join(f"`{i}`" for i in open_ids),
                )
            )
        )
    elif view.watching:
        blocks.append(section(f"{EMOJI[Status.OK]} " + _("No open alert.")))
    for mute in view.mutes[:10]:
        what = f"`{escape(mute.finding)}`" if mute.finding else _("every finding")
        blocks.append(
            section(
                ":mute: "
                + _("{what} muted until {time} by {who} (`/dify-ollama unmute` lifts it)").format(
                    what=what, time=clock(mute.until), who=escape(mute.by)
                )
            )
        )
    blocks.append(
        actions(
            [
                button(_("Run a check"), HOME_CHECK, {"host": view.host}, style="primary"),
                button(_("Open the history (24 h)"), HOME_HISTORY, {"host": view.host}),
            ]
        )
    )
    notes = [
        _("watching, alerts in {channel}").format(channel=f"<#{escape(view.watching)}>")
        if view.watching
        else _("watch off")
    ]
    if view.problem:
        notes.append(f":warning: {escape(view.problem)}")
    blocks.append(context(*notes))
    return blocks


def render_home(views: Sequence[HostView], now: float) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    for view in views:
        blocks.extend(_host_blocks(view, now))
        blocks.append({"type": "divider"})
    blocks.append(
        context(_("Updated {time} · `/dify-ollama help` for every command").format(time=stamp(now)))
    )
    return {"type": "home", "blocks": blocks[:MAX_HOME_BLOCKS]}
