"""The environment each service gets, computed from the compose files the way Compose does.

Docker Compose v2's rules (compose-spec/compose-go, the library inside `docker compose`):
- The project environment is the caller's environment plus `.env` (the caller wins), `.env`
  parsed by Compose's own dotenv rules with interpolation (handlers/compose_dotenv.py).
- Every string in the files is interpolated with it (handlers/compose_interpolation.py:
  nested defaults, `$$`, `${A:?err}` as an error).
- A service whose `profiles` share none with COMPOSE_PROFILES is not part of the project.
- A service's environment: its `env_file` entries in order (a missing `required: false` one
  is skipped, a missing required one is an error naming it; each is parsed with the project
  environment, then the service's `environment:` entries, as its lookup), then its
  `environment:` on top. A bare `KEY` in `environment:` takes the project's value, or is unset.
- Several files (`-f a -f b`, or the main file plus `docker-compose.override.yaml`) merge in
  order: later `environment` keys win, `env_file`, `extra_hosts` and `profiles` add up.
  Relative `env_file` paths are relative to the project folder (the first file's folder).

Compose v1 (docker-compose 1.29) differs (no nested defaults, python-dotenv for `.env` and
env files, every env_file required): `flavour="v1"` follows it, for stacks v1 created.

Measured in bench/bench_compose_env.py (docs/releases.md): 5-13x faster than asking the
binary (`docker compose config --format json`, 0.3-0.8 s) and 20-35x faster than v1's
`config`, with no Compose installed at all, so the product keeps it;
tests/handlers/test_compose_env.py holds it to the real v2 binary (and v1) on every vendored
Dify release, key for key.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers import compose_dotenv
from handlers.compose_binary import detect_compose
from handlers.compose_interpolation import (
    InterpolationError,
    Lookup,
    substitute,
    substitute_with,
)
from handlers.envfile import decode_for_reading
from handlers.results import HandlerError

__all__ = [
    "ComposeConfig",
    "EnvFileRef",
    "InterpolationError",
    "ProjectEnvironment",
    "ServiceConfig",
    "default_compose_files",
    "effective_files",
    "interpolate",
    "load_compose",
    "project_environment",
    "read_env_files",
    "read_project_environment",
]


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution of `text` with `env` (see compose_interpolation)."""
    return substitute(text, env.get)


# --------------------------------------------------------------------------------------------
# The project environment: what Compose interpolates the files with
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProjectEnvironment:
    """The caller's environment plus `.env`, resolved as Compose resolves them."""

    values: dict[str, str]
    env_path: Path | None = None  # the `.env` read, if any
    caller: dict[str, str] = field(default_factory=dict)  # the environment Compose ran in
    flavour: str = "v2"

    @property
    def profiles(self) -> tuple[str, ...]:
        """COMPOSE_PROFILES, split as Compose splits it."""
        raw = self.values.get("COMPOSE_PROFILES", "")
        return tuple(p.strip() for p in raw.split(",") if p.strip())


FLAVOURS = ("v2", "v1")


