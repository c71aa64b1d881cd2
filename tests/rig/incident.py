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
from tests.rig.fake_ollama import FakeOllama
from tests.rig.stack import DifyStack, OllamaRow

LLM_ID = "5b0c9c55-2f4e-4d1e-9d55-0a3a6f1a0001"
EMBED_ID = "5b0c9c55-2f4e-4d1e-9d55-0a3a6f1a0002"
OK_ID = "5b0c9c55-2f4e-4d1e-9d55-0a3a6f1a0003"


def incident_rows(ollama: FakeOllama) -> list[OllamaRow]:
    """The seed's root cause: base URLs at 127.0.0.1, plus a /v1 suffix, plus one good row."""
    return incident_rows_at(ollama.port, ollama.container_url())


def incident_rows_at(port: int, container_url: str) -> list[OllamaRow]:
    """`incident_rows` for an Ollama on `port`, reached from containers at `container_url`."""
    return [
        OllamaRow(base_url=f"http://127.0.0.1:{port}", id=LLM_ID),
        OllamaRow(
            base_url=f"{container_url}/v1",
            id=EMBED_ID,
            model_type="text-embedding",
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


def incident_stack(path: Path, ollama: FakeOllama, client: Any) -> DifyStack:
    """.env and database at 127.0.0.1, no host-gateway, containers created long ago."""
    return DifyStack(
        path,
        env_overrides={"OPENAI_API_BASE": f"http://127.0.0.1:{ollama.port}/v1"},
        ollama_rows=incident_rows(ollama),
        client=client,
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
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


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
    return {s: stack.container(s).id for s in ("api", "db_postgres", "redis", "plugin_daemon")}
