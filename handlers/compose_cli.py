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
from handlers.compose_binary import (
    ComposeCommand,
    compose_argv,
    compose_of_flavour,
    installed_composes,
)
from handlers.creation import Creation, creation_of
from handlers.envfile import read_env_file
from handlers.override import declared_services
from handlers.project import DifyProject, discover
from handlers.redact import Redactor, redactor_for
from handlers.results import HandlerError

COMPOSE_TIMEOUT = 300.0
VALIDATE_TIMEOUT = 60.0
# What the compose CLI may inherit from the bot's environment: only what it needs to find the
# engine and its plugins. Compose gives the caller's environment precedence over `.env`, so
# anything else (OPENAI_API_BASE, COMPOSE_PROFILES, DB_*, and LANG/LC_ALL, which Dify 1.9's
# shared environment takes as ${LANG:-...}) set where the bot runs would silently override
# Dify's configuration in every recreated container.
PASS_ENV = (
    "PATH",
    "HOME",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
)
COMMAND_OF_FLAVOUR = {"v2": "docker compose", "v1": "docker-compose"}


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


def _default_files(project: DifyProject, files: tuple[Path, ...]) -> bool:
    defaults = compose_file.default_compose_files(project.working_dir)
    return [f.resolve() for f in files] == [f.resolve() for f in defaults]


def _default_env(project: DifyProject, env_files: tuple[Path, ...]) -> bool:
    return not env_files or env_files == (project.working_dir / ".env",)


@dataclass(frozen=True)
class ComposeTarget:
    """Everything a compose call on the Dify project needs; `redactor` cleans its output.

    `env_files` and `profiles` are passed only when the stack needs them (`--env-file` when it
    was created with other `.env` files, `--profile` when running services' profiles are not
    all in COMPOSE_PROFILES): Compose then reads exactly what created the stack.
    """

    compose: ComposeCommand
    project: DifyProject
    files: tuple[Path, ...]
    env_files: tuple[Path, ...]
    environment: dict[str, str]
    redactor: Redactor = field(default_factory=Redactor)
    profiles: tuple[str, ...] = ()
    config: compose_file.ComposeConfig | None = None  # the files as this Compose reads them
    creation: Creation = field(default_factory=Creation)

    def _options(self) -> list[str]:
        out: list[str] = []
        for path in self.env_files:
            out += ["--env-file", str(path)]
        for profile in self.profiles:
            out += ["--profile", profile]
        return out

    def argv(self, *args: str) -> list[str]:
        head = compose_argv(
            self.compose,
            self.project.name,
            str(self.project.working_dir),
            tuple(str(f) for f in self.files),
        )
        return [*head, *self._options(), *args]

    def shown(self, *args: str) -> str:
        """The command as a person would type it in the Dify folder."""
        return manual_command(
            self.compose.label, self.project, self.files, self._options(), args, cd=False
        )

    @property
    def declared(self) -> set[str]:
        if self.config is not None:
            return set(self.config.services) | set(self.config.inactive)
        return declared_services(self.files)


def manual_command(
    compose: str,
    project: DifyProject,
    files: tuple[Path, ...],
    options: list[str],
    args: tuple[str, ...],
    cd: bool = True,
) -> str:
    """`[cd DIR && ]<compose> -p NAME [-f F ...] [options] args`, -f only when the files are not
    the ones Compose reads by default."""
    parts = [compose, "-p", project.name]
    if files and not _default_files(project, files):
        for path in files:
            shown = (
                path.relative_to(project.working_dir)
                if path.is_relative_to(project.working_dir)
                else path
            )
            parts += ["-f", str(shown)]
    parts += [*options, *args]
    text = " ".join(parts)
    return f"cd {project.working_dir} && {text}" if cd else text


class NotReproducible(HandlerError):
    """The stack cannot be recreated exactly as it was created; nothing was changed."""


def _refuse(project: DifyProject, flavour: str | None, why: str, files: tuple[Path, ...]) -> None:
    command = COMMAND_OF_FLAVOUR.get(flavour or "v2", "docker compose")
    manual = manual_command(command, project, files, [], ("up", "-d", "--no-deps", "<service>..."))
    raise NotReproducible(
        f"{why}; recreating with anything else would change the containers, so nothing was "
        f"changed. By hand: `{manual}`"
    )


