"""Database rewrite and cache purge against a real PostgreSQL and a real Redis with a password."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from handlers import container_exec, db_fix, dify_db
from handlers.dify_db import PostgresInContainer
from handlers.results import HandlerError
from tests.rig.stack import DifyStack, OllamaRow, cache_keys_for

pytestmark = pytest.mark.docker

PASSWORD = "s3cret-Redis-pw-for-tests"
NEW = "http://host.docker.internal:11434"


@pytest.fixture(scope="module")
def stack(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DifyStack]:
    rows = [
        OllamaRow(base_url="http://127.0.0.1:11434"),
        OllamaRow(
            base_url="http://localhost:11434/api",
            model_name="qwen2.5:7b",
            config={"note": 'it\'s "quoted" \\ é ☃', "api_key": "enc:AbC+/="},
        ),
        OllamaRow(
            base_url="http://ollama.lan:11434/v1/", model_name="phi3", table="provider_models"
        ),
        OllamaRow(base_url=NEW, model_name="good"),
    ]
    made = DifyStack(
        tmp_path_factory.mktemp("dbfix"),
        env_overrides={"REDIS_PASSWORD": PASSWORD},
        ollama_rows=rows,
        client=docker_engine,
    )
    with made:
        yield made.up()


@pytest.fixture
def fresh(stack: DifyStack) -> Iterator[DifyStack]:
    yield stack
    stack.set_rows(stack.initial_rows)
    stack.redis_cli("FLUSHALL")
    stack.seed_redis_keys()


def _db(stack: DifyStack) -> PostgresInContainer:
    return PostgresInContainer(stack.client, stack.container("db_postgres").id, "postgres", "dify")


def test_rows_are_read_verbatim_and_only_base_url_changes(fresh: DifyStack) -> None:
    db = _db(fresh)
    rows = db.read_rows(10)
    stored = {r["id"]: r["encrypted_config"] for r in fresh.rows()}
    assert {r.id: r.config for r in rows} == stored  # text exactly as stored
    changes = db_fix.plan_changes(rows, NEW)
    urls = {c.row.model: (c.old_url, c.new_url) for c in changes}
    assert urls == {
        "llama3.2:latest": ("http://127.0.0.1:11434", NEW),
        "qwen2.5:7b": ("http://localhost:11434/api", NEW),
        # another host chosen on purpose keeps its host; only the path the plugin breaks on goes
        "phi3": ("http://ollama.lan:11434/v1/", "http://ollama.lan:11434"),
    }
    db.write_rows([c.update() for c in changes], 10)
    after = {r["id"]: r for r in fresh.rows()}
    for change in changes:
        old_text = stored[change.row.id]
        new_text = after[change.row.id]["encrypted_config"]
        assert new_text == old_text.replace(
            json.dumps(change.old_url), json.dumps(change.new_url), 1
        )
        old, new = json.loads(old_text), json.loads(new_text)
        old["base_url"] = change.new_url
        assert old == new and list(old) == list(new)


def test_one_stale_row_aborts_the_whole_transaction(fresh: DifyStack) -> None:
    db = _db(fresh)
    changes = db_fix.plan_changes(db.read_rows(10), NEW)
    assert len(changes) == 3
    victim = changes[-1].row
    fresh.psql(
        f"UPDATE {victim.table} SET encrypted_config = encrypted_config || ' ' "
        f"WHERE id = '{victim.id}'"
    )
    before = fresh.rows()
    with pytest.raises(HandlerError, match=r"rolled back: .*changed since it was read"):
        db.write_rows([c.update() for c in changes], 10)
    assert fresh.rows() == before  # the first two updates were undone with it


def test_cache_purge_uses_the_env_password_via_the_environment_only(
    fresh: DifyStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[list[str], dict[str, str] | None]] = []
    real = container_exec.run

    def spy(
        client: Any, cid: str, argv: list[str], timeout: float, environment: Any = None, **kw: Any
    ) -> container_exec.ExecResult:
        calls.append((list(argv), environment))
        return real(client, cid, argv, timeout, environment=environment, **kw)

    monkeypatch.setattr(container_exec, "run", spy)
    expected = {k for k in cache_keys_for(fresh.initial_rows) if k != "rig:unrelated"}
    assert set(fresh.redis_keys()) >= expected
    result = db_fix.purge_cache(fresh.client, fresh.container("redis").id, PASSWORD, 10)
    assert result.deleted == len(expected) and result.auth == "env-file"
    assert fresh.redis_keys() == ["rig:unrelated"]
    assert calls and all(PASSWORD not in " ".join(argv) for argv, _ in calls)
    assert all(env == {"REDISCLI_AUTH": PASSWORD} for _, env in calls)


def test_a_stale_env_password_falls_back_to_the_containers_own(fresh: DifyStack) -> None:
    # .env changed after redis was created: the running server still has the old password,
    # which Dify's compose file also put into the container as REDISCLI_AUTH.
    result = db_fix.purge_cache(fresh.client, fresh.container("redis").id, "wrong-password", 10)
    assert result.auth == "container" and fresh.redis_keys() == ["rig:unrelated"]


def test_no_usable_password_is_a_clear_error(fresh: DifyStack) -> None:
    redis = fresh.container("redis").id
    with pytest.raises(HandlerError, match="check REDIS_PASSWORD") as err:
        # an unknown ACL user fails with the .env password and with the container's own
        db_fix.purge_cache(fresh.client, redis, "wrong-password", 10, username="nobody")
    assert "wrong-password" not in str(err.value)
    assert len(fresh.redis_keys()) > 1


def hold_row_lock(stack: DifyStack, row_id: str, seconds: int) -> None:
    """Another session holds the row's lock for `seconds` (as a long Dify request might)."""
    sql = (
        f"BEGIN; SELECT id FROM provider_model_credentials WHERE id = '{row_id}' FOR UPDATE; "
        f"SELECT pg_sleep({seconds}); COMMIT;"
    )
    stack.container("db_postgres").exec_run(
        ["psql", "-X", "-q", "-U", "postgres", "-d", "dify", "-c", sql], detach=True
    )


def test_a_locked_row_ends_the_write_on_the_server_and_changes_nothing(fresh: DifyStack) -> None:
    """lock_timeout/statement_timeout are set in the writing session, below the client's
    deadline: a row another session holds makes the server give up, the transaction rolls
    back, and the error says so (no client-side timeout, no unknown state)."""
    db = _db(fresh)
    changes = db_fix.plan_changes(db.read_rows(10), NEW)
    hold_row_lock(fresh, changes[0].row.id, 8)
    time.sleep(1.0)  # the holder has its lock
    before = fresh.rows()
    started = time.monotonic()
    with pytest.raises(HandlerError, match=r"rolled back: .*lock timeout") as err:
        db.write_rows([c.update() for c in changes], 5)
    assert time.monotonic() - started < 5  # the server's 2 s lock_timeout, not the client's 5 s
    assert not isinstance(err.value, dify_db.DatabaseStateUnknown)
    assert fresh.rows() == before
