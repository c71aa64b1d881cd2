"""The App Home tab's buttons: run a check (the tab shows its result), open the history."""

from __future__ import annotations

import time

from bot.home import host_view
from bot.render.history import render_timeline
from bot.render.home import HOME_CHECK, HOME_HISTORY, render_home
from bot.render.limits import section
from bot.subcommands import Action, Click, Context, Registry
from bot.watch import triggered_by
from config.i18n import gettext as _
from handlers.history import open_history
from handlers.history_timeline import build_timeline


def on_check(click: Click, ctx: Context) -> str:
    with triggered_by("home"):
        report = ctx.check()
    settings = ctx.settings
    history = open_history(settings.state_path, settings.history_days)
    try:
        now = time.time()
        view = render_home([host_view(settings, history, now)], now)
    finally:
        history.close()
    ctx.client.views_publish(user_id=click.user_id, view=view)
    return str(report.status)


def on_history(click: Click, ctx: Context) -> str:
    settings = ctx.settings
    history = open_history(settings.state_path, settings.history_days)
    try:
        now = time.time()
        since = now - 86400
        timeline = build_timeline(
            history.checks_since(since),
            history.actions_between(since, now),
            since,
            now,
            history.problem,
        )
    finally:
        history.close()
    text, blocks = render_timeline(timeline, "24 h")
    blocks[0] = section(f"*{text}*")  # a modal has its own title; the header becomes a line
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": _("`/dify-ollama history 7d` posts the chart too.")}
            ],
        }
    )
    ctx.client.views_open(
        trigger_id=click.trigger_id,
        view={
            "type": "modal",
            "title": {"type": "plain_text", "text": _("Dify ↔ Ollama history")},
            "close": {"type": "plain_text", "text": _("Close")},
            "blocks": blocks[:100],
        },
    )
    return "ok"


def register(registry: Registry) -> None:
    registry.add_action(Action(HOME_CHECK, mutating=False, run=on_check, command="home:check"))
    registry.add_action(
        Action(HOME_HISTORY, mutating=False, run=on_history, command="home:history")
    )
