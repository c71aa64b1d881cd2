"""`@dify-ollama <subcommand>`: the way to ask from inside a thread (slash commands cannot be
typed there)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltContext

from bot.runtime import Runtime

log = logging.getLogger(__name__)


def app_mention(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
    runtime: Runtime = context["runtime"]
    try:
        runtime.on_mention(event, body.get("event_id"))
    except Exception:
        log.exception("mention dispatch crashed")


def register(app: App) -> None:
    app.event("app_mention")(app_mention)
