"""check, fix-env, restart and undo on every Dify layout the product supports, each built from
the release's real files and run by the Compose flavour that release allows (one stack per
layout, shared by this module's tests and restored between them).

Per layout: the healthy stack checks all ok (no failure, no skip; only Dify's public default
secrets warn) and `dify.project` names the release, layout, Compose and database; the seed
incident (loopback base URLs in the release's credential tables, a load-balancing config at
localhost, OPENAI_API_BASE at 127.0.0.1, no host-gateway) is found; fix-env, restart (with the
caller's LANG, LC_ALL, OPENAI_API_BASE and COMPOSE_PROFILES set, which must not leak) and a
fresh check come back healthy; every recreated container's environment equals what it had
before except the keys the plan changed, and no service outside the plan is recreated; only
base_url changed in the rows (an encrypted api_key and another provider's row stay byte for
byte); undo puts files and rows back byte for byte. And restart follows the Compose that
created the stack: with that flavour hidden it refuses with the reason and the manual
command; with the other one hidden it works.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers import compose_binary, fix_apply, fix_plan, fix_undo, restart
from handlers.check import run_check
from handlers.probes import not_applicable
from handlers.results import HandlerError, Report, Status
from tests.rig.compose import SYSTEM_PLUGIN_DIRS, v2_plugin_dir
from tests.rig.fake_ollama import FakeOllama
from tests.rig.incident import (
    EMBED_ID,
    LB_ID,
    LLM_ID,
    OK_ID,
    OTHER_ID,
    failing,
    files_state,
    fix_settings,
    incident_rows,
    rows_by_id,
)
from tests.rig.stack import DifyStack, cache_keys_for, docker_host
from tests.rig.stack import healthy_stack as healthy_stack_of

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# (release, metadata DB, Compose flavour that creates it). v1 where the release allows it.
LAYOUTS = [
    ("0.x", "postgresql", "v1"),
    ("0.x", "postgresql", "v2"),
    ("1.9.1", "postgresql", "v1"),
    ("1.9.1", "postgresql", "v2"),
    ("1.13.3", "postgresql", "v1"),
    ("1.13.3", "postgresql", "v2"),
    ("1.15.0", "postgresql", "v2"),
    ("1.15.0", "mysql", "v2"),
]
KIND = {"0.10.2": "0.x", "1.9.1": "x-shared-env", "1.13.3": "x-shared-env"}
# What the bot's own environment might hold; none of it may reach a recreated container.
CALLER_ENV = {
    "LANG": "de_DE.UTF-8",
    "LC_ALL": "de_DE.UTF-8",
    "OPENAI_API_BASE": "http://127.0.0.1:9/leaked",
    "COMPOSE_PROFILES": "nothing",
    "DB_TYPE": "leaked",
}


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
        yield stack.up(timeout=120)
    finally:
        stack.down()


@pytest.fixture
def stack(layout: DifyStack, session_ollama: FakeOllama) -> Iterator[DifyStack]:
    """The layout's stack, put back (files, containers, rows, cache) after the test."""
    yield layout
    session_ollama.reset(bind="0.0.0.0")
    layout.restore(timeout=120)


def statuses(report: Report) -> dict[str, str]:
    return {f.id: f.status.value for f in report.findings}


def healthy_verdict(stack: DifyStack, report: Report) -> dict[str, str]:
    """What a healthy stack of this layout reports besides "ok": the look-alike's weak
    secrets, and on 0.x (no plugins) dify.plugin's skip, which must say it does not apply."""
    expected = {"dify.secrets": "warn"}
    if "plugin_daemon" not in stack.services:
        expected["dify.plugin"] = "skip"
        plugin_finding = report.finding("dify.plugin")
        assert plugin_finding is not None and not_applicable(plugin_finding), plugin_finding
    return expected


def app_services(stack: DifyStack) -> list[str]:
    """The long-running services besides the database, redis and nginx."""
    infra = {stack.db_service, "redis", "nginx"}
    return [s for s in stack.long_running if s not in infra]


def containers_state(stack: DifyStack) -> dict[str, tuple[str, dict[str, str], list[str]]]:
    """service -> (container id, environment, extra_hosts) of every container of the stack."""
    out = {}
    for c in stack.containers():
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in c.attrs["Config"]["Env"] or [])
        hosts = list(c.attrs["HostConfig"].get("ExtraHosts") or [])
        out[c.labels["com.docker.compose.service"]] = (c.id, env, hosts)
    return out


