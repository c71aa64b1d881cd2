"""Finding the Dify compose project: by compose labels, never by container name."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.i18n import gettext as _
from handlers.results import HandlerError

if TYPE_CHECKING:
    import docker

    from config.settings import Settings

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"
ENV_FILE = "com.docker.compose.project.environment_file"
ONEOFF = "com.docker.compose.oneoff"
NUMBER = "com.docker.compose.container-number"
COMPOSE_VERSION = "com.docker.compose.version"

# Services whose presence marks a compose project as Dify.
DIFY_MARKERS = frozenset({"api", "worker", "plugin_daemon", "worker_beat"})
# Services that call Ollama (plugin_daemon first: on 1.x it runs the Ollama plugin).
MODEL_CALLERS = ("plugin_daemon", "api", "worker")
# Dify's metadata database: `db` (0.x-1.9), `db_postgres` or `db_mysql` (by profile, 1.10+).
DB_SERVICES = ("db_postgres", "db_mysql", "db")
# Services created from Dify's shared environment (x-shared-env): a `.env` change needs them
# recreated.
SHARED_ENV_SERVICES = ("api", "worker", "worker_beat", "plugin_daemon")
# After a database fix these drop whatever they cached in process, even when not recreated.
DB_FIX_SERVICES = ("api", "worker", "plugin_daemon")


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    service: str
    state: str  # running, exited, restarting, ...
    health: str | None  # healthy, unhealthy, starting, or None without a healthcheck
    image: str
    created: str
    number: int = 1
    # How Compose created it (labels): its version, files, `.env` files and folder.
    compose_version: str = ""
    config_files: str = ""
    env_files: str = ""
    working_dir: str = ""
    exit_code: int | None = None  # for an exited container, from its status "Exited (N) ..."


@dataclass(frozen=True)
class DifyProject:
    name: str
    working_dir: Path
    env_path: Path
    config_files: tuple[Path, ...]
    containers: dict[str, ContainerInfo] = field(default_factory=dict)  # service -> first replica
    env_files: tuple[Path, ...] = ()  # `--env-file` files the stack was created with (labels)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(sorted(self.containers))

    def container(self, service: str) -> ContainerInfo | None:
        return self.containers.get(service)

    def running(self, service: str | None) -> str | None:
        """The id of the service's container when it runs, else None."""
        info = self.containers.get(service) if service else None
        return info.id if info is not None and info.state == "running" else None

    @property
    def db_service(self) -> str | None:
        """The metadata database service: the running one (a stack switched from PostgreSQL
        to MySQL may keep the other's stopped container), else any that has a container."""
        present = [s for s in DB_SERVICES if s in self.containers]
        return next((s for s in present if self.running(s)), present[0] if present else None)


