"""The App Home tab: published when a user opens it."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltContext

log = logging.getLogger(__name__)


def app_home_opened(event: dict[str, Any], context: BoltContext) -> None:
    home = context.get("home")
    if home is None or event.get("tab", "home") != "home":
        return
    try:
        home.opened(str(event.get("user", "")))
    except Exception:
        log.exception("app_home_opened dispatch crashed")


def register(app: App) -> None:
    app.event("app_home_opened")(app_home_opened)
