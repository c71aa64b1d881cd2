"""The compose override that maps host.docker.internal to the host on a Linux engine.

Compose loads `docker-compose.override.yaml` next to `docker-compose.yaml` by itself, so the
fix lives there instead of in Dify's own file (which upgrades overwrite). An existing override
is merged into, never replaced: every key it has is kept, `extra_hosts` entries are added only
where missing, and a mapping the user already made for host.docker.internal is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers.compose_file import ComposeConfig
from handlers.results import HandlerError

GATEWAY_NAME = "host.docker.internal"
HOST_GATEWAY = f"{GATEWAY_NAME}:host-gateway"
# Services that share Dify's environment and call models (plugin_daemon runs the Ollama plugin).
GATEWAY_SERVICES = ("plugin_daemon", "api", "worker", "worker_beat")
_MAIN_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def override_path(working_dir: Path) -> Path:
    """The override file Compose picks up in this folder (an existing one wins)."""
    main = next((n for n in _MAIN_NAMES if (working_dir / n).exists()), "docker-compose.yaml")
    stem = main.rsplit(".", 1)[0]
    for ext in ("yaml", "yml"):
        candidate = working_dir / f"{stem}.override.{ext}"
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return working_dir / f"{stem}.override.yaml"


def _load(text: str, path: Path) -> dict[str, Any]:
    import yaml  # here: `check` without a project to read never pays for PyYAML

    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise HandlerError(f"{path} is not valid YAML ({first}): fix it by hand first") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HandlerError(f"{path} is not a compose file (top level is not a mapping)")
    return data


def maps_gateway(spec: Any) -> str | None:
    """What the service's extra_hosts maps host.docker.internal to, if anything."""
    if not isinstance(spec, dict):
        return None
    hosts = spec.get("extra_hosts")
    if isinstance(hosts, dict):
        value = hosts.get(GATEWAY_NAME)
        return None if value is None else str(value)
    if isinstance(hosts, list):
        for item in hosts:
            text = str(item)
            for sep in (":", "="):
                name, found, target = text.partition(sep)
                if found and name.strip() == GATEWAY_NAME:
                    return target.strip()
    return None


@dataclass(frozen=True)
class OverrideChange:
    path: Path
    old_text: str | None  # None: the file does not exist yet
    new_text: str
    services: tuple[str, ...]  # services that get the mapping
    notes: tuple[str, ...] = ()

    @property
    def creates(self) -> bool:
        return self.old_text is None


def merge_gateway(
    old_text: str | None, services: Iterable[str], path: Path
) -> OverrideChange | None:
    """The override with host-gateway added for `services`; None when nothing is missing."""
    data = _load(old_text or "", path)
    notes: list[str] = []
    raw_services = data.get("services")
    if raw_services is None:
        raw_services = {}
    if not isinstance(raw_services, dict):
        raise HandlerError(f"{path}: `services` is not a mapping; fix it by hand first")
    added: list[str] = []
    for name in services:
        spec = raw_services.get(name)
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise HandlerError(f"{path}: service {name} is not a mapping; fix it by hand first")
        existing = maps_gateway(spec)
        if existing is not None:
            if existing != "host-gateway":
                notes.append(
                    f"{name} already maps {GATEWAY_NAME} to {existing} in {path.name}; left as is"
                )
            continue
        hosts = spec.get("extra_hosts")
        if hosts is None:
            spec["extra_hosts"] = [HOST_GATEWAY]
        elif isinstance(hosts, list):
            spec["extra_hosts"] = [*hosts, HOST_GATEWAY]
        elif isinstance(hosts, dict):
            spec["extra_hosts"] = {**hosts, GATEWAY_NAME: "host-gateway"}
        else:
            raise HandlerError(f"{path}: extra_hosts of {name} is neither a list nor a mapping")
        raw_services[name] = spec
        added.append(name)
    if not added:
        return None
    data["services"] = raw_services
    if old_text is not None and "#" in old_text:
        notes.append(
            f"comments in the existing {path.name} are not kept by the merge "
            "(the original is in the backup)"
        )
    header = (
        "# Added by dify-ollama fix-env: on a Linux engine host.docker.internal exists only with\n"
        "# host-gateway. Compose merges this file into docker-compose.yaml.\n"
    )
    import yaml

    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    new_text = (header if old_text is None else "") + body
    _verify_merge(old_text, new_text, added, path)
    return OverrideChange(path, old_text, new_text, tuple(added), tuple(notes))


def _verify_merge(old_text: str | None, new_text: str, added: list[str], path: Path) -> None:
    """Everything the old override said is still said; only the mappings were added."""
    old = _load(old_text or "", path)
    new = _load(new_text, path)
    for key, value in old.items():
        if key != "services" and new.get(key) != value:
            raise HandlerError(f"merging {path.name} would change `{key}`; nothing was written")
    old_services = old.get("services") or {}
    for name, spec in old_services.items():
        new_spec = dict(new["services"].get(name) or {})
        old_spec = dict(spec or {})
        if name in added:
            new_spec.pop("extra_hosts", None)
            old_spec.pop("extra_hosts", None)
        if new_spec != old_spec:
            raise HandlerError(f"merging {path.name} would change service {name}; nothing written")
    for name in added:
        if maps_gateway(new["services"].get(name)) != "host-gateway":
            raise HandlerError(f"merging {path.name} did not add the mapping for {name}")


def missing_gateway(config: ComposeConfig) -> list[str]:
    """The gateway services the compose files declare without a host.docker.internal entry."""
    return [
        s
        for s in GATEWAY_SERVICES
        if s in config.services
        and not any(
            h.split(":", 1)[0].strip() == GATEWAY_NAME for h in config.services[s].extra_hosts
        )
    ]


def declared_services(files: Iterable[Path]) -> set[str]:
    """Service names the compose files declare (an override may only name these)."""
    import yaml

    names: set[str] = set()
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        services = data.get("services") if isinstance(data, dict) else None
        if isinstance(services, dict):
            names.update(str(k) for k in services)
    return names


def named_services(path: Path) -> tuple[str, ...]:
    """Services the override names (restart recreates them when it changed)."""
    try:
        data = _load(path.read_text(encoding="utf-8"), path)
    except FileNotFoundError:
        return ()
    except OSError:
        return ()
    services = data.get("services")
    return tuple(str(k) for k in services) if isinstance(services, dict) else ()
