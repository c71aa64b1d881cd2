"""Slack texts for many hosts (HOSTS_FILE): `@host` errors, the `@all` summary (a row per host,
worst first, each with its buttons), and the line naming the host on a single host's answers.
(The progress and outcome lines of the host flows are in bot/subcommands/hosts.py.)"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bot.render.check import EMOJI
from bot.render.limits import MAX_BLOCKS, MAX_FALLBACK, context, header, section, truncate
from bot.render.mrkdwn import code, escape
from config.hosts import ALL, Hosts
from config.i18n import gettext as _
from handlers.fanout import HostRow, overall, tally
from handlers.report_text import label

ButtonsFn = Callable[[HostRow], list[dict[str, Any]]]
MAX_ROWS_WITH_BUTTONS = 40  # a section (+ buttons) per host; more hosts: text rows only


def host_problem(hosts: Hosts, subcommand: str, named: str | None) -> str | None:
    """Why `@named` cannot be used with `subcommand`, or None."""
    if named is None:
        return None
    if named == ALL:
        if subcommand != "check":
            return ":warning: " + _("`@all` works with `check` only: name one host for the others.")
        return None
    if hosts.get(named) is None:
        shown = ", ".join(code(n, 40) for n in hosts.names()[:20])
        return ":warning: " + _("Unknown host {name}. Hosts: {hosts}, or `@all`.").format(
            name=code(named, 40), hosts=shown
        )
    return None


def on_host(name: str) -> str:
    """The note naming the host an answer comes from."""
    return ":desktop_computer: " + _("Host *{name}*").format(name=escape(name))


def host_unreachable(name: str, summary: str, remedy: str) -> str:
    """Why host `name` did not answer: its finding's summary and remedy (translated here when
    the finding was made here; a host's own texts are in its language already)."""
    text = f":x: {escape(summary)}"
    if remedy:
        text += "\n" + _("*Remedy:* {remedy}").format(remedy=escape(remedy))
    return text


def row_text(row: HostRow) -> str:
    return (
        f"{EMOJI[row.status]} *{escape(row.host)}* · {escape(label(row.status).lower())} · "
        f"{row.seconds:.1f} s\n{escape(truncate(row.headline, 600))}"
    )


def render_summary(
    rows: Sequence[HostRow], requested_by: str, buttons: ButtonsFn
) -> tuple[str, list[dict[str, Any]]]:
    """One message for `check @all`: a row per host, worst first, per-host buttons."""
    worst = overall(rows)
    title = _("Dify hosts: {count} checked ({tally})").format(count=len(rows), tally=tally(rows))
    text = f"{EMOJI[worst]} {title}. " + "; ".join(
        f"{r.host}: {label(r.status).lower()}" for r in rows[:30]
    )
    blocks: list[dict[str, Any]] = [header(title)]
    room = MAX_BLOCKS - 3
    with_buttons = len(rows) <= min(MAX_ROWS_WITH_BUTTONS, room // 2)
    if with_buttons:
        for row in rows:
            blocks.append(section(row_text(row)))
            elements = buttons(row)
            if elements:
                blocks.append({"type": "actions", "elements": elements[:5]})
    else:
        lines = [row_text(row).replace("\n", " — ") for row in rows]
        chunk: list[str] = []
        for line in lines:
            if sum(len(x) + 1 for x in chunk) + len(line) > 2800 and chunk:
                blocks.append(section("\n".join(chunk)))
                chunk = []
            chunk.append(line)
            if len(blocks) >= room:
                break
        if chunk and len(blocks) < room:
            blocks.append(section("\n".join(chunk)))
    blocks.append(
        context(
            _("asked by {who} · worst first · `check @NAME` for one host").format(who=requested_by)
        )
    )
    return truncate(text, MAX_FALLBACK), blocks
