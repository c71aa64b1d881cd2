"""Startup checks: say plainly what is missing or malformed before anything listens."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.slack_client import Mode, secret
from config.i18n import gettext as _
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
        return _("{name} contains spaces or quotes: paste the token alone, without quotes.").format(
            name=name
        )
    if value.startswith(prefix):
        return None
    kinds = {
        "xoxb-": _("a bot token"),
        "xapp-": _("an app-level token"),
        "xoxp-": _("a user token"),
    }
    kind = next((k for p, k in kinds.items() if value.startswith(p)), None)
    where = {
        "xoxb-": "OAuth & Permissions -> Bot User OAuth Token",
        "xapp-": "Basic Information -> App-Level Tokens (scope connections:write)",
    }[prefix]
    if kind:
        return _("{name} holds {kind}; it needs one starting with {prefix} ({where}).").format(
            name=name, kind=kind, prefix=prefix, where=where
        )
    return _("{name} does not look like a Slack token: expected {prefix}... ({where}).").format(
        name=name, prefix=prefix, where=where
    )


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
            _(
                "SLACK_BOT_TOKEN is not set: install the app to your workspace and copy its "
                "Bot User OAuth Token (xoxb-..., OAuth & Permissions) into the bot's environment."
            ),
        )
    ]
    if chosen == "socket":
        tokens.append(
            (
                "SLACK_APP_TOKEN",
                app_token,
                "xapp-",
                _(
                    "Socket Mode needs SLACK_APP_TOKEN (xapp-..., Basic Information -> App-Level "
                    "Tokens, scope connections:write)."
                ),
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
                _(
                    "SLACK_SIGNING_SECRET is not set: HTTP mode (used when SLACK_APP_TOKEN is "
                    "empty) verifies every request with it (Basic Information -> Signing "
                    "Secret). Or set SLACK_APP_TOKEN to use Socket Mode."
                )
            )
        elif not _SIGNING_SECRET.match(signing):
            report.warnings.append(
                _(
                    "SLACK_SIGNING_SECRET does not look like Slack's (32 hex characters): "
                    "every request will be refused with 401 if it is wrong."
                )
            )

    bad = [o for o in settings.operators if not _ID.match(o)]
    if bad:
        report.warnings.append(
            _(
                "OPERATORS entries {entries} are not Slack user (U..., W...) or user-group "
                "(S...) ids and will never match."
            ).format(entries=", ".join(bad))
        )
    if not settings.operators:
        report.warnings.append(
            _("OPERATORS is empty: nobody may run fix-env or restart from Slack until it is set.")
        )
    names = [c for c in settings.allowed_channels if not _CHANNEL_ID.match(c.lstrip("#"))]
    if names:
        report.warnings.append(
            _(
                "ALLOWED_CHANNELS entries {entries} are not channel ids (C..., G...); "
                "names match slash commands only, not mentions or buttons. Prefer ids."
            ).format(entries=", ".join(names))
        )
    return report


def verify_slack(
    client: Any, settings: Settings, report: StartupReport, strict: bool = False
) -> None:
    """auth.test with the bot token: a rejected token is an error, an unreachable API a warning
    (the network may come back; the bot retries on every request). `strict` (serve
    --check-config): an unreachable API is an error too, and the token must hold every scope
    the code uses."""
    if not report.ok:
        return
    problems = report.errors if strict else report.warnings
    try:
        response = client.auth_test()
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown"))
        if error in _REJECTED:
            report.errors.append(
                _("Slack rejected SLACK_BOT_TOKEN ({error}): copy it again.").format(error=error)
            )
        else:
            tail = "" if strict else _("; starting anyway.")
            problems.append(_("auth.test failed ({error})").format(error=error) + tail)
        return
    except Exception as exc:  # network: say so, keep going
        problems.append(
            _("could not reach Slack's Web API at {where}: {error}").format(
                where=_where(settings), error=f"{type(exc).__name__}: {exc}"
            )
            + ("" if strict else _("; starting anyway."))
        )
        return
    report.identity = {
        "bot_user_id": str(response.get("user_id", "")),
        "bot_name": str(response.get("user", "")),
        "team": str(response.get("team", "")),
        "url": str(response.get("url", "")),
    }
    if strict:
        _check_scopes(getattr(response, "headers", {}) or {}, settings, report)


def _where(settings: Settings) -> str:
    where = settings.slack_api_url
    return where if where == SLACK_DEFAULT_API_URL else f"{where} (SLACK_API_URL)"


def required_scopes(settings: Settings) -> tuple[str, ...]:
    """The bot scopes the code uses: the manifest's, user groups' only when OPERATORS names
    a group."""
    from config.manifest import GROUP_SCOPE, bot_scopes

    groups = any(o.startswith("S") for o in settings.operators)
    return tuple(s for s in bot_scopes() if s != GROUP_SCOPE or groups)


def _check_scopes(headers: Any, settings: Settings, report: StartupReport) -> None:
    """Slack names a token's scopes in auth.test's `x-oauth-scopes` response header."""
    granted_header = next(
        (str(v) for k, v in dict(headers).items() if str(k).lower() == "x-oauth-scopes"), None
    )
    if granted_header is None:
        report.warnings.append(
            _(
                "Slack did not say which scopes SLACK_BOT_TOKEN has (no x-oauth-scopes header, a "
                "proxy may strip it): scopes not verified."
            )
        )
        return
    granted = {s.strip() for s in granted_header.split(",") if s.strip()}
    missing = [s for s in required_scopes(settings) if s not in granted]
    if missing:
        report.errors.append(
            _(
                "SLACK_BOT_TOKEN lacks the scope(s) {scopes}: add them under OAuth & "
                "Permissions -> Scopes (or recreate the app from config/slack-manifest.yaml), "
                "then reinstall the app to the workspace."
            ).format(scopes=", ".join(missing))
        )


def verify_app_token(settings: Settings, report: StartupReport, timeout: int = 10) -> None:
    """Socket Mode: apps.connections.open with SLACK_APP_TOKEN must work (connections:write
    scope, Socket Mode on). The URL it returns is not used."""
    if report.mode != "socket" or not report.ok:
        return
    from slack_sdk import WebClient

    from bot.slack_client import api_base_url

    app_token = secret(settings.slack_app_token)
    try:
        WebClient(base_url=api_base_url(settings), timeout=timeout).apps_connections_open(
            app_token=app_token
        )
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown"))
        report.errors.append(
            _(
                "Slack refused SLACK_APP_TOKEN for Socket Mode ({error}): it needs the "
                "connections:write scope (Basic Information -> App-Level Tokens), and Socket "
                "Mode must be enabled in the app's settings."
            ).format(error=error)
        )
    except Exception as exc:
        report.errors.append(
            _("could not open a Socket Mode connection at {where}: {error}").format(
                where=_where(settings), error=type(exc).__name__
            )
        )


def verify_engine(settings: Settings, report: StartupReport) -> str:
    """The Docker engine answers and lets this user list containers; the line to print."""
    from handlers import engine

    client, problem, version = engine.ping(settings, timeout=min(10.0, settings.check_timeout * 2))
    if client is None or problem is not None:
        why = f"{problem.message}. {problem.remedy}" if problem else _("unreachable")
        report.errors.append(_("Docker engine: {why}").format(why=why))
        return why
    try:
        client.api.containers(limit=1)
    except Exception as exc:  # an authorization plugin, a proxy that only answers ping
        report.errors.append(
            _(
                "Docker engine {version} answers but refuses to list containers ({error}): "
                "the bot needs the docker group or root."
            ).format(version=version, error=type(exc).__name__)
        )
        return _("refuses to list containers")
    finally:
        client.close()
    return _("Docker {version}, containers readable").format(version=version)
