"""The fix-env incident of the seed: Ollama rows and `.env` at 127.0.0.1, no host-gateway.

Its rows, stack, settings and the file/row/container snapshots the fix-env, restart, CLI and
Slack tests compare before and after.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from config.settings import Settings
from handlers.results import Report, Status
from tests.rig.fake_ollama import EMBED_MODEL, FakeOllama
from tests.rig.stack import DifyStack, OllamaRow, encrypted_secret, release_of

LLM_ID = "5b0c9c55-2f4e-4d1e-9d55-0a3a6f1a0001"
EMBED_ID = "5b0c9c55-2f4e-4d1e-9d55-0a3a6f1a0002"
OK_ID = "5b0c9c55-2f4e-4d1e-9d55-0a3a6f1a0003"
LB_ID = "5b0c9c55-2f4e-4d1e-9d55-0a3a6f1a0004"
OTHER_ID = "5b0c9c55-2f4e-4d1e-9d55-0a3a6f1a0005"


def incident_rows(ollama: FakeOllama, release: str = "1.13.3") -> list[OllamaRow]:
    """The seed's root cause: base URLs at 127.0.0.1, plus a /v1 suffix, plus one good row.

    Other releases, in their own tables: also a load-balancing config at localhost, an
    encrypted api_key (1.x) that must survive a rewrite byte for byte, and another provider's
    row at a loopback URL that a fix must not touch.
    """
    rel = release_of(release)
    if rel.name != "1.13.3":
        return _layout_incident_rows(ollama, rel.name)
    return incident_rows_at(ollama.port, ollama.container_url())


def incident_rows_at(port: int, container_url: str) -> list[OllamaRow]:
    """The 1.13.3 `incident_rows` for an Ollama on `port`, reached from containers at
    `container_url`."""
    return [
        OllamaRow(base_url=f"http://127.0.0.1:{port}", id=LLM_ID),
        OllamaRow(
            base_url=f"{container_url}/v1",
            id=EMBED_ID,
            model_type="text-embedding",
            model_name=EMBED_MODEL,
            table="provider_models",
            config={"note": 'a "quoted" \\ value é'},
        ),
        OllamaRow(
            base_url=container_url,
            id=OK_ID,
            model_type="rerank",
            credential_name="good one",
        ),
    ]


def _layout_incident_rows(ollama: FakeOllama, release: str) -> list[OllamaRow]:
    rel = release_of(release)
    old = rel.schema == "0.x"
    table = "provider_models" if old else "provider_model_credentials"
    provider = rel.provider_name
    secret = {} if old else {"api_key": encrypted_secret(f"incident/{rel.name}")}
    return [
        OllamaRow(
            base_url=f"http://127.0.0.1:{ollama.port}",
            id=LLM_ID,
            table=table,
            provider_name=provider,
        ),
        OllamaRow(
            base_url=f"{ollama.container_url()}/v1",
            id=EMBED_ID,
            table=table,
            provider_name=provider,
            model_type="text-embedding",
            model_name=EMBED_MODEL,
            config={"note": 'a "quoted" \\ value é', **secret},
        ),
        OllamaRow(
            base_url=ollama.container_url(),
            id=OK_ID,
            table=table,
            provider_name=provider,
            model_type="rerank",
            credential_name="good one",
        ),
        OllamaRow(
            base_url=f"http://localhost:{ollama.port}",
            id=LB_ID,
            table="load_balancing_model_configs",
            provider_name=provider,
            credential_name="ollama-2",
            config=secret,
            credential_id=None if old else LLM_ID,
            credential_source_type=None if old else "custom_model",
        ),
        OllamaRow(
            base_url="http://127.0.0.1:8000/v1",
            id=OTHER_ID,
            table=table,
            provider_name="openai_api_compatible"
            if old
            else "langgenius/openai_api_compatible/openai_api_compatible",
            model_name="local-gpt",
            credential_name="vllm",
            config={"api_key": encrypted_secret("incident/other")},
        ),
    ]


def incident_stack(
    path: Path,
    ollama: FakeOllama,
    client: Any,
    release: str = "1.13.3",
    db: str = "postgresql",
    compose: str | None = None,
) -> DifyStack:
    """.env and database at 127.0.0.1, no host-gateway, containers created long ago."""
    return DifyStack(
        path,
        env_overrides={"OPENAI_API_BASE": f"http://127.0.0.1:{ollama.port}/v1"},
        ollama_rows=incident_rows(ollama, release),
        client=client,
        release=release,
        db=db,
        compose=compose,
    )


def fix_settings(stack: DifyStack, ollama: FakeOllama, state: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "dify_compose_project": stack.project,
        "ollama_url": ollama.url,
        "check_timeout": 3,
        "docker_host": os.environ.get("DOCKER_HOST"),
        "state_dir": state,
        "fix_ollama_url": f"{ollama.container_url()}/v1",
        "fix_ollama_base_url": ollama.container_url(),
    }
    values.update(extra)
    return Settings(**values)


def failing(report: Report) -> set[str]:
    return {f.id for f in report.findings if f.status is Status.FAIL}


def rows_by_id(stack: DifyStack) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in stack.rows()}


def files_state(stack: DifyStack) -> dict[str, bytes | None]:
    return {
        p.name: (p.read_bytes() if p.exists() else None)
        for p in (stack.env_path, stack.override_path)
    }


def container_ids(stack: DifyStack) -> dict[str, str]:
    """api, the metadata DB, redis and plugin_daemon (where the release has one)."""
    wanted = ("api", stack.db_service, "redis", "plugin_daemon")
    return {s: stack.container(s).id for s in wanted if s in stack.services}
