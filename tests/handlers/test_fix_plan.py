"""fix-env on the look-alike Dify stack: the canonical incident planned, applied, restarted,
verified healthy and undone byte for byte; and every way applying can go wrong."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from handlers import backup as backups
from handlers import dify_db, fix_apply, fix_plan, fix_undo, restart
from handlers.check import run_check
from handlers.mutation_lock import AlreadyDone, MutationLock
from handlers.results import HandlerError
from tests.rig.fake_ollama import FakeOllama
from tests.rig.incident import (
    EMBED_ID,
    LLM_ID,
    OK_ID,
    container_ids,
    failing,
    files_state,
    fix_settings,
    incident_stack,
    rows_by_id,
)
from tests.rig.read_only import read_only
from tests.rig.stack import HOST_GATEWAY_OVERRIDE, DifyStack

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


def file_snapshot(stack: DifyStack) -> dict[Path, bytes | None]:
    files = (stack.env_path, stack.dir / ".env.example", stack.compose_path, stack.override_path)
    return {p: (p.read_bytes() if p.exists() else None) for p in files}


SNAPSHOTS: dict[str, dict[Path, bytes | None]] = {}  # project -> its files as first written


@pytest.fixture(scope="module")
def incident(
    docker_engine: Any, session_ollama: FakeOllama, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DifyStack]:
    stack = incident_stack(tmp_path_factory.mktemp("incident"), session_ollama, docker_engine)
    SNAPSHOTS[stack.project] = file_snapshot(stack)
    with stack:
        yield stack.up()


@pytest.fixture
def broken(incident: DifyStack) -> Iterator[DifyStack]:
    """The incident stack, put back (files, containers, rows, cache) after the test."""
    yield incident
    incident.restore()


def light_reset(stack: DifyStack) -> None:
    """Files, rows and cache back to the incident, containers untouched (fast)."""
    for path, content in SNAPSHOTS[stack.project].items():
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(content)
    stack.set_rows(stack.initial_rows)
    stack.redis_cli("FLUSHALL")
    stack.seed_redis_keys()


# --- the canonical incident ---------------------------------------------------------------------
@pytest.mark.slow
def test_incident_fix_restart_verified_then_undone_byte_identical(
    broken: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(broken, session_ollama, tmp_path / "state")
    before_files = files_state(broken)
    before_rows = rows_by_id(broken)
    ids_before = container_ids(broken)

    report = run_check(settings)
    assert {"dify.base_url", "env.file", "container.reach"} <= failing(report)
    plan = fix_plan.make_plan(settings, report)
    text = plan.render()
    assert "WRITE DIFY'S DATABASE" in text and LLM_ID in text and EMBED_ID in text
    assert OK_ID not in text  # a correct row is not touched
    assert "difyai123456" not in text  # Dify's default passwords are in this .env: masked
    assert set(plan.restart_services) == {"api", "worker", "worker_beat", "plugin_daemon"}
    assert plan.override is not None and plan.env is not None and plan.db is not None
    assert files_state(broken) == before_files  # planning changes nothing

    applied = fix_apply.apply_plan(settings, plan.id, user="UALICE", source="slack")
    rows = rows_by_id(broken)
    for row_id in (LLM_ID, EMBED_ID):
        assert rows[row_id]["base_url"] == session_ollama.container_url()
        old = before_rows[row_id]["encrypted_config"]
        assert rows[row_id]["encrypted_config"] == old.replace(
            json.dumps(before_rows[row_id]["base_url"]),
            json.dumps(session_ollama.container_url()),
        )  # only the base_url string changed, every other byte kept
    assert rows[OK_ID] == before_rows[OK_ID]
    assert broken.redis_keys() == ["rig:unrelated"]  # credential cache purged, nothing else
    env_text = broken.read_env()
    assert f"OPENAI_API_BASE={session_ollama.container_url()}/v1\n" in env_text
    override = yaml.safe_load(broken.override_path.read_text())
    assert set(override["services"]) == {"api", "worker", "worker_beat", "plugin_daemon"}
    folder = Path(applied.backup_dir)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())

    result = restart.apply_configuration(settings, user="UALICE", source="slack")
    assert result.ready
    ids_after = container_ids(broken)
    assert ids_after["db_postgres"] == ids_before["db_postgres"]
    assert ids_after["redis"] == ids_before["redis"]
    assert ids_after["api"] != ids_before["api"]
    assert set(result.recreated) == {"api", "worker", "worker_beat", "plugin_daemon"}
    verified = run_check(settings)
    assert failing(verified) == set(), verified.to_json()

    undone = fix_undo.undo(settings, user="UALICE", source="slack")
    assert undone.backup_id == applied.backup_id
    assert files_state(broken) == before_files  # .env byte-identical, override gone again
    assert rows_by_id(broken) == before_rows  # rows byte-identical
    with pytest.raises(HandlerError, match="no fix-env backup to undo"):
        fix_undo.undo(settings, user="UALICE", source="slack")


def test_fix_database_false_prints_web_ui_steps_and_leaves_rows(
    broken: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(broken, session_ollama, tmp_path / "state", fix_database=False)
    before = rows_by_id(broken)
    plan = fix_plan.make_plan(settings, run_check(settings))
    assert plan.db is None
    steps = [i for i in plan.instructions if i.finding == "dify.base_url"]
    assert steps and "Settings -> Model Provider -> Ollama" in steps[0].text
    assert session_ollama.container_url() in steps[0].text
    fix_apply.apply_plan(settings, plan.id, user="me", source="cli")
    assert rows_by_id(broken) == before
    assert len(broken.redis_keys()) > 1


def test_a_plan_is_applied_at_most_once(
    broken: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(broken, session_ollama, tmp_path / "state")
    plan = fix_plan.make_plan(settings, run_check(settings))
    first = fix_apply.apply_plan(settings, plan.id, user="UALICE", source="slack")
    with pytest.raises(AlreadyDone) as err:
        fix_apply.apply_plan(settings, plan.id, user="UALICE", source="slack")
    assert err.value.record["result"]["backup_id"] == first.backup_id
    assert len(list(settings.backup_path.iterdir())) == 1


def test_changes_since_the_plan_are_refused(
    broken: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(broken, session_ollama, tmp_path / "state")
    plan = fix_plan.make_plan(settings, run_check(settings))
    broken.env_path.write_text(broken.read_env() + "ADDED_BY_SOMEONE=1\n")
    before = files_state(broken), rows_by_id(broken)
    with pytest.raises(HandlerError, match=r"\.env changed since the plan"):
        fix_apply.apply_plan(settings, plan.id, user="me", source="cli")
    assert (files_state(broken), rows_by_id(broken)) == before

    plan = fix_plan.make_plan(settings, run_check(settings))
    broken.psql(
        "UPDATE provider_model_credentials SET encrypted_config = "
        f"replace(encrypted_config, '127.0.0.1', 'localhost') WHERE id = '{LLM_ID}'"
    )
    before = files_state(broken), rows_by_id(broken)
    with pytest.raises(HandlerError, match="changed since the plan"):
        fix_apply.apply_plan(settings, plan.id, user="me", source="cli")
    assert (files_state(broken), rows_by_id(broken)) == before


def test_database_failure_after_file_writes_rolls_everything_back(
    broken: DifyStack,
    session_ollama: FakeOllama,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = fix_settings(broken, session_ollama, tmp_path / "state")
    plan = fix_plan.make_plan(settings, run_check(settings))
    before = files_state(broken), rows_by_id(broken), broken.redis_keys()

    def db_down(*_args: Any, **_kwargs: Any) -> None:
        broken.stop("db_postgres", timeout=1)  # the database goes away mid-apply
        raise HandlerError("psql in the db container did not answer within 12 s")

    monkeypatch.setattr(dify_db.PostgresInContainer, "write_rows", db_down)
    with pytest.raises(HandlerError) as err:
        fix_apply.apply_plan(settings, plan.id, user="me", source="cli")
    message = str(err.value)
    assert (
        "did not answer" in message and "Restored:" in message and "nothing is changed" in message
    )
    broken.start("db_postgres")
    broken.wait_healthy(60, ["db_postgres"])
    assert (files_state(broken), rows_by_id(broken), broken.redis_keys()) == before
    [made] = list(backups.iter_backups(settings.backup_path))
    assert made.state == "failed"  # kept for the record, never chosen by --undo
    with pytest.raises(HandlerError, match="no fix-env backup"):
        fix_undo.undo(settings, user="me", source="cli")


def test_read_only_folder_changes_nothing(
    broken: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(broken, session_ollama, tmp_path / "state")
    plan = fix_plan.make_plan(settings, run_check(settings))
    before = files_state(broken), rows_by_id(broken), broken.redis_keys()
    with read_only(broken.dir), pytest.raises(HandlerError) as err:
        fix_apply.apply_plan(settings, plan.id, user="me", source="cli")
    assert "read-only file system" in str(err.value) and "nothing is changed" in str(err.value)
    assert (files_state(broken), rows_by_id(broken), broken.redis_keys()) == before
    # the lock was released: the same plan can be applied once the folder is writable again
    assert MutationLock(settings.state_path).holder() is None
    fix_apply.apply_plan(settings, plan.id, user="me", source="cli")
    assert rows_by_id(broken)[LLM_ID]["base_url"] == session_ollama.container_url()


APPLY_CHILD = """
import json, sys
from config.settings import Settings
from handlers.fix_apply import apply_plan
settings = Settings(**json.loads(sys.argv[1]))
print("ready", flush=True)
apply_plan(settings, sys.argv[2], user="victim", source="cli")
print("done", flush=True)
"""


@pytest.mark.slow
def test_apply_killed_at_random_points_leaves_old_or_new_and_a_backup(
    incident: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    """SIGKILL the applying process at random moments: `.env` is the old or the new file,
    never a mix; whenever anything changed, the backup that undoes it is there."""
    stack = incident
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    old_env = stack.env_path.read_bytes()
    old_rows = rows_by_id(stack)
    report = run_check(settings)
    raw = {
        "dify_compose_project": stack.project,
        "docker_host": os.environ.get("DOCKER_HOST"),
        "state_dir": str(tmp_path / "state"),
        "check_timeout": 3,
        "fix_ollama_url": f"{session_ollama.container_url()}/v1",
        "fix_ollama_base_url": session_ollama.container_url(),
    }
    # How long a whole apply takes in a child, to spread the kills over it.
    plan = fix_plan.make_plan(settings, report)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", APPLY_CHILD, json.dumps(raw), plan.id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    full = time.monotonic() - start
    assert done.returncode == 0 and "done" in done.stdout, done.stderr
    rng = random.Random(1234)
    outcomes = []
    try:
        for _ in range(6):
            light_reset(stack)
            plan = fix_plan.make_plan(settings, report)
            proc = subprocess.Popen(
                [sys.executable, "-c", APPLY_CHILD, json.dumps(raw), plan.id],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.0, full))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            env_now = stack.env_path.read_bytes()
            new_env = old_env.replace(
                f"OPENAI_API_BASE=http://127.0.0.1:{session_ollama.port}/v1".encode(),
                f"OPENAI_API_BASE={session_ollama.container_url()}/v1".encode(),
            )
            assert env_now in (old_env, new_env), "partial .env"
            rows_now = rows_by_id(stack)
            db_new = rows_now[LLM_ID]["base_url"] == session_ollama.container_url()
            # one transaction: both wrong rows change together or not at all
            assert (rows_now[EMBED_ID]["base_url"] == session_ollama.container_url()) == db_new
            changed = env_now != old_env or stack.override_path.exists() or db_new
            made = [b for b in backups.iter_backups(settings.backup_path) if b.plan_id == plan.id]
            if changed:
                assert made and made[0].state in backups.UNDOABLE, "changed without a backup"
                fix_undo.undo(settings, user="me", source="cli", backup_id=made[0].id)
                assert stack.env_path.read_bytes() == old_env
                assert not stack.override_path.exists()
                assert rows_by_id(stack) == old_rows
            outcomes.append("changed" if changed else "untouched")
            assert MutationLock(settings.state_path).holder() is None  # no stale lock
    finally:
        light_reset(stack)
    assert outcomes  # which mix of outcomes depends on timing; each one was checked above


def test_mapping_already_in_the_files_only_needs_a_recreate(
    broken: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    """Someone wrote the override but never recreated the containers: no second override,
    the plan says to recreate, and restart does it."""
    broken.write_override(HOST_GATEWAY_OVERRIDE)
    settings = fix_settings(broken, session_ollama, tmp_path / "state")
    report = run_check(settings)
    assert "container.dns" in failing(report)
    plan = fix_plan.make_plan(settings, report)
    assert plan.override is None
    [step] = [i for i in plan.instructions if i.finding == "container.dns"]
    assert "created before" in step.text and "docker-compose.override.yaml" in step.text
    assert not any(line.startswith("container.dns") for line in plan.unfixed)
    fix_apply.apply_plan(settings, plan.id, user="me", source="cli")
    result = restart.apply_configuration(settings, user="me", source="cli")
    assert {"api", "worker", "worker_beat", "plugin_daemon"} <= set(result.recreated)
    assert failing(run_check(settings)) == set()
