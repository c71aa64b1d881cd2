"""Bolt listeners, one module per kind, each with `register(app)` (bolt-python starter layout).

Callbacks find the Runtime in bolt's context (`context["runtime"]`), put there by a global
middleware that bot/app.py installs; they only hand the request to it and ack.
"""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, commands, events, home


def register_listeners(app: App) -> None:
    commands.register(app)
    actions.register(app)
    events.register(app)
    home.register(app)
