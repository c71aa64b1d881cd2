"""Socket Mode end to end against a local WebSocket server speaking the envelope protocol."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.app import build
from bot.server.socket_mode import serve_socket_mode
from tests.bot.conftest import make_settings, sample_report
from tests.bot.fakes.slack_api import APP_TOKEN
from tests.bot.fakes.socket_mode_server import SocketModeServer


def slash_envelope(envelope_id: str, text: str, user: str = "UALICE") -> dict[str, Any]:
    return {
        "envelope_id": envelope_id,
        "type": "slash_commands",
        "accepts_response_payload": True,
        "payload": {
            "token": "legacy",
            "team_id": "T0001",
            "team_domain": "test",
            "channel_id": "COPS",
            "channel_name": "ops",
            "user_id": user,
            "user_name": "alice",
            "command": "/dify-ollama",
            "text": text,
            "api_app_id": "A0001",
            "response_url": "http://127.0.0.1:9/unused",
            "trigger_id": "1.2.3",
        },
    }


@pytest.fixture
def ws() -> Iterator[SocketModeServer]:
    server = SocketModeServer().start()
    yield server
    server.stop()


@pytest.fixture
def socket_bot(tmp_path, slack, ws):
    slack.ws_url = ws.url
    settings = make_settings(tmp_path, slack, slack_app_token=APP_TOKEN, slack_signing_secret=None)
    bot = build(settings, mode="socket", check=lambda _s: sample_report(), probe=lambda: None)
    stop = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            serve_socket_mode(bot, APP_TOKEN, stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ws.wait_connections(1, timeout=5)
    yield bot
    stop.set()
    thread.join(10)
    bot.runtime.shutdown()
    assert not errors


def test_slash_command_envelope_is_acked_by_envelope_id(socket_bot, ws, slack):
    ws.current.send(slash_envelope("env-help", "help"))
    ack = ws.wait_ack("env-help")
    assert "/dify-ollama check" in ack["payload"]["text"]
    assert ack["payload"]["response_type"] == "ephemeral"

    ws.current.send(slash_envelope("env-check", "check"))
    ack = ws.wait_ack("env-check")
    assert not ack.get("payload")  # empty ack; the report follows via the Web API
    update = slack.wait_for("chat.update")[0].params
    assert update["blocks"][0]["type"] == "header"
    assert len(slack.of("apps.connections.open")) == 1


def test_disconnect_message_reconnects_at_once(socket_bot, ws):
    first = ws.current
    started = time.monotonic()
    first.send(
        {"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "fake"}}
    )
    second = ws.wait_connections(2, timeout=5)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    print(f"\nreconnect after `disconnect`: {elapsed * 1000:.0f} ms")
    second.send(slash_envelope("after-disconnect", "help"))
    assert "check" in ws.wait_ack("after-disconnect")["payload"]["text"]
    answered = time.monotonic() - started
    print(f"command on the new connection answered {answered * 1000:.0f} ms after `disconnect`")
    assert answered < 2.5  # Slack gives an ack 3 s
    assert first.closed_at is not None  # the old connection was closed by the client


@pytest.mark.parametrize("fault", ["reset", "close_without_frame"])
def test_connection_killed_without_close_frame_is_replaced(socket_bot, ws, fault):
    started = time.monotonic()
    getattr(ws.current, fault)()
    second = ws.wait_connections(2, timeout=20)
    elapsed = time.monotonic() - started
    print(f"\nreconnect after {fault}: {elapsed:.1f} s")
    assert elapsed < 20
    second.send(slash_envelope(f"after-{fault}", "help"))
    assert ws.wait_ack(f"after-{fault}")


@pytest.mark.slow
def test_silent_peer_is_noticed_within_20_seconds(socket_bot, ws):
    """The TCP connection stays up but nothing comes back (no close frame, no FIN, no pongs):
    what a dead NAT mapping or a vanished peer looks like."""
    time.sleep(2.5)  # at least one ping/pong round, as in a connection that has been up a while
    started = time.monotonic()
    ws.current.go_silent()
    second = ws.wait_connections(2, timeout=25)
    elapsed = time.monotonic() - started
    print(f"\nreconnect after a silent drop: {elapsed:.1f} s")
    assert elapsed < 20
    second.send(slash_envelope("after-silence", "help"))
    assert ws.wait_ack("after-silence")
