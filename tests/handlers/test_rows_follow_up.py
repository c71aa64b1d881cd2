"""plugin_daemon's installations read by the same psql as Dify's rows (one exec fewer per
check): the rows are exactly what their own read gives, whatever the follow-up does; the
follow-up counts only when it ran to its end mark; a database name that is not plain never
reaches psql's meta-commands; a psql without `\\warn` (before 13) reads the two one by one.
A real PostgreSQL 15 of the look-alike stack (read only), and a stand-in psql."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from handlers import dify_db, plugin_db
from tests.rig.box import running_box
from tests.rig.fake_ollama import FakeOllama
from tests.rig.stack import BUSYBOX_IMAGE, PLUGIN_DATABASE, DifyStack

pytestmark = pytest.mark.docker


def _db(stack: DifyStack) -> dify_db.PostgresInContainer:
    return dify_db.PostgresInContainer(
        stack.client, stack.container("db_postgres").id, "postgres", "dify"
    )


def test_the_installations_ride_on_the_rows_psql(healthy_stack: DifyStack) -> None:
    database = _db(healthy_stack)
    rows, output = database.read_rows_then(10, plugin_db.follow_up(PLUGIN_DATABASE))
    assert rows and rows == database.read_rows(10)
    assert output is not None and output.finished and output.database == PLUGIN_DATABASE
    where = plugin_db.PluginDatabase(
        "db_postgres", database.container_id, "postgresql", PLUGIN_DATABASE, "postgres"
    )
    alone = plugin_db.read_installations(healthy_stack.client, where, 10)
    assert alone and plugin_db.from_follow_up(output) == alone


@pytest.mark.parametrize(
    "target",
    ["dify", "no_such_database"],  # no plugin tables there; no such database at all
)
def test_a_failing_follow_up_counts_for_nothing_and_leaves_the_rows_alone(
    healthy_stack: DifyStack, target: str
) -> None:
    database = _db(healthy_stack)
    rows, output = database.read_rows_then(10, plugin_db.follow_up(target))
    assert rows and rows == database.read_rows(10)
    assert output is not None and not output.finished
    assert plugin_db.from_follow_up(output) is None  # then plugin_state reads on its own


def test_a_name_that_is_not_plain_never_reaches_a_meta_command(healthy_stack: DifyStack) -> None:
    """psql runs several meta-commands on one line: `\\connect x \\! cmd` would run a shell
    command in the db container. Such a name is not followed up (its own exec takes it as an
    argument)."""
    database = _db(healthy_stack)
    marker = "/tmp/dify-ollama-follow-up-injected"
    name = f"{PLUGIN_DATABASE} \\! touch {marker}"
    rows, output = database.read_rows_then(10, plugin_db.follow_up(name))
    assert rows == database.read_rows(10) and output is None
    code, _ = healthy_stack.exec("db_postgres", ["test", "-e", marker])
    assert code == 1


ROW = (
    '{"table": "provider_models", "id": "1", "tenant_id": "t", "provider": "ollama", '
    '"model": "qwen2.5:7b", "model_type": "llm", "name": null, "config": "{}"}'
)
# psql 12: the rows and their end mark, then `\warn` unknown, and the follow-up's error.
OLD_PSQL = f"""#!/bin/sh
printf '%s\\n' '{ROW}' {dify_db.END_MARK}
for arg; do case "$arg" in '\\warn'*) echo 'invalid command \\warn' >&2;; esac; done
for arg; do case "$arg" in '\\connect'*)
  echo 'FATAL:  password authentication failed for user "postgres"' >&2;; esac; done
"""


@pytest.fixture(scope="module")
def old_psql(docker_engine: docker.DockerClient) -> Iterator[Any]:
    with running_box(docker_engine, BUSYBOX_IMAGE, ["sleep", "300"], "old-psql") as box:
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            body = OLD_PSQL.encode()
            info = tarfile.TarInfo("psql")
            info.size, info.mode = len(body), 0o755
            tar.addfile(info, io.BytesIO(body))
        assert box.put_archive("/bin", data.getvalue())
        yield box


def test_a_psql_without_warn_reads_the_two_one_by_one(
    docker_engine: docker.DockerClient, old_psql: Any
) -> None:
    """Without the stderr mark the follow-up's errors cannot be told from the rows': its
    FATAL must not fail the rows, and the follow-up is not taken."""
    database = dify_db.PostgresInContainer(docker_engine, old_psql.id, "postgres", "dify")
    rows, output = database.read_rows_then(5, plugin_db.follow_up(PLUGIN_DATABASE))
    assert [r.model for r in rows] == ["qwen2.5:7b"] and output is None


def _psql_execs(report: Any) -> int:
    return sum(s["name"].startswith("exec psql") for s in report.timing.get("spans", []))


def _status(report: Any, finding_id: str) -> str:
    found = report.finding(finding_id)
    assert found is not None, f"{finding_id} missing"
    return str(found.status.value)


def test_a_check_reads_rows_and_installations_with_one_psql(
    healthy_stack: DifyStack, session_ollama: FakeOllama
) -> None:
    from handlers.check import run_check
    from tests.handlers.test_check_stack import settings_for

    settings = settings_for(healthy_stack, session_ollama)
    report = run_check(settings, ("dify.base_url", "dify.plugin"))
    assert [_status(report, f) for f in ("dify.base_url", "dify.plugin")] == ["ok", "ok"]
    assert "installed for 1 workspace" in str(report.finding("dify.plugin"))
    assert _psql_execs(report) == 1
    # without dify.plugin, the rows' psql reads only the rows
    assert _psql_execs(run_check(settings, ("dify.base_url",))) == 1


def test_a_plugin_database_the_follow_up_cannot_read_is_read_on_its_own(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama
) -> None:
    """Its tables gone: the follow-up stops at the error, and the plugin read's own exec
    reports it (never "not installed")."""
    from handlers.check import run_check
    from tests.handlers.test_check_stack import settings_for

    restore_healthy_stack.plugin_sql("ALTER TABLE plugin_installations RENAME TO moved_away")
    try:
        settings = settings_for(restore_healthy_stack, session_ollama)
        report = run_check(settings, ("dify.base_url", "dify.plugin"))
        plugin = report.finding("dify.plugin")
        assert plugin is not None and plugin.status.value != "ok", plugin
        assert "not installed" not in plugin.summary and _psql_execs(report) == 2, plugin
        assert _status(report, "dify.base_url") == "ok"
    finally:
        restore_healthy_stack.plugin_sql("ALTER TABLE moved_away RENAME TO plugin_installations")
