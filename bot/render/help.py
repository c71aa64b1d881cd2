"""The help and usage replies."""

from __future__ import annotations

from typing import Any

from bot.render.limits import context, section, truncate
from bot.render.mrkdwn import code, escape, guard
from bot.subcommands import Registry, Subcommand
from config.i18n import gettext as _

COMMAND = "/dify-ollama"


def usage_line(sub: Subcommand) -> str:
    return f"`{COMMAND} {sub.usage}`"


def render_help(registry: Registry, note: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        _("*{command}*: diagnose and repair Dify ↔ Ollama on this host.").format(command=COMMAND)
    ]
    for sub in registry.subcommands.values():
        if sub.hidden:
            continue
        lock = " :lock:" if sub.mutating else ""
        lines.append(f"• {usage_line(sub)}{lock}  {escape(sub.summary)}")
    lines.append(
        _(
            "In a thread, mention me instead: `@dify-ollama logs worker 200`. "
            ":lock: = operators only."
        )
    )
    text = "\n".join(lines)
    blocks = [section(text)]
    if note:
        blocks.append(context(f":warning: {escape(note)}"))
    return truncate(text, 3000), blocks


def render_usage(sub: Subcommand, problem: str) -> str:
    """`problem` is a UsageError's message: mrkdwn whose user text is already escaped (see
    bot.subcommands.UsageError); `guard` makes sure nothing in it can mention or link."""
    return ":warning: " + _("{problem}\nUsage: {usage}").format(
        problem=guard(problem), usage=usage_line(sub)
    )


def render_unknown(name: str, registry: Registry) -> str:
    names = ", ".join(f"`{n}`" for n, s in registry.subcommands.items() if not s.hidden)
    return ":grey_question: " + _(
        "Unknown subcommand {name}. Try one of {names}, or `{command} help`."
    ).format(name=code(name, 40), names=names, command=COMMAND)
