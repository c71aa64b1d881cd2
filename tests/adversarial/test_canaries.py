"""Canary secrets planted everywhere a real host keeps them, then looked for in every way the
product talks: no secret may come out, whatever command, button or argument brings it near.

Planted (tests.rig.log_containers.Canaries): in Dify's `.env` (DB_PASSWORD, SECRET_KEY, and a
password inside OPENAI_API_BASE's URL), in one container's environment only (plugin_daemon),
in log lines of the api container (those values and token-shaped ones), and as the bot's own
Slack bot token and signing secret. Users also type them as arguments.

Channels checked, 11 (CHANNELS below; the README cites the count):
terminal stdout and stderr (`check`, `fix-env`, `restart`, `logs`, text and --json), Slack
chat.postMessage, chat.update, chat.postEphemeral, response_url bodies, slash-command ack
bodies, file uploads (content, title and comment), the audit file, the audit channel, and the
bot's own log (the `serve` process's stderr).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.subcommands.fix_env import APPLY
from bot.subcommands.logs import INLINE_MAX_LINES
from bot.subcommands.restart import RESTART_APPLY
from tests.bot.conftest import sign
from tests.bot.fakes.slack_api import SlackApiDouble
from tests.rig.cli_process import run_cli
from tests.rig.fake_ollama import FakeOllama
from tests.rig.incident import incident_rows
from tests.rig.log_containers import Canaries
from tests.rig.stack import DifyStack

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = (
    "terminal stdout",
    "terminal stderr",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "response_url",
    "slash-command ack",
    "file uploads",
    "audit file",
    "audit channel",
    "bot log",
)
AUDIT = "CAUDIT"
OPERATOR = "UOPS"


class Planted:
    """The canaries and where they are."""

    def __init__(self) -> None:
        self.c = Canaries()
        self.signing_secret = secrets.token_hex(16)

    def all(self) -> list[str]:
        return [*self.c.all(), self.signing_secret]

    def leaks(self, text: str) -> list[str]:
        found = [s for s in self.all() if s in text]
        # not even a recognisable piece of a long one
        found += [f"…{s[-10:]}" for s in self.all() if len(s) >= 16 and s[-10:] in text]
        return found


@dataclass
class Seen:
    """What came out, by channel."""

    by_channel: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CHANNELS})

    def add(self, channel: str, text: str) -> None:
        assert channel in self.by_channel, channel
        self.by_channel[channel].append(text)

    def assert_clean(self, planted: Planted, channels: tuple[str, ...]) -> None:
        for channel in channels:
            texts = self.by_channel[channel]
            assert texts, f"nothing came out on {channel}: the check would prove nothing"
            leaked = {leak for text in texts for leak in planted.leaks(text)}
            assert not leaked, f"{channel} leaked {sorted(leaked)}"


@pytest.fixture(scope="module")
def planted() -> Planted:
    return Planted()


@pytest.fixture(scope="module")
def stack(
    docker_engine: Any,
    session_ollama: FakeOllama,
    planted: Planted,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DifyStack]:
    """The seed incident (loopback base URLs) on a look-alike stack holding the canaries."""
    c = planted.c
    base = f"http://dify:{c.url_password}@127.0.0.1:{session_ollama.port}/v1"
    made = DifyStack(
        tmp_path_factory.mktemp("canaries"),
        env_overrides={
            "DB_PASSWORD": c.db_password,
            "SECRET_KEY": c.secret_key,
            "REDIS_PASSWORD": c.short,  # 6 characters: masked as a whole token only
            "OPENAI_API_BASE": base,
        },
        plugin_daemon_env={"PLUGIN_CANARY_KEY": c.container_only},
        ollama_rows=incident_rows(session_ollama),
        client=docker_engine,
    )
    try:
        made.up()
        # More lines than a Slack reply shows inline, whatever else api logged by then: the
        # Slack test's `logs api 200` must go out as an uploaded file (one of its channels).
        padding = [f"INFO padding line {i}" for i in range(INLINE_MAX_LINES + 5)]
        lines = [*padding, *c.log_lines(), f"plugin key={c.container_only}"]
        script = "".join(f"printf '%s\\n' '{line}' >> /proc/1/fd/1; " for line in lines)
        code, output = made.exec("api", ["sh", "-c", script])
        assert code == 0, output
        yield made
    finally:
        made.down()


@pytest.fixture(scope="module")
def seen() -> Seen:
    return Seen()


def host_env(stack: DifyStack, ollama: FakeOllama, tmp: Path) -> dict[str, str]:
    return {
        "DOCKER_HOST": os.environ["DOCKER_HOST"],
        "DIFY_COMPOSE_PROJECT": stack.project,
        "OLLAMA_URL": ollama.url,
        "CHECK_TIMEOUT": "3",
        "STATE_DIR": str(tmp / "state"),
        "FIX_OLLAMA_URL": f"{ollama.container_url()}/v1",
        "FIX_OLLAMA_BASE_URL": ollama.container_url(),
    }


def test_the_canaries_are_really_there(stack: DifyStack, planted: Planted) -> None:
    """Otherwise every check below would pass for nothing."""
    c = planted.c
    env_text = stack.env_path.read_text()
    assert c.db_password in env_text and c.secret_key in env_text and c.url_password in env_text
    assert stack.env_of("plugin_daemon")["PLUGIN_CANARY_KEY"] == c.container_only
    assert c.container_only not in env_text
    raw_log = stack.container("api").logs(tail=100).decode()
    assert c.db_password in raw_log and c.bearer in raw_log and c.container_only in raw_log


def test_terminal(
    stack: DifyStack, session_ollama: FakeOllama, planted: Planted, seen: Seen, tmp_path: Path
) -> None:
    c = planted.c
    env = {
        **host_env(stack, session_ollama, tmp_path),
        # the bot's own tokens are known to the CLI too (it reads the same settings)
        "SLACK_BOT_TOKEN": c.slack_bot,
        "SLACK_SIGNING_SECRET": planted.signing_secret,
    }
    runs = [
        ("check",),
        ("check", "--json"),
        ("fix-env",),
        ("fix-env", "--json"),
        ("logs", "api", "200"),
        ("logs", "api", "--grep", c.db_password),
        ("logs", "plugin_daemon", "50"),
        ("logs", c.container_only),  # a secret typed as a service name
        ("fix-env", "--yes"),
        ("fix-env", "--undo", "--json"),
        ("restart", "--json"),
        ("restart",),
    ]
    for args in runs:
        proc = run_cli(*args, env=env)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        seen.add("terminal stdout", proc.stdout)
        seen.add("terminal stderr", proc.stderr)
    assert "[REDACTED]" in " ".join(seen.by_channel["terminal stdout"])  # it did see secrets
    seen.assert_clean(planted, ("terminal stdout", "terminal stderr"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_slack_audit_and_the_bots_own_log(
    stack: DifyStack, session_ollama: FakeOllama, planted: Planted, seen: Seen, tmp_path: Path
) -> None:
    c = planted.c
    slack = SlackApiDouble().start()
    slack.bot_token = c.slack_bot
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DIFY_", "OPERATORS", "ALLOWED_", "AUDIT_", "REPLY_"))
    }
    env.update(
        host_env(stack, session_ollama, tmp_path),
        PYTHONPATH=str(ROOT),
        HOME=str(tmp_path),
        SLACK_BOT_TOKEN=c.slack_bot,
        SLACK_SIGNING_SECRET=planted.signing_secret,
        SLACK_API_URL=slack.base_url,
        AUDIT_LOG=str(tmp_path / "audit.jsonl"),
        AUDIT_CHANNEL=AUDIT,
        OPERATORS=OPERATOR,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/slack/events"
    http = httpx.Client(timeout=30, trust_env=False)
    try:
        _wait_ready(http, f"http://127.0.0.1:{port}/healthz", proc)

        def post(body: bytes, ctype: str) -> str:
            headers = {"Content-Type": ctype, **sign(body, secret=planted.signing_secret)}
            answer = http.post(url, content=body, headers=headers)
            assert answer.status_code == 200, answer.text
            return answer.text

        def command(text: str, response: str) -> None:
            body = urlencode(
                {
                    "command": "/dify-ollama",
                    "text": text,
                    "user_id": OPERATOR,
                    "channel_id": "COPS",
                    "channel_name": "ops",
                    "team_id": "T0001",
                    "response_url": slack.response_url(response),
                }
            ).encode()
            seen.add("slash-command ack", post(body, "application/x-www-form-urlencoded"))

        def click(action_id: str, value: str, message_ts: str, action_ts: str) -> None:
            payload = {
                "type": "block_actions",
                "user": {"id": OPERATOR},
                "team": {"id": "T0001"},
                "channel": {"id": "COPS"},
                "container": {"type": "message", "message_ts": message_ts, "channel_id": "COPS"},
                "message": {"type": "message", "ts": message_ts},
                "response_url": slack.response_url(f"click-{action_ts}"),
                "actions": [{"action_id": action_id, "value": value, "action_ts": action_ts}],
            }
            post(
                urlencode({"payload": json.dumps(payload)}).encode(),
                "application/x-www-form-urlencoded",
            )

        command("check", "r1")
        command("logs api 200", "r2")
        command(f"logs api --grep {c.db_password}", "r3")
        command("logs plugin_daemon 50", "r4")
        command(c.secret_key, "r5")  # a secret typed as the subcommand
        command(f"restart {c.container_only}", "r6")  # ... and as a service name
        mention = {
            "type": "event_callback",
            "event_id": "EvCanary",
            "team_id": "T0001",
            "event": {
                "type": "app_mention",
                "user": OPERATOR,
                "channel": "COPS",
                "ts": "1700000100.000100",
                "text": f"<@UBOT0001> frobnicate {c.db_password}",
            },
        }
        post(json.dumps(mention).encode(), "application/json")
        slack.wait_for("chat.postEphemeral", timeout=30)
        command("fix-env", "r7")
        plan = slack.wait_for(
            "chat.update", where=lambda x: APPLY in json.dumps(x.params), timeout=60
        )
        apply = _button(plan[0], APPLY)
        click(APPLY, apply["value"], plan[0].params["ts"], "5.1")
        applied = slack.wait_for(
            "chat.postMessage", where=lambda x: RESTART_APPLY in json.dumps(x.params), timeout=60
        )
        click(APPLY, apply["value"], plan[0].params["ts"], "5.9")  # a double click
        slack.wait_for("response_url", timeout=30)  # "already applied", to the clicker only
        click(RESTART_APPLY, _button(applied[0], RESTART_APPLY)["value"], "1700000000.9", "5.2")
        slack.wait_for(
            "chat.postMessage",
            where=lambda x: "after the restart" in json.dumps(x.params),
            timeout=180,
        )
        slack.wait_for("files.completeUploadExternal", timeout=30)
        _wait_audit(tmp_path / "audit.jsonl", "restart:apply")
        slack.wait_for(
            "chat.postMessage",
            where=lambda x: x.params.get("channel") == AUDIT and "restart" in x.params["text"],
            timeout=30,
        )
    finally:
        http.close()
        proc.terminate()
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate(timeout=10)
        slack.stop()
    seen.add("bot log", output)
    seen.add("audit file", (tmp_path / "audit.jsonl").read_text())
    for call in slack.calls:
        text = json.dumps(call.params) + call.raw.decode("utf-8", "replace")
        if call.method == "chat.postMessage" and call.params.get("channel") == AUDIT:
            seen.add("audit channel", text)
        elif call.method in (
            "chat.postMessage",
            "chat.update",
            "chat.postEphemeral",
            "response_url",
        ):
            seen.add(call.method, text)
        elif call.method in (
            "upload",
            "files.completeUploadExternal",
            "files.getUploadURLExternal",
        ):
            seen.add("file uploads", text)
    assert any("[REDACTED]" in t for t in seen.by_channel["file uploads"])  # a log was uploaded
    seen.assert_clean(planted, CHANNELS[2:])


def _button(call: Any, action_id: str) -> dict[str, Any]:
    for block in call.params.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return dict(element)
    raise AssertionError(f"no {action_id} button")


def _wait_ready(http: httpx.Client, health: str, proc: subprocess.Popen[str]) -> None:
    for _ in range(200):  # 20 s at most
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if http.get(health).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve did not answer /healthz in 20 s")


def _wait_audit(path: Path, command: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and any(
            json.loads(line).get("command") == command for line in path.read_text().splitlines()
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"no audit line for {command}")
