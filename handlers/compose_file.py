"""Reading the project's compose files the way Compose does, enough to predict each service's
environment (for drift), its extra_hosts, and which services the release declares."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from handlers.envfile import parse_env_bytes
from handlers.results import HandlerError

try:  # the C loader is ~10x faster on Dify's 77 kB file; fall back where libyaml is absent
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution: $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:+a}, $$."""

    def sub(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        if op == ":-":
            return value if value else interpolate(arg, env)
        if op == "-":
            return value if value is not None else interpolate(arg, env)
        if op == ":+":
            return interpolate(arg, env) if value else ""
        if op == "+":
            return interpolate(arg, env) if value is not None else ""
        return value or ""  # plain, ":?" and "?" (an error in Compose; treated as empty here)

    return _VAR.sub(sub, text)


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    environment: dict[str, str]  # after interpolation; only keys the compose files set
    extra_hosts: tuple[str, ...]
    env_files: tuple[Path, ...]


@dataclass(frozen=True)
class ComposeConfig:
    files: tuple[Path, ...]
    services: dict[str, ServiceConfig] = field(default_factory=dict)


def _as_env(raw: Any) -> dict[str, str | None]:
    if isinstance(raw, Mapping):
        return {str(k): (None if v is None else str(v)) for k, v in raw.items()}
    result: dict[str, str | None] = {}
    if isinstance(raw, list):
        for item in raw:
            key, sep, value = str(item).partition("=")
            result[key] = value if sep else None
    return result


def _as_hosts(raw: Any) -> list[str]:
    if isinstance(raw, Mapping):
        return [f"{k}:{v}" for k, v in raw.items()]
    if isinstance(raw, list):
        return [str(x).replace("=", ":", 1) if "=" in str(x) else str(x) for x in raw]
    return []


def _env_file_paths(raw: Any, base: Path) -> list[Path]:
    items = raw if isinstance(raw, list) else [raw] if raw else []
    paths = []
    for item in items:
        path = item.get("path") if isinstance(item, Mapping) else item
        if path:
            paths.append((base / str(path)).resolve())
    return paths


def load_compose(files: tuple[Path, ...], dotenv: Mapping[str, str]) -> ComposeConfig:
    """Merge the compose files in order (later files override, as `-f a -f b` does)."""
    merged: dict[str, dict[str, Any]] = {}
    for path in files:
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
        except OSError as exc:
            raise HandlerError(f"cannot read {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise HandlerError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        services = (data or {}).get("services") or {}
        for name, spec in services.items():
            spec = spec or {}
            entry = merged.setdefault(name, {"environment": {}, "extra_hosts": [], "env_files": []})
            entry["environment"].update(_as_env(spec.get("environment")))
            entry["extra_hosts"].extend(_as_hosts(spec.get("extra_hosts")))
            entry["env_files"].extend(_env_file_paths(spec.get("env_file"), path.parent))
    configs = {}
    for name, entry in merged.items():
        env: dict[str, str] = {}
        for env_path in entry["env_files"]:
            try:
                env.update(parse_env_bytes(env_path.read_bytes(), env_path).values)
            except OSError:
                continue  # a missing optional env_file; drift then just cannot judge those keys
        for key, raw in entry["environment"].items():
            if raw is None:
                if key in dotenv:
                    env[key] = dotenv[key]
                continue
            env[key] = interpolate(raw, dotenv)
        configs[name] = ServiceConfig(
            name, env, tuple(dict.fromkeys(entry["extra_hosts"])), tuple(entry["env_files"])
        )
    return ComposeConfig(files, configs)


def effective_files(labelled: tuple[Path, ...], working_dir: Path) -> tuple[Path, ...]:
    """The files the next `compose up` in that folder reads: those the containers were created
    from, plus an override file written since (Compose picks it up by name)."""
    defaults = default_compose_files(working_dir)
    files = [p for p in labelled if p.exists()] or list(defaults)
    for path in defaults:
        if ".override." in path.name and all(p.resolve() != path.resolve() for p in files):
            files.append(path)
    return tuple(files)


def default_compose_files(working_dir: Path) -> tuple[Path, ...]:
    """What Compose reads with no -f: the main file plus an override file if present."""
    for main in ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"):
        if (working_dir / main).exists():
            stem = main.rsplit(".", 1)[0]
            files = [working_dir / main]
            for ext in ("yaml", "yml"):
                override = working_dir / f"{stem}.override.{ext}"
                if override.exists():
                    files.append(override)
                    break
            return tuple(files)
    return ()
