"""Which Dify layout a project is (pure): its release, how its configuration reaches the
containers, which Compose created it, its metadata database, and its services.

- 0.x: no plugin_daemon; api and worker merge an `x-shared-env` anchor and call Ollama; DB `db`.
- 1.0-1.13 ("x-shared-env"): the anchor merged into api, worker, worker_beat, plugin_daemon;
  `.env` only interpolates the compose file.
- 1.14+ ("env_file lists"): `envs/**/*.env` (optional) then `./.env` (required, read last) as
  `env_file` entries; `.env` is the user's override file. db_postgres or db_mysql by profile;
  api_websocket, agent_backend, local_sandbox and the one-shot init_permissions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from config.i18n import gettext as _
from handlers.compose_file import ComposeConfig
from handlers.creation import Creation
from handlers.project import DB_SERVICES, SHARED_ENV_SERVICES, DifyProject

KIND_0X = "0.x"
KIND_SHARED_ENV = "x-shared-env"
KIND_ENV_FILES = "env_file lists"

# The services that make up Dify itself (not its optional vector stores and tools), in the
# order a report lists them. Which of them a release has comes from its compose files.
DIFY_SERVICES = (
    "init_permissions",
    "api",
    "api_websocket",
    "worker",
    "worker_beat",
    "plugin_daemon",
    "agent_backend",
    "local_sandbox",
    *DB_SERVICES,
    "redis",
)
# The health endpoints of Dify's services, inside their containers (not published on the host).
API_HEALTH_URL = "http://localhost:5001/health"
HEALTH_URLS = {"api": API_HEALTH_URL, "plugin_daemon": "http://localhost:5002/health/check"}
# Known one-shot jobs (exit 0 when done), for projects whose compose files cannot be read.
KNOWN_ONE_SHOT = ("init_permissions",)
_VERSION = re.compile(r"\d{1,3}\.\d{1,3}(?:\.\d{1,4})?(?:[-.+][0-9A-Za-z.-]{1,40})?")


def release_from_image(image: str) -> str | None:
    """`langgenius/dify-api:1.15.0` -> 1.15.0; None for another image or a non-version tag."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag or "dify-api" not in name.rsplit("/", 1)[-1]:
        return None
    return tag if _VERSION.fullmatch(tag) else None


def db_kind_of(service: str | None, env_values: Mapping[str, str]) -> str:
    """postgresql | mysql, from the running database service, else DB_TYPE."""
    if service == "db_mysql":
        return "mysql"
    if service in ("db", "db_postgres"):
        return "postgresql"
    db_type = (env_values.get("DB_TYPE") or "postgresql").strip().lower()
    if db_type.startswith("postg"):
        return "postgresql"
    return db_type


def kind_of(config: ComposeConfig | None, project: DifyProject, release: str | None) -> str:
    """0.x | x-shared-env | env_file lists | unknown."""
    if config is not None:
        api = config.services.get("api") or config.inactive.get("api")
        if api is not None and api.reads_env_files:
            return KIND_ENV_FILES
        if config.declares("plugin_daemon"):
            return KIND_SHARED_ENV
        if config.declares("api"):
            return KIND_0X
    if release:
        major_minor = tuple(int(x) for x in release.split(".")[:2] if x.isdigit())
        if major_minor[:1] == (0,):
            return KIND_0X
        return KIND_ENV_FILES if major_minor >= (1, 14) else KIND_SHARED_ENV
    if "plugin_daemon" in project.containers:
        return KIND_SHARED_ENV
    return "unknown" if not project.containers else KIND_0X


@dataclass(frozen=True)
class Layout:
    release: str | None
    release_source: str  # "api image tag" | "api /health" | ""
    kind: str
    compose_flavour: str | None  # v2 | v1 (labels); None: no containers to tell
    compose_version: str
    db_kind: str
    db_service: str | None
    services: tuple[str, ...]  # Dify's services this project runs (profiles applied)
    one_shot: tuple[str, ...]

    def describe(self) -> str:
        release = f"Dify {self.release}" if self.release else _("Dify (release unknown)")
        compose = (
            f"Compose {self.compose_flavour} {self.compose_version}".rstrip()
            if self.compose_flavour
            else _("Compose unknown (no containers)")
        )
        return _("{release}, {kind} layout, created by {compose}, metadata DB {db}").format(
            release=release, kind=self.kind, compose=compose, db=self.db_kind
        )


def expected_services(config: ComposeConfig | None, project: DifyProject) -> tuple[str, ...]:
    """Dify's services that should have a container: those the compose files make part of the
    project (profiles applied), plus any that has one; without the files, those that have one."""
    wanted = set(project.containers)
    if config is not None:
        wanted |= set(config.services)
    db_present = [s for s in DB_SERVICES if s in wanted]
    if len(db_present) > 1 and project.db_service:
        # Both database services declared active (no profiles, or both profiles): the one that
        # runs is the database; a stopped leftover of the other is not missing.
        wanted -= set(db_present) - {project.db_service}
    return tuple(s for s in DIFY_SERVICES if s in wanted)


def one_shot_services(config: ComposeConfig | None) -> tuple[str, ...]:
    if config is None:
        return KNOWN_ONE_SHOT
    known = [s for s in KNOWN_ONE_SHOT if s in config.services]
    return tuple(dict.fromkeys([*config.one_shot, *known]))


def env_consumers(config: ComposeConfig | None, declared: set[str]) -> list[str]:
    """The services whose environment follows `.env`: those merging Dify's shared environment
    (0.x-1.13) and every service that reads env_file lists (1.14+: `./.env` is their last
    env_file, so a change there changes their configuration)."""
    wanted = [s for s in SHARED_ENV_SERVICES if s in declared]
    if config is not None:
        wanted += [s for s, c in config.services.items() if c.reads_env_files]
    return list(dict.fromkeys(wanted))


def describe_layout(
    project: DifyProject,
    creation: Creation,
    config: ComposeConfig | None,
    env_values: Mapping[str, str],
    health_version: str | None,
) -> Layout:
    api = project.container("api")
    release = release_from_image(api.image) if api is not None else None
    source = "api image tag" if release else ""
    if release is None and health_version and _VERSION.fullmatch(health_version):
        release, source = health_version, "api /health"
    db_service = project.db_service
    return Layout(
        release=release,
        release_source=source,
        kind=kind_of(config, project, release),
        compose_flavour=creation.flavour,
        compose_version=creation.version,
        db_kind=db_kind_of(db_service, env_values),
        db_service=db_service,
        services=expected_services(config, project),
        one_shot=one_shot_services(config),
    )
