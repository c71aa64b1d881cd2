"""deploy/Dockerfile built from a local base image (no pulls) and run beside the rig's Dify the
way the README says: host network, the engine's socket, Dify's folder at its host path."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config.version import version
from tests.bot.fakes.slack_api import APP_TOKEN, BOT_TOKEN, SlackApiDouble
from tests.bot.fakes.socket_mode_server import SocketModeServer
from tests.rig.compose import v2_binary
from tests.rig.fake_ollama import FakeOllama
from tests.rig.stack import DifyStack, compose_env, free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BASE = "dify-ollama-test/debian:1"  # python3 3.11, no pip, no ensurepip
SIGNING_SECRET = "5e0c1d4f2a3b4c5d6e7f8091a2b3c4d5"


@pytest.fixture
def slack() -> Iterator[SlackApiDouble]:
    double = SlackApiDouble().start()
    yield double
    double.stop()


def engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///run/dify-ollama-test-engine/docker.sock")
    assert host.startswith("unix://"), f"the image test needs a unix socket engine, not {host}"
    return host.removeprefix("unix://")


@pytest.fixture(scope="module")
def image(docker_engine: object) -> Iterator[str]:
    tag = f"dify-ollama-bot-test:{secrets.token_hex(4)}"
    started = time.monotonic()
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-image"), tag],
        env={**os.environ, "BASE_IMAGE": BASE},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    print(f"\nimage {tag} built in {time.monotonic() - started:.1f} s")
    yield tag
    subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)


def docker_run(
    image: str,
    *args: str,
    env: dict[str, str],
    mounts: tuple[tuple[Path | str, str], ...] = (),
    host_network: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    argv = ["docker", "run", "--rm"]
    if host_network:
        argv += ["--network", "host"]
    argv += ["-v", f"{engine_socket()}:/var/run/docker.sock"]
    for source, target in mounts:
        argv += ["-v", f"{source}:{target}"]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    argv += [image, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def rig_env(stack: DifyStack, ollama: FakeOllama) -> dict[str, str]:
    return {
        "DIFY_DIR": str(stack.dir),
        "DIFY_COMPOSE_PROJECT": stack.project,
        "OLLAMA_URL": ollama.url,
        "CHECK_TIMEOUT": "10",  # the machine may be loaded; the deadline is not under test
    }


def statuses(report: dict[str, object]) -> dict[str, str]:
    return {f["id"]: f["status"] for f in report["findings"]}  # type: ignore[attr-defined]


def test_version_in_the_image(image: str) -> None:
    done = docker_run(image, "--version", env={}, host_network=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"dify-ollama {version()}"


def test_check_in_the_container_sees_the_host(
    image: str, healthy_stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    done = docker_run(
        image,
        "check",
        "--json",
        env=rig_env(healthy_stack, session_ollama),
        mounts=((healthy_stack.dir, str(healthy_stack.dir)), (state, "/var/lib/dify-ollama-bot")),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    found = statuses(report)
    assert report["status"] in ("ok", "warn")
    for finding_id in ("docker.engine", "dify.project", "ollama.host", "ollama.bind"):
        assert found[finding_id] == "ok", (finding_id, report)
    assert found["container.reach"] == "ok"
    assert "--network host" not in done.stdout  # on the host's network: no such note
    assert str(healthy_stack.dir) in report["context"]["dify_dir"]
    assert healthy_stack.db_password not in done.stdout + done.stderr


def test_check_without_host_network_says_ollama_is_not_there(
    image: str, healthy_stack: DifyStack, session_ollama: FakeOllama
) -> None:
    """What the README documents: in its own network namespace, 127.0.0.1 is the container,
    so Ollama looks down and nothing listens on its port, though the host is healthy."""
    done = docker_run(
        image,
        "check",
        "--json",
        env=rig_env(healthy_stack, session_ollama),
        mounts=((healthy_stack.dir, str(healthy_stack.dir)),),
        host_network=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    found = statuses(report)
    assert found["docker.engine"] == "ok" and found["dify.project"] == "ok"
    assert found["ollama.host"] == "fail" and found["ollama.bind"] == "fail"
    bind = next(f for f in report["findings"] if f["id"] == "ollama.bind")
    assert f"nothing listens on TCP port {session_ollama.port}" in bind["summary"]
    # and it names the likeliest cause first
    assert bind["remedy"].startswith("This runs inside a container with its own network")
    assert "--network host" in bind["remedy"]


def test_serve_check_config_in_the_container(
    image: str, healthy_stack: DifyStack, session_ollama: FakeOllama, slack: SlackApiDouble
) -> None:
    done = docker_run(
        image,
        "serve",
        "--check-config",
        env={
            **rig_env(healthy_stack, session_ollama),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.base_url,
        },
        mounts=((healthy_stack.dir, str(healthy_stack.dir)),),
    )
    assert [c.method for c in slack.calls] == ["auth.test"]
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"dify-ollama serve: info: dify-ollama-bot {version()} starting"
    engine = [line for line in lines if line.startswith("dify-ollama serve: info: Docker engine:")]
    assert engine and engine[0].endswith("containers readable"), lines  # through the socket
    assert any(
        line.startswith("dify-ollama serve: info: configuration OK (http mode)") for line in lines
    )
    assert BOT_TOKEN not in done.stderr and SIGNING_SECRET not in done.stderr


def test_serve_in_the_container_answers_healthz_with_json_logs(
    image: str,
    healthy_stack: DifyStack,
    session_ollama: FakeOllama,
    slack: SlackApiDouble,
    tmp_path: Path,
) -> None:
    """As the README runs it: the bot's env file mounted read-only and named by
    DIFY_OLLAMA_BOT_ENV (tokens with quotes and a comment, which --env-file would mangle)."""
    port = free_port()
    name = f"dify-ollama-bot-test-{secrets.token_hex(4)}"
    config = tmp_path / "etc"
    config.mkdir()
    (config / "dify-ollama-bot.env").write_text(
        f'SLACK_BOT_TOKEN="{BOT_TOKEN}"   # the bot token\n'
        f"SLACK_SIGNING_SECRET={SIGNING_SECRET}\n"
        f"SLACK_API_URL={slack.base_url}\n"
    )
    argv = ["docker", "run", "-d", "--name", name, "--network", "host"]
    argv += ["-v", f"{engine_socket()}:/var/run/docker.sock"]
    argv += ["-v", f"{healthy_stack.dir}:{healthy_stack.dir}"]
    argv += ["-v", f"{config}:/etc/dify-ollama-bot:ro"]
    env = {
        **rig_env(healthy_stack, session_ollama),
        "DIFY_OLLAMA_BOT_ENV": "/etc/dify-ollama-bot/dify-ollama-bot.env",
        "PORT": str(port),
        "LOG_FORMAT": "json",
    }
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    started = subprocess.run(
        [*argv, image, "serve", "--host", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    try:
        health = None
        with httpx.Client(timeout=5, trust_env=False) as client:
            for _ in range(150):  # 30 s at most
                try:
                    health = client.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
        assert health is not None, "serve in the container never answered"
        assert health.status_code == 200, health.text
        data = health.json()
        assert data["version"] == version() and data["engine"]["ok"] is True
        state = subprocess.run(
            ["docker", "inspect", "--format", "{{json .State.Health}}", name],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert '"Status"' in state.stdout  # the image declares a HEALTHCHECK
    finally:
        subprocess.run(["docker", "stop", "-t", "20", name], capture_output=True, timeout=60)
        logs = subprocess.run(
            ["docker", "logs", name], capture_output=True, text=True, timeout=30, check=False
        )
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
    records = [json.loads(line) for line in logs.stderr.splitlines() if line.strip()]
    assert records, logs.stdout + logs.stderr
    assert records[0]["message"] == f"dify-ollama-bot {version()} starting"
    assert any(r["logger"].startswith("gunicorn") for r in records)
    assert BOT_TOKEN not in logs.stderr and SIGNING_SECRET not in logs.stderr


def readme_compose_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"```yaml\n(# compose\.yaml.*?)```", text, re.S)
    assert match, "README lost its compose snippet"
    return match.group(1)


def test_readme_compose_snippet_runs_socket_mode_with_healthz(
    image: str,
    healthy_stack: DifyStack,
    session_ollama: FakeOllama,
    slack: SlackApiDouble,
    tmp_path: Path,
) -> None:
    """The README's compose snippet, with only its host paths, image and port replaced: Socket
    Mode connects through the Slack doubles and /healthz on HEALTH_PORT says 200."""
    ws = SocketModeServer().start()
    slack.ws_url = ws.url
    port = free_port()
    config = tmp_path / "etc"
    config.mkdir()
    (config / "dify-ollama-bot.env").write_text(
        f"SLACK_BOT_TOKEN={BOT_TOKEN}\nSLACK_APP_TOKEN={APP_TOKEN}\n"
        f"SLACK_API_URL={slack.base_url}\nOLLAMA_URL={session_ollama.url}\n"
        f"DIFY_COMPOSE_PROJECT={healthy_stack.project}\n"
    )
    snippet = readme_compose_snippet()
    for old, new in (
        ("dify-ollama-bot:0.1.0", image),
        ("/opt/dify/docker", str(healthy_stack.dir)),
        ("- /etc/dify-ollama-bot:", f"- {config}:"),
        ("/var/run/docker.sock:/var", f"{engine_socket()}:/var"),
        ('HEALTH_PORT: "8787"', f'HEALTH_PORT: "{port}"'),
    ):
        assert old in snippet, old
        snippet = snippet.replace(old, new)
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text(snippet)
    project = f"dobot{secrets.token_hex(4)}"
    compose = [str(v2_binary()), "-p", project, "-f", str(compose_file)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*compose, *args],
            env=compose_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    try:
        up = run("up", "-d")
        assert up.returncode == 0, up.stderr
        try:
            ws.wait_connections(1, timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the bot's log:\n{run('logs').stdout[-3000:]}") from None
        health = None
        with httpx.Client(timeout=5, trust_env=False) as client:
            for _ in range(150):  # 30 s at most
                try:
                    health = client.get(f"http://127.0.0.1:{port}/healthz")
                    if health.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        assert health is not None and health.status_code == 200, health and health.text
        data = health.json()
        assert data["mode"] == "socket" and data["slack"]["detail"] == "Socket Mode connected"
    finally:
        logs = run("logs", "--no-color")
        run("down", "-v", "--timeout", "20")
        ws.stop()
    assert BOT_TOKEN not in logs.stdout + logs.stderr
    assert APP_TOKEN not in logs.stdout + logs.stderr
