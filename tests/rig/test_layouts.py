"""Every Dify layout the rig builds comes up healthy on the private engine, under Compose v2 and
(where the release allows it) v1: one stack per layout, shared by this module's tests.

What each test proves, per layout:
- healthy: every service running (healthy where it has a healthcheck), one-shot services exited
  0, created by the Compose flavour asked for (labels), api's /health says the release;
- the release's own services (0.x: no plugin_daemon, DB `db`; 1.15.0: db_postgres or db_mysql
  by profile, api_websocket, agent_backend, local_sandbox, init_permissions);
- every container's environment is what handlers/compose_file.py computes from the project's
  files for that flavour (the resolver against the containers Compose really created);
- issue 10's findings (plugin, capabilities, timeouts, errors, chat) report ok, dify.plugin
  skipped with its reason on 0.x;
- the credential rows (per release table and provider name, an encrypted api_key, a load
  balancing config, another provider's row) and the Redis cache keys, both behind passwords.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from config.settings import Settings
from handlers.check import run_check
from handlers.compose_file import effective_files, load_compose, read_project_environment
from handlers.results import Status
from tests.rig.fake_ollama import FakeOllama
from tests.rig.incident import incident_rows
from tests.rig.stack import DifyStack, compose_env, docker_host, release_of
from tests.rig.stack import healthy_stack as healthy_stack_of

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# (release, db, compose). 1.13.3 under v1 is the session's `healthy_stack` (tests/conftest.py).
LAYOUTS = [
    ("0.x", "postgresql", "v2"),
    ("0.x", "postgresql", "v1"),
    ("1.9.1", "postgresql", "v2"),
    ("1.9.1", "postgresql", "v1"),
    ("1.13.3", "postgresql", "v2"),
    ("1.15.0", "postgresql", "v2"),
    ("1.15.0", "mysql", "v2"),
]
UP_TIMES: dict[str, float] = {}  # printed in the terminal summary (tests/conftest.py)


def _id(layout: tuple[str, str, str]) -> str:
    return "-".join(layout)


@pytest.fixture(scope="module", params=LAYOUTS, ids=[_id(x) for x in LAYOUTS])
def layout(
    request: pytest.FixtureRequest,
    docker_engine: Any,
    session_ollama: FakeOllama,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DifyStack]:
    release, db, compose = request.param
    stack = healthy_stack_of(
        tmp_path_factory.mktemp(_id(request.param)),
        session_ollama.container_url(),
        release=release,
        db=db,
        compose=compose,
        client=docker_engine,
    )
    try:
        t0 = time.monotonic()
        stack.up(timeout=120)
        UP_TIMES[_id(request.param)] = time.monotonic() - t0
        yield stack
    finally:
        stack.down()


def test_layout_is_healthy(layout: DifyStack) -> None:
    layout.wait_healthy(10)
    created = {c.labels["com.docker.compose.service"]: c for c in layout.containers()}
    assert sorted(created) == sorted(layout.services)
    version = "1.29.2" if layout.compose_flavour == "v1" else "2.40.3"
    for name, c in created.items():
        assert c.labels["com.docker.compose.version"] == version
        assert c.labels["com.docker.compose.project.working_dir"] == str(layout.dir)
        state = c.attrs["State"]
        if name in layout.release.one_shot:
            assert (state["Status"], state["ExitCode"]) == ("exited", 0), name
        else:
            assert state["Status"] == "running", name
            assert (state.get("Health") or {}).get("Status") in (None, "healthy"), name
    code, out = layout.exec("api", ["curl", "-fsS", "http://localhost:5001/health"])
    assert code == 0 and json.loads(out)["version"] == layout.release.name


def test_layout_has_the_releases_services(layout: DifyStack) -> None:
    names = set(layout.services)
    rel = layout.release
    if rel.name == "0.10.2":
        assert names == {"api", "worker", "db", "redis", "nginx"}
        assert layout.db_service == "db"
    elif rel.name == "1.15.0":
        expected_db = "db_mysql" if layout.db == "mysql" else "db_postgres"
        assert {"init_permissions", "api_websocket", "agent_backend", "local_sandbox"} <= names
        assert layout.db_service == expected_db and expected_db in names
        assert ({"db_mysql", "db_postgres"} - {expected_db}).isdisjoint(names)
        # init_permissions ran its real script on the storage folder api and worker mount
        code, _ = layout.exec("api", ["test", "-f", "/app/api/storage/.init_permissions"])
        assert code == 0
    else:
        assert "plugin_daemon" in names and layout.db_service in names


def test_containers_run_with_the_environment_compose_file_computes(layout: DifyStack) -> None:
    """handlers/compose_file.py, asked about the project's own files, predicts every value
    each container was created with (the image adds PATH and the like on top)."""
    flavour = "v1" if layout.compose_flavour == "v1" else "v2"
    caller = {**compose_env(), **layout.compose_command.env}
    env = read_project_environment(layout.env_path, caller, flavour=flavour)
    files = effective_files((layout.compose_path,), layout.dir)
    config = load_compose(files, env)
    assert sorted(config.services) == sorted(layout.services)
    for name in layout.services:
        running = layout.env_of(name)
        expected = config.services[name].environment
        wrong = {k: (v, running.get(k)) for k, v in expected.items() if running.get(k) != v}
        assert not wrong, f"{name}: (computed, container) differ: {wrong}"
    for name in layout.model_callers:
        assert layout.env_of(name)["OPENAI_API_BASE"].endswith("/v1")
    if layout.release.name == "1.15.0":
        api = config.services["api"]
        assert api.env_files_read == ((layout.dir / ".env").resolve(),)  # no optional envs
        assert "CELERY_BROKER_URL" not in api.declared_environment  # it came from ./.env
        assert layout.env_of("api")["CELERY_BROKER_URL"].startswith("redis://")


def test_rows_and_cache_behind_passwords(layout: DifyStack, session_ollama: FakeOllama) -> None:
    rel = release_of(layout.release)
    rows = layout.rows()
    ollama = [r for r in rows if r["provider_name"] == rel.provider_name]
    assert {r["base_url"] for r in ollama} == {session_ollama.container_url()}
    tables = {r["table"] for r in ollama}
    if rel.name == "1.13.3":
        assert tables == {"provider_model_credentials"}
    elif rel.schema == "0.x":
        assert tables == {"provider_models", "load_balancing_model_configs"}
        assert rel.provider_name == "ollama"
    else:
        assert tables == {"provider_model_credentials", "load_balancing_model_configs"}
        keyed = [r for r in ollama if "api_key" in json.loads(r["encrypted_config"])]
        assert keyed and all(
            base64.b64decode(json.loads(r["encrypted_config"])["api_key"]).startswith(b"HYBRID:")
            for r in keyed
        )
        lb = next(r for r in ollama if r["table"] == "load_balancing_model_configs")
        assert lb["credential_source_type"] == "custom_model" and lb["credential_id"]
    if rel.name != "1.13.3":
        others = [r for r in rows if r["provider_name"] != rel.provider_name]
        assert [r["base_url"] for r in others] == ["http://127.0.0.1:8000/v1"]
    keys = layout.redis_keys()
    assert "rig:unrelated" in keys
    if any(r["table"] == "load_balancing_model_configs" for r in rows):
        assert any(k.startswith("load_balancing_provider_model_credentials:") for k in keys)
    code, out = layout.exec("redis", ["env", "-u", "REDISCLI_AUTH", "redis-cli", "ping"])
    assert "NOAUTH" in out
    if layout.dialect == "mysql":
        code, out = layout.exec(layout.db_service, ["mysql", "-u", "root", "-e", "SELECT 1"])
        assert code != 0 and "Access denied" in out  # the DB refuses a login without password
        assert layout.mysql("SELECT COUNT(*) FROM provider_model_credentials").strip() == "3"


def test_runtime_findings_on_every_layout(layout: DifyStack, session_ollama: FakeOllama) -> None:
    """issue 10's findings on each release and database: the plugin read from plugin_daemon's
    database (PostgreSQL or MySQL), skipped with the reason on 0.x; the chat from the caller
    the release has (plugin_daemon on 1.x, api on 0.x)."""
    settings = Settings(
        dify_compose_project=layout.project,
        ollama_url=session_ollama.url,
        check_timeout=3,
        docker_host=docker_host(),
    )
    ids = ("dify.plugin", "ollama.capabilities", "dify.timeouts", "dify.errors", "dify.chat")
    report = run_check(settings, ids, chat="on")
    found = {f.id: f for f in report.findings}
    plugin = found["dify.plugin"]
    if layout.release.schema == "0.x":
        assert plugin.status is Status.SKIP and "0.x has no plugins" in plugin.summary
        assert "answered api" in found["dify.chat"].summary
    else:
        assert plugin.status is Status.OK and "installed for 1 workspace" in plugin.summary
        assert "answered plugin_daemon" in found["dify.chat"].summary
    for fid in ids[1:]:
        assert found[fid].status is Status.OK, found[fid]
    if layout.release.name != "1.13.3":  # the embedding row is checked against /api/show
        assert "nomic-embed-text:latest (text-embedding)" in found["ollama.capabilities"].detail


def test_incident_rows_round_trip_byte_for_byte(
    layout: DifyStack, session_ollama: FakeOllama
) -> None:
    """The incident's rows (quotes, a backslash, non-ASCII, an encrypted api_key) go into the
    release's tables and come back unchanged, in PostgreSQL and MySQL alike."""
    rows = incident_rows(session_ollama, layout.release.name)
    try:
        layout.set_rows(rows)
        stored = {r["id"]: r for r in layout.rows()}
        assert set(stored) == {r.id for r in rows}
        for r in rows:
            assert stored[r.id]["encrypted_config"] == r.encrypted_config()
            assert stored[r.id]["table"] == r.table
    finally:
        layout.set_rows(layout.initial_rows)
