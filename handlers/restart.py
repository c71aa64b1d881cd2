"""`restart`: apply configuration by recreating exactly the services that need it.

`docker restart` (and `compose restart`) does not re-read `.env` or the compose files: a
container's environment and extra_hosts are fixed when it is created. So the default here is
`<compose> up -d --no-deps SERVICE...` for the services that share Dify's environment and those
named in the override: Compose recreates the ones whose configuration hash changed and leaves
the others (and db, redis) alone. Services that must drop an in-process cache after a database
fix, but whose configuration did not change, are then restarted. `--all` is the seed's
`down` + `up -d`. Every path ends with a bounded wait for running/healthy containers, and
`restart_and_check` adds the fresh check that says whether the problem is gone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import docker

from config.i18n import gettext as _
from config.i18n import ngettext
from config.settings import Settings
from handlers import container_exec, engine
from handlers.check import verification_check
from handlers.compose_cli import (
    VALIDATE_TIMEOUT,
    ComposeTarget,
    NotReproducible,
    run_compose,
    target,
)
from handlers.layout import HEALTH_URLS, KNOWN_ONE_SHOT, env_consumers, one_shot_services
from handlers.mutation_lock import exclusive
from handlers.override import named_services, override_path
from handlers.pending import clear_pending, read_pending
from handlers.project import DB_FIX_SERVICES, SHARED_ENV_SERVICES, discover
from handlers.results import HandlerError, Progress, Report, no_progress

DEFAULT_WAIT = 120.0

Mode = Literal["apply", "services", "all"]
CheckFn = Callable[[Settings], Report]


# --- state of the containers -----------------------------------------------------------------
@dataclass(frozen=True)
class ServiceState:
    service: str
    container_id: str | None
    state: str  # running, exited, ..., or "missing"
    health: str | None
    exit_code: int | None = None
    one_shot: bool = False  # a job that runs once (init_permissions): done when it exited 0

    @property
    def ready(self) -> bool:
        if self.one_shot:
            return self.state == "exited" and self.exit_code == 0
        return self.state == "running" and self.health in (None, "healthy")

    def describe(self) -> str:
        if self.container_id is None:
            return f"{self.service}: no container"
        if self.one_shot and self.state == "exited":
            return f"{self.service}: exited with code {self.exit_code}"
        health = f", {self.health}" if self.health else ""
        return f"{self.service}: {self.state}{health}"


def snapshot(
    client: docker.DockerClient, settings: Settings, one_shot: Iterable[str] = KNOWN_ONE_SHOT
) -> dict[str, ServiceState]:
    try:
        project = discover(client, settings)
    except HandlerError:
        return {}
    jobs = set(one_shot)
    return {
        service: ServiceState(
            service, info.id, info.state, info.health, info.exit_code, service in jobs
        )
        for service, info in project.containers.items()
    }


def wait_ready(
    client: docker.DockerClient,
    settings: Settings,
    services: Sequence[str],
    timeout: float,
    progress: Progress = no_progress,
    one_shot: Iterable[str] = KNOWN_ONE_SHOT,
) -> tuple[dict[str, ServiceState], list[str]]:
    """Poll until every service runs (and is healthy where it has a healthcheck; a one-shot
    job: exited with code 0).

    Returns the last states and the services still not ready when the deadline passed.
    """
    deadline = time.monotonic() + timeout
    last_note = ""
    jobs = tuple(one_shot)
    while True:
        states = snapshot(client, settings, jobs)
        pending = [s for s in services if not (states.get(s) and states[s].ready)]
        if not pending:
            return states, []
        note = ", ".join(
            states[s].describe() if s in states else f"{s}: no container" for s in pending
        )
        if note != last_note:
            progress(_("waiting for {what}").format(what=note))
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


# --- the three ways to restart ----------------------------------------------------------------
def affected_services(tgt: ComposeTarget, extra: Iterable[str] = ()) -> list[str]:
    """Services whose environment follows `.env` (Dify's shared environment; on 1.14+ every
    env_file reader) and those the override names, that the project declares (plus `extra`),
    in a stable order."""
    declared = tgt.declared
    wanted = env_consumers(tgt.config, declared)
    override = override_path(tgt.project.working_dir)
    wanted += [s for s in named_services(override) if s in declared]
    wanted += [s for s in extra if s in declared]
    return list(dict.fromkeys(wanted))


@dataclass
class _Run:
    """One restart under the host's lock: the engine, the compose target, what was run."""

    client: docker.DockerClient
    settings: Settings
    tgt: ComposeTarget
    progress: Progress
    start: float
    commands: list[str]

    def compose(self, *args: str) -> None:
        run_compose(self.tgt, *args)
        self.commands.append(self.tgt.shown(*args))

    def preflight(self, services: Sequence[str]) -> None:
        """Refuse before anything stops unless this Compose, exactly as it will be run,
        accepts the project and `services` share its flavour: a refused `up` halfway through
        would leave the stack half-recreated."""
        self.same_flavour(services)
        try:
            run_compose(self.tgt, "config", "-q", timeout=VALIDATE_TIMEOUT)
        except HandlerError as exc:
            raise NotReproducible(_("{error}; nothing was changed").format(error=exc)) from None

    def same_flavour(self, services: Sequence[str]) -> None:
        """Refuse (nothing changed) when `services` were not all created by the Compose
        flavour this run uses: the others would come back with another environment."""
        flavour, problem = self.tgt.creation.flavour_for(services)
        if problem is None and flavour is not None and flavour != self.tgt.compose.flavour:
            problem = _("the services were created by Compose {flavour}").format(flavour=flavour)
        if problem is not None:
            raise NotReproducible(
                _(
                    "{problem}; recreating them with {compose} would change their environment, "
                    "so nothing was changed. By hand: {command}"
                ).format(
                    problem=problem,
                    compose=f"{self.tgt.compose.label} {self.tgt.compose.version}",
                    command=f"`cd {self.tgt.project.working_dir} && "
                    f"{self.tgt.shown('up', '-d', '--no-deps', *services)}`",
                )
            )

    @property
    def one_shot(self) -> tuple[str, ...]:
        return one_shot_services(self.tgt.config)

    def snapshot(self) -> dict[str, ServiceState]:
        return snapshot(self.client, self.settings, self.one_shot)

    def wait_endpoints(
        self,
        services: Sequence[str],
        states: dict[str, ServiceState],
        pending: Sequence[str],
        deadline: float,
    ) -> list[str]:
        """Services with a health endpoint but no Docker healthcheck (api before Dify 1.14,
        plugin_daemon): running is not answering, so wait until the endpoint does. The ones
        still silent at the deadline."""
        silent: list[str] = []
        told: set[str] = set()
        for service in services:
            state = states.get(service)
            url = HEALTH_URLS.get(service)
            if url is None or service in pending or state is None or state.health is not None:
                continue
            if state.container_id is None:
                continue
            while True:
                left = deadline - time.monotonic()
                probe = container_exec.http_get(
                    self.client, state.container_id, url, max(1.0, min(3.0, left))
                )
                if probe.ok:
                    break
                if left <= 0:
                    silent.append(service)
                    break
                if service not in told:
                    self.progress(
                        _("waiting for {service} to answer {url}").format(service=service, url=url)
                    )
                    told.add(service)
                time.sleep(0.3)
        return silent

    def finish(
        self,
        mode: Mode,
        services: Sequence[str],
        before: dict[str, ServiceState],
        wait: float,
        restarted: Iterable[str] = (),
        notes: Sequence[str] = (),
    ) -> RestartResult:
        deadline = time.monotonic() + wait
        after, pending = wait_ready(
            self.client, self.settings, services, wait, self.progress, self.one_shot
        )
        pending += self.wait_endpoints(services, after, pending, deadline)
        if mode != "services" and not pending:
            clear_pending(self.settings, self.tgt.project.working_dir)
        return RestartResult(
            mode=mode,
            project=self.tgt.project.name,
            services=tuple(services),
            outcomes=_outcomes(services, before, after, set(restarted)),
            commands=tuple(self.commands),
            not_ready=tuple(pending),
            duration_ms=int((time.monotonic() - self.start) * 1000),
            notes=tuple(notes),
        )


