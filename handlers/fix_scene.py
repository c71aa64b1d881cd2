"""What fix-env decides on, read from the host once: the gather step of gather -> decide -> act.

`gather` is the only place where planning, applying and undoing read the host before they act:
the Dify project and its containers, `.env` (and `.env.example`), the compose files and the
override, the Ollama rows of Dify's database, and whether host.docker.internal resolves in a
model caller. It returns a frozen `Scene`; everything decided from a scene
(`handlers/fix_decide.py`, `fix_apply.prepare`, `fix_undo.row_updates`) makes no engine call,
so tests build scenes by hand.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import docker
from docker.errors import DockerException

from config.settings import Settings
from handlers import backup as backups
from handlers import compose_file, container_exec, dify_db, env_edit
from handlers.compose_cli import compose_files, read_config
from handlers.creation import creation_of
from handlers.envfile import EnvFile, parse_env_bytes
from handlers.override import GATEWAY_NAME, declared_services, missing_gateway, override_path
from handlers.project import MODEL_CALLERS, DifyProject, discover
from handlers.redact import env_list_to_dict
from handlers.results import HandlerError

TEMPLATE_NAME = ".env.example"
RowsWanted = Literal["auto"] | dify_db.DbLogin | None


@dataclass(frozen=True)
class Gateway:
    """Whether host.docker.internal resolves in the model callers without a compose mapping,
    as far as the engine could tell (gathered only when the compose files lack the mapping)."""

    service: str | None  # the running model caller that was asked; None: none runs
    mapped: bool = False  # its container has the mapping although the files do not
    resolves: bool = False  # the name resolves there natively
    method: str = ""  # how it resolved (getent, python3, ...)
    engine_os: str = ""  # the engine's OperatingSystem, read when no model caller runs


@dataclass(frozen=True)
class Scene:
    project: DifyProject
    files: Mapping[Path, bytes | None] = field(default_factory=dict)  # None: does not exist
    compose_files: tuple[Path, ...] = ()
    compose_error: str | None = None  # why there are no compose files
    declared: frozenset[str] = frozenset()  # services the compose files declare
    compose: compose_file.ComposeConfig | None = None  # read with the current .env values
    compose_config_error: str | None = None
    db: dify_db.DbLogin | None = None  # where the rows were read (None: not read)
    rows: tuple[dify_db.CredentialRow, ...] = ()
    rows_error: str | None = None  # why the rows could not be read
    gateway: Gateway | None = None
    # Services whose OPENAI_API_BASE follows `.env` (a change there reaches them): found by
    # reading the files with a marker value in `.env`. None: the files could not be read.
    env_followers: tuple[str, ...] | None = None

    # --- files ---------------------------------------------------------------------------------
    @property
    def env_path(self) -> Path:
        return self.project.env_path

    @property
    def template_path(self) -> Path:
        return self.env_path.parent / TEMPLATE_NAME

    @property
    def override_path(self) -> Path:
        return override_path(self.project.working_dir)

    def read(self, path: Path | str) -> bytes | None:
        """A file's bytes as gathered (None: it did not exist); KeyError: it was not read."""
        return self.files[Path(path)]

    @property
    def env_bytes(self) -> bytes | None:
        return self.read(self.env_path)

    @property
    def env(self) -> EnvFile | None:
        data = self.env_bytes
        if data is None:
            return None
        return parse_env_bytes(data, self.env_path)

    @property
    def env_values(self) -> dict[str, str]:
        env = self.env
        return dict(env.values) if env is not None else {}

    # --- containers ------------------------------------------------------------------------------
    def running(self, service: str | None) -> str | None:
        return self.project.running(service)

    def required_compose_files(self) -> tuple[Path, ...]:
        if self.compose_error is not None:
            raise HandlerError(self.compose_error)
        return self.compose_files


def _read_files(paths: Iterable[Path]) -> dict[Path, bytes | None]:
    # A symlinked file is read (and later written) at its target.
    return {path: backups.read_bytes(backups.resolve_target(path)) for path in paths}


def _gateway(client: docker.DockerClient, project: DifyProject, timeout: float) -> Gateway:
    for service in MODEL_CALLERS:
        info = project.container(service)
        if info is None or info.state != "running":
            continue
        attrs = client.api.inspect_container(info.id)
        hosts = (attrs.get("HostConfig") or {}).get("ExtraHosts") or []
        if any(str(h).split(":", 1)[0] == GATEWAY_NAME for h in hosts):
            return Gateway(service, mapped=True)
        res = container_exec.resolve(client, info.id, GATEWAY_NAME, timeout)
        return Gateway(service, resolves=res.resolved, method=res.method)
    system = ""
    with contextlib.suppress(Exception):  # an engine that will not say is treated as Linux
        system = str(client.info().get("OperatingSystem", ""))
    return Gateway(None, engine_os=system)


