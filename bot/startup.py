"""Startup checks: say plainly what is missing or malformed before anything listens."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.slack_client import Mode, secret
from config.settings import SLACK_DEFAULT_API_URL, Settings

log = logging.getLogger(__name__)

_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_SIGNING_SECRET = re.compile(r"^[0-9a-f]{32}$")
_REJECTED = {
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "not_allowed_token_type",
}


@dataclass
class StartupReport:
    mode: Mode
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    identity: dict[str, str] = field(default_factory=dict)  # bot user id, team, url

    @property
    def ok(self) -> bool:
        return not self.errors


def _token_problem(name: str, value: str, prefix: str) -> str | None:
    if value != value.strip() or any(c in value for c in " \t\"'"):
        return f"{name} contains spaces or quotes: paste the token alone, without quotes."
    if value.startswith(prefix):
        return None
    kinds = {"xoxb-": "a bot token", "xapp-": "an app-level token", "xoxp-": "a user token"}
    kind = next((k for p, k in kinds.items() if value.startswith(p)), None)
    where = {
        "xoxb-": "OAuth & Permissions -> Bot User OAuth Token",
        "xapp-": "Basic Information -> App-Level Tokens (scope connections:write)",
    }[prefix]
    if kind:
        return f"{name} holds {kind}; it needs one starting with {prefix} ({where})."
    return f"{name} does not look like a Slack token: expected {prefix}... ({where})."


def check_settings(settings: Settings, mode: Mode | None = None) -> StartupReport:
    """Offline checks of the Slack settings; `mode` None: Socket Mode iff SLACK_APP_TOKEN."""
    bot_token = secret(settings.slack_bot_token)
    app_token = secret(settings.slack_app_token)
    chosen: Mode = mode or ("socket" if app_token else "http")
    report = StartupReport(mode=chosen)

    tokens = [
        (
            "SLACK_BOT_TOKEN",
            bot_token,
            "xoxb-",
            "SLACK_BOT_TOKEN is not set: install the app to your workspace and copy its "
            "Bot User OAuth Token (xoxb-..., OAuth & Permissions) into the bot's environment.",
        )
    ]
    if chosen == "socket":
        tokens.append(
            (
                "SLACK_APP_TOKEN",
                app_token,
                "xapp-",
                "Socket Mode needs SLACK_APP_TOKEN (xapp-..., Basic Information -> App-Level "
                "Tokens, scope connections:write).",
            )
        )
    for name, value, prefix, missing in tokens:
        problem = _token_problem(name, value, prefix) if value else missing
        if problem:
            report.errors.append(problem)
    if chosen != "socket":
        signing = secret(settings.slack_signing_secret)
        if not signing:
            report.errors.append(
                "SLACK_SIGNING_SECRET is not set: HTTP mode (used when SLACK_APP_TOKEN is empty) "
                "verifies every request with it (Basic Information -> Signing Secret). "
                "Or set SLACK_APP_TOKEN to use Socket Mode."
            )
        elif not _SIGNING_SECRET.match(signing):
            report.warnings.append(
                "SLACK_SIGNING_SECRET does not look like Slack's (32 hex characters): "
                "every request will be refused with 401 if it is wrong."
            )

    bad = [o for o in settings.operators if not _ID.match(o)]
    if bad:
        report.warnings.append(
            f"OPERATORS entries {', '.join(bad)} are not Slack user (U..., W...) or user-group "
            "(S...) ids and will never match."
        )
    if not settings.operators:
        report.warnings.append(
            "OPERATORS is empty: nobody may run fix-env or restart from Slack until it is set."
        )
    names = [c for c in settings.allowed_channels if not _CHANNEL_ID.match(c.lstrip("#"))]
    if names:
        report.warnings.append(
            f"ALLOWED_CHANNELS entries {', '.join(names)} are not channel ids (C..., G...); "
            "names match slash commands only, not mentions or buttons. Prefer ids."
        )
    return report


def verify_slack(client: Any, settings: Settings, report: StartupReport) -> None:
    """auth.test with the bot token: a rejected token is an error, an unreachable API a warning
    (the network may come back; the bot retries on every request)."""
    if not report.ok:
        return
    try:
        response = client.auth_test()
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown"))
        if error in _REJECTED:
            report.errors.append(f"Slack rejected SLACK_BOT_TOKEN ({error}): copy it again.")
        else:
            report.warnings.append(f"auth.test failed ({error}); starting anyway.")
        return
    except Exception as exc:  # network: say so, keep going
        where = settings.slack_api_url
        hint = "" if where == SLACK_DEFAULT_API_URL else " (SLACK_API_URL)"
        report.warnings.append(
            f"could not reach Slack's Web API at {where}{hint}: {type(exc).__name__}: {exc}; "
            "starting anyway."
        )
        return
    report.identity = {
        "bot_user_id": str(response.get("user_id", "")),
        "bot_name": str(response.get("user", "")),
        "team": str(response.get("team", "")),
        "url": str(response.get("url", "")),
    }