@contextlib.contextmanager
def _locked(
    settings: Settings,
    operation: str,
    user: str,
    source: str,
    key: str | None,
    progress: Progress,
) -> Iterator[_Run]:
    """The engine, then the host's mutation lock, then the compose target (read under the
    lock: an override a fix just wrote counts)."""
    start = time.monotonic()
    client = engine.connect(settings)
    with exclusive(settings.state_path, operation, user, source, key):
        yield _Run(client, settings, target(settings, client), progress, start, [])


def _up_then_restart(
    run: _Run,
    mode: Mode,
    services: list[str],
    must_restart: set[str],
    wait: float,
    notes: Sequence[str] = (),
) -> RestartResult:
    run.preflight(services)
    before = run.snapshot()
    up_args = ("up", "-d", "--no-deps", *services)
    run.progress(
        _("applying configuration: {command}").format(command=f"`{run.tgt.shown(*up_args)}`")
    )
    run.compose(*up_args)
    middle = run.snapshot()
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
        run.progress(
            _("restarting (configuration unchanged): {services}").format(services=", ".join(stale))
        )
        run.compose("restart", *stale)
    run.progress(
        _("waiting for {services} to be running/healthy (at most {seconds} s)").format(
            services=", ".join(services), seconds=f"{wait:g}"
        )
    )
    return run.finish(mode, services, before, wait, stale, notes)


