"""fix-env scenes without an engine: a look-alike Dify folder on disk (the rig's docker-compose.yaml
built from Dify's real one, and `.env` from the real .env.example), gathered with no Docker
client, plus the containers and Ollama rows an engine would have reported, described in code.

`fix_decide.plan`, `fix_apply.prepare`/`apply_to` and `fix_undo.row_updates`/`undo_to` run on
these exactly as on a scene gathered from a running stack; the engine tests keep the real
end-to-end paths.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from config.settings import Settings
from handlers import fix_scene
from handlers.dify_db import CredentialRow, DbLogin
from handlers.fix_scene import Gateway, Scene
from handlers.project import ContainerInfo
from handlers.results import Finding, Report, Status
from tests.rig.incident import incident_rows_at
from tests.rig.stack import REFERENCE_DIR, SERVICES, OllamaRow, build_compose, write_env

OLLAMA_PORT = 11434
CONTAINER_URL = f"http://host.docker.internal:{OLLAMA_PORT}"
LOOPBACK_URL = f"http://127.0.0.1:{OLLAMA_PORT}"
DB = DbLogin("db_postgres", "postgres", "dify")
# Dify's default database password in .env.example: must never show in a preview.
DEFAULT_PASSWORD = "difyai123456"
DNS_FAILING = "host.docker.internal does not resolve in plugin_daemon, api, worker"


def dify_folder(
    tmp_path: Path, env_overrides: Mapping[str, str | None] | None = None, *, env: bool = True
) -> Path:
    """A Dify docker folder: docker-compose.yaml, .env.example and (with `env`) .env."""
    folder = tmp_path / "docker"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "docker-compose.yaml").write_text(build_compose(folder))
    shutil.copy2(REFERENCE_DIR / ".env.example", folder / ".env.example")
    (folder / ".env.example").chmod(0o644)
    if env:
        write_env(REFERENCE_DIR / ".env.example", folder / ".env", dict(env_overrides or {}))
    return folder


def incident_folder(tmp_path: Path) -> Path:
    """The seed incident's files: OPENAI_API_BASE at 127.0.0.1, no override."""
    return dify_folder(tmp_path, {"OPENAI_API_BASE": f"{LOOPBACK_URL}/v1"})


def settings_for(folder: Path, state: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "dify_dir": folder,
        "check_timeout": 3,
        "state_dir": state,
        "fix_ollama_url": f"{CONTAINER_URL}/v1",
        "fix_ollama_base_url": CONTAINER_URL,
    }
    values.update(extra)
    return Settings(**values)


def containers(
    project: str, running: Iterable[str] = SERVICES, stopped: Iterable[str] = ()
) -> dict[str, ContainerInfo]:
    """What the engine would list for the project: one container per service."""
    made = {}
    for state, names in (("running", running), ("exited", stopped)):
        for service in names:
            made[service] = ContainerInfo(
                id=f"{service}-0123456789ab",
                name=f"{project}-{service}-1",
                service=service,
                state=state,
                health=None,
                image="dify-ollama-test/debian:1",
                created="0",
            )
    return made


def credential(row: OllamaRow) -> CredentialRow:
    """The rig's row as the database hands it back."""
    return CredentialRow(
        table=row.table,
        id=row.id,
        tenant_id=row.tenant_id,
        provider=row.provider_name,
        model=row.model_name,
        model_type=row.model_type,
        name=row.credential_name if row.table == "provider_model_credentials" else None,
        config=row.encrypted_config(),
    )


def incident_credentials() -> list[CredentialRow]:
    return [credential(r) for r in incident_rows_at(OLLAMA_PORT, CONTAINER_URL)]


def scene_of(
    settings: Settings,
    *,
    rows: Iterable[CredentialRow] = (),
    running: Iterable[str] = SERVICES,
    stopped: Iterable[str] = (),
    db: DbLogin | None = DB,
    rows_error: str | None = None,
    gateway: Gateway | None = None,
) -> Scene:
    """The files as `gather` reads them (no engine), with these containers and rows."""
    base = fix_scene.gather(settings, None, rows=None, gateway=False)
    project = replace(base.project, containers=containers(base.project.name, running, stopped))
    return replace(
        base,
        project=project,
        rows=tuple(rows),
        db=db,
        rows_error=rows_error,
        gateway=gateway if gateway is not None else Gateway("plugin_daemon"),
    )


def finding(finding_id: str, summary: str = "", *, fixable: bool = True, **kw: Any) -> Finding:
    return Finding(finding_id, Status.FAIL, summary or f"{finding_id} fails", fixable=fixable, **kw)


def report_of(*findings: Finding) -> Report:
    return Report(tuple(findings), 1, {"host": "test"})


def incident_report() -> Report:
    """What check says about the seed incident (the findings fix-env looks at)."""
    return report_of(
        finding("dify.base_url", "Ollama base URL wrong for 2 model credential(s)"),
        finding("env.file", "OPENAI_API_BASE points at loopback"),
        finding("container.dns", DNS_FAILING),
        finding("container.reach", "Ollama unreachable from plugin_daemon, api, worker"),
    )
