"""`restart`: apply configuration by recreating exactly the services that need it.

`docker restart` (and `compose restart`) does not re-read `.env` or the compose files: a
container's environment and extra_hosts are fixed when it is created. So the default here is
`<compose> up -d --no-deps SERVICE...` for the services that share Dify's environment and those
named in the override: Compose recreates the ones whose configuration hash changed and leaves
the others (and db, redis) alone. Services that must drop an in-process cache after a database
fix, but whose configuration did not change, are then restarted. `--all` is the seed's
`down` + `up -d`. Every path ends with a bounded wait for running/healthy containers.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker

from config.settings import Settings
from handlers import compose_file, engine
from handlers.backup import Ownership, atomic_write, utc_stamp
from handlers.compose_cli import ComposeCommand, compose_argv, find_compose
from handlers.envfile import read_env_file
from handlers.mutation_lock import exclusive
from handlers.override import declared_services, named_services, override_path
from handlers.project import DifyProject, discover
from handlers.results import HandlerError

SHARED_ENV_SERVICES = ("api", "worker", "worker_beat", "plugin_daemon")
# After a database fix these drop whatever they cached in process, even when not recreated.
DB_FIX_SERVICES = ("api", "worker", "plugin_daemon")
DEFAULT_WAIT = 120.0
COMPOSE_TIMEOUT = 300.0
PENDING_FILE = "pending-restart.json"
# What the compose CLI may inherit from the bot's environment. Compose gives the caller's
# environment precedence over `.env`: anything else (OPENAI_API_BASE, COMPOSE_PROFILES, DB_*)
# set where the bot runs would silently override Dify's configuration.
_PASS_ENV = (
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

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    return None


@dataclass(frozen=True)
class ComposeTarget:
    compose: ComposeCommand
    project: DifyProject
    files: tuple[Path, ...]
    env_file: Path | None  # only when `.env` is not in the project folder
    environment: dict[str, str]
    secrets: frozenset[str] = frozenset()

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


def compose_files(project: DifyProject) -> tuple[Path, ...]:
    """The files the project was created from, plus the override Compose would load itself."""
    files = compose_file.effective_files(project.config_files, project.working_dir)
    if not files:
        raise HandlerError(
            f"no compose file in {project.working_dir}: point DIFY_DIR at Dify's docker folder"
        )
    return files


def compose_environment(settings: Settings) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["DOCKER_HOST"] = engine.docker_host(settings)
    return env


def connect(settings: Settings) -> docker.DockerClient:
    client, problem, _ = engine.ping(settings)
    if client is None:
        reason = problem.message if problem else "no answer"
        remedy = problem.remedy if problem else ""
        raise HandlerError(f"Docker engine unreachable: {reason}. {remedy}".strip())
    return client


def target(settings: Settings, client: docker.DockerClient) -> ComposeTarget:
    """Everything a compose call needs; HandlerError (nothing changed) when something lacks."""
    compose = find_compose()
    if compose is None:
        raise HandlerError(
            "neither `docker compose` nor `docker-compose` is installed: install the Compose "
            "plugin (`apt-get install docker-compose-plugin`); nothing was changed"
        )
    project = discover(client, settings)
    files = compose_files(project)
    env_file = None
    if project.env_path.parent.resolve() != project.working_dir.resolve():
        env_file = project.env_path
    secrets: frozenset[str] = frozenset()
    with contextlib.suppress(HandlerError):
        secrets = frozenset(read_env_file(project.env_path).secret_values())
    return ComposeTarget(compose, project, files, env_file, compose_environment(settings), secrets)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "[REDACTED]")
    return text


def run_compose(tgt: ComposeTarget, *args: str, timeout: float = COMPOSE_TIMEOUT) -> str:
    argv = tgt.argv(*args)
    try:
        done = subprocess.run(
            argv,
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
    output = _scrub((done.stdout or "") + (done.stderr or ""), tgt.secrets)
    if done.returncode != 0:
        tail = " | ".join(line.strip() for line in output.strip().splitlines()[-4:])
        raise HandlerError(f"`{tgt.shown(*args)}` failed (exit {done.returncode}): {tail[:600]}")
    return output


# --- state of the containers -----------------------------------------------------------------
@dataclass(frozen=True)
class ServiceState:
    service: str
    container_id: str | None
    state: str  # running, exited, ..., or "missing"
    health: str | None

    @property
    def ready(self) -> bool:
        return self.state == "running" and self.health in (None, "healthy")

    def describe(self) -> str:
        if self.container_id is None:
            return f"{self.service}: no container"
        health = f", {self.health}" if self.health else ""
        return f"{self.service}: {self.state}{health}"


def snapshot(client: docker.DockerClient, settings: Settings) -> dict[str, ServiceState]:
    try:
        project = discover(client, settings)
    except HandlerError:
        return {}
    return {
        service: ServiceState(service, info.id, info.state, info.health)
        for service, info in project.containers.items()
    }


def wait_ready(
    client: docker.DockerClient,
    settings: Settings,
    services: Sequence[str],
    timeout: float,
    progress: Progress = _noop,
) -> tuple[dict[str, ServiceState], list[str]]:
    """Poll until every service runs (and is healthy where it has a healthcheck).

    Returns the last states and the services still not ready when the deadline passed.
    """
    deadline = time.monotonic() + timeout
    last_note = ""
    while True:
        states = snapshot(client, settings)
        pending = [s for s in services if not (states.get(s) and states[s].ready)]
        if not pending:
            return states, []
        note = ", ".join(
            states[s].describe() if s in states else f"{s}: no container" for s in pending
        )
        if note != last_note:
            progress(f"waiting for {note}")
            last_note = note
        if time.monotonic() >= deadline:
            return states, pending
        time.sleep(0.3)


# --- results -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceOutcome:
    service: str
    action: str  # recreated | restarted | started | unchanged
    before: str | None  # container id
    after: str | None
    state: str

    def describe(self) -> str:
        return f"{self.service}: {self.action} ({self.state})"


@dataclass(frozen=True)
class RestartResult:
    mode: str  # apply | services | all
    project: str
    services: tuple[str, ...]
    outcomes: tuple[ServiceOutcome, ...]
    commands: tuple[str, ...]
    not_ready: tuple[str, ...]
    duration_ms: int
    notes: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return not self.not_ready

    @property
    def recreated(self) -> tuple[str, ...]:
        return tuple(o.service for o in self.outcomes if o.action == "recreated")

    @property
    def restarted(self) -> tuple[str, ...]:
        return tuple(o.service for o in self.outcomes if o.action == "restarted")

    def lines(self) -> list[str]:
        out = [f"$ {c}" for c in self.commands]
        out += [o.describe() for o in self.outcomes]
        if self.not_ready:
            out.append("not ready in time: " + ", ".join(self.not_ready))
        out += list(self.notes)
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ready"] = self.ready
        return data


def _outcomes(
    services: Sequence[str],
    before: dict[str, ServiceState],
    after: dict[str, ServiceState],
    restarted: set[str],
) -> tuple[ServiceOutcome, ...]:
    out = []
    for service in services:
        old = before.get(service)
        new = after.get(service)
        old_id = old.container_id if old else None
        new_id = new.container_id if new else None
        if old_id is None and new_id is not None:
            action = "started"
        elif old_id != new_id:
            action = "recreated"
        elif service in restarted:
            action = "restarted"
        elif old is not None and not old.ready and new is not None and new.ready:
            action = "started"
        else:
            action = "unchanged"
        out.append(
            ServiceOutcome(service, action, old_id, new_id, new.describe() if new else "missing")
        )
    return tuple(out)


# --- pending restarts (written by fix-env, read by restart) ----------------------------------
@dataclass
class Pending:
    dify_dir: str
    services: list[str] = field(default_factory=list)
    db_changed: bool = False
    backup: str | None = None
    at: str = field(default_factory=utc_stamp)


def _pending_path(settings: Settings) -> Path:
    return settings.state_path / PENDING_FILE


def read_pending(settings: Settings, dify_dir: Path) -> Pending | None:
    try:
        data = json.loads(_pending_path(settings).read_text())
    except (OSError, ValueError):
        return None
    entry = data.get(str(dify_dir)) if isinstance(data, dict) else None
    return Pending(**entry) if isinstance(entry, dict) else None


def _write_pending(settings: Settings, data: dict[str, Any]) -> None:
    path = _pending_path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(
        path,
        json.dumps(data, indent=2, sort_keys=True).encode(),
        like=Ownership(0o600, os.geteuid(), os.getegid()),
    )


def record_pending(settings: Settings, pending: Pending) -> None:
    """Remember what a fix changed so the next `restart` applies it (merging earlier ones)."""
    try:
        data = json.loads(_pending_path(settings).read_text())
    except (OSError, ValueError):
        data = {}
    old = data.get(pending.dify_dir) or {}
    services = list(dict.fromkeys([*old.get("services", []), *pending.services]))
    data[pending.dify_dir] = asdict(pending) | {
        "services": services,
        "db_changed": bool(old.get("db_changed")) or pending.db_changed,
    }
    _write_pending(settings, data)


def clear_pending(settings: Settings, dify_dir: Path) -> None:
    try:
        data = json.loads(_pending_path(settings).read_text())
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.pop(str(dify_dir), None) is not None:
        _write_pending(settings, data)


# --- the three ways to restart ----------------------------------------------------------------
def affected_services(tgt: ComposeTarget, extra: Iterable[str] = ()) -> list[str]:
    """Services sharing Dify's environment and those the override names, that the project
    declares (plus `extra`), in a stable order."""
    declared = tgt.declared
    wanted = [s for s in SHARED_ENV_SERVICES if s in declared]
    override = override_path(tgt.project.working_dir)
    wanted += [s for s in named_services(override) if s in declared]
    wanted += [s for s in extra if s in declared]
    return list(dict.fromkeys(wanted))


def _up_then_restart(
    client: docker.DockerClient,
    settings: Settings,
    tgt: ComposeTarget,
    services: list[str],
    must_restart: set[str],
    mode: str,
    wait: float,
    progress: Progress,
    start: float,
    notes: Sequence[str] = (),
) -> RestartResult:
    before = snapshot(client, settings)
    commands = []
    up_args = ("up", "-d", "--no-deps", *services)
    progress(f"applying configuration: `{tgt.shown(*up_args)}`")
    run_compose(tgt, *up_args)
    commands.append(tgt.shown(*up_args))
    middle = snapshot(client, settings)
    # Services Compose did not recreate still run the old process: restart those that must
    # drop in-process state (after a database fix, or because they were named).
    stale = [
        s
        for s in services
        if s in must_restart
        and before.get(s)
        and middle.get(s)
        and before[s].container_id == middle[s].container_id
    ]
    if stale:
        args = ("restart", *stale)
        progress(f"restarting (configuration unchanged): {', '.join(stale)}")
        run_compose(tgt, *args)
        commands.append(tgt.shown(*args))
    progress(f"waiting for {', '.join(services)} to be running/healthy (at most {wait:g} s)")
    after, pending = wait_ready(client, settings, services, wait, progress)
    return RestartResult(
        mode=mode,
        project=tgt.project.name,
        services=tuple(services),
        outcomes=_outcomes(services, before, after, set(stale)),
        commands=tuple(commands),
        not_ready=tuple(pending),
        duration_ms=int((time.monotonic() - start) * 1000),
        notes=tuple(notes),
    )


def apply_configuration(
    settings: Settings,
    *,
    user: str,
    source: str,
    extra_restart: Iterable[str] = (),
    key: str | None = None,
    wait: float = DEFAULT_WAIT,
    progress: Progress = _noop,
) -> RestartResult:
    """The default `restart`: recreate what changed, restart what must drop caches."""
    start = time.monotonic()
    client = connect(settings)
    with exclusive(settings.state_path, "restart (apply configuration)", user, source, key):
        tgt = target(settings, client)  # under the lock: an override a fix just wrote counts
        # Read under the lock: a fix being applied right now adds to it.
        pending = read_pending(settings, tgt.project.working_dir)
        must = set(extra_restart)
        notes = []
        if pending is not None and pending.db_changed:
            must |= set(DB_FIX_SERVICES)
            notes.append(
                "database base URLs changed: api, worker and plugin_daemon restarted so no "
                "process keeps the old URL"
            )
        services = affected_services(tgt, [*(pending.services if pending else []), *must])
        if not services:
            raise HandlerError(
                f"none of {', '.join(SHARED_ENV_SERVICES)} is declared in {tgt.files[0].name}: "
                "is DIFY_DIR Dify's docker folder?"
            )
        result = _up_then_restart(
            client, settings, tgt, services, must, "apply", wait, progress, start, notes
        )
        if result.ready:
            clear_pending(settings, tgt.project.working_dir)
        return result


def validate_services(tgt: ComposeTarget, services: Sequence[str]) -> list[str]:
    known = tgt.declared | set(tgt.project.containers)
    unknown = [s for s in services if s not in known]
    if unknown:
        raise HandlerError(
            f"unknown service{'s' * (len(unknown) > 1)} {', '.join(unknown)}; this project has: "
            + ", ".join(sorted(known))
        )
    return list(dict.fromkeys(services))


def restart_services(
    settings: Settings,
    services: Sequence[str],
    *,
    user: str,
    source: str,
    key: str | None = None,
    wait: float = DEFAULT_WAIT,
    progress: Progress = _noop,
) -> RestartResult:
    """`restart SERVICE...`: apply their configuration and restart each of them."""
    start = time.monotonic()
    client = connect(settings)
    label = " ".join(services)[:100]
    with exclusive(settings.state_path, f"restart {label}", user, source, key):
        tgt = target(settings, client)
        names = validate_services(tgt, services)
        return _up_then_restart(
            client, settings, tgt, names, set(names), "services", wait, progress, start
        )


def restart_all(
    settings: Settings,
    *,
    user: str,
    source: str,
    key: str | None = None,
    wait: float = DEFAULT_WAIT,
    progress: Progress = _noop,
) -> RestartResult:
    """`restart --all`: the seed's `down` + `up -d` (every container recreated, db included)."""
    start = time.monotonic()
    client = connect(settings)
    with exclusive(settings.state_path, "restart --all (down + up -d)", user, source, key):
        tgt = target(settings, client)
        before = snapshot(client, settings)
        commands = []
        progress(f"stopping the whole stack: `{tgt.shown('down')}`")
        run_compose(tgt, "down")
        commands.append(tgt.shown("down"))
        progress(f"starting it again: `{tgt.shown('up', '-d')}`")
        run_compose(tgt, "up", "-d")
        commands.append(tgt.shown("up", "-d"))
        services = sorted(snapshot(client, settings)) or sorted(before)
        after, pending = wait_ready(client, settings, services, wait, progress)
        if not pending:
            clear_pending(settings, tgt.project.working_dir)
        return RestartResult(
            mode="all",
            project=tgt.project.name,
            services=tuple(services),
            outcomes=_outcomes(services, before, after, set()),
            commands=tuple(commands),
            not_ready=tuple(pending),
            duration_ms=int((time.monotonic() - start) * 1000),
        )
