"""How Compose created a running Dify stack, read from its containers' labels (pure).

Every container Compose creates carries `com.docker.compose.version` (the Compose that made
it), `.project.config_files`, `.project.environment_file` and `.project.working_dir`. Compose
v1 and v2 resolve the same files into different environments and compute different config
hashes, so reading the files (drift) and recreating services (restart) must follow the Compose
that created each container. A stack whose containers disagree (some made by v1, some by v2;
different compose files) cannot be reproduced exactly by one command.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from handlers.compose_binary import flavour_of_version
from handlers.project import DifyProject


def _paths(raw: str, working_dir: Path) -> tuple[Path, ...]:
    out = []
    for part in raw.split(","):
        part = part.strip()
        if part:
            path = Path(part)
            out.append(path if path.is_absolute() else working_dir / path)
    return tuple(out)


def is_override(path: Path, working_dir: Path) -> bool:
    """A `*.override.y*ml` in the project folder: Compose loads it by itself, and fix-env adds
    one, so containers created before and after it legitimately differ by it."""
    return path.parent == working_dir and ".override." in path.name


@dataclass(frozen=True)
class Creation:
    """The Compose flavour, version, files and `.env` files the stack's containers were
    created with; `problems` says why one command cannot reproduce them all."""

    flavours: dict[str, str] = field(default_factory=dict)  # service -> v2 | v1
    versions: dict[str, str] = field(default_factory=dict)  # service -> 2.40.3 | 1.29.2
    files: tuple[Path, ...] = ()  # the compose files (the union, overrides included)
    env_files: tuple[Path, ...] = ()  # `--env-file`s (Compose v2 labels them)
    problems: tuple[str, ...] = ()
    working_dir: Path | None = None

    @property
    def missing_files(self) -> tuple[Path, ...]:
        """Compose files the stack was created from that are gone (an override that was
        removed is not: Compose loads one only when it exists)."""
        return tuple(
            f
            for f in self.files
            if not f.exists() and not (self.working_dir and is_override(f, self.working_dir))
        )

    @property
    def flavour(self) -> str | None:
        """The flavour that created the Dify services (api's, else the most common one)."""
        if "api" in self.flavours:
            return self.flavours["api"]
        values = list(self.flavours.values())
        return max(set(values), key=values.count) if values else None

    @property
    def version(self) -> str:
        if "api" in self.versions:
            return self.versions["api"]
        wanted = self.flavour
        return next((v for s, v in self.versions.items() if self.flavours[s] == wanted), "")

    def flavour_of(self, service: str) -> str | None:
        return self.flavours.get(service, self.flavour)

    def flavour_for(self, services: Iterable[str]) -> tuple[str | None, str | None]:
        """(flavour, problem): the one flavour that created all of `services` (those with a
        container), or a problem naming the mix."""
        found = {s: self.flavours[s] for s in services if s in self.flavours}
        kinds = set(found.values())
        if len(kinds) > 1:
            shown = ", ".join(f"{s}: Compose {self.versions.get(s, '?')}" for s in sorted(found))
            return None, f"the services were created by different Compose flavours ({shown})"
        return (kinds.pop() if kinds else self.flavour), None


def creation_of(project: DifyProject) -> Creation:
    """How the project's containers were created (from the labels discover() read)."""
    flavours: dict[str, str] = {}
    versions: dict[str, str] = {}
    files: dict[str, tuple[Path, ...]] = {}
    envs: dict[str, tuple[Path, ...]] = {}
    for service, info in project.containers.items():
        if info.compose_version:
            versions[service] = info.compose_version
            flavours[service] = flavour_of_version(info.compose_version)
        if info.config_files:
            files[service] = _paths(info.config_files, project.working_dir)
        envs[service] = _paths(info.env_files, project.working_dir)
    problems = []
    base = {
        tuple(p for p in found if not is_override(p, project.working_dir))
        for found in files.values()
    }
    if len(base) > 1:
        shown = "; ".join(
            f"{s}: {', '.join(p.name for p in found)}" for s, found in sorted(files.items())
        )
        problems.append(f"the containers were created from different compose files ({shown})")
    if len(set(envs.values())) > 1:
        shown = "; ".join(
            f"{s}: {', '.join(str(p) for p in found) or '.env'}"
            for s, found in sorted(envs.items())
        )
        problems.append(f"the containers were created with different --env-file sets ({shown})")
    union = tuple(dict.fromkeys(p for found in files.values() for p in found))
    env_files = next(iter(envs.values()), ())
    return Creation(flavours, versions, union, env_files, tuple(problems), project.working_dir)