def _profiles(config: compose_file.ComposeConfig, project: DifyProject) -> tuple[str, ...]:
    """`--profile` for every profile the running stack uses, when COMPOSE_PROFILES alone would
    leave some of its services out (it was started with `--profile`); else none."""
    used = {
        profile
        for service in project.containers
        if service in config.inactive
        for profile in config.inactive[service].profiles
    }
    if not used:
        return ()
    return tuple(sorted(set(config.profiles) | used))


def read_config(
    settings: Settings,
    project: DifyProject,
    files: tuple[Path, ...],
    flavour: str,
    env_files: tuple[Path, ...] = (),
    overlay: dict[Path, str | None] | None = None,
) -> compose_file.ComposeConfig:
    """The compose files as Compose `flavour` reads them with the clean environment a compose
    call gets (`.env`, or the stack's `--env-file`s). `overlay`: file texts to read instead of
    the files on disk, by resolved path (what a plan would write)."""
    env = compose_file.read_env_files(
        env_files or (project.env_path,), compose_environment(settings), flavour, overlay
    )
    return compose_file.load_compose(
        files, env, project.working_dir, flavour=flavour, overlay=overlay
    )


def target(settings: Settings, client: docker.DockerClient) -> ComposeTarget:
    """Everything a compose call needs, exactly as the stack was created: the same Compose
    flavour (by its labels), project name, files, `--env-file`s and profiles, with a clean
    environment. NotReproducible (nothing changed) when that is impossible."""
    project = discover(client, settings)
    creation = creation_of(project)
    files = compose_file.effective_files(
        creation.files or project.config_files, project.working_dir
    ) or compose_files(project)
    flavour = creation.flavour
    if creation.problems:
        _refuse(project, flavour, creation.problems[0], files)
    missing = creation.missing_files
    if missing:
        _refuse(
            project,
            flavour,
            f"the stack was created from {', '.join(str(f) for f in missing)}, which no "
            "longer exists",
            files,
        )
    environment = compose_environment(settings)
    if flavour is None:  # no labels to go by (DIFY_DIR without containers)
        found = installed_composes(environment)
        if not found:
            raise HandlerError(
                "neither `docker compose` nor `docker-compose` is installed: install the "
                "Compose plugin (`apt-get install docker-compose-plugin`); nothing was changed"
            )
        compose = found[0]
    else:
        found_of = compose_of_flavour(flavour, environment)
        if found_of is None:
            others = installed_composes(environment)
            have = ", ".join(f"{c.label} {c.version}" for c in others) if others else "no Compose"
            _refuse(
                project,
                flavour,
                f"the stack was created by Compose {creation.version} ({flavour}), which is not "
                f"installed here (found: {have})",
                files,
            )
        assert found_of is not None
        compose = found_of
    env_files = creation.env_files
    if not env_files and project.env_path.parent.resolve() != project.working_dir.resolve():
        env_files = (project.env_path,)
    if _default_env(project, env_files):
        env_files = ()
    try:
        config = read_config(settings, project, files, compose.flavour, env_files)
    except HandlerError as exc:
        raise HandlerError(
            f"Compose cannot read the project ({exc}); fix that first, nothing was changed"
        ) from None
    values: dict[str, str] = {}
    with contextlib.suppress(HandlerError):
        values = read_env_file(project.env_path).values
    return ComposeTarget(
        compose,
        project,
        files,
        env_files,
        environment,
        redactor_for(settings, env_values=values, env_path=project.env_path),
        _profiles(config, project),
        config,
        creation,
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
    flavour = creation_of(project).flavour
    environment = compose_environment(settings)
    if flavour is not None:
        compose = compose_of_flavour(flavour, environment)
    else:
        found = installed_composes(environment)
        compose = found[0] if found else None
    if compose is None:
        return None  # the restart that follows refuses with the reason
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
                env=environment,
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