def project_environment(
    text: str | None,
    os_env: Mapping[str, str] | None = None,
    env_path: Path | None = None,
    flavour: str = "v2",
) -> ProjectEnvironment:
    """From `.env` text (None: no `.env`) and the environment Compose is started with."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}")
    caller = dict(os_env or {})
    parsed: dict[str, str] = {}
    if text is not None and flavour == "v1":
        compose_dotenv.parse_v1(text, caller.get, into=parsed)
    elif text is not None:
        compose_dotenv.parse(text, caller.get, into=parsed, source=str(env_path or ".env"))
    return ProjectEnvironment({**parsed, **caller}, env_path, caller, flavour)


def read_project_environment(
    env_path: Path, os_env: Mapping[str, str] | None = None, flavour: str = "v2"
) -> ProjectEnvironment:
    """`.env` at `env_path` (a missing one is no error: Compose runs without it)."""
    try:
        # Not UTF-8 is no error: Compose passes such bytes on, and Docker shows them as U+FFFD.
        text = decode_for_reading(env_path.read_bytes())
    except FileNotFoundError:
        return project_environment(None, os_env, None, flavour)
    except OSError as exc:
        raise HandlerError(f"cannot read {env_path}: {exc.strerror or exc}") from None
    return project_environment(text, os_env, env_path, flavour)


def read_env_files(
    paths: Sequence[Path],
    os_env: Mapping[str, str] | None = None,
    flavour: str = "v2",
    overlay: Mapping[Path, str | None] | None = None,
) -> ProjectEnvironment:
    """The project environment from several `--env-file`s, in order (later ones win, and may
    refer to earlier ones), as compose-go reads them; missing files are skipped. `overlay`:
    texts to use instead of the files on disk (None: missing)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}")
    caller = dict(os_env or {})
    parsed: dict[str, str] = {}
    last: Path | None = None
    for path in paths:
        try:
            text = _read_env_file(path, overlay or {})
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise HandlerError(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise HandlerError(f"{path} is not UTF-8 text") from None
        if flavour == "v1":
            compose_dotenv.parse_v1(text, caller.get, into=parsed)
        else:
            compose_dotenv.parse(text, caller.get, into=parsed, source=str(path))
        last = path
    return ProjectEnvironment({**parsed, **caller}, last, caller, flavour)


def installed_flavour() -> str:
    """Which Compose would run the next `up` here: v2 when a `docker compose` plugin is
    installed, else v1 when only `docker-compose` 1.x is, else v2 (what Dify documents)."""
    found = detect_compose()
    return "v1" if found is not None and found.is_v1 else "v2"


def _from_raw_values(values: Mapping[str, str], flavour: str) -> ProjectEnvironment:
    """Values as python-dotenv reads `.env` without interpolation (handlers/envfile.py), in
    file order, resolved as Compose resolves unquoted values: each may refer to those before.
    Only a single-quoted value holding `$` comes out differently than from the file itself."""
    resolved: dict[str, str] = {}
    for key, raw in values.items():
        if "$" not in raw:
            resolved[key] = raw
        elif flavour == "v1":
            resolved[key] = compose_dotenv.parse_v1(f"{key}={raw}\n", resolved.get).get(key, raw)
        else:
            resolved[key] = substitute(raw, resolved.get)
    return ProjectEnvironment(resolved, flavour=flavour)


# --------------------------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------------------------
ENVIRONMENT = "environment:"  # a ServiceConfig.sources value: set by the service's `environment:`


@dataclass(frozen=True)
class EnvFileRef:
    path: Path
    required: bool = True


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    # What the container gets: env_file values, then `environment:`, all interpolated. A bare
    # `KEY` the project environment does not set is left out (the container does not get it).
    environment: dict[str, str]
    extra_hosts: tuple[str, ...]
    env_files: tuple[Path, ...]  # every env_file entry, in order, present or not
    profiles: tuple[str, ...] = ()
    env_file_refs: tuple[EnvFileRef, ...] = ()
    env_files_read: tuple[Path, ...] = ()  # the entries that existed and were read
    declared_environment: dict[str, str | None] = field(default_factory=dict)  # `environment:`
    # Where each key's value came from: the env_file that set it last, or ENVIRONMENT.
    sources: dict[str, str] = field(default_factory=dict)
    depends_on: dict[str, str] = field(default_factory=dict)  # service -> condition
    restart: str | None = None  # the `restart:` policy as written

    @property
    def reads_env_files(self) -> bool:
        """Configured by `env_file` lists (Dify 1.14+) rather than by an `environment:`
        anchor alone (Dify 0.x-1.13: `.env` only interpolates the compose file)."""
        return bool(self.env_file_refs)


@dataclass(frozen=True)
class ComposeConfig:
    files: tuple[Path, ...]
    services: dict[str, ServiceConfig] = field(default_factory=dict)  # part of the project
    # Declared, but left out by profiles (e.g. db_mysql while COMPOSE_PROFILES says postgresql).
    inactive: dict[str, ServiceConfig] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()
    project_dir: Path | None = None
    flavour: str = "v2"

    def declares(self, service: str) -> bool:
        return service in self.services or service in self.inactive

    @property
    def one_shot(self) -> tuple[str, ...]:
        """Services that run once and exit (another waits for them to complete successfully,
        as Dify 1.14+ api waits for init_permissions)."""
        waited = {
            dep
            for config in self.services.values()
            for dep, condition in config.depends_on.items()
            if condition == "service_completed_successfully"
        }
        return tuple(s for s in self.services if s in waited)


def load_compose(
    files: tuple[Path, ...],
    dotenv: Mapping[str, str] | ProjectEnvironment,
    project_dir: Path | None = None,
    profiles: Iterable[str] | None = None,
    flavour: str | None = None,
    overlay: Mapping[Path, str | None] | None = None,
) -> ComposeConfig:
    """Merge the compose files in order (later files override, as `-f a -f b` does) and work
    out each service's environment.

    `dotenv`: a ProjectEnvironment (read_project_environment), or `.env`'s raw values as
    handlers/envfile.py reads them. `profiles`: active profiles; default COMPOSE_PROFILES.
    `flavour`: "v2" or "v1": the Compose whose rules apply (pass the one that created the
    stack or will recreate it). Default: the ProjectEnvironment's; with raw values, "v2" for
    files only v2 can run, else the Compose installed here (installed_flavour), the one that
    would run the next `up`.
    `overlay`: env_file texts to use instead of the files on disk (None: the file is missing),
    by resolved path: what the project would read after a planned change.
    Raises HandlerError for an unreadable or invalid file, a template Compose would refuse,
    or a missing required env_file.
    """
    if not files:
        raise HandlerError("no compose file given")
    raw_files = [(path, _raw_services(path)) for path in files]
    if isinstance(dotenv, ProjectEnvironment):
        env = dotenv
        flavour = flavour or env.flavour
    else:
        if flavour is None:
            # Files only v2 can run (env_file `required`, depends_on `required`) were never
            # run by v1; otherwise the Compose installed here is what the next `up` uses.
            needs_v2 = any(_needs_v2(services) for _, services in raw_files)
            flavour = "v2" if needs_v2 else installed_flavour()
        env = _from_raw_values(dotenv, flavour)
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}")
    base = (project_dir or files[0].parent).resolve()
    active = set(env.profiles if profiles is None else profiles)
    merged: dict[str, dict[str, Any]] = {}
    for path, raw in raw_files:
        for name, spec in _interpolated_services(path, raw, env, flavour).items():
            entry = merged.setdefault(
                name,
                {
                    "environment": {},
                    "extra_hosts": [],
                    "env_files": [],
                    "profiles": [],
                    "depends_on": {},
                    "restart": None,
                },
            )
            entry["depends_on"].update(_as_depends_on(spec.get("depends_on")))
            if spec.get("restart") is not None:
                entry["restart"] = str(spec["restart"])
            entry["environment"].update(_as_env(spec.get("environment"), f"{path}: {name}"))
            entry["extra_hosts"].extend(_as_hosts(spec.get("extra_hosts")))
            for ref in _env_file_refs(spec.get("env_file"), base):
                if all(r.path != ref.path for r in entry["env_files"]):
                    entry["env_files"].append(ref)
            entry["profiles"].extend(str(p) for p in spec.get("profiles") or ())
    services: dict[str, ServiceConfig] = {}
    inactive: dict[str, ServiceConfig] = {}
    for name, entry in merged.items():
        svc_profiles = tuple(dict.fromkeys(entry["profiles"]))
        config = _service(name, entry, svc_profiles, env, flavour, overlay or {})
        enabled = not svc_profiles or "*" in active or bool(active & set(svc_profiles))
        (services if enabled else inactive)[name] = config
    return ComposeConfig(files, services, inactive, tuple(sorted(active)), base, flavour)


