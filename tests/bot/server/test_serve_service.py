"""`dify-ollama serve` as a service: --version, the version in the first log line and in
/healthz, LOG_FORMAT=json (gunicorn's lines too), LOG_LEVEL, and /healthz telling the truth in
both modes (Socket Mode on HEALTH_PORT). Real processes, real HTTP on loopback, the Slack
doubles for Slack."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.logsetup import JsonFormatter, RedactingTextFormatter, redactor
from config.settings import Settings
from config.version import version
from tests.bot.fakes.slack_api import APP_TOKEN, BOT_TOKEN, SlackApiDouble
from tests.bot.fakes.socket_mode_server import SocketModeServer
from tests.bot.server.test_bot_serve_process import (
    free_port,
    run_once,
    serve_env,
    start,
    stop,
)
from tests.rig.cli_process import run_cli

ROOT = Path(__file__).resolve().parents[3]


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 20.0, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(step)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def get_health(url: str) -> httpx.Response | None:
    try:
        with httpx.Client(timeout=5, trust_env=False) as client:
            return client.get(url)
    except httpx.HTTPError:
        return None


def test_version_flag_is_the_package_version() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"dify-ollama {declared}\n" and version() == declared


def test_json_logs_one_object_per_line_with_gunicorn(tmp_path: Path, slack: SlackApiDouble):
    port = free_port()
    env = serve_env(tmp_path, slack, LOG_FORMAT="json", LOG_LEVEL="info")
    proc = start(["--host", "127.0.0.1", "--port", str(port)], env, tmp_path)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        health = wait_for(lambda: get_health(url), "/healthz")
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output
    records = [json.loads(line) for line in output.splitlines()]  # every line is JSON
    assert {"ts", "level", "logger", "message"} <= set(records[0])
    assert records[0]["message"] == f"dify-ollama-bot {version()} starting"
    gunicorn = [r for r in records if r["logger"].startswith("gunicorn")]
    assert any("Listening at" in r["message"] for r in gunicorn), records
    assert any(r["message"].startswith("ready: HTTP on") for r in records)
    assert BOT_TOKEN not in output
    # the engine socket does not exist here: not healthy, and the body says why
    assert health.status_code == 503
    body = health.json()
    assert body["version"] == version() and body["engine"]["ok"] is False


def test_log_level_warning_hides_info(tmp_path: Path, slack: SlackApiDouble) -> None:
    env = serve_env(tmp_path, slack, LOG_FORMAT="json", LOG_LEVEL="warning")
    done = run_once(["--check-config"], env, tmp_path)
    assert done.returncode == 2, done.stderr  # no engine here: --check-config says NOT OK
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert records and all(r["level"] in ("WARNING", "ERROR") for r in records)
    assert any("Docker engine" in r["message"] for r in records)
    assert not any("starting" in r["message"] for r in records)  # INFO: below the level


def test_bad_log_settings_are_config_errors(tmp_path: Path, slack: SlackApiDouble) -> None:
    for key, value in (("LOG_FORMAT", "xml"), ("LOG_LEVEL", "loud"), ("HEALTH_PORT", "70000")):
        done = run_once(["--check-config"], serve_env(tmp_path, slack, **{key: value}), tmp_path)
        assert done.returncode == 2 and key in done.stderr, done.stderr


def test_formatters_redact_message_traceback_and_extras() -> None:
    settings = Settings(_env_file=None, slack_bot_token=BOT_TOKEN)  # type: ignore[call-arg,arg-type]
    redact = redactor(settings)
    logger = logging.getLogger("tests.logsetup")
    try:
        raise RuntimeError(f"refused {BOT_TOKEN}")
    except RuntimeError:
        record = logger.makeRecord(
            "tests.logsetup",
            logging.ERROR,
            __file__,
            1,
            'token %s in "quotes"\nsecond line',
            (BOT_TOKEN,),
            exc_info=sys.exc_info(),
            extra={"request_id": "abc123", "url": f"https://u:{BOT_TOKEN}@h/"},
        )
    line = JsonFormatter(redact).format(record)
    assert "\n" not in line and BOT_TOKEN not in line
    data = json.loads(line)
    assert data["message"].startswith('token [REDACTED] in "quotes"\nsecond line')
    assert "RuntimeError: refused [REDACTED]" in data["exception"]
    assert data["request_id"] == "abc123" and BOT_TOKEN not in data["url"]
    text = RedactingTextFormatter(redact).format(record)
    assert BOT_TOKEN not in text and "ERROR tests.logsetup: token [REDACTED]" in text


def test_socket_mode_healthz_follows_the_connection(tmp_path: Path, slack: SlackApiDouble):
    ws = SocketModeServer().start()
    slack.ws_url = ws.url
    port = free_port()
    env = serve_env(tmp_path, slack, SLACK_APP_TOKEN=APP_TOKEN, HEALTH_PORT=str(port))
    proc = start([], env, tmp_path)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        ws.wait_connections(1, timeout=20)

        def slack_ok() -> dict[str, Any] | None:
            answer = get_health(url)
            data = answer.json() if answer is not None else None
            return data if data and data["slack"]["ok"] else None

        data = wait_for(slack_ok, "Socket Mode connected in /healthz")
        assert data["mode"] == "socket" and data["version"] == version()
        assert data["slack"]["detail"] == "Socket Mode connected"
        # no engine here (DOCKER_HOST points nowhere): the bot cannot do its job
        assert get_health(url).status_code == 503  # type: ignore[union-attr]
        assert data["engine"]["ok"] is False and data["last_check_seconds_ago"] is None
        ws.stop()  # Slack goes away: the WebSocket drops and the client keeps retrying

        def slack_lost() -> dict[str, Any] | None:
            answer = get_health(url)
            data = answer.json() if answer is not None else None
            return data if data and not data["slack"]["ok"] else None

        lost = wait_for(slack_lost, "/healthz to notice the lost connection", timeout=30)
        assert "not connected" in lost["slack"]["detail"]
        head = httpx.head(url, timeout=5)
        assert head.status_code == 503 and head.content == b""
        assert httpx.get(url.replace("/healthz", "/other"), timeout=5).status_code == 404
    finally:
        output = stop(proc)
        ws.stop()
    assert proc.returncode == 0, output
    assert APP_TOKEN not in output


@pytest.mark.docker
def test_socket_mode_healthz_200_with_engine(tmp_path: Path, slack: SlackApiDouble, docker_engine):
    ws = SocketModeServer().start()
    slack.ws_url = ws.url
    port = free_port()
    env = serve_env(
        tmp_path,
        slack,
        SLACK_APP_TOKEN=APP_TOKEN,
        HEALTH_PORT=str(port),
        DOCKER_HOST=os.environ["DOCKER_HOST"],
    )
    proc = start([], env, tmp_path)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        ws.wait_connections(1, timeout=20)
        answer = wait_for(
            lambda: (r := get_health(url)) is not None and r.status_code == 200 and r,
            "/healthz 200",
        )
        data = answer.json()
        assert data["status"] == "ok" and data["engine"]["ok"] is True
        assert data["engine"]["checked_seconds_ago"] is not None
    finally:
        output = stop(proc)
        ws.stop()
    assert proc.returncode == 0, output


def test_health_port_taken_is_a_clear_error(tmp_path: Path, slack: SlackApiDouble) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = serve_env(tmp_path, slack, SLACK_APP_TOKEN=APP_TOKEN, HEALTH_PORT=str(port))
        done = run_once([], env, tmp_path)
    assert done.returncode == 2
    assert f"HEALTH_PORT {port}: cannot listen" in done.stderr
