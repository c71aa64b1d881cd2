"""A running bot on loopback, driven the way Slack drives it (signed HTTP requests), talking to a
recording Slack Web API double. Nothing in slack_* is patched: the fakes are at the wire."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

from bot.app import Bot, build
from bot.server.http import wsgi_app
from bot.subcommands import Registry, load_registry
from config.settings import Settings
from handlers.results import Finding, Report, Status
from tests.bot.fakes.slack_api import APP_TOKEN, BOT_TOKEN, SlackApiDouble

SIGNING_SECRET = "8f742231b10e8888abcd99a1b2c385a5"


def sign(body: bytes, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def make_settings(tmp_path: Path, slack: SlackApiDouble, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.base_url,
        "state_dir": tmp_path / "state",
        "audit_log": tmp_path / "audit.jsonl",
        "worker_threads": 4,
        "docker_host": "unix:///nonexistent/docker.sock",
    }
    values.update(overrides)
    return Settings(**values)


REFUSED = "HTTPConnectionPool(host='127.0.0.1', port=11434): Connection refused. "


def sample_report(problems: int = 1, passed: int = 2, detail_chars: int = 40) -> Report:
    findings = [
        Finding(
            id=f"problem.{i}",
            status=Status.FAIL if i % 2 == 0 else Status.WARN,
            summary=f"plugin_daemon cannot reach Ollama #{i}",
            detail=("HTTPConnectionPool(host='127.0.0.1', port=11434) refused " * 50)[
                :detail_chars
            ],
            remedy="Set the base URL to http://host.docker.internal:11434",
            service="plugin_daemon",
            fixable=True,
        )
        for i in range(problems)
    ] + [
        Finding(id=f"ok.{i}", status=Status.OK, summary=f"api container running #{i}")
        for i in range(passed)
    ]
    return Report(
        findings=tuple(findings),
        duration_ms=1234,
        context={"host": "dify-host", "dify_dir": "/opt/dify/docker"},
    )


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs of a burst (1 s retransmits)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class RunningBot:
    bot: Bot
    url: str
    slack: SlackApiDouble
    settings: Settings
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10, trust_env=False))

    # --- requests as Slack sends them ----------------------------------------------------
    def post(
        self, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        all_headers = {"Content-Type": content_type, **sign(body), **(headers or {})}
        return self.http.post(self.url, content=body, headers=all_headers)

    def command(
        self,
        text: str,
        user: str = "UALICE",
        channel: str = "COPS",
        channel_name: str = "ops",
        response: str = "r1",
    ) -> httpx.Response:
        body = urlencode(
            {
                "token": "legacy",
                "team_id": "T0001",
                "team_domain": "test",
                "channel_id": channel,
                "channel_name": channel_name,
                "user_id": user,
                "user_name": user.lower(),
                "command": "/dify-ollama",
                "text": text,
                "api_app_id": "A0001",
                "response_url": self.slack.response_url(response),
                "trigger_id": "1.2.3",
            }
        ).encode()
        return self.post(body, "application/x-www-form-urlencoded")

    def mention(
        self,
        text: str,
        user: str = "UALICE",
        channel: str = "COPS",
        ts: str = "1700000100.000100",
        thread_ts: str | None = None,
        event_id: str = "Ev001",
    ) -> httpx.Response:
        event: dict[str, Any] = {
            "type": "app_mention",
            "user": user,
            "text": text,
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        body = json.dumps(
            {
                "token": "legacy",
                "team_id": "T0001",
                "api_app_id": "A0001",
                "event": event,
                "type": "event_callback",
                "event_id": event_id,
                "event_time": int(time.time()),
                "authorizations": [{"team_id": "T0001", "user_id": "UBOT0001", "is_bot": True}],
            }
        ).encode()
        return self.post(body, "application/json")

    def click(
        self,
        action_id: str,
        value: str,
        user: str = "UALICE",
        channel: str = "COPS",
        message_ts: str = "1700000000.000001",
        thread_ts: str | None = None,
        action_ts: str = "1700000200.000001",
        ephemeral: bool = False,
    ) -> httpx.Response:
        """A button click. `ephemeral`: on a message only the user sees (Slack then sends the
        container's is_ephemeral, and chat.update of that message fails)."""
        message: dict[str, Any] = {"type": "message", "ts": message_ts, "text": "report"}
        if thread_ts:
            message["thread_ts"] = thread_ts
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": ephemeral,
        }
        if ephemeral:
            self.slack.ephemeral_ts.add(message_ts)
            if thread_ts:
                container["thread_ts"] = thread_ts
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower()},
            "api_app_id": "A0001",
            "token": "legacy",
            "trigger_id": "1.2.3",
            "team": {"id": "T0001"},
            "channel": {"id": channel, "name": "ops"},
            "container": container,
            # each interaction has its own response_url (five uses each)
            "response_url": self.slack.response_url(f"click-{action_ts}"),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "b1",
                    "value": value,
                    "action_ts": action_ts,
                }
            ],
        }
        if not ephemeral:  # Slack sends no `message` for a click on an ephemeral one
            payload["message"] = message
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(body, "application/x-www-form-urlencoded")

    def audit(self) -> list[dict[str, Any]]:
        path = self.settings.audit_path
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def wait_audit(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.audit()
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)


@pytest.fixture
def slack() -> Iterator[SlackApiDouble]:
    double = SlackApiDouble().start()
    yield double
    double.stop()


BotFactory = Callable[..., RunningBot]


@pytest.fixture
def run_bot(tmp_path: Path, slack: SlackApiDouble) -> Iterator[BotFactory]:
    """Start a bot serving the production WSGI app on loopback: run_bot(check=..., **settings)."""
    started: list[tuple[Any, RunningBot]] = []

    def start(
        check: Callable[[Settings], Report] | None = None,
        registry: Registry | None = None,
        probe: Callable[[], str | None] | None = lambda: None,
        **overrides: Any,
    ) -> RunningBot:
        settings = make_settings(tmp_path, slack, **overrides)
        bot = build(
            settings,
            mode="http",
            registry=registry or load_registry(),
            check=check or (lambda _s: sample_report()),
            probe=probe,
        )
        server = make_server(
            "127.0.0.1",
            0,
            wsgi_app(bot),
            server_class=ThreadingWSGIServer,
            handler_class=QuietHandler,
        )
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        running = RunningBot(
            bot=bot,
            url=f"http://127.0.0.1:{server.server_port}/slack/events",
            slack=slack,
            settings=settings,
        )
        started.append((server, running))
        return running

    yield start
    for server, running in started:
        server.shutdown()
        server.server_close()
        running.bot.shutdown()  # the watch, when one runs
        running.bot.runtime.shutdown(wait=True)
        running.http.close()


__all__ = ["APP_TOKEN", "BOT_TOKEN", "SIGNING_SECRET", "RunningBot", "sample_report", "sign"]
