"""Compose's own answer: what the real binaries say each service's environment is.

`config_environments(flavour, project_dir, env)` runs `config` (v2: `--format json`, which
lists only the services the active profiles enable; v1: YAML, every declared service) in the
folder with exactly the environment `env`, and returns {service: {key: value}} with keys
Compose leaves unset (null) dropped, as the container would not get them. Both print every
`$` of a value as `$$` (so the output can be loaded again as a compose file): undone here.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.rig.compose import compose_for
from tests.rig.stack import RELEASES, Release

RELEASE_DIRS = {rel.name: rel.data_dir for rel in RELEASES.values()}


class ComposeRefused(RuntimeError):
    """Compose rejected the project (exit code != 0); the message is its output."""


def oracle_env() -> dict[str, str]:
    """The whole environment the binaries run with (Compose adds the caller's to `.env`)."""
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def compose_config(flavour: str, project_dir: Path, env: Mapping[str, str]) -> dict[str, Any]:
    cmd = compose_for("v2-standalone" if flavour == "v2" else flavour)
    args = ["config", "--format", "json"] if flavour == "v2" else ["config"]
    proc = cmd.run(args, cwd=project_dir, env=dict(env), timeout=120)
    if proc.returncode != 0:
        raise ComposeRefused(f"compose {flavour} config exited {proc.returncode}: {proc.stderr}")
    data = json.loads(proc.stdout) if flavour == "v2" else yaml.safe_load(proc.stdout)
    return data or {}


def config_environments(
    flavour: str, project_dir: Path, env: Mapping[str, str] | None = None
) -> dict[str, dict[str, str]]:
    data = compose_config(flavour, project_dir, oracle_env() if env is None else env)
    out = {}
    for name, svc in (data.get("services") or {}).items():
        raw = svc.get("environment") or {}
        if isinstance(raw, list):  # v1 may print the list form
            raw = dict(item.partition("=")[::2] for item in raw)
        out[name] = {str(k): str(v).replace("$$", "$") for k, v in raw.items() if v is not None}
    return out


def copy_release(release: Release | str, dest: Path) -> Path:
    """A folder laid out like upstream's docker/: the compose file, .env.example, envs/, and
    the folders a `build:` names (Compose v1 checks they exist), `.env` not yet written."""
    data = RELEASE_DIRS[release] if isinstance(release, str) else release.data_dir
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("docker-compose.yaml", ".env.example"):
        shutil.copy2(data / name, dest / name)
    if (data / "envs").is_dir():
        shutil.copytree(data / "envs", dest / "envs", dirs_exist_ok=True)
    compose = yaml.safe_load((data / "docker-compose.yaml").read_text())
    for svc in (compose.get("services") or {}).values():
        build = svc.get("build")
        context = build.get("context") if isinstance(build, dict) else build
        if isinstance(context, str) and context.startswith("./"):
            (dest / context).mkdir(parents=True, exist_ok=True)
    return dest