def make_incident(stack: DifyStack, ollama: FakeOllama) -> None:
    """The seed incident on the running layout: its rows, OPENAI_API_BASE at 127.0.0.1, no
    host-gateway override, and the app containers created from that (as the user left them)."""
    stack.set_rows(incident_rows(ollama, stack.release.name))
    stack.redis_cli("FLUSHALL")
    stack.seed_redis_keys(cache_keys_for(incident_rows(ollama, stack.release.name)))
    text = stack.read_env().replace(
        f"OPENAI_API_BASE={ollama.container_url()}/v1",
        f"OPENAI_API_BASE=http://127.0.0.1:{ollama.port}/v1",
    )
    stack.env_path.write_text(text)
    stack.override_path.unlink()
    stack.recreate(app_services(stack), timeout=120)


# --- healthy ---------------------------------------------------------------------------------
def test_healthy_layout_checks_all_ok_and_names_itself(
    layout: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(layout, session_ollama, tmp_path / "state")
    report = run_check(settings)
    found = statuses(report)
    assert {k: v for k, v in found.items() if v != "ok"} == healthy_verdict(layout, report), (
        report.to_json()
    )
    rel = layout.release
    project = report.finding("dify.project")
    assert project is not None
    kind = KIND.get(rel.name, "env_file lists")
    version = "1.29.2" if layout.compose_flavour == "v1" else "2.40.3"
    assert f"Dify {rel.name}, {kind} layout" in project.summary
    assert f"created by Compose {layout.compose_flavour} {version}" in project.summary
    assert f"metadata DB {layout.db}" in project.summary
    assert "from the api /health" in project.detail  # the rig's images carry no release tag
    containers = report.finding("dify.containers")
    assert containers is not None
    for service in layout.long_running:
        if service != "nginx":
            assert service in containers.summary, (service, containers.summary)
    if rel.one_shot:
        assert "(init_permissions completed)" in containers.summary
    health = report.finding("dify.health")
    assert health is not None
    assert ("plugin_daemon" in health.summary) == ("plugin_daemon" in layout.services)
    secrets = report.finding("dify.secrets")
    assert secrets is not None and "DB_PASSWORD" in secrets.detail
    if "plugin_daemon" not in layout.services:  # 0.x: no service uses the plugin keys
        assert "PLUGIN_DAEMON_KEY" not in secrets.detail
        assert "PLUGIN_DIFY_INNER_API_KEY" not in secrets.detail
    base = report.finding("dify.base_url")
    assert base is not None
    if rel.name != "1.13.3":  # the other layouts' healthy rows include a load-balancing copy
        assert "load_balancing_model_configs" in base.detail


# --- the incident, fixed, restarted, verified, undone ----------------------------------------
def test_incident_fixed_restarted_verified_and_undone_keeping_every_other_byte(
    stack: DifyStack,
    session_ollama: FakeOllama,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_incident(stack, session_ollama)
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    before_files, before_rows = files_state(stack), rows_by_id(stack)
    before = containers_state(stack)

    report = run_check(settings)
    assert {"dify.base_url", "container.reach", "container.dns", "env.file"} <= failing(report)
    base = report.finding("dify.base_url")
    assert base is not None and LLM_ID not in base.detail  # ids stay in the plan
    layered = stack.release.name != "1.13.3"  # the 1.13.3 incident keeps its historic rows
    if layered:
        assert "load_balancing_model_configs" in base.detail and "localhost" in base.detail

    plan = fix_plan.make_plan(settings, report)
    assert plan.env is not None and plan.db is not None and plan.override is not None
    assert set(plan.env.values) == {"OPENAI_API_BASE"}
    changed_rows = {r.id for r in plan.db.rows}
    assert changed_rows == ({LLM_ID, EMBED_ID, LB_ID} if layered else {LLM_ID, EMBED_ID})
    assert plan.db.service == stack.db_service
    assert "difyai123456" not in plan.render()

    fix_apply.apply_plan(settings, plan.id, user="UOPS", source="cli")
    with monkeypatch.context() as env:
        for key, value in CALLER_ENV.items():
            env.setenv(key, value)
        result = restart.apply_configuration(settings, user="UOPS", source="cli")
    assert result.ready, result.lines()
    after = containers_state(stack)

    # The promise: only the plan's services were recreated, each with the environment it had
    # except the keys the plan changed; the override's services gained host-gateway.
    recreated = {s for s in before if after[s][0] != before[s][0]}
    planned = {s for s in plan.restart_services if s in before}
    assert recreated == planned, (sorted(recreated), sorted(planned))
    assert stack.db_service not in recreated and "redis" not in recreated
    for service in recreated:
        _, old_env, _ = before[service]
        _, new_env, hosts = after[service]
        differs = {k for k in old_env.keys() | new_env.keys() if old_env.get(k) != new_env.get(k)}
        assert differs <= set(plan.env.values), (service, sorted(differs))
        if service in plan.override.services:
            assert "host.docker.internal:host-gateway" in hosts
    for service in recreated & {"api", "worker"}:
        assert after[service][1]["OPENAI_API_BASE"] == f"{session_ollama.container_url()}/v1"
        assert after[service][1].get("LANG") == before[service][1].get("LANG")  # not leaked

    verified = run_check(settings)
    assert {k: v for k, v in statuses(verified).items() if v != "ok"} == healthy_verdict(
        stack, verified
    ), verified.to_json()

    rows = rows_by_id(stack)
    for row_id, old in before_rows.items():
        if row_id not in changed_rows:
            assert rows[row_id] == old  # the good row, another provider's row: untouched
            continue
        text = old["encrypted_config"]
        assert rows[row_id]["encrypted_config"] == text.replace(
            json.dumps(old["base_url"]), json.dumps(session_ollama.container_url()), 1
        )
        if "api_key" in json.loads(text):  # the encrypted secret, byte for byte
            new_key = json.loads(rows[row_id]["encrypted_config"])["api_key"]
            assert new_key == json.loads(text)["api_key"]
    if layered:
        assert rows[OTHER_ID]["base_url"] == "http://127.0.0.1:8000/v1"
    assert rows[OK_ID] == before_rows[OK_ID]
    assert stack.redis_keys() == ["rig:unrelated"]  # load_balancing_* keys purged as well

    fix_undo.undo(settings, user="UOPS", source="cli")
    assert files_state(stack) == before_files
    assert rows_by_id(stack) == before_rows


# --- the Compose that created the stack ------------------------------------------------------
def _hide_v2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "no-plugins"
    empty.mkdir(parents=True)
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))  # no compose plugin for the docker CLI
    # ...and none in the machine's plugin folders either, as the product looks for them
    # (scripts/test installs v2 there on a machine that had none)
    monkeypatch.setattr(compose_binary, "SYSTEM_PLUGIN_DIRS", ())


