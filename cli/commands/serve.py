"""`dify-ollama serve`: run the Slack bot.

Socket Mode when SLACK_APP_TOKEN is set (no public URL needed), else HTTP on PORT at
/slack/events (gunicorn). Startup checks run first and explain any missing or malformed token.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from config.i18n import gettext as _
from config.needs import ALL

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("dify-ollama.serve")

EXIT_CONFIG = 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help=_("run the Slack bot"),
        description=_(
            "Run the Slack bot: Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP "
            "on PORT at /slack/events (verified with SLACK_SIGNING_SECRET)."
        ),
    )
    parser.add_argument(
        "--mode",
        choices=("auto", "socket", "http"),
        default="auto",
        help=_("auto (default): socket if SLACK_APP_TOKEN is set, else http"),
    )
    parser.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 - Slack must reach it (behind a TLS proxy)
        help=_("HTTP mode: address to bind (default 0.0.0.0)"),
    )
    parser.add_argument("--port", type=int, default=None, help=_("HTTP mode: port (default: PORT)"))
    parser.add_argument(
        "--check-config",
        action="store_true",
        help=_(
            "verify the configuration for real (tokens and their scopes with Slack, Socket "
            "Mode, the Docker engine) and exit: 0 all good, 2 with every problem named"
        ),
    )
    parser.set_defaults(func=run, settings_used=ALL)


_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _print(kind: str, message: str) -> None:
    word = {"info": _("info"), "warning": _("warning"), "error": _("error")}.get(kind, kind)
    print(f"dify-ollama serve: {word}: {message}", file=sys.stderr, flush=True)


# Where startup messages go: plain lines until the settings are read, then (run) redacted
# plain lines, or log records like every other line with LOG_FORMAT=json.
_sink: Callable[[str, str], None] = _print


def _say(kind: str, message: str) -> None:
    _sink(kind, message)


def run(args: argparse.Namespace, settings: Settings) -> int:
    global _sink
    from bot import logsetup
    from bot.slack_client import make_client
    from bot.startup import check_settings, verify_app_token, verify_engine, verify_slack
    from config.version import version

    formatter = logsetup.configure(settings)
    if settings.log_format == "json":
        _sink = lambda kind, message: log.log(_LEVELS[kind], message)  # noqa: E731
    else:
        redact = logsetup.redactor(settings)
        _sink = lambda kind, message: _print(kind, redact(message))  # noqa: E731
    _say("info", f"dify-ollama-bot {version()} starting")
    mode = None if args.mode == "auto" else args.mode
    report = check_settings(settings, mode)
    # --check-config verifies for real: tokens accepted, scopes granted, Socket Mode open,
    # the engine answering; `serve` itself starts when Slack or the engine are away.
    strict = bool(args.check_config)
    verify_slack(make_client(settings, timeout=10), settings, report, strict=strict)
    engine_line = None
    if strict:
        verify_app_token(settings, report)
        engine_line = verify_engine(settings, report)
    for warning in report.warnings:
        _say("warning", warning)
    for error in report.errors:
        _say("error", error)
    if not report.ok:
        if strict:
            _say(
                "error",
                _("configuration NOT OK: {count} problem(s) above").format(
                    count=len(report.errors)
                ),
            )
        return EXIT_CONFIG
    who = report.identity
    if who:
        _say(
            "info", f"Slack: {who.get('bot_name')} ({who.get('bot_user_id')}) in {who.get('team')}"
        )

    if args.check_config:
        _say("info", _("Docker engine: {why}").format(why=engine_line))
        _say(
            "info",
            _("configuration OK ({mode} mode): tokens, scopes and engine verified").format(
                mode=report.mode
            ),
        )
        return 0
    # Slack answered auth.test: the bot verifies its token once at build time (see bot.app).
    reachable = bool(report.identity)
    if report.mode == "socket":
        return _serve_socket(settings, reachable)
    return _serve_http(settings, args.host, args.port or settings.port, reachable, formatter)


def _probe_engine_later(bot: Any) -> None:
    """The engine may be down at boot: say so in the log (and in replies), start anyway."""

    def probe() -> None:
        note = bot.runtime.engine.refresh()
        if note:
            log.warning("Docker engine unreachable: %s (the bot runs and says so in replies)", note)
        else:
            log.info("Docker engine reachable")

    bot.runtime.executor.submit(probe)


def _serve_socket(settings: Settings, verify_token: bool) -> int:
    from slack_sdk.errors import SlackApiError

    from bot.app import build
    from bot.server.socket_mode import FastFailoverHandler, serve_socket_mode
    from bot.slack_client import secret

    bot = build(settings, mode="socket", verify_token=verify_token)
    app_token = secret(settings.slack_app_token)
    handler = FastFailoverHandler(bot, app_token)
    try:
        health = _health_server(settings, bot, handler)
    except OSError as exc:
        bot.shutdown()
        _say("error", f"HEALTH_PORT {settings.health_port}: cannot listen ({exc.strerror})")
        return EXIT_CONFIG
    stop = threading.Event()
    if bot.metrics is not None:
        from bot.server.metrics import serve_metrics

        try:
            serve_metrics(bot.metrics, settings.metrics_host, settings.metrics_port)
        except OSError as exc:
            bot.shutdown()
            _say("error", f"METRICS_PORT: cannot listen on {settings.metrics_port}: {exc}")
            return EXIT_CONFIG

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %s: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    _probe_engine_later(bot)
    try:
        serve_socket_mode(bot, app_token, stop, handler=handler)
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown")
        _say(
            "error",
            f"Slack refused SLACK_APP_TOKEN for Socket Mode ({error}): it needs the "
            "connections:write scope, and Socket Mode must be enabled in the app's settings.",
        )
        return EXIT_CONFIG
    finally:
        if health is not None:
            health.close()
        bot.shutdown()
    return 0


def _health_server(settings: Settings, bot: Any, handler: Any) -> Any:
    """Socket Mode's /healthz on HEALTH_PORT (None when unset); raises OSError when taken."""
    if settings.health_port is None:
        return None
    from bot.health_report import gather
    from bot.health_server import HealthServer

    def slack() -> tuple[bool, str]:
        if handler.client.is_connected():
            return True, "Socket Mode connected"
        return False, "Socket Mode not connected (connecting or reconnecting to Slack)"

    server = HealthServer(
        settings.health_host, settings.health_port, lambda: gather(bot.runtime, "socket", slack)
    ).start()
    log.info("health: http://%s:%s/healthz", settings.health_host, server.port)
    return server


def _serve_http(
    settings: Settings, host: str, port: int, verify_token: bool, formatter: logging.Formatter
) -> int:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        _say(
            "error",
            "HTTP mode runs on gunicorn, which is not installed: `pip install gunicorn`, "
            "or set SLACK_APP_TOKEN to use Socket Mode.",
        )
        return EXIT_CONFIG
    from bot.server.http import EVENTS_PATH, serve_gunicorn, wsgi_app

    def factory() -> Any:
        from bot.app import build

        bot = build(settings, mode="http", verify_token=verify_token)
        _probe_engine_later(bot)
        log.info("ready: HTTP on %s:%s%s", host, port, EVENTS_PATH)
        return wsgi_app(bot)

    from bot.logsetup import gunicorn_logger_class

    serve_gunicorn(
        factory,
        host,
        port,
        threads=max(8, settings.worker_threads * 2),
        loglevel=settings.log_level.lower(),
        logger_class=gunicorn_logger_class(formatter),
    )
    return 0
