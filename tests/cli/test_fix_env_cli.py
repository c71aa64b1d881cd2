"""`dify-ollama fix-env` and `dify-ollama restart` as a user runs them: real subprocesses."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.rig.cli_process import run_cli
from tests.rig.fake_ollama import FakeOllama
from tests.rig.incident import LLM_ID, files_state, incident_rows, rows_by_id

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def test_restart_all_needs_yes_really(tmp_path: Path) -> None:
    proc = run_cli("restart", "--all", env={**NO_ENGINE, "STATE_DIR": str(tmp_path)})
    assert proc.returncode == 2
    assert "stops EVERY service" in proc.stderr and "--yes-really" in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("restart", "--all", "api", "--yes-really"), "--all takes no service names"),
        (("restart", "--wait", "0"), "--wait must be within"),
        (("fix-env", "--restart"), "--restart needs --yes or --undo"),
        (("fix-env", "--yes", "--undo"), "not allowed with argument"),
        (("fix-env", "--apply", "abc", "--yes"), "--apply goes alone"),
    ],
)
def test_usage_errors(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    proc = run_cli(*args, env={**NO_ENGINE, "STATE_DIR": str(tmp_path)})
    assert proc.returncode == 2 and needle in proc.stderr


@pytest.mark.parametrize("args", [("fix-env",), ("restart",), ("fix-env", "--undo")])
def test_engine_unreachable_is_one_clear_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = run_cli(*args, env={**NO_ENGINE, "STATE_DIR": str(tmp_path)})
    assert proc.returncode == 1
    assert "Docker engine unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.docker
@pytest.mark.slow
def test_preview_then_yes_restart_then_undo(
    dify_stack_factory: Any, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    stack = dify_stack_factory(
        env_overrides={"OPENAI_API_BASE": f"http://127.0.0.1:{session_ollama.port}/v1"},
        ollama_rows=incident_rows(session_ollama),
    ).up()
    env = {
        "DOCKER_HOST": os.environ["DOCKER_HOST"],
        "DIFY_COMPOSE_PROJECT": stack.project,
        "OLLAMA_URL": session_ollama.url,
        "CHECK_TIMEOUT": "3",
        "STATE_DIR": str(tmp_path / "state"),
        "FIX_OLLAMA_URL": f"{session_ollama.container_url()}/v1",
        "FIX_OLLAMA_BASE_URL": session_ollama.container_url(),
    }
    before_files, before_rows = files_state(stack), rows_by_id(stack)

    preview = run_cli("fix-env", env=env)
    assert preview.returncode == 0, preview.stderr
    assert "WRITE DIFY'S DATABASE" in preview.stdout and LLM_ID in preview.stdout
    assert "Nothing was changed" in preview.stdout
    assert "difyai123456" not in preview.stdout + preview.stderr
    assert files_state(stack) == before_files and rows_by_id(stack) == before_rows

    fixed = run_cli("fix-env", "--yes", "--restart", env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Applied:" in fixed.stdout and "backup:" in fixed.stdout
    assert "up -d --no-deps" in fixed.stdout
    assert "check: OK" in fixed.stdout or "check: WARN" in fixed.stdout, fixed.stdout
    assert rows_by_id(stack)[LLM_ID]["base_url"] == session_ollama.container_url()

    undone = run_cli("fix-env", "--undo", env=env)
    assert undone.returncode == 0, undone.stderr
    assert files_state(stack) == before_files and rows_by_id(stack) == before_rows
    assert "dify-ollama restart" in undone.stdout

    again = run_cli("restart", env=env)  # applies the undone configuration: broken again
    assert again.returncode == 1
    assert "FAIL" in again.stdout and "dify.base_url" in again.stdout


@pytest.mark.docker
def test_undo_refuses_a_file_changed_after_the_fix_and_force_overrides(
    docker_engine: Any, tmp_path: Path
) -> None:
    """The private engine with no Dify container: DIFY_DIR names a look-alike folder, so the
    plan changes files only."""
    from tests.rig.scenes import CONTAINER_URL, incident_folder

    folder = incident_folder(tmp_path)
    env = {
        "DOCKER_HOST": os.environ["DOCKER_HOST"],
        "DIFY_DIR": str(folder),
        "OLLAMA_URL": "http://127.0.0.1:9",
        "CHECK_TIMEOUT": "2",
        "STATE_DIR": str(tmp_path / "state"),
        "FIX_OLLAMA_URL": f"{CONTAINER_URL}/v1",
        "FIX_OLLAMA_BASE_URL": CONTAINER_URL,
    }
    original = (folder / ".env").read_text()
    fixed = run_cli("fix-env", "--yes", env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    edited = (
        (folder / ".env")
        .read_text()
        .replace("DB_PASSWORD=difyai123456", "DB_PASSWORD=Rotated-Later-77c1")
    )
    (folder / ".env").write_text(edited)

    refused = run_cli("fix-env", "--undo", env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "changed after fix-env wrote it" in refused.stderr
    assert "+DB_PASSWORD=[REDACTED]" in refused.stdout and "--force" in refused.stdout
    assert "Rotated-Later-77c1" not in refused.stdout + refused.stderr
    assert (folder / ".env").read_text() == edited

    as_json = run_cli("fix-env", "--undo", "--json", env=env)
    assert as_json.returncode == 1 and "Rotated-Later" not in as_json.stdout
    assert json.loads(as_json.stdout)["force"].endswith("--force")

    forced = run_cli("fix-env", "--undo", "--force", env=env)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert (folder / ".env").read_text() == original
    assert run_cli("fix-env", "--force", env=env).returncode == 2