def apply_configuration(
    settings: Settings,
    *,
    user: str,
    source: str,
    extra_restart: Iterable[str] = (),
    key: str | None = None,
    wait: float = DEFAULT_WAIT,
    progress: Progress = no_progress,
) -> RestartResult:
    """The default `restart`: recreate what changed, restart what must drop caches."""
    operation = "restart (apply configuration)"
    with _locked(settings, operation, user, source, key, progress) as run:
        tgt = run.tgt
        # Read under the lock: a fix being applied right now adds to it.
        pending = read_pending(settings, tgt.project.working_dir)
        must = set(extra_restart)
        notes = []
        if pending is not None and pending.db_changed:
            callers = [s for s in DB_FIX_SERVICES if s in tgt.declared]
            must |= set(callers)
            notes.append(
                _(
                    "database base URLs changed: {services} recreated or restarted so no process "
                    "keeps the old URL"
                ).format(services=", ".join(callers))
            )
        services = affected_services(tgt, [*(pending.services if pending else []), *must])
        if not services:
            raise HandlerError(
                _(
                    "none of {services} is declared in {file}: is DIFY_DIR Dify's docker folder?"
                ).format(services=", ".join(SHARED_ENV_SERVICES), file=tgt.files[0].name)
            )
        return _up_then_restart(run, "apply", services, must, wait, notes)


def validate_services(tgt: ComposeTarget, services: Sequence[str]) -> list[str]:
    known = tgt.declared | set(tgt.project.containers)
    unknown = [s for s in services if s not in known]
    if unknown:
        raise HandlerError(
            ngettext(
                "unknown service {services}; this project has: {known}",
                "unknown services {services}; this project has: {known}",
                len(unknown),
            ).format(services=", ".join(unknown), known=", ".join(sorted(known)))
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
    progress: Progress = no_progress,
) -> RestartResult:
    """`restart SERVICE...`: apply their configuration and restart each of them."""
    operation = f"restart {' '.join(services)[:100]}"
    with _locked(settings, operation, user, source, key, progress) as run:
        names = validate_services(run.tgt, services)
        return _up_then_restart(run, "services", names, set(names), wait)


def restart_all(
    settings: Settings,
    *,
    user: str,
    source: str,
    key: str | None = None,
    wait: float = DEFAULT_WAIT,
    progress: Progress = no_progress,
) -> RestartResult:
    """`restart --all`: the seed's `down` + `up -d` (every container recreated, db included)."""
    with _locked(settings, "restart --all (down + up -d)", user, source, key, progress) as run:
        run.preflight(sorted(run.tgt.project.containers))
        before = run.snapshot()
        progress(
            _("stopping the whole stack: {command}").format(command=f"`{run.tgt.shown('down')}`")
        )
        run.compose("down")
        progress(_("starting it again: {command}").format(command=f"`{run.tgt.shown('up', '-d')}`"))
        run.compose("up", "-d")
        services = sorted(run.snapshot()) or sorted(before)
        return run.finish("all", services, before, wait)


# --- restart, then verify --------------------------------------------------------------------
@dataclass(frozen=True)
class Verified:
    """A restart and the fresh check after it (None when no check was asked for)."""

    restart: RestartResult
    report: Report | None

    @property
    def exit_code(self) -> int:
        code = 0 if self.restart.ready else 1
        return max(code, self.report.exit_code) if self.report is not None else code

    @property
    def healthy(self) -> bool:
        """Every service ready and a check that found no failure."""
        return self.restart.ready and self.report is not None and self.report.exit_code == 0


def restart_and_check(
    settings: Settings,
    mode: Mode = "apply",
    services: Sequence[str] = (),
    *,
    user: str,
    source: str,
    key: str | None = None,
    wait: float = DEFAULT_WAIT,
    progress: Progress = no_progress,
    check: CheckFn | None = verification_check,
    restarted: Callable[[RestartResult], None] | None = None,
) -> Verified:
    """Restart one of the three ways (apply: the default; services: the named ones; all), then
    run a check that began after it: a restart alone never claims the problem is fixed. The
    check includes the chat test when the chat model is loaded already (dify.chat says whether
    it ran).
    `restarted(result)` runs in between (to show the restart while the check runs);
    `check=None` skips the check."""
    common: dict[str, Any] = {
        "user": user,
        "source": source,
        "key": key,
        "wait": wait,
        "progress": progress,
    }
    if mode == "all":
        result = restart_all(settings, **common)
    elif mode == "services":
        result = restart_services(settings, services, **common)
    else:
        result = apply_configuration(settings, **common)
    if restarted is not None:
        restarted(result)
    return Verified(result, check(settings) if check is not None else None)
