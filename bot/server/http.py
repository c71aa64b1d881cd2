"""HTTP mode: the bolt app as a WSGI application at /slack/events, served by gunicorn.

Why gunicorn, one worker process, threads: bolt's own `App.start()` is http.server (a
development server). gunicorn's gthread worker gives a supervised process (restarted if it
dies), request-line/header limits, keep-alive handling and graceful shutdown on SIGTERM. The
bot keeps state in memory (its executor, single-flight check, user-group cache, delivery
dedupe), so it runs exactly one worker process; concurrency comes from threads, and Slack
traffic for one bot is small. The bot is built in the worker, after the fork.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.health_report import HEALTH_PATH, wsgi_answer
from handlers.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from bot.app import Bot

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
METRICS_PATH = "/metrics"
MAX_BODY = 1024 * 1024  # Slack's payloads are a few kB; anything huge is not Slack
# Slack's X-Slack-Request-Timestamp: Unix seconds. slack_sdk's verifier calls int() on it, which
# raises on "" or "abc" (HTTP 500 with a traceback), accepts " 1_7e..."-like oddities such as
# "1_700_000_000" and non-ASCII digits, and chokes on 5000 digits: only plain ASCII digits pass.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def wsgi_app(bot: Bot) -> WSGIApplication:
    slack = SlackRequestHandler(bot.app, path=EVENTS_PATH)

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == HEALTH_PATH and method in ("GET", "HEAD"):
            status, headers, chunks = wsgi_answer(bot.runtime, method)
            start_response(status, headers)
            return chunks
        if path == METRICS_PATH and method == "GET" and bot.metrics is not None:
            # Not from Slack, so not signed: what Prometheus scrapes (statuses and timings).
            data = bot.metrics.render()
            start_response(
                "200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(data)))]
            )
            return [data]
        if path == EVENTS_PATH and method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                start_response("413 Content Too Large", [("Content-Length", "0")])
                return [b""]
            timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")
            if timestamp is not None and not _TIMESTAMP.fullmatch(timestamp):
                # Unsigned as far as we can tell: the same answer as a bad signature.
                log.warning("refused a request with a malformed X-Slack-Request-Timestamp")
                body = b"invalid request"
                start_response(
                    "401 Unauthorized",
                    [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
                )
                return [body]
        return slack(environ, start_response)

    return application


def serve_gunicorn(
    factory: Callable[[], WSGIApplication],
    host: str,
    port: int,
    threads: int = 8,
    on_exit: Callable[[], None] | None = None,
    loglevel: str = "info",
    logger_class: type | None = None,
) -> None:
    """Run gunicorn in this process (it forks one worker that calls `factory`). Blocks."""
    from gunicorn.app.base import BaseApplication  # optional dependency, HTTP mode only

    options: dict[str, Any] = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 30,
        "graceful_timeout": 20,
        "keepalive": 5,
        "proc_name": "dify-ollama-bot",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": loglevel,
        "logger_class": logger_class,  # bot.logsetup: LOG_FORMAT for gunicorn's own lines
        "control_socket_disable": True,  # gunicorn >= 25 opens a control socket otherwise
        "worker_exit": (lambda _server, _worker: on_exit()) if on_exit else None,
    }

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None and key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> WSGIApplication:
            return factory()

    _Server().run()
