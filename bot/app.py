"""Building the bolt App around the Runtime (bolt-python starter template layout)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from slack_bolt import App, BoltContext
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from bot.health import Probe
from bot.listeners import register_listeners
from bot.runtime import CheckFn, Runtime
from bot.subcommands import Registry
from config.settings import Settings

log = logging.getLogger(__name__)

Mode = Literal["http", "socket"]


def secret(value: Any) -> str:
    """The plain value of an optional SecretStr ('' when unset)."""
    return value.get_secret_value().strip() if value is not None else ""


def api_base_url(settings: Settings) -> str:
    # WebClient joins method names onto base_url, which therefore must end with "/".
    url = settings.slack_api_url
    return url if url.endswith("/") else url + "/"


def make_client(settings: Settings, timeout: int = 15) -> WebClient:
    return WebClient(
        token=secret(settings.slack_bot_token) or None,
        base_url=api_base_url(settings),
        timeout=timeout,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),
            RateLimitErrorRetryHandler(max_retry_count=2),
        ],
    )


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
) -> Bot:
    """The bolt App and its Runtime. `check`, `probe` and `registry` exist for tests and
    embedding; by default they are handlers.check.run_check, handlers.engine.ping and every
    module under bot/subcommands."""
    client = client or make_client(settings)
    runtime = Runtime(settings, client, registry=registry, check=check, probe=probe)
    app = App(
        client=client,
        signing_secret=secret(settings.slack_signing_secret),
        # Our own startup check calls auth.test and explains failures (bot/startup.py).
        token_verification_enabled=False,
        # The listeners only parse and queue (milliseconds), so the ack can wait for them;
        # no work ever runs on bolt's listener pool.
        process_before_response=True,
        # Socket Mode has no signatures: the WebSocket itself is authenticated by the app token.
        request_verification_enabled=(mode == "http"),
        logger=logging.getLogger("bot.bolt"),
    )

    def inject_runtime(context: BoltContext, next: Callable[[], None]) -> None:
        context["runtime"] = runtime
        next()

    app.use(inject_runtime)
    register_listeners(app)
    return Bot(app=app, runtime=runtime)


def build_app(settings: Settings, **kwargs: Any) -> App:
    return build(settings, **kwargs).app
