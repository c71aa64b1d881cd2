"""Which Compose is installed (v2 plugin or v1 binary) and the fixed head of its argv.

Kept apart from compose_cli (which runs Compose for a project) because reading compose files
(compose_file) needs to know the installed flavour too, and must not depend on the runner.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ComposeCommand:
    argv: tuple[str, ...]  # ("docker", "compose") or ("docker-compose",)
    version: str

    @property
    def label(self) -> str:
        return " ".join(self.argv)

    @property
    def is_v1(self) -> bool:
        return self.argv == ("docker-compose",)


def _version(argv: tuple[str, ...], timeout: float) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(
            [*argv, "version", "--short"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = done.stdout.strip()
    return out.splitlines()[0] if done.returncode == 0 and out else None


PLUGIN_DIRS = (
    "~/.docker/cli-plugins",
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def detect_compose() -> ComposeCommand | None:
    """Which Compose is installed, by looking at the files only (no subprocess: `check` must
    stay fast, and Compose v1 alone takes half a second to print its version)."""
    if shutil.which("docker"):
        for folder in PLUGIN_DIRS:
            if (Path(folder).expanduser() / "docker-compose").exists():
                return ComposeCommand(("docker", "compose"), "v2")
    if shutil.which("docker-compose"):
        return ComposeCommand(("docker-compose",), "v1")
    return None


@functools.lru_cache(maxsize=1)
def find_compose(timeout: float = 5.0) -> ComposeCommand | None:
    """Compose v2 (`docker compose`) when present, else v1 (`docker-compose`), else None."""
    for argv in (("docker", "compose"), ("docker-compose",)):
        version = _version(argv, timeout)
        if version:
            return ComposeCommand(argv, version)
    return None


def compose_argv(
    compose: ComposeCommand, project: str, working_dir: str, files: tuple[str, ...] = ()
) -> list[str]:
    """The fixed head of every compose call: explicit project name, folder and files."""
    argv = [*compose.argv, "--project-name", project, "--project-directory", working_dir]
    for file in files:
        argv += ["--file", file]
    return argv
