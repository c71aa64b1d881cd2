"""Building the bolt App around the Runtime (bolt-python starter template layout)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot.health import Probe
from bot.home import HomeTab
from bot.listeners import register_listeners
from bot.runtime import CachedCheck, CheckFn, Runtime
from bot.slack_client import Mode, api_base_url, make_client, secret
from bot.subcommands import Registry
from bot.watch import WatchService, action_recorder, default_check, recording
from config.settings import Settings
from handlers.history import History, open_history
from handlers.metrics import CheckMetrics

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
    history: History | None = None
    home: HomeTab | None = None
    metrics: CheckMetrics | None = None  # set when METRICS_ENABLED / METRICS_PORT
    watch: WatchService | None = None  # set when WATCH_CHANNEL
    host_watches: list[WatchService] = field(default_factory=list)  # HOSTS_FILE's other hosts

    def shutdown(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        for watch in self.host_watches:
            watch.stop()
        self.runtime.shutdown(wait=False)
        if self.history is not None:
            self.history.close()


def build(
    settings: Settings,
    *,
    mode: Mode = "http",
    client: WebClient | None = None,
    registry: Registry | None = None,
    check: CheckFn | None = None,
    probe: Probe | None = None,
    verify_token: bool = True,
    start_watch: bool = True,
) -> Bot:
    """The bolt App and its Runtime. `check`, `probe` and `registry` exist for tests and
    embedding; by default they are handlers.check.run_check, handlers.engine.ping and every
    module under bot/subcommands. `verify_token` False skips the auth.test at construction
    (when Slack was unreachable at startup: bolt then calls it on the first request)."""
    client = client or make_client(settings)
    # Every check run is recorded (history, metrics) whoever asked; see bot/watch.py.
    history = open_history(settings.state_path, settings.history_days)
    metrics = CheckMetrics() if settings.metrics_on else None
    # The real check keeps engine facts between runs while the engine's events are followed
    # (bot/runtime.CachedCheck); the runtime closes it.
    cached = CachedCheck(settings) if check is None else None
    recorded = recording(check or cached or default_check, history, metrics)
    runtime = Runtime(settings, client, registry=registry, check=recorded, probe=probe)
    runtime.cached_check = cached
    runtime.auditor.listeners.append(action_recorder(history, runtime.registry))
    home = HomeTab(runtime, history)
    # With HOSTS_FILE, this machine is watched only when the file lists it (an entry without
    # `ssh` or settings): the bot may well run where no Dify is.
    local_watched = not runtime.hosts.configured or any(
        not runtime.hosts.remote(entry.name) for entry in runtime.hosts.hosts.entries
    )
    watch = (
        WatchService(runtime, history, metrics, home)
        if settings.watch_channel and local_watched
        else None
    )
    # With HOSTS_FILE the watch covers every host: this machine as before, the others through
    # their transports (bot/hosts.py), each alert naming its host.
    host_watches = [
        WatchService(runtime, history, metrics, home, host=entry.name)
        for entry in runtime.hosts.hosts.entries
        if settings.watch_channel and runtime.hosts.remote(entry.name)
    ]
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
        context["home"] = home
        next()

    app.use(inject_runtime)
    register_listeners(app)
    if start_watch:
        for each in [watch, *host_watches]:
            if each is not None:
                each.start()
    return Bot(
        app=app,
        runtime=runtime,
        history=history,
        home=home,
        metrics=metrics,
        watch=watch,
        host_watches=host_watches,
    )


def build_app(settings: Settings, **kwargs: Any) -> App:
    return build(settings, **kwargs).app
