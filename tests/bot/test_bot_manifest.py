"""The app manifest creates what the code listens for, with no scope it does not need."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.listeners.commands import COMMAND

MANIFEST = Path(__file__).resolve().parents[2] / "config" / "slack-manifest.yaml"


def test_manifest_matches_the_code():
    manifest = yaml.safe_load(MANIFEST.read_text())
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == [COMMAND]
    assert "check" in commands[0]["usage_hint"] and "logs" in commands[0]["usage_hint"]
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "files:write",
        "app_mentions:read",
        "usergroups:read",
    }
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["bot_events"] == ["app_mention", "app_home_opened"]
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
