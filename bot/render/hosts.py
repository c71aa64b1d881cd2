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
from handlers.fanout import HostRow, overall

ButtonsFn = Callable[[HostRow], list[dict[str, Any]]]
MAX_ROWS_WITH_BUTTONS = 40  # a section (+ buttons) per host; more hosts: text rows only


def host_problem(hosts: Hosts, subcommand: str, named: str | None) -> str | None:
    """Why `@named` cannot be used with `subcommand`, or None."""
    if named is None:
        return None
    if named == ALL:
        if subcommand != "check":
            return ":warning: `@all` works with `check` only: name one host for the others."
        return None
    if hosts.get(named) is None:
        shown = ", ".join(code(n, 40) for n in hosts.names()[:20])
        return f":warning: Unknown host {code(named, 40)}. Hosts: {shown}, or `@all`."
    return None


def on_host(name: str) -> str:
    """The note naming the host an answer comes from."""
    return f":desktop_computer: Host *{escape(name)}*"


def host_unreachable(name: str, summary: str, remedy: str) -> str:
    text = f":x: {escape(summary)}"
    if remedy:
        text += f"\n*Remedy:* {escape(remedy)}"
    return text


def row_text(row: HostRow) -> str:
    return (
        f"{EMOJI[row.status]} *{escape(row.host)}* · {escape(str(row.status))} · "
        f"{row.seconds:.1f} s\n{escape(truncate(row.headline, 600))}"
    )


def render_summary(
    rows: Sequence[HostRow], requested_by: str, buttons: ButtonsFn
) -> tuple[str, list[dict[str, Any]]]:
    """One message for `check @all`: a row per host, worst first, per-host buttons."""
    worst = overall(rows)
    counts = {s: sum(1 for r in rows if r.status is s) for s in EMOJI}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    title = f"Dify hosts: {len(rows)} checked ({tally})"
    text = f"{EMOJI[worst]} {title}. " + "; ".join(f"{r.host}: {r.status}" for r in rows[:30])
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
    blocks.append(context(f"asked by {requested_by} · worst first · `check @NAME` for one host"))
    return truncate(text, MAX_FALLBACK), blocks
