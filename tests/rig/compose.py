"""Which Compose runs a rig stack, chosen by the test, never by whatever PATH finds first.

Flavours:
- "v2": `docker compose`, the v2.40.3 plugin scripts/install-test-deps put in
  DIFY_OLLAMA_COMPOSE_V2_PLUGIN_DIR (default: <checkout>/.venv/docker-config/cli-plugins);
  DOCKER_CONFIG points the docker CLI at that folder unless it is a system plugin folder.
- "v2-standalone": the same binary run directly (`docker-compose` v2 style).
- "v1": Debian's `docker-compose` 1.29.2 from PATH.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

FLAVOURS = ("v2", "v2-standalone", "v1")
V2_VERSION = "2.40.3"
PLUGIN_DIR_ENV = "DIFY_OLLAMA_COMPOSE_V2_PLUGIN_DIR"
REPO = Path(__file__).resolve().parents[2]
# Where the docker CLI looks for plugins without DOCKER_CONFIG (besides ~/.docker/cli-plugins).
SYSTEM_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)
INSTALL_HINT = "run scripts/install-test-deps (it installs Compose v2 as a docker CLI plugin)"


class ComposeMissing(RuntimeError):
    """The Compose flavour a test asked for is not installed here."""


def v2_plugin_dir() -> Path:
    return Path(os.environ.get(PLUGIN_DIR_ENV) or REPO / ".venv" / "docker-config" / "cli-plugins")


def v2_binary() -> Path:
    path = v2_plugin_dir() / "docker-compose"
    if not os.access(path, os.X_OK):
        raise ComposeMissing(f"Compose v2 is not at {path}: {INSTALL_HINT}")
    return path


@functools.lru_cache(maxsize=1)
def v1_binary() -> Path:
    found = shutil.which("docker-compose")
    if found is None:
        raise ComposeMissing("Compose v1 (`docker-compose`) is not on PATH: " + INSTALL_HINT)
    out = subprocess.run(
        [found, "version", "--short"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    if not out.startswith("1."):
        raise ComposeMissing(f"{found} is Compose {out or '?'}, not v1")
    return Path(found)


@dataclass(frozen=True)
class Compose:
    flavour: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)  # added to the caller's environment

    @property
    def is_v1(self) -> bool:
        return self.flavour == "v1"

    def run(
        self,
        args: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, *args],
            cwd=cwd,
            env={**env, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def compose_for(flavour: str) -> Compose:
    if flavour == "v1":
        return Compose("v1", (str(v1_binary()),))
    if flavour == "v2-standalone":
        return Compose("v2-standalone", (str(v2_binary()),))
    if flavour == "v2":
        plugin_dir = v2_binary().parent
        docker = shutil.which("docker")
        if docker is None:
            raise ComposeMissing("the docker CLI is not on PATH (needed for `docker compose`)")
        env = (
            {}
            if str(plugin_dir) in SYSTEM_PLUGIN_DIRS
            else {"DOCKER_CONFIG": str(plugin_dir.parent)}
        )
        return Compose("v2", (docker, "compose"), env)
    raise ValueError(f"compose must be one of {FLAVOURS}, not {flavour!r}")