def normalize_project_name(name: str) -> str:
    """Compose's default project name rule: lowercase, only [a-z0-9_-]."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower())


def _summaries(client: docker.DockerClient) -> list[dict[str, Any]]:
    # The low-level list is one API call; the high-level one inspects every container.
    return list(client.api.containers(all=True, filters={"label": PROJECT}))


def _info(summary: dict[str, Any]) -> ContainerInfo:
    labels = summary.get("Labels") or {}
    status = str(summary.get("Status", ""))
    health = None
    for word in ("healthy", "unhealthy", "starting"):
        if f"({word})" in status or f"(health: {word})" in status:
            health = word
    names = summary.get("Names") or ["?"]
    try:
        number = int(labels.get(NUMBER, "1"))
    except ValueError:
        number = 1
    exit_code = None
    if status.startswith("Exited (") and ")" in status:
        with contextlib.suppress(ValueError):
            exit_code = int(status[len("Exited (") : status.index(")")])
    return ContainerInfo(
        id=str(summary.get("Id", "")),
        name=str(names[0]).lstrip("/"),
        service=labels.get(SERVICE, "?"),
        state=str(summary.get("State", "?")),
        health=health,
        image=str(summary.get("Image", "")),
        created=str(summary.get("Created", "")),
        number=number,
        compose_version=str(labels.get(COMPOSE_VERSION, "")),
        config_files=str(labels.get(CONFIG_FILES, "")),
        env_files=str(labels.get(ENV_FILE, "")),
        working_dir=str(labels.get(WORKING_DIR, "")),
        exit_code=exit_code,
    )


def _group(summaries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    projects: dict[str, list[dict[str, Any]]] = {}
    for summary in summaries:
        labels = summary.get("Labels") or {}
        if labels.get(ONEOFF, "False").lower() == "true":
            continue  # `compose run` containers are not part of the running stack
        projects.setdefault(labels[PROJECT], []).append(summary)
    return projects


def _pick(projects: dict[str, list[dict[str, Any]]], settings: Settings) -> str | None:
    if settings.dify_compose_project:
        return settings.dify_compose_project if settings.dify_compose_project in projects else None
    if settings.dify_dir is not None:
        wanted = settings.dify_dir.expanduser().resolve()
        for name, summaries in projects.items():
            for summary in summaries:
                wd = (summary.get("Labels") or {}).get(WORKING_DIR)
                if wd and Path(wd).resolve() == wanted:
                    return name
        return None
    candidates = []
    for name, summaries in projects.items():
        services = {(s.get("Labels") or {}).get(SERVICE) for s in summaries}
        if "api" in services and services & (DIFY_MARKERS - {"api"}):
            candidates.append(name)
    if len(candidates) > 1:
        raise HandlerError(
            _(
                "several Dify compose projects run on this engine ({projects}): set "
                "DIFY_COMPOSE_PROJECT or DIFY_DIR to choose one"
            ).format(projects=", ".join(sorted(candidates)))
        )
    return candidates[0] if candidates else None


def _config_files(raw: str | None, working_dir: Path) -> tuple[Path, ...]:
    """A comma-separated label of paths (relative ones in the project folder)."""
    if not raw:
        return ()
    files = []
    for part in raw.split(","):
        part = part.strip()
        if part:
            path = Path(part)
            files.append(path if path.is_absolute() else working_dir / path)
    return tuple(files)


def discover(client: docker.DockerClient | None, settings: Settings) -> DifyProject:
    """The Dify project: from running containers' labels, else from DIFY_DIR alone.

    Raises HandlerError with a remedy when neither finds it.
    """
    projects = _group(_summaries(client)) if client is not None else {}
    name = _pick(projects, settings)
    if name is None:
        if settings.dify_dir is not None:
            folder = settings.dify_dir.expanduser().resolve()
            if (
                not (folder / "docker-compose.yaml").exists()
                and not (folder / "docker-compose.yml").exists()
            ):
                raise HandlerError(
                    _(
                        "DIFY_DIR={folder} holds no docker-compose.yaml: point it at Dify's "
                        "docker folder"
                    ).format(folder=folder)
                )
            project = settings.dify_compose_project or normalize_project_name(folder.name)
            compose = folder / "docker-compose.yaml"
            if not compose.exists():
                compose = folder / "docker-compose.yml"
            return DifyProject(project, folder, folder / ".env", (compose,), {})
        if settings.dify_compose_project:
            raise HandlerError(
                _(
                    "no containers of compose project {project} on this engine: start Dify "
                    "(`docker compose up -d` in its docker folder) or fix DIFY_COMPOSE_PROJECT"
                ).format(project=repr(settings.dify_compose_project))
            )
        raise HandlerError(
            _(
                "no Dify compose project found on this engine (no containers with services api "
                "and worker/plugin_daemon): start Dify or set DIFY_DIR to its docker folder"
            )
        )
    summaries = projects[name]
    labels = summaries[0].get("Labels") or {}
    working_dir = Path(labels.get(WORKING_DIR) or (settings.dify_dir or Path.cwd()))
    if settings.dify_dir is not None:
        working_dir = settings.dify_dir.expanduser().resolve()
    env_files = _config_files(labels.get(ENV_FILE), working_dir)
    # `--env-file a --env-file b`: later files win, so a change belongs in the last one.
    env_path = env_files[-1] if env_files else working_dir / ".env"
    containers: dict[str, ContainerInfo] = {}
    for info in sorted((_info(s) for s in summaries), key=lambda i: (i.service, i.number)):
        # Prefer a running replica when a service has several.
        current = containers.get(info.service)
        if current is None or (current.state != "running" and info.state == "running"):
            containers[info.service] = info
    return DifyProject(
        name=name,
        working_dir=working_dir,
        env_path=env_path,
        config_files=_config_files(labels.get(CONFIG_FILES), working_dir),
        containers=containers,
        env_files=env_files,
    )