def _loader() -> type:
    # The C loader is ~10x faster on Dify's 77 kB file; fall back where libyaml is absent.
    import yaml

    loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return loader


@functools.lru_cache(maxsize=8)
def _parse_yaml(text: str) -> Any:
    # Remembered by content (a check reads the same compose files every time; the watch checks
    # every few seconds): callers get a deep copy, ~6x cheaper than parsing Dify's file again.
    import yaml

    return yaml.load(text, Loader=_loader())  # noqa: S506 (a safe loader)


def _raw_services(path: Path) -> dict[str, dict[str, Any]]:
    """The file's services as written (merge keys resolved, nothing interpolated)."""
    import yaml  # here: only what reads compose files pays for PyYAML

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HandlerError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise HandlerError(f"{path} is not UTF-8 text") from None
    try:
        data = copy.deepcopy(_parse_yaml(text))
    except yaml.YAMLError as exc:
        raise HandlerError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HandlerError(f"{path} is not a compose file (top level is not a mapping)")
    services = data.get("services") or {}
    if not isinstance(services, dict):
        raise HandlerError(f"{path}: `services` is not a mapping")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in services.items():
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise HandlerError(f"{path}: service {name} is not a mapping")
        out[str(name)] = spec
    return out


def _needs_v2(services: Mapping[str, Mapping[str, Any]]) -> bool:
    """Syntax Compose v1 rejects: env_file entries as mappings, `required` in depends_on."""
    for spec in services.values():
        env_file = spec.get("env_file")
        if isinstance(env_file, list) and any(isinstance(e, Mapping) for e in env_file):
            return True
        deps = spec.get("depends_on")
        if isinstance(deps, Mapping) and any(
            isinstance(c, Mapping) and "required" in c for c in deps.values()
        ):
            return True
    return False


