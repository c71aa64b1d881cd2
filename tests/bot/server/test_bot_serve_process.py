"""`dify-ollama serve` as a real process: startup checks, HTTP mode on gunicorn, Socket Mode."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.bot.conftest import SIGNING_SECRET, sign
from tests.bot.fakes.slack_api import APP_TOKEN, BOT_TOKEN, SlackApiDouble
from tests.bot.fakes.socket_mode_server import SocketModeServer
from tests.bot.server.test_bot_socket_mode import slash_envelope

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_env(tmp_path: Path, slack: SlackApiDouble, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DIFY_", "OPERATORS", "ALLOWED_", "AUDIT_", "REPLY_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.base_url,
        STATE_DIR=str(tmp_path / "state"),
        AUDIT_LOG=str(tmp_path / "audit.jsonl"),
        DOCKER_HOST="unix:///nonexistent/docker.sock",
        OLLAMA_URL="http://127.0.0.1:9",
        HOME=str(tmp_path),
    )
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.stdout.read() if proc.stdout else ""


def run_once(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "serve", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def http_server(tmp_path: Path, slack: SlackApiDouble) -> Iterator[tuple[str, float]]:
    port = free_port()
    started = time.monotonic()
    proc = start(["--host", "127.0.0.1", "--port", str(port)], serve_env(tmp_path, slack), tmp_path)
    base = f"http://127.0.0.1:{port}"
    ready = None
    with httpx.Client(timeout=1, trust_env=False) as client:
        for _ in range(200):  # 20 s at most
            if proc.poll() is not None:
                break
            try:
                # 503 is an answer too: the engine is unreachable here on purpose
                if client.get(base + "/healthz").status_code in (200, 503):
                    ready = time.monotonic() - started
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    if ready is None:
        pytest.fail(f"serve did not start:\n{stop(proc)}")
    yield base, ready
    output = stop(proc)
    assert proc.returncode == 0, output
    assert BOT_TOKEN not in output and SIGNING_SECRET not in output


def test_http_mode_serves_signed_requests_on_gunicorn(http_server, slack, tmp_path):
    base, ready = http_server
    print(f"\nserve ready in {ready:.2f} s")
    body = urlencode(
        {
            "command": "/dify-ollama",
            "text": "check",
            "user_id": "UALICE",
            "channel_id": "COPS",
            "channel_name": "ops",
            "team_id": "T0001",
            "response_url": slack.response_url(),
        }
    ).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(timeout=10, trust_env=False) as client:
        bad = client.post(
            base + "/slack/events",
            content=body,
            headers={**headers, **sign(body, secret="0" * 32)},
        )
        assert bad.status_code == 401
        stale = client.post(
            base + "/slack/events",
            content=body,
            headers={**headers, **sign(body, timestamp=int(time.time()) - 3600)},
        )
        assert stale.status_code == 401
        ok = client.post(base + "/slack/events", content=body, headers={**headers, **sign(body)})
        assert ok.status_code == 200
    update = slack.wait_for("chat.update", timeout=20)[0].params
    blocks = json.dumps(update["blocks"])
    assert "Docker engine unreachable" in blocks  # the real check, engine down: said so
    audit_path = tmp_path / "audit.jsonl"
    for _ in range(50):  # the audit line follows the reply
        if audit_path.exists():
            break
        time.sleep(0.1)
    audit = [json.loads(x) for x in audit_path.read_text().splitlines()]
    assert audit[-1]["command"] == "check" and audit[-1]["outcome"] == "fail"


@pytest.mark.parametrize(
    "env_change,args,message",
    [
        ({"SLACK_BOT_TOKEN": ""}, [], "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxp-123"}, [], "SLACK_BOT_TOKEN holds a user token"),
        ({"SLACK_BOT_TOKEN": '"xoxb-1"'}, [], "spaces or quotes"),
        ({"SLACK_SIGNING_SECRET": ""}, [], "SLACK_SIGNING_SECRET is not set"),
        ({"SLACK_APP_TOKEN": "xoxb-oops"}, [], "SLACK_APP_TOKEN holds a bot token"),
        ({}, ["--mode", "socket"], "Socket Mode needs SLACK_APP_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxb-revoked"}, [], "Slack rejected SLACK_BOT_TOKEN (invalid_auth)"),
    ],
)
def test_startup_checks_explain_bad_configuration(tmp_path, slack, env_change, args, message):
    result = run_once(args, serve_env(tmp_path, slack, **env_change), tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    for secret in ("xoxp-123", "xoxb-revoked", "xoxb-oops"):
        assert secret not in result.stderr


def test_check_config_fails_with_a_dead_engine_socket_and_unreachable_slack(tmp_path, slack):
    env = serve_env(tmp_path, slack, OPERATORS="alice", ALLOWED_CHANNELS="ops")
    result = run_once(["--check-config"], env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Docker engine: Docker socket /nonexistent/docker.sock does not exist" in result.stderr
    assert "OPERATORS entries alice are not Slack user" in result.stderr
    assert "ALLOWED_CHANNELS entries ops are not channel ids" in result.stderr
    assert "configuration NOT OK" in result.stderr and "configuration OK" not in result.stderr
    offline = serve_env(tmp_path, slack, SLACK_API_URL=f"http://127.0.0.1:{free_port()}/api/")
    result = run_once(["--check-config"], offline, tmp_path)
    assert result.returncode == 2
    assert "error: could not reach Slack's Web API" in result.stderr


@pytest.mark.parametrize(
    ("granted", "operators", "missing"),
    [
        (["commands", "chat:write"], "U0ALICE", "files:write, app_mentions:read"),
        (
            ["commands", "chat:write", "files:write", "app_mentions:read"],
            "S0OPS",
            "usergroups:read",
        ),
    ],
)
def test_check_config_compares_the_tokens_scopes_with_what_the_code_uses(
    tmp_path, slack, granted, operators, missing
):
    slack.scopes = granted
    result = run_once(["--check-config"], serve_env(tmp_path, slack, OPERATORS=operators), tmp_path)
    assert result.returncode == 2
    assert f"SLACK_BOT_TOKEN lacks the scope(s) {missing}:" in result.stderr


def test_check_config_refuses_an_app_token_slack_refuses(tmp_path, slack):
    env = serve_env(tmp_path, slack, SLACK_APP_TOKEN="xapp-wrong")
    result = run_once(["--check-config"], env, tmp_path)
    assert result.returncode == 2
    assert "Slack refused SLACK_APP_TOKEN for Socket Mode (invalid_auth)" in result.stderr
    assert "xapp-wrong" not in result.stderr


@pytest.mark.docker
def test_check_config_ok_only_when_everything_answers(tmp_path, slack, docker_engine):
    slack.ws_url = lambda: "ws://127.0.0.1:9/unused"
    env = serve_env(
        tmp_path,
        slack,
        SLACK_APP_TOKEN=APP_TOKEN,
        OPERATORS="U0ALICE",
        DOCKER_HOST=os.environ["DOCKER_HOST"],
    )
    result = run_once(["--check-config"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "configuration OK (socket mode)" in result.stderr
    assert "containers readable" in result.stderr
    assert [c.method for c in slack.calls] == ["auth.test", "apps.connections.open"]
    # usergroups:read is not needed without a user group in OPERATORS
    slack.scopes = ["commands", "chat:write", "files:write", "app_mentions:read"]
    assert run_once(["--check-config"], env, tmp_path).returncode == 0
    slack.scopes = None  # a proxy that strips the header: said, not fatal
    result = run_once(["--check-config"], env, tmp_path)
    assert result.returncode == 0 and "scopes not verified" in result.stderr


def test_socket_mode_process_connects_and_acks(tmp_path, slack):
    ws = SocketModeServer().start()
    slack.ws_url = ws.url
    proc = start([], serve_env(tmp_path, slack, SLACK_APP_TOKEN=APP_TOKEN), tmp_path)
    try:
        ws.wait_connections(1, timeout=20)
        ws.current.send(slash_envelope("proc-help", "help"))
        assert "/dify-ollama check" in ws.wait_ack("proc-help")["payload"]["text"]
    finally:
        output = stop(proc)
        ws.stop()
    assert proc.returncode == 0, output
    assert APP_TOKEN not in output


def test_socket_mode_refused_app_token(tmp_path, slack):
    env = serve_env(tmp_path, slack, SLACK_APP_TOKEN="xapp-wrong")
    result = run_once([], env, tmp_path)
    assert result.returncode == 2
    assert "Slack refused SLACK_APP_TOKEN" in result.stderr
