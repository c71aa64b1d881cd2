"""Every button whose action_id starts with `dify-ollama:` goes through the registry."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot.runtime import Runtime
from bot.subcommands import ACTION_PREFIX

log = logging.getLogger(__name__)


def dify_ollama_action(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext
) -> None:
    ack()  # first: Slack shows an error on the button after 3 s without it
    runtime: Runtime = context["runtime"]
    try:
        runtime.on_action(body, action)
    except Exception:
        log.exception("button dispatch crashed (%s)", action.get("action_id"))


def register(app: App) -> None:
    app.action(re.compile("^" + re.escape(ACTION_PREFIX)))(dify_ollama_action)
