"""The Slack app manifest (`slack-manifest.yaml`, shipped with the package): what the app
asks Slack for, read by the startup checks to compare with what a token was granted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MANIFEST_PATH = Path(__file__).with_name("slack-manifest.yaml")
# Needed only when OPERATORS names user groups (the manifest says so too).
GROUP_SCOPE = "usergroups:read"


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def bot_scopes(path: Path = MANIFEST_PATH) -> tuple[str, ...]:
    """The bot token scopes the manifest asks for (the ones the code uses)."""
    scopes = ((load_manifest(path).get("oauth_config") or {}).get("scopes") or {}).get("bot")
    return tuple(str(s) for s in scopes or ())