def _interpolated_services(
    path: Path, services: Mapping[str, dict[str, Any]], env: ProjectEnvironment, flavour: str
) -> dict[str, dict[str, Any]]:
    lookup: Lookup = env.values.get
    plain = substitute_with(flavour)
    # A merged anchor repeats the same ~700 strings in every service that merges it.
    memo: dict[str, str] = {}

    def sub(text: str, lookup: Lookup) -> str:
        if text not in memo:
            memo[text] = plain(text, lookup)
        return memo[text]

    out: dict[str, dict[str, Any]] = {}
    for name, spec in services.items():
        try:
            out[name] = _interpolated(spec, lookup, sub)
        except InterpolationError as exc:
            raise InterpolationError(f"{path}: service {name}: {exc}") from None
    return out


def _interpolated(node: Any, lookup: Lookup, sub: Callable[[str, Lookup], str]) -> Any:
    """Every string value interpolated (keys are not), as Compose does before anything else."""
    if isinstance(node, str):
        return sub(node, lookup)
    if isinstance(node, dict):
        return {k: _interpolated(v, lookup, sub) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolated(v, lookup, sub) for v in node]
    return node


def _scalar(value: Any) -> str:
    """A YAML scalar as Compose turns it into an environment value (Go's formatting)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}.get(repr(value), repr(value))
    return str(value)


def _as_env(raw: Any, where: str) -> dict[str, str | None]:
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        return {str(k): (None if v is None else _scalar(v)) for k, v in raw.items()}
    if isinstance(raw, list):
        result: dict[str, str | None] = {}
        for item in raw:
            key, sep, value = str(item).partition("=")
            result[key] = value if sep else None
        return result
    raise HandlerError(f"{where}: `environment` is neither a mapping nor a list")


def _as_depends_on(raw: Any) -> dict[str, str]:
    if isinstance(raw, list):
        return {str(name): "service_started" for name in raw}
    if isinstance(raw, Mapping):
        return {
            str(name): str((cond or {}).get("condition", "service_started"))
            if isinstance(cond, Mapping)
            else "service_started"
            for name, cond in raw.items()
        }
    return {}


class _Recorded(dict[str, str]):
    """A dict that remembers which keys were assigned since `seen` was last emptied."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seen: list[str] = []

    def __setitem__(self, key: str, value: str) -> None:
        self.seen.append(key)
        super().__setitem__(key, value)