def gather(
    settings: Settings,
    client: docker.DockerClient | None,
    *,
    rows: RowsWanted = "auto",
    also_read: Iterable[Path | str] = (),
    gateway: bool = True,
) -> Scene:
    """Read everything a fix-env decision needs, once.

    `rows`: "auto" reads the Ollama rows with the login the running db container was started
    with; a DbLogin reads them with that one (what a plan or backup recorded); None skips them.
    `also_read`: more files to read (the paths a saved plan names). `gateway`: ask the engine
    whether host.docker.internal resolves natively (only done when the files lack the mapping).
    `client` None: no engine; only the files of the project DIFY_DIR names are read.
    """
    project = discover(client, settings)
    env_path = project.env_path
    paths = [
        env_path,
        env_path.parent / TEMPLATE_NAME,
        override_path(project.working_dir),
        *(Path(p) for p in also_read),
    ]
    scene = Scene(project, _read_files(dict.fromkeys(paths)))
    try:
        found = compose_files(project)
    except HandlerError as exc:
        scene = replace(scene, compose_error=str(exc))
    else:
        scene = replace(scene, compose_files=found, declared=frozenset(declared_services(found)))
        scene = _with_compose(scene, settings)
    if rows is not None and client is not None:
        scene = _with_rows(scene, settings, client, rows)
    elif isinstance(rows, dify_db.DbLogin):
        scene = replace(scene, db=rows, rows_error="the Docker engine is not connected")
    if gateway and client is not None and scene.compose and missing_gateway(scene.compose):
        scene = replace(scene, gateway=_gateway(client, project, settings.check_timeout))
    return scene


FOLLOW_MARK = "dify-ollama-follows-env"  # a value no real configuration holds


def _env_text(scene: Scene) -> str | None:
    """`.env` as the plan will find it: the file, else the template it would be created from."""
    data = scene.env_bytes
    if data is None:
        data = scene.read(scene.template_path)
    return data.decode("utf-8", "replace") if data is not None else None


def _overlay(scene: Scene, text: str | None) -> dict[Path, str | None]:
    env = scene.env_path
    return {env: text, backups.resolve_target(env): text}


def _with_compose(scene: Scene, settings: Settings) -> Scene:
    """The compose files as the Compose that created the stack reads them, with `.env` as the
    plan will find it; and which services a change of OPENAI_API_BASE in `.env` reaches."""
    project = scene.project
    flavour = creation_of(project).flavour or compose_file.installed_flavour()
    text = _env_text(scene)

    def read(env_text: str | None) -> compose_file.ComposeConfig:
        return read_config(
            settings,
            project,
            scene.compose_files,
            flavour,
            project.env_files,
            _overlay(scene, env_text),
        )

    try:
        config = read(text)
    except HandlerError as exc:
        return replace(scene, compose_config_error=str(exc))
    scene = replace(scene, compose=config)
    if text is None:
        return scene
    try:
        marked, _ = env_edit.set_values(text, {"OPENAI_API_BASE": FOLLOW_MARK})
        probe = read(marked)
    except HandlerError:
        return scene
    followers = tuple(
        name
        for name, svc in probe.services.items()
        if FOLLOW_MARK in svc.environment.get("OPENAI_API_BASE", "")
    )
    return replace(scene, env_followers=followers)


def _auto_login(scene: Scene, client: docker.DockerClient) -> dify_db.DbLogin | None:
    """The login of the running db container (None: it does not run)."""
    cid = scene.running(scene.project.db_service)
    if cid is None:
        return None
    values = _login_values(scene)
    env: dict[str, str] = {}
    with contextlib.suppress(DockerException):  # gone since discovery: .env's login then
        env = env_list_to_dict((client.api.inspect_container(cid).get("Config") or {}).get("Env"))
    return dify_db.resolve_login(scene.project, values, env)


def _login_values(scene: Scene) -> dict[str, str]:
    """`.env`'s values for the database login; when `.env` will be created from the template,
    the login it will hold."""
    template = scene.read(scene.template_path)
    if scene.env_bytes is None and template is not None:
        return dict(parse_env_bytes(template).values)
    return scene.env_values


def _with_rows(
    scene: Scene,
    settings: Settings,
    client: docker.DockerClient,
    rows: Literal["auto"] | dify_db.DbLogin,
) -> Scene:
    login = _auto_login(scene, client) if rows == "auto" else rows
    if login is None:
        return scene
    try:
        database = dify_db.open_database(client, scene.project, login, _login_values(scene))
        found = tuple(database.read_rows(settings.check_timeout * 2))
    except HandlerError as exc:
        return replace(scene, db=login, rows_error=str(exc))
    return replace(scene, db=login, rows=found)
