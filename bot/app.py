"""Building the bolt App around the Runtime (bolt-python starter template layout)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot.health import Probe
from bot.listeners import register_listeners
from bot.runtime import CheckFn, Runtime
from bot.slack_client import Mode, api_base_url, make_client, secret
from bot.subcommands import Registry
from config.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["Bot", "Mode", "api_base_url", "build", "build_app", "make_client", "secret"]


class _DropTokenWarning(logging.Filter):
    """bolt warns that SLACK_BOT_TOKEN (read from the environment by itself) is unused when a
    client is given; the client carries that very token, so the warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


@dataclass
class Bot:
    app: App
    runtime: Runtime

    def shutdown(self) -> None:
        self.runtime.shutdown(wait=False)


def build(
    settings: Settings,
    *,
    mode: Mode = "http",
    client: WebClient | None = None,
    registry: Registry | None = None,
    check: CheckFn | None = None,
    probe: Probe | None = None,
    verify_token: bool = True,
) -> Bot:
    """The bolt App and its Runtime. `check`, `probe` and `registry` exist for tests and
    embedding; by default they are handlers.check.run_check, handlers.engine.ping and every
    module under bot/subcommands. `verify_token` False skips the auth.test at construction
    (when Slack was unreachable at startup: bolt then calls it on the first request)."""
    client = client or make_client(settings)
    runtime = Runtime(settings, client, registry=registry, check=check, probe=probe)
    bolt_logger = logging.getLogger("bot.bolt")
    if not any(isinstance(f, _DropTokenWarning) for f in bolt_logger.filters):
        bolt_logger.addFilter(_DropTokenWarning())
    options: dict[str, Any] = {
        "client": client,
        "signing_secret": secret(settings.slack_signing_secret),
        # The listeners only parse and queue (milliseconds), so the ack can wait for them;
        # no work ever runs on bolt's listener pool.
        "process_before_response": True,
        # Socket Mode has no signatures: the WebSocket itself is authenticated by the app token.
        "request_verification_enabled": mode == "http",
        "logger": bolt_logger,
    }
    app = None
    if verify_token:
        try:
            # auth.test now, once: otherwise bolt calls it lazily on the first requests, each
            # of a burst of them waiting on its own call.
            app = App(token_verification_enabled=True, **options)
        except Exception as exc:  # Slack unreachable: start anyway
            log.warning("auth.test failed (%s); bolt will retry on the first request", exc)
    if app is None:
        app = App(token_verification_enabled=False, **options)

    def inject_runtime(context: BoltContext, next: Callable[[], None]) -> None:
        context["runtime"] = runtime
        next()

    app.use(inject_runtime)
    register_listeners(app)
    return Bot(app=app, runtime=runtime)


def build_app(settings: Settings, **kwargs: Any) -> App:
    return build(settings, **kwargs).app
