"""Labelled containers that look like a Dify compose project, logging canary secrets.

`LogProject` starts small busybox containers on the private engine (unique names, compose labels
pointing at a temp folder holding docker-compose.yaml and a .env made from Dify's real
.env.example plus the `Canaries`) and removes them in `cleanup()`. Used by the logs tests of the
handler, the CLI and the Slack bot.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import docker

from config.settings import Settings
from tests.rig.stack import BUSYBOX_IMAGE, REFERENCE_DIR, docker_host, write_env

PROJECT = "com.docker.compose.project"


class Canaries:
    """Secrets that must never come out. Each appears in the container's log; the .env ones
    also in .env and (like Dify's x-shared-env) in the container's environment."""

    def __init__(self) -> None:
        tag = secrets.token_hex(6)
        self.db_password = f"CanaryDbPw{tag}x1"  # .env + container env
        self.secret_key = f"canary-secret-key-{tag}"  # .env + container env
        self.short = "Kq" + tag[:4]  # 6 chars: whole-token rule (.env REDIS_PASSWORD)
        self.container_only = f"CanaryPluginKey{tag}"  # container env only
        self.url_password = f"UrlPw{tag}Zz"  # inside a URL in the log only
        self.slack_bot = f"xoxb-1234567890-{tag}abcdef"
        self.slack_app = f"xapp-1-A0{tag.upper()}-1234567890-{tag}"
        self.bearer = f"BearerTok{tag}QQ"
        self.openai = f"sk-proj-{tag}{tag}abcdefgh"
        self.aws = "AKIA" + tag.upper()[:12] + "ABCD"
        self.github = f"ghp_{tag}{tag}{tag}abcdef"
        self.kv_password = f"kvPw{tag}"  # after password= in the log only

    @property
    def env_file(self) -> dict[str, str]:
        return {
            "DB_PASSWORD": self.db_password,
            "SECRET_KEY": self.secret_key,
            "REDIS_PASSWORD": self.short,
        }

    @property
    def container_env(self) -> dict[str, str]:
        return {**self.env_file, "PLUGIN_DAEMON_KEY": self.container_only, "LOG_LEVEL": "INFO"}

    def all(self) -> list[str]:
        return [v for k, v in vars(self).items() if not k.startswith("_")]

    def log_lines(self) -> list[str]:
        """Log lines as an app would print them, each holding secrets in a different form."""
        return [
            f"connecting to db with password {self.db_password} (from env)",
            f"SECRET_KEY is {self.secret_key}; redis auth {self.short}.",
            f"plugin daemon key={self.container_only}",
            f"DSN postgresql://postgres:{self.url_password}@db:5432/dify",
            f"slack {self.slack_bot} and {self.slack_app}",
            f"GET /v1/chat Authorization: Bearer {self.bearer}",
            f"openai {self.openai} aws {self.aws} github {self.github}",
            f'login failed password={self.kv_password} user="admin" db=dify',
        ]


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def printf_script(lines: Sequence[str], then: str = "sleep 600") -> str:
    """A busybox sh script printing `lines` (printf escapes allowed) then running `then`."""
    body = "; ".join(f"printf {_sh_quote(line + chr(92) + 'n')}" for line in lines)
    return f"{body}; {then}" if body else then


class LogProject:
    """A Dify-like compose project made of labelled containers on the private engine."""

    def __init__(self, client: docker.DockerClient, root: Path, canaries: Canaries) -> None:
        self.client = client
        self.name = f"dologs{secrets.token_hex(4)}"
        self.dir = root / "docker"
        self.dir.mkdir(parents=True)
        self.canaries = canaries
        self.containers: list[Any] = []
        (self.dir / "docker-compose.yaml").write_text(
            "services:\n  api:\n    image: langgenius/dify-api\n"
            "  worker:\n    image: langgenius/dify-api\n"
        )
        write_env(REFERENCE_DIR / ".env.example", self.dir / ".env", canaries.env_file)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "dify_compose_project": self.name,
            "dify_dir": self.dir,
            "docker_host": docker_host(),
        }
        values.update(overrides)
        return Settings(**values)

    @property
    def env(self) -> dict[str, str]:
        """Environment variables pointing the CLI at this project."""
        return {
            "DIFY_COMPOSE_PROJECT": self.name,
            "DIFY_DIR": str(self.dir),
            "DOCKER_HOST": docker_host(),
        }

    def add(
        self,
        service: str,
        script: str,
        *,
        env: Mapping[str, str] | None = None,
        tty: bool = False,
        image: str = BUSYBOX_IMAGE,
        log_driver: str | None = None,
    ) -> Any:
        labels = {
            PROJECT: self.name,
            "com.docker.compose.service": service,
            "com.docker.compose.project.working_dir": str(self.dir),
            "com.docker.compose.project.config_files": str(self.dir / "docker-compose.yaml"),
            "com.docker.compose.container-number": "1",
            "com.docker.compose.oneoff": "False",
        }
        container = self.client.containers.run(
            image,
            ["sh", "-c", script],
            name=f"{self.name}-{service}-1",
            labels=labels,
            environment=dict(self.canaries.container_env if env is None else env),
            detach=True,
            tty=tty,
            network_mode="none",
            log_config=docker.types.LogConfig(type=log_driver) if log_driver else None,
        )
        self.containers.append(container)
        return container

    def wait_for_line(self, container: Any, needle: bytes, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in container.logs(tail=50):
                return
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} never appeared in {container.name}'s log")

    def wait_exited(self, container: Any, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            container.reload()
            if container.status == "exited":
                return
            time.sleep(0.1)
        raise AssertionError(f"{container.name} did not exit")

    def cleanup(self) -> None:
        for container in self.containers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def assert_no_canary(text: str, canaries: Canaries) -> None:
    leaked = [c for c in canaries.all() if c in text]
    assert not leaked, f"secrets leaked: {leaked}"
    # Not even a recognisable chunk of a long canary.
    for canary in canaries.all():
        if len(canary) >= 16:
            assert canary[-10:] not in text, f"tail of {canary[:6]}… leaked"
