"""Socket Mode when Slack is unreachable at start (issue 11): the bot logs one line per failed
attempt, backs off, and connects once Slack answers; it never dies with a traceback. The fakes
are at the wire: the Slack Web API double on a port that refuses connections until it starts
there, and the Socket Mode WebSocket server refusing until it listens."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from bot.app import build
from bot.server.socket_mode import serve_socket_mode
from tests.bot.conftest import make_settings, sample_report
from tests.bot.fakes.slack_api import APP_TOKEN, SlackApiDouble
from tests.bot.fakes.socket_mode_server import SocketModeServer
from tests.bot.server.test_bot_serve_process import free_port, serve_env, start, stop
from tests.bot.server.test_bot_socket_mode import slash_envelope


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class _Serving:
    """serve_socket_mode in a thread, as `dify-ollama serve` runs it; records what escaped."""

    def __init__(self, tmp_path: Path, api_url: str) -> None:
        settings = make_settings(
            tmp_path, _api(api_url), slack_app_token=APP_TOKEN, slack_signing_secret=None
        )
        self.bot = build(
            settings,
            mode="socket",
            check=lambda _s: sample_report(),
            probe=lambda: None,
            verify_token=False,  # Slack is down at start: serve skips the token check then
        )
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            serve_socket_mode(self.bot, APP_TOKEN, self.stop, retry_first=0.2, retry_max=0.4)
        except BaseException as exc:
            self.errors.append(exc)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.bot.runtime.shutdown()


class _Url:
    """Just the attribute make_settings and serve_env read from a SlackApiDouble."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url


def _api(base_url: str) -> SlackApiDouble:
    """An API address where no double runs (yet), where a SlackApiDouble is expected."""
    return cast(SlackApiDouble, _Url(base_url))


@pytest.fixture
def ws() -> Iterator[SocketModeServer]:
    server = SocketModeServer().start()
    yield server
    server.stop()


def _failed_attempts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cannot reach Slack" in r.getMessage()]


def test_web_api_unreachable_at_start_then_up(tmp_path, ws, caplog) -> None:
    port = free_port()  # nothing listens here yet: apps.connections.open gets URLError
    caplog.set_level(logging.INFO, logger="bot.server.socket_mode")
    serving = _Serving(tmp_path, f"http://127.0.0.1:{port}/api/")
    slack = None
    try:
        _wait(lambda: len(_failed_attempts(caplog)) >= 2, 20, "two failed attempts")
        assert serving.thread.is_alive() and not serving.errors
        assert "URLError" in _failed_attempts(caplog)[0]
        assert "retrying in" in _failed_attempts(caplog)[0]
        slack = SlackApiDouble(port=port)
        slack.ws_url = ws.url
        slack.start()
        ws.wait_connections(1, timeout=20)
        ws.current.send(slash_envelope("after-outage", "help"))
        assert "/dify-ollama check" in ws.wait_ack("after-outage")["payload"]["text"]
    finally:
        serving.close()
        if slack is not None:
            slack.stop()
    assert not serving.errors
    assert any("connected after" in r.getMessage() for r in caplog.records)


def test_websocket_refused_at_first_then_accepted(tmp_path, ws, caplog) -> None:
    closed = free_port()
    refused_url = f"ws://127.0.0.1:{closed}/link/?ticket=refused"
    issued: list[str] = []

    def url() -> str:
        issued.append("refused" if len(issued) < 2 else "real")
        return refused_url if issued[-1] == "refused" else ws.url()

    slack = SlackApiDouble().start()
    slack.ws_url = url
    caplog.set_level(logging.INFO, logger="bot.server.socket_mode")
    serving = _Serving(tmp_path, slack.base_url)
    try:
        ws.wait_connections(1, timeout=20)
        ws.current.send(slash_envelope("after-refusal", "help"))
        assert "/dify-ollama check" in ws.wait_ack("after-refusal")["payload"]["text"]
    finally:
        serving.close()
        slack.stop()
    assert not serving.errors
    # slack_sdk's monitor replaces a failed WebSocket itself, each time with a fresh URL.
    assert issued[:3] == ["refused", "refused", "real"]


def test_a_refused_app_token_is_still_final(tmp_path, ws) -> None:
    slack = SlackApiDouble().start()
    slack.ws_url = ws.url
    slack.failing["apps.connections.open"] = "invalid_auth"
    serving = _Serving(tmp_path, slack.base_url)
    try:
        serving.thread.join(10)
    finally:
        serving.close()
        slack.stop()
    assert len(serving.errors) == 1 and "invalid_auth" in str(serving.errors[0])


def test_serve_process_survives_slack_down_at_start(tmp_path) -> None:
    port = free_port()
    ws = SocketModeServer().start()
    env = serve_env(tmp_path, _api(f"http://127.0.0.1:{port}/api/"), SLACK_APP_TOKEN=APP_TOKEN)
    proc = start([], env, tmp_path)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    slack = None
    try:
        _wait(lambda: any("cannot reach Slack" in x for x in lines), 30, "a failed attempt")
        assert proc.poll() is None, "".join(lines)
        slack = SlackApiDouble(port=port)
        slack.ws_url = ws.url
        slack.start()
        ws.wait_connections(1, timeout=30)
        ws.current.send(slash_envelope("proc-after-outage", "help"))
        assert "/dify-ollama check" in ws.wait_ack("proc-after-outage")["payload"]["text"]
    finally:
        stop(proc)
        reader.join(10)
        ws.stop()
        if slack is not None:
            slack.stop()
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    assert "retrying in" in output and "connected after" in output
    assert APP_TOKEN not in output
