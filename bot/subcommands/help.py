"""`help`: listed for completeness; the dispatcher answers `help` and empty text in the ack path
itself. This entry lets `@dify-ollama help` and the help listing treat it like the others."""

from __future__ import annotations

from bot.render.help import render_help
from bot.subcommands import Context, Invocation, Registry, Subcommand
from config.i18n import gettext as _


def run(invocation: Invocation, ctx: Context) -> str:
    text, blocks = render_help(ctx.registry, ctx.engine_note())
    ctx.ephemeral(text, blocks)
    return "ok"


def register(registry: Registry) -> None:
    registry.add_subcommand(
        Subcommand(name="help", usage="help", summary=_("This list"), mutating=False, run=run)
    )
