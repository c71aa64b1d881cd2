"""fix-env decisions without an engine: plans decided from hand-built scenes (real files on disk,
containers and rows described in code), and what applying and undoing would write.

The engine tests in test_fix_plan.py run the same decisions on a running look-alike stack."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from config.settings import Settings
from handlers import backup as backups
from handlers import db_fix, fix_decide
from handlers.dify_db import CredentialRow
from handlers.fix_apply import prepare
from handlers.fix_model import Plan
from handlers.fix_scene import Gateway, Scene
from handlers.fix_undo import row_updates
from handlers.redact import MASK
from handlers.results import Finding, HandlerError, Status
from tests.rig.incident import EMBED_ID, LLM_ID, OK_ID
from tests.rig.scenes import (
    CONTAINER_URL,
    DEFAULT_PASSWORD,
    DNS_FAILING,
    LOOPBACK_URL,
    credential,
    dify_folder,
    finding,
    incident_credentials,
    incident_folder,
    incident_report,
    report_of,
    scene_of,
    settings_for,
)
from tests.rig.stack import HOST_GATEWAY_OVERRIDE, OllamaRow

NEW = "http://host.docker.internal:11434"

GATEWAY_SERVICES = ["plugin_daemon", "api", "worker", "worker_beat"]


@pytest.fixture
def incident(tmp_path: Path) -> Scene:
    folder = incident_folder(tmp_path)
    return scene_of(settings_for(folder, tmp_path / "state"), rows=incident_credentials())


def settings_of(scene: Scene, **extra: object) -> Settings:
    folder = scene.project.working_dir
    return settings_for(folder, folder.parent / "state", **extra)


# --- the canonical incident ----------------------------------------------------------------------
def test_the_incident_plan_has_all_three_steps(incident: Scene) -> None:
    settings = settings_of(incident)
    plan = fix_decide.plan(incident, incident_report(), settings)
    assert plan.env is not None and plan.override is not None and plan.db is not None
    assert plan.env.values == {"OPENAI_API_BASE": f"{CONTAINER_URL}/v1"}
    assert plan.env.base_sha256 == backups.sha256(incident.env_bytes)
    assert f"-OPENAI_API_BASE={LOOPBACK_URL}/v1" in plan.env.preview
    assert f"+OPENAI_API_BASE={CONTAINER_URL}/v1" in plan.env.preview
    assert [r.id for r in plan.db.rows] == [LLM_ID, EMBED_ID]  # the good row is left alone
    assert {r.id: r.new_url for r in plan.db.rows} == {
        LLM_ID: CONTAINER_URL,
        EMBED_ID: CONTAINER_URL,
    }
    assert (plan.db.service, plan.db.user, plan.db.database) == ("db_postgres", "postgres", "dify")
    assert plan.db.redis_service == "redis" and plan.db.redis_db == 0
    assert plan.override.services == GATEWAY_SERVICES and plan.override.base_sha256 is None
    assert plan.override.notes[0] == (
        "why: host.docker.internal does not resolve in the containers (container.dns)"
    )
    assert plan.restart_services == GATEWAY_SERVICES
    assert plan.fixes == [
        "env.file",
        "dify.base_url",
        "container.reach",
        "container.dns",
        "env.drift",
    ]
    assert plan.unfixed == [] and plan.instructions == []
    text = plan.render()
    assert "WRITE DIFY'S DATABASE" in text and LLM_ID in text and EMBED_ID in text
    assert OK_ID not in text and DEFAULT_PASSWORD not in text


def test_deciding_reads_nothing_and_writes_nothing(incident: Scene) -> None:
    """The scene is all a decision sees: the folder can vanish in between."""
    folder = incident.project.working_dir
    for path in folder.iterdir():
        path.unlink()
    plan = fix_decide.plan(incident, incident_report(), settings_of(incident))
    assert plan.env is not None and plan.override is not None
    assert list(folder.iterdir()) == []


def test_previews_mask_every_secret(tmp_path: Path) -> None:
    folder = dify_folder(tmp_path)
    (folder / ".env").write_text(
        "DB_PASSWORD=s3cret-password-99\n"
        f"OPENAI_API_BASE={LOOPBACK_URL}/v1\n"
        "CELERY_BROKER_URL=redis://:s3cret-password-99@redis:6379/1\n"
        "PLUGIN_DAEMON_KEY=short5\n"
    )
    (folder / "docker-compose.override.yaml").write_text(
        "services:\n  api:\n    environment:\n      MY_API_KEY: sk-override-secret-123456789\n"
    )
    row = OllamaRow(base_url="http://admin:hunter2hunter@127.0.0.1:11434", id="r1")
    scene = scene_of(settings_for(folder, tmp_path / "s"), rows=[credential(row)])
    plan = fix_decide.plan(scene, incident_report(), settings_for(folder, tmp_path / "s"))
    text = plan.render()
    for secret in ("s3cret-password-99", "short5", "sk-override-secret-123456789", "hunter2hunter"):
        assert secret not in text
    assert f"DB_PASSWORD={MASK}" in text and f"redis://{MASK}@redis" in text
    assert f"MY_API_KEY: {MASK}" in text


# --- .env ----------------------------------------------------------------------------------------
def test_a_missing_env_is_created_from_the_template(tmp_path: Path) -> None:
    folder = dify_folder(tmp_path, env=False)
    settings = settings_for(folder, tmp_path / "s")
    scene = scene_of(settings)
    plan = fix_decide.plan(scene, report_of(finding("env.file", ".env is missing")), settings)
    assert plan.env is not None and plan.env.base_sha256 is None
    assert plan.env.template == str(folder / ".env.example")
    assert plan.env.template_sha256 == backups.sha256((folder / ".env.example").read_bytes())
    assert "-OPENAI_API_BASE=https://api.openai.com/v1" in plan.env.preview
    assert plan.env.values == {"OPENAI_API_BASE": f"{CONTAINER_URL}/v1"}
    assert plan.render().startswith(f"fix-env plan {plan.id} for Dify project docker")
    assert f"Create {folder / '.env'} as a copy of" in plan.render()


def test_a_missing_env_without_template_is_left_to_the_user(tmp_path: Path) -> None:
    folder = dify_folder(tmp_path, env=False)
    (folder / ".env.example").unlink()
    settings = settings_for(folder, tmp_path / "s")
    plan = fix_decide.plan(scene_of(settings), report_of(finding("env.file")), settings)
    assert plan.env is None
    assert plan.unfixed[0].startswith(f"env.file: {folder / '.env'} is missing and there is no")


@pytest.mark.parametrize(
    ("value", "changed"),
    [
        ("https://api.openai.com/v1", True),  # the public default a local model cannot use
        ("http://localhost:11434/v1", True),
        (f"{CONTAINER_URL}/v1", False),
        ("http://ollama.lan:11434/v1", False),  # a host chosen on purpose
    ],
)
def test_openai_api_base_is_set_only_when_loopback_or_public(
    tmp_path: Path, value: str, changed: bool
) -> None:
    folder = dify_folder(tmp_path, {"OPENAI_API_BASE": value})
    settings = settings_for(folder, tmp_path / "s")
    plan = fix_decide.plan(scene_of(settings), report_of(), settings)
    assert (plan.env is not None) is changed
    assert ("env.file" in plan.fixes) is changed


def test_a_refused_fix_url_is_a_clear_error(incident: Scene) -> None:
    settings = settings_of(incident, fix_ollama_url="http://host.docker.internal:11434/v1 #x")
    with pytest.raises(HandlerError, match="refusing to write FIX_OLLAMA_URL"):
        fix_decide.plan(incident, incident_report(), settings)


# --- the database --------------------------------------------------------------------------------
def test_fix_database_false_gives_web_ui_steps(incident: Scene) -> None:
    settings = settings_of(incident, fix_database=False)
    plan = fix_decide.plan(incident, incident_report(), settings)
    assert plan.db is None
    [step] = [i for i in plan.instructions if i.finding == "dify.base_url"]
    assert "Settings -> Model Provider -> Ollama" in step.text and CONTAINER_URL in step.text
    assert "dify.base_url" in plan.fixes and "container.reach" not in plan.fixes[:2]


def test_rows_that_cannot_be_read_are_reported_not_fixed(incident: Scene) -> None:
    scene = replace(incident, rows=(), rows_error="psql could not connect: FATAL")
    plan = fix_decide.plan(scene, incident_report(), settings_of(incident))
    assert plan.db is None
    assert "dify.base_url: could not read Dify's database (psql could not connect: FATAL)." in (
        plan.unfixed
    )


def test_a_stopped_db_is_reported(tmp_path: Path) -> None:
    folder = incident_folder(tmp_path)
    settings = settings_for(folder, tmp_path / "s")
    scene = scene_of(settings, running=("api", "plugin_daemon"), stopped=("db_postgres",), db=None)
    plan = fix_decide.plan(scene, incident_report(), settings)
    assert plan.db is None
    assert any("db container is not running" in line for line in plan.unfixed)


def test_redis_outside_the_project_gets_the_manual_purge(tmp_path: Path) -> None:
    folder = dify_folder(
        tmp_path,
        {"OPENAI_API_BASE": f"{CONTAINER_URL}/v1", "REDIS_HOST": "redis.lan", "REDIS_DB": "3"},
    )
    settings = settings_for(folder, tmp_path / "s")
    scene = scene_of(settings, rows=incident_credentials())
    plan = fix_decide.plan(scene, incident_report(), settings)
    assert plan.db is not None and plan.db.redis_service is None and plan.db.redis_db == 3
    assert "Dify's Redis is not a container of this project" in plan.render()


def test_rows_with_another_host_keep_it_and_lose_only_the_suffix(tmp_path: Path) -> None:
    folder = dify_folder(tmp_path, {"OPENAI_API_BASE": "http://ollama.lan:11434/v1"})
    settings = settings_for(folder, tmp_path / "s")
    row = credential(OllamaRow(base_url="http://ollama.lan:11434/api", id="lan"))
    plan = fix_decide.plan(scene_of(settings, rows=[row]), report_of(), settings)
    assert plan.db is not None and plan.db.rows[0].new_url == "http://ollama.lan:11434"
    assert plan.override is None  # the URLs Dify will use never name host.docker.internal


def test_config_rewrite_refuses_ambiguous_or_missing_base_url() -> None:
    with pytest.raises(HandlerError):
        db_fix.rewrite_config('{"mode": "chat"}', NEW)
    with pytest.raises(HandlerError):
        db_fix.rewrite_config("not json", NEW)
    text = '{"base_url":"http://127.0.0.1:11434","x":{"base_url":"keep"}}'
    with pytest.raises(HandlerError, match="more than once"):
        db_fix.rewrite_config(text, NEW)
    assert db_fix.rewrite_config('{"a": 1, "base_url": "http://x"}', NEW) == (
        '{"a": 1, "base_url": "http://host.docker.internal:11434"}'
    )


# --- the compose override ------------------------------------------------------------------------
def _gateway_plan(tmp_path: Path, gateway: Gateway, dns: Finding | None = None) -> Plan:
    folder = dify_folder(tmp_path, {"OPENAI_API_BASE": f"{CONTAINER_URL}/v1"})
    settings = settings_for(folder, tmp_path / "s")
    scene = scene_of(settings, gateway=gateway)
    return fix_decide.plan(scene, report_of(*([dns] if dns else [])), settings)


def test_override_when_the_name_does_not_resolve_in_a_caller(tmp_path: Path) -> None:
    plan = _gateway_plan(tmp_path, Gateway("plugin_daemon", resolves=False))
    assert plan.override is not None
    assert plan.override.notes[0] == ("why: host.docker.internal does not resolve in plugin_daemon")
    assert "+    - host.docker.internal:host-gateway" in plan.override.preview
    assert plan.restart_services == GATEWAY_SERVICES


def test_no_override_where_the_name_resolves_natively(tmp_path: Path) -> None:
    plan = _gateway_plan(tmp_path, Gateway("api", resolves=True, method="getent"))
    assert plan.override is None and plan.restart_services == []


def test_a_mapping_only_on_the_container_is_written_into_the_files(tmp_path: Path) -> None:
    plan = _gateway_plan(tmp_path, Gateway("api", mapped=True))
    assert plan.override is not None
    assert "api maps host.docker.internal but the compose files do not" in (plan.override.notes[0])


@pytest.mark.parametrize(
    ("engine_os", "needed"), [("Docker Desktop", False), ("Debian GNU/Linux 12 (bookworm)", True)]
)
def test_without_a_running_caller_the_engine_decides(
    tmp_path: Path, engine_os: str, needed: bool
) -> None:
    plan = _gateway_plan(tmp_path, Gateway(None, engine_os=engine_os))
    assert (plan.override is not None) is needed


def test_a_mapping_already_in_the_files_only_needs_a_recreate(tmp_path: Path) -> None:
    folder = incident_folder(tmp_path)
    (folder / "docker-compose.override.yaml").write_text(yaml.safe_dump(HOST_GATEWAY_OVERRIDE))
    settings = settings_for(folder, tmp_path / "s")
    scene = scene_of(settings, rows=incident_credentials())
    plan = fix_decide.plan(scene, incident_report(), settings)
    assert plan.override is None
    [step] = [i for i in plan.instructions if i.finding == "container.dns"]
    assert "created before" in step.text and "docker-compose.override.yaml" in step.text
    assert not any(line.startswith("container.dns") for line in plan.unfixed)


def test_an_existing_override_is_merged_and_its_comments_noted(tmp_path: Path) -> None:
    folder = incident_folder(tmp_path)
    mine = "# keep\nservices:\n  api:\n    environment:\n      LOG_LEVEL: DEBUG\n"
    (folder / "docker-compose.override.yaml").write_text(mine)
    settings = settings_for(folder, tmp_path / "s")
    plan = fix_decide.plan(
        scene_of(settings, rows=incident_credentials()), incident_report(), settings
    )
    assert plan.override is not None
    assert plan.override.base_sha256 == backups.sha256(mine.encode())
    assert "comments" in " ".join(plan.override.notes)
    assert "LOG_LEVEL: DEBUG" in plan.override.preview


def test_compose_files_compose_cannot_read_are_a_clear_error_not_a_plan(incident: Scene) -> None:
    """No restart could apply anything while Compose refuses the project: nothing is planned."""
    scene = replace(incident, compose=None, compose_config_error="docker-compose.yaml: bad YAML")
    dns = finding("container.dns", DNS_FAILING)
    with pytest.raises(HandlerError) as err:
        fix_decide.plan(scene, report_of(dns), settings_of(incident))
    assert "Compose cannot read the project (docker-compose.yaml: bad YAML)" in str(err.value)
    assert "nothing was planned or changed" in str(err.value)


def test_no_compose_file_at_all_is_a_clear_error(incident: Scene) -> None:
    scene = replace(incident, compose_files=(), compose_error="no compose file in /x")
    with pytest.raises(HandlerError, match="no compose file in /x"):
        fix_decide.plan(scene, incident_report(), settings_of(incident))


# --- what fix-env leaves to people ---------------------------------------------------------------
def test_ollama_bound_to_loopback_gets_the_per_os_instruction(incident: Scene) -> None:
    bind = Finding("ollama.bind", Status.FAIL, "Ollama listens only on loopback (127.0.0.1:11434)")
    report = report_of(*incident_report().findings, bind)
    plan = fix_decide.plan(incident, report, settings_of(incident))
    [step] = [i for i in plan.instructions if i.finding == "ollama.bind"]
    assert "OLLAMA_HOST=0.0.0.0:11434" in step.text and "systemctl edit ollama" in step.text
    assert "By hand" in plan.render() and "ollama.bind" not in " ".join(plan.unfixed)


def test_failures_fix_env_cannot_repair_are_listed_with_their_remedy(incident: Scene) -> None:
    report = report_of(
        *incident_report().findings,
        finding("ollama.models", 'model "x" not found', fixable=False, remedy="ollama pull x"),
        Finding("host.resources", Status.WARN, "little memory"),
    )
    plan = fix_decide.plan(incident, report, settings_of(incident))
    assert plan.unfixed == ['ollama.models: model "x" not found. Fix: ollama pull x']


def test_nothing_to_fix_says_so(tmp_path: Path) -> None:
    folder = dify_folder(tmp_path, {"OPENAI_API_BASE": f"{CONTAINER_URL}/v1"})
    (folder / "docker-compose.override.yaml").write_text(yaml.safe_dump(HOST_GATEWAY_OVERRIDE))
    settings = settings_for(folder, tmp_path / "s")
    ok_row = credential(OllamaRow(base_url=CONTAINER_URL))
    plan = fix_decide.plan(scene_of(settings, rows=[ok_row]), report_of(), settings)
    assert not plan.has_changes and plan.fixes == [] and plan.restart_services == []
    assert "Nothing to fix" in plan.render() and plan.summary() == "no changes"


# --- applying: what gets written, and what refuses ------------------------------------------------
def test_prepare_writes_exactly_what_was_shown(incident: Scene) -> None:
    plan = fix_decide.plan(incident, incident_report(), settings_of(incident))
    ready = prepare(plan, incident)
    assert ready.new_env == (incident.env_bytes or b"").replace(
        f"OPENAI_API_BASE={LOOPBACK_URL}/v1\n".encode(),
        f"OPENAI_API_BASE={CONTAINER_URL}/v1\n".encode(),
    )
    assert ready.new_override is not None
    override = yaml.safe_load(ready.new_override)
    assert list(override["services"]) == GATEWAY_SERVICES
    by_id = {c.row.id: c for c in ready.changes}
    assert set(by_id) == {LLM_ID, EMBED_ID}
    for change in ready.changes:
        old = json.loads(change.row.config or "")
        new = json.loads(change.new_config)
        assert new == {**old, "base_url": CONTAINER_URL}  # only base_url changes


def test_prepare_refuses_what_changed_since_the_plan(incident: Scene) -> None:
    plan = fix_decide.plan(incident, incident_report(), settings_of(incident))
    env = incident.env_path
    edited = replace(
        incident, files={**incident.files, env: (incident.env_bytes or b"") + b"ADDED=1\n"}
    )
    with pytest.raises(HandlerError, match=r"\.env changed since the plan"):
        prepare(plan, edited)
    override = incident.override_path
    written = replace(incident, files={**incident.files, override: b"services: {}\n"})
    with pytest.raises(HandlerError, match=r"override\.yaml changed since the plan"):
        prepare(plan, written)
    rows = list(incident.rows)
    llm = next(r for r in rows if r.id == LLM_ID)
    rows[rows.index(llm)] = replace(
        llm, config=(llm.config or "").replace("127.0.0.1", "localhost")
    )
    with pytest.raises(HandlerError, match=f"Ollama row llama3.2:latest \\({LLM_ID}\\) changed"):
        prepare(plan, replace(incident, rows=tuple(rows)))
    gone = tuple(r for r in incident.rows if r.id != EMBED_ID)
    with pytest.raises(HandlerError, match=f"\\({EMBED_ID}\\) changed since the plan"):
        prepare(plan, replace(incident, rows=gone))
    with pytest.raises(HandlerError, match="db_postgres is not running; nothing was changed"):
        prepare(
            plan,
            replace(
                incident, rows=(), rows_error="db_postgres is not running; nothing was changed"
            ),
        )


def test_prepare_refuses_a_project_that_moved(incident: Scene, tmp_path: Path) -> None:
    plan = fix_decide.plan(incident, incident_report(), settings_of(incident))
    moved = replace(incident, project=replace(incident.project, working_dir=tmp_path / "elsewhere"))
    with pytest.raises(HandlerError, match="the Dify project is now in"):
        prepare(plan, moved)


def test_prepare_refuses_an_override_that_already_maps_the_name(incident: Scene) -> None:
    plan = fix_decide.plan(incident, incident_report(), settings_of(incident))
    assert plan.override is not None
    mapped = yaml.safe_dump(HOST_GATEWAY_OVERRIDE).encode()
    plan.override.base_sha256 = backups.sha256(mapped)  # as if planned on that very file
    with pytest.raises(HandlerError, match="already has the mapping"):
        prepare(plan, replace(incident, files={**incident.files, incident.override_path: mapped}))


# --- undoing: which rows go back -----------------------------------------------------------------
def _applied_backup(tmp_path: Path, rows: list[CredentialRow], dify_dir: Path) -> backups.Backup:
    saved = [
        {
            **r.to_json(),
            "new_config": (r.config or "").replace(LOOPBACK_URL, CONTAINER_URL),
            "db_service": "db_postgres",
            "db_user": "postgres",
            "database": "dify",
        }
        for r in rows
    ]
    return backups.create_backup(
        tmp_path / "backups",
        project="docker",
        dify_dir=dify_dir,
        user="me",
        operation="fix-env",
        files=[],
        rows=saved,
    )


def test_undo_puts_back_only_rows_the_fix_wrote(incident: Scene, tmp_path: Path) -> None:
    llm = next(r for r in incident.rows if r.id == LLM_ID)
    ok = next(r for r in incident.rows if r.id == OK_ID)
    backup = _applied_backup(tmp_path, [llm, ok], incident.project.working_dir)
    fixed = replace(llm, config=backup.rows[0]["new_config"])
    scene = replace(incident, rows=(fixed, ok))  # ok: never rewritten (the fix stopped early)
    [update] = row_updates(backup, scene)
    assert (update.id, update.old, update.new) == (LLM_ID, fixed.config, llm.config)


def test_undo_refuses_rows_changed_after_the_fix(incident: Scene, tmp_path: Path) -> None:
    llm = next(r for r in incident.rows if r.id == LLM_ID)
    backup = _applied_backup(tmp_path, [llm], incident.project.working_dir)
    edited = replace(llm, config=(llm.config or "").replace("127.0.0.1", "10.0.0.9"))
    with pytest.raises(HandlerError, match="was changed after the fix"):
        row_updates(backup, replace(incident, rows=(edited,)))
    with pytest.raises(HandlerError, match="no longer exists"):
        row_updates(backup, replace(incident, rows=()))
    with pytest.raises(HandlerError, match="psql could not connect"):
        row_updates(backup, replace(incident, rows=(), rows_error="psql could not connect"))
    elsewhere = replace(incident, project=replace(incident.project, working_dir=tmp_path / "b"))
    with pytest.raises(HandlerError, match="the Dify project is now in"):
        row_updates(backup, elsewhere)
