"""Which Compose is installed (v2 plugin, v2 standalone or v1 binary), which one created a
stack (its `com.docker.compose.version` label), and the fixed head of its argv.

Kept apart from compose_cli (which runs Compose for a project) because reading compose files
(compose_file) needs to know the flavour too, and must not depend on the runner.

Compose v1 and v2 read the same files differently (nested defaults, `$$`, env_file rules), and
each computes its own config hash: recreating a stack with the other flavour changes the
containers' environment and recreates every service. So a stack is always recreated with the
flavour that created it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

FLAVOURS = ("v2", "v1")


def flavour_of_version(version: str) -> str:
    """ "v1" for Compose 1.x (docker-compose 1.29.2), else "v2" (2.x and later)."""
    bare = version.strip().lstrip("vV")
    return "v1" if bare == "1" or bare.startswith("1.") else "v2"


@dataclass(frozen=True)
class ComposeCommand:
    argv: tuple[str, ...]  # ("docker", "compose") or ("docker-compose",)
    version: str  # "2.40.3", "1.29.2"; "v2"/"v1" when only the files were looked at

    @property
    def label(self) -> str:
        return " ".join(self.argv)

    @property
    def flavour(self) -> str:
        return flavour_of_version(self.version)

    @property
    def is_v1(self) -> bool:
        return self.flavour == "v1"


def _version(argv: tuple[str, ...], timeout: float, env: Mapping[str, str] | None) -> str | None:
    path = (env or os.environ).get("PATH")
    if shutil.which(argv[0], path=path) is None:
        return None
    try:
        done = subprocess.run(
            [*argv, "version", "--short"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=dict(env) if env is not None else None,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = done.stdout.strip()
    return out.splitlines()[0].strip().lstrip("v") if done.returncode == 0 and out else None


SYSTEM_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def plugin_dirs(env: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """Where the docker CLI looks for the compose plugin: `$DOCKER_CONFIG/cli-plugins` (which
    replaces ~/.docker when set), then the system folders."""
    env = os.environ if env is None else env
    config = env.get("DOCKER_CONFIG")
    user = Path(config) if config else Path(env.get("HOME") or "~").expanduser() / ".docker"
    return (user / "cli-plugins", *(Path(d) for d in SYSTEM_PLUGIN_DIRS))


def detect_compose(env: Mapping[str, str] | None = None) -> ComposeCommand | None:
    """Which Compose is installed, by looking at the files only (no subprocess: `check` must
    stay fast, and Compose v1 alone takes half a second to print its version)."""
    env = os.environ if env is None else env
    path = env.get("PATH")
    if shutil.which("docker", path=path):
        for folder in plugin_dirs(env):
            if (folder / "docker-compose").exists():
                return ComposeCommand(("docker", "compose"), "v2")
    if shutil.which("docker-compose", path=path):
        return ComposeCommand(("docker-compose",), "v1")
    return None


@functools.lru_cache(maxsize=1)
def find_compose(timeout: float = 5.0) -> ComposeCommand | None:
    """Compose v2 (`docker compose`) when present, else v1 (`docker-compose`), else None."""
    for argv in (("docker", "compose"), ("docker-compose",)):
        version = _version(argv, timeout, None)
        if version:
            return ComposeCommand(argv, version)
    return None


@functools.lru_cache(maxsize=16)
def _installed(env_key: tuple[tuple[str, str], ...], timeout: float) -> tuple[ComposeCommand, ...]:
    env = dict(env_key)
    found = []
    for argv in (("docker", "compose"), ("docker-compose",)):
        version = _version(argv, timeout, env)
        if version:
            found.append(ComposeCommand(argv, version))
    return tuple(found)


def installed_composes(env: Mapping[str, str], timeout: float = 10.0) -> tuple[ComposeCommand, ...]:
    """Every Compose that answers with `env` (`docker compose`, then `docker-compose`), each
    asked for its version once per environment."""
    return _installed(tuple(sorted(env.items())), timeout)


def compose_of_flavour(
    flavour: str, env: Mapping[str, str], timeout: float = 10.0
) -> ComposeCommand | None:
    """An installed Compose of `flavour` ("v2": the plugin first, else a standalone v2
    `docker-compose`; "v1": `docker-compose` 1.x), run with `env`; None when there is none."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}")
    return next((c for c in installed_composes(env, timeout) if c.flavour == flavour), None)


def compose_argv(
    compose: ComposeCommand, project: str, working_dir: str, files: tuple[str, ...] = ()
) -> list[str]:
    """The fixed head of every compose call: explicit project name, folder and files."""
    argv = [*compose.argv, "--project-name", project, "--project-directory", working_dir]
    for file in files:
        argv += ["--file", file]
    return argv