def _hide_v1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    docker = next(
        Path(d) / "docker"
        for d in os.environ["PATH"].split(os.pathsep)
        if (Path(d) / "docker").is_file()
    )
    (bin_dir / "docker").symlink_to(docker)  # `docker compose` stays, `docker-compose` goes
    monkeypatch.setenv("PATH", str(bin_dir))
    if str(v2_plugin_dir()) not in SYSTEM_PLUGIN_DIRS:
        monkeypatch.setenv("DOCKER_CONFIG", str(v2_plugin_dir().parent))


def test_restart_uses_the_compose_that_created_the_stack(
    layout: DifyStack, session_ollama: FakeOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = layout  # nothing changes here (asserted at the end): no restore needed
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    created_by = stack.compose_flavour.removesuffix("-standalone")
    ids = {s: c[0] for s, c in containers_state(stack).items()}
    # Only the creator is installed: drift is read with its rules, and restart runs it.
    with monkeypatch.context() as env:
        (_hide_v2 if created_by == "v1" else _hide_v1)(env, tmp_path / "a")
        drift = run_check(settings).finding("env.drift")
        assert drift is not None and drift.status is Status.OK, drift
        result = restart.apply_configuration(settings, user="me", source="cli")
        assert result.recreated == () and result.ready
        label = "docker-compose" if created_by == "v1" else "docker compose"
        assert result.commands[0].startswith(f"{label} -p {stack.project} up -d --no-deps")
    # Only the other one is installed: refused with the reason and the manual command.
    with monkeypatch.context() as env:
        (_hide_v1 if created_by == "v1" else _hide_v2)(env, tmp_path / "b")
        drift = run_check(settings).finding("env.drift")
        assert drift is not None and drift.status is Status.OK, drift  # labels, not PATH
        with pytest.raises(HandlerError) as err:
            restart.apply_configuration(settings, user="me", source="cli")
        message = str(err.value)
        assert f"created by Compose {'1.29.2' if created_by == 'v1' else '2.40.3'}" in message
        assert "which is not installed here" in message and "nothing was changed" in message
        assert f"cd {stack.dir} && " in message and "up -d --no-deps" in message
    assert {s: c[0] for s, c in containers_state(stack).items()} == ids
    assert docker_host()  # the engine was the private one throughout
