"""`/dify-ollama ...`: answered in the ack (help, usage, refusals) or queued."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot.runtime import Runtime, new_request_id

log = logging.getLogger(__name__)

COMMAND = "/dify-ollama"


def dify_ollama_command(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    runtime: Runtime = context["runtime"]
    try:
        answer = runtime.on_command(body)
    except Exception:
        rid = new_request_id()
        log.exception("request %s: command dispatch crashed", rid)
        ack(text=f":x: Something went wrong (error id `{rid}`).", response_type="ephemeral")
        return
    if answer is None:
        ack()
    else:
        # Only the requester sees ack answers (help, usage, refusals): no channel noise.
        ack(response_type="ephemeral", **answer)


def register(app: App) -> None:
    app.command(COMMAND)(dify_ollama_command)