def _read_env_file(path: Path, overlay: Mapping[Path, str | None]) -> str:
    """An env_file's text (FileNotFoundError when missing), the overlay's when it has one."""
    if path in overlay:
        text = overlay[path]
        if text is None:
            raise FileNotFoundError(path)
        return text
    return decode_for_reading(path.read_bytes())


def _as_hosts(raw: Any) -> list[str]:
    if isinstance(raw, Mapping):
        return [f"{k}:{v}" for k, v in raw.items()]
    if isinstance(raw, list):
        return [str(x).replace("=", ":", 1) if "=" in str(x) else str(x) for x in raw]
    return []


def _env_file_refs(raw: Any, base: Path) -> list[EnvFileRef]:
    items = raw if isinstance(raw, list) else [raw] if raw else []
    refs = []
    for item in items:
        if isinstance(item, Mapping):
            path, required = item.get("path"), item.get("required", True)
            required = required if isinstance(required, bool) else str(required) == "true"
        else:
            path, required = item, True
        if path:
            refs.append(EnvFileRef((base / str(path)).resolve(), bool(required)))
    return refs


def _service(
    name: str,
    entry: dict[str, Any],
    profiles: tuple[str, ...],
    env: ProjectEnvironment,
    flavour: str,
    overlay: Mapping[Path, str | None],
) -> ServiceConfig:
    declared: dict[str, str | None] = entry["environment"]
    # A bare KEY takes the project's value; unset there, the container does not get it.
    own = {k: (v if v is not None else env.values.get(k)) for k, v in declared.items()}

    def lookup(key: str) -> str | None:
        value = env.values.get(key)
        return value if value is not None else own.get(key)

    environment = _Recorded({k: v for k, v in own.items() if v is not None})
    sources: dict[str, str] = {}
    read: list[Path] = []
    for ref in entry["env_files"]:
        try:
            text = _read_env_file(ref.path, overlay)
        except FileNotFoundError:
            if flavour == "v1":
                raise HandlerError(
                    f"env file {ref.path} not found (service {name}); Compose v1 knows no "
                    "`required: false` and refuses to start (Dify 1.14+ needs Compose >= 2.24)"
                ) from None
            if ref.required:
                raise HandlerError(
                    f"env file {ref.path} not found (service {name} requires it; "
                    "Compose refuses to start without it)"
                ) from None
            continue
        except OSError as exc:
            raise HandlerError(
                f"cannot read env file {ref.path} (service {name}): {exc.strerror or exc}"
            ) from None
        environment.seen = []
        if flavour == "v1":  # python-dotenv, expanding from the caller's environment only
            part = compose_dotenv.parse_v1(text, env.caller.get, bare=env.values.get)
            environment.update(part)
            environment.seen = list(part)
        else:
            compose_dotenv.parse(text, lookup, into=environment, source=str(ref.path))
        sources.update(dict.fromkeys(environment.seen, str(ref.path)))
        read.append(ref.path)
    for key, value in own.items():  # `environment:` wins over every env_file
        if value is None:
            environment.pop(key, None)
            sources.pop(key, None)
        else:
            dict.__setitem__(environment, key, value)
            sources[key] = ENVIRONMENT
    return ServiceConfig(
        name=name,
        environment=dict(environment),
        extra_hosts=tuple(dict.fromkeys(entry["extra_hosts"])),
        env_files=tuple(r.path for r in entry["env_files"]),
        profiles=profiles,
        env_file_refs=tuple(entry["env_files"]),
        env_files_read=tuple(read),
        declared_environment=dict(declared),
        sources=sources,
        depends_on=dict(entry["depends_on"]),
        restart=entry["restart"],
    )


# --------------------------------------------------------------------------------------------
# Which files
# --------------------------------------------------------------------------------------------
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
