"""Bad input on the newest layout (Dify 1.15.0 on MySQL, Compose v2): `.env` missing, an
`envs/` file that cannot be read, a compose file that does not parse, a MySQL server that
refuses the login. Each gives a clear finding or error naming the cause, and changes nothing
(files, containers, rows); a missing `.env` is the one thing fix-env creates, from
`.env.example`, and only because it is missing. And a row another session keeps locked: the
server ends the write (its own lock/statement limits), nothing changes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers import db_fix, dify_db, fix_apply, fix_plan, fix_undo, restart
from handlers.check import run_check
from handlers.results import HandlerError, Report, Status
from tests.rig.dify_db import parse_rows, rows_query
from tests.rig.fake_ollama import FakeOllama
from tests.rig.incident import LLM_ID, fix_settings, incident_rows, rows_by_id
from tests.rig.stack import DifyStack
from tests.rig.stack import healthy_stack as healthy_stack_of

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PASSWORD = "difyai123456"  # the stack's DB_PASSWORD (.env.example's), root's on db_mysql


@pytest.fixture(scope="module")
def newest(
    docker_engine: Any, session_ollama: FakeOllama, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DifyStack]:
    stack = healthy_stack_of(
        tmp_path_factory.mktemp("bad-input"),
        session_ollama.container_url(),
        release="1.15.0",
        db="mysql",
        compose="v2",
        client=docker_engine,
    )
    with stack:
        yield stack.up(timeout=120)


@pytest.fixture
def stack(newest: DifyStack) -> Iterator[DifyStack]:
    yield newest
    newest.restore(timeout=120)


def project_files(stack: DifyStack) -> dict[str, bytes | None]:
    """Every file of the Dify folder (not the rig's scripts or the services' volumes)."""
    out: dict[str, bytes | None] = {}
    for path in sorted(stack.dir.rglob("*")):
        part = path.relative_to(stack.dir).parts[0]
        if part in ("rig", "volumes") or path.is_dir():
            continue
        out[str(path.relative_to(stack.dir))] = path.read_bytes()
    return out


def state(stack: DifyStack, password: str | None = None) -> tuple[Any, ...]:
    """Files, container ids and every credential row (read with `password`, not `.env`'s)."""
    ids = {c.labels["com.docker.compose.service"]: c.id for c in stack.containers()}
    query = rows_query(stack.schema, "mysql")
    code, out = stack.exec(
        stack.db_service,
        ["mysql", "-u", "root", "-N", "-B", "--raw", "-e", query, "dify"],
        environment={"MYSQL_PWD": password or PASSWORD},
    )
    assert code == 0, out
    return project_files(stack), ids, parse_rows(out)


def finding(report: Report, finding_id: str) -> Any:
    found = report.finding(finding_id)
    assert found is not None, finding_id
    return found


def refused_everywhere(stack: DifyStack, settings: Any, cause: str) -> None:
    """check names the cause; restart and fix-env refuse with it; nothing changed."""
    before = state(stack)
    report = run_check(settings)
    project = finding(report, "dify.project")
    assert project.status is Status.WARN and "Compose cannot read the project" in project.summary
    assert cause in project.detail
    drift = finding(report, "env.drift")
    assert drift.status is Status.SKIP and cause in drift.summary
    with pytest.raises(HandlerError) as err:
        restart.apply_configuration(settings, user="me", source="cli")
    assert "Compose cannot read the project" in str(err.value) and cause in str(err.value)
    assert "nothing was changed" in str(err.value)
    with pytest.raises(HandlerError) as err:
        fix_plan.make_plan(settings, report)
    assert cause in str(err.value) and "nothing was planned or changed" in str(err.value)
    assert state(stack) == before


def test_missing_env_is_named_and_only_created_from_the_example_by_fix_env(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    stack.env_path.unlink()
    before = state(stack)
    report = run_check(settings)
    env = finding(report, "env.file")
    assert env.status is Status.FAIL and env.fixable and "does not exist" in env.summary
    assert "Compose refuses to start" in env.detail  # 1.14+: ./.env is a required env_file
    with pytest.raises(HandlerError, match=r"Compose cannot read the project \(env file .*\.env"):
        restart.apply_configuration(settings, user="me", source="cli")
    assert state(stack) == before

    plan = fix_plan.make_plan(settings, report)
    assert plan.env is not None and plan.env.base_sha256 is None  # created, never replaced
    assert plan.env.template == str(stack.dir / ".env.example")
    fix_apply.apply_plan(settings, plan.id, user="me", source="cli")
    example = (stack.dir / ".env.example").read_text().splitlines()
    created = stack.env_path.read_text().splitlines()
    differs = [(a, b) for a, b in zip(example, created, strict=True) if a != b]
    assert differs == [
        ("OPENAI_API_BASE=https://api.openai.com/v1", f"OPENAI_API_BASE={settings.fix_ollama_url}")
    ]
    fix_undo.undo(settings, user="me", source="cli")
    assert not stack.env_path.exists()  # undo removes what the fix created
    assert state(stack) == before


def test_an_envs_file_that_cannot_be_read(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    # Root reads any mode bits, so "cannot be read" is a directory where the file should be
    # (Compose: "read ...: is a directory").
    unreadable = stack.envs_dir / "core-services" / "api.env"
    unreadable.mkdir()
    try:
        settings = fix_settings(stack, session_ollama, tmp_path / "state")
        refused_everywhere(stack, settings, "api.env")
    finally:
        unreadable.rmdir()


def test_a_compose_file_that_does_not_parse(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    with stack.compose_path.open("a") as handle:
        handle.write("\n  broken: [unclosed\n")
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    refused_everywhere(stack, settings, "is not valid YAML")


def test_a_mysql_server_that_refuses_the_login(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    stack.set_rows(incident_rows(session_ollama, "1.15.0"))
    changed = "rotated-Pw-7c1e0f"
    set_root_password(stack, PASSWORD, changed)
    try:
        settings = fix_settings(stack, session_ollama, tmp_path / "state")
        before = state(stack, changed)
        report = run_check(settings)
        base = finding(report, "dify.base_url")
        assert base.status is Status.WARN and "refused the login" in base.detail
        assert "access denied" in base.detail
        shown = json.dumps(report.to_json())
        assert changed not in shown and PASSWORD not in shown
        plan = fix_plan.make_plan(settings, report)
        assert plan.db is None
        assert any("could not read Dify's database" in line for line in plan.unfixed)
        assert changed not in plan.render() and PASSWORD not in plan.render()
        assert state(stack, changed) == before
    finally:
        set_root_password(stack, changed, PASSWORD)
    assert rows_by_id(stack)[LLM_ID]["base_url"].startswith("http://127.0.0.1:")


def set_root_password(stack: DifyStack, current: str, new: str) -> None:
    sql = (
        f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{new}'; "
        f"ALTER USER 'root'@'%' IDENTIFIED BY '{new}'; FLUSH PRIVILEGES;"
    )
    code, out = stack.exec(
        stack.db_service, ["mysql", "-u", "root", "-e", sql], environment={"MYSQL_PWD": current}
    )
    assert code == 0, out


def test_a_locked_mysql_row_ends_the_write_on_the_server_and_changes_nothing(
    stack: DifyStack, session_ollama: FakeOllama
) -> None:
    """innodb_lock_wait_timeout (and MariaDB's max_statement_time) are set in the writing
    session below the client's deadline: the server gives up, the transaction rolls back."""
    stack.set_rows(incident_rows(session_ollama, "1.15.0"))
    db_mysql = stack.container(stack.db_service)
    database = dify_db.MysqlInContainer(stack.client, db_mysql.id, "root", "dify", (PASSWORD,))
    changes = db_fix.plan_changes(database.read_rows(10), "http://host.docker.internal:11434")
    assert {c.row.table for c in changes} == {
        "provider_model_credentials",
        "load_balancing_model_configs",
    }
    holder = (
        "START TRANSACTION; SELECT id FROM provider_model_credentials "
        f"WHERE id = '{LLM_ID}' FOR UPDATE; SELECT SLEEP(8); COMMIT;"
    )
    db_mysql.exec_run(
        ["mysql", "-u", "root", "-e", holder, "dify"],
        environment={"MYSQL_PWD": PASSWORD},
        detach=True,
    )
    time.sleep(1.0)  # the holder has its lock
    before = state(stack)
    started = time.monotonic()
    with pytest.raises(HandlerError, match="the transaction was rolled back") as err:
        database.write_rows([c.update() for c in changes], 5)
    assert time.monotonic() - started < 5
    assert not isinstance(err.value, dify_db.DatabaseStateUnknown)
    assert "Lock wait timeout" in str(err.value) or "max_statement_time" in str(err.value)
    assert PASSWORD not in str(err.value)
    assert state(stack) == before
