"""Running Compose for the Dify project (which Compose is installed: compose_binary.py): the
files and `.env` the next `compose up` reads, the environment it may inherit, and the call
itself, never through a shell. Every compose invocation of the product goes through here.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker

from config.settings import Settings
from handlers import compose_file, engine
from handlers.compose_binary import ComposeCommand, compose_argv, find_compose
from handlers.envfile import read_env_file
from handlers.override import declared_services
from handlers.project import DifyProject, discover
from handlers.redact import Redactor, redactor_for
from handlers.results import HandlerError

COMPOSE_TIMEOUT = 300.0
VALIDATE_TIMEOUT = 60.0
# What the compose CLI may inherit from the bot's environment. Compose gives the caller's
# environment precedence over `.env`: anything else (OPENAI_API_BASE, COMPOSE_PROFILES, DB_*)
# set where the bot runs would silently override Dify's configuration.
PASS_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
)


def compose_files(project: DifyProject) -> tuple[Path, ...]:
    """The files the project was created from, plus the override Compose would load itself."""
    files = compose_file.effective_files(project.config_files, project.working_dir)
    if not files:
        raise HandlerError(
            f"no compose file in {project.working_dir}: point DIFY_DIR at Dify's docker folder"
        )
    return files


def compose_environment(settings: Settings) -> dict[str, str]:
    """The environment of a compose call: the few variables in PASS_ENV, plus DOCKER_HOST."""
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["DOCKER_HOST"] = engine.docker_host(settings)
    return env


@dataclass(frozen=True)
class ComposeTarget:
    """Everything a compose call on the Dify project needs; `redactor` cleans its output."""

    compose: ComposeCommand
    project: DifyProject
    files: tuple[Path, ...]
    env_file: Path | None  # only when `.env` is not in the project folder
    environment: dict[str, str]
    redactor: Redactor = field(default_factory=Redactor)

    def argv(self, *args: str) -> list[str]:
        head = compose_argv(
            self.compose,
            self.project.name,
            str(self.project.working_dir),
            tuple(str(f) for f in self.files),
        )
        if self.env_file is not None:
            head += ["--env-file", str(self.env_file)]
        return [*head, *args]

    def shown(self, *args: str) -> str:
        """The command as a person would type it in the Dify folder."""
        return " ".join([self.compose.label, "-p", self.project.name, *args])

    @property
    def declared(self) -> set[str]:
        return declared_services(self.files)


def _required_compose() -> ComposeCommand:
    compose = find_compose()
    if compose is None:
        raise HandlerError(
            "neither `docker compose` nor `docker-compose` is installed: install the Compose "
            "plugin (`apt-get install docker-compose-plugin`); nothing was changed"
        )
    return compose


def target(settings: Settings, client: docker.DockerClient) -> ComposeTarget:
    """Everything a compose call needs; HandlerError (nothing changed) when something lacks."""
    compose = _required_compose()
    project = discover(client, settings)
    files = compose_files(project)
    env_file = None
    if project.env_path.parent.resolve() != project.working_dir.resolve():
        env_file = project.env_path
    values: dict[str, str] = {}
    with contextlib.suppress(HandlerError):
        values = read_env_file(project.env_path).values
    return ComposeTarget(
        compose,
        project,
        files,
        env_file,
        compose_environment(settings),
        redactor_for(settings, env_values=values, env_path=project.env_path),
    )


def run_compose(tgt: ComposeTarget, *args: str, timeout: float = COMPOSE_TIMEOUT) -> str:
    """Run `<compose> ... args` in the project folder; its output, redacted. HandlerError (with
    the last lines of the output) when it fails or outlives `timeout`."""
    try:
        done = subprocess.run(
            tgt.argv(*args),
            cwd=tgt.project.working_dir,
            env=tgt.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise HandlerError(f"`{tgt.shown(*args)}` did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise HandlerError(f"cannot run {tgt.compose.label}: {exc.strerror or exc}") from None
    output = tgt.redactor.redact((done.stdout or "") + (done.stderr or ""))
    if done.returncode != 0:
        tail = " | ".join(line.strip() for line in output.strip().splitlines()[-4:])
        raise HandlerError(f"`{tgt.shown(*args)}` failed (exit {done.returncode}): {tail[:600]}")
    return output


def file_validator(
    settings: Settings, project: DifyProject, files: tuple[Path, ...], replaced: Path
) -> Callable[[Path], None] | None:
    """A check that Compose accepts `files` with `replaced` swapped for a candidate file
    (`config -q`), for an atomic write to run before its rename; None without Compose."""
    compose = find_compose()
    if compose is None:
        return None
    real = Path(os.path.realpath(replaced))
    others = [f for f in files if f.resolve() != real]

    def validate(candidate: Path) -> None:
        argv = compose_argv(
            compose,
            project.name,
            str(project.working_dir),
            tuple(str(f) for f in [*others, candidate]),
        )
        try:
            done = subprocess.run(
                [*argv, "config", "-q"],
                cwd=project.working_dir,
                env=compose_environment(settings),
                capture_output=True,
                text=True,
                timeout=VALIDATE_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HandlerError(f"could not validate the override with compose: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            raise HandlerError(
                f"compose rejects the merged override ({tail[0][:300]}); nothing was changed"
            )

    return validate
