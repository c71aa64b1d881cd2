"""Applying and undoing fix-env plans that change only files, without an engine: real files in a
look-alike Dify folder, the project found through DIFY_DIR, `apply_to` / `undo_to` acting on the
scene `gather` read. The database paths and the lock run end to end in test_fix_plan.py."""

from __future__ import annotations

import stat
from pathlib import Path

import yaml

from config.settings import Settings
from handlers import backup as backups
from handlers import fix_decide
from handlers.fix_apply import apply_to, gather_for
from handlers.fix_model import Plan
from handlers.fix_scene import gather
from handlers.fix_undo import saved_login, undo_to
from handlers.pending import read_pending
from handlers.results import Report
from tests.rig.scenes import (
    CONTAINER_URL,
    LOOPBACK_URL,
    dify_folder,
    finding,
    incident_folder,
    incident_report,
    report_of,
    scene_of,
    settings_for,
)


def plan_and_apply(settings: Settings, report: Report) -> Plan:
    plan = fix_decide.plan(scene_of(settings), report, settings)
    apply_to(settings, plan, gather_for(settings, None, plan), None, user="me")
    return plan


def undo_latest(settings: Settings, folder: Path) -> list[str]:
    backup = backups.latest_undoable(settings.backup_path, folder)
    assert backup is not None
    scene = gather(settings, None, rows=saved_login(backup), gateway=False)
    return undo_to(settings, backup, scene, None, user="me").restored


def test_existing_override_is_merged_and_undo_restores_it(tmp_path: Path) -> None:
    folder = incident_folder(tmp_path)
    mine = (
        "# local tweaks, keep\n"
        "services:\n"
        "  api:\n"
        "    environment:\n"
        "      LOG_LEVEL: DEBUG\n"
        "  nginx:\n"
        "    restart: unless-stopped\n"
    )
    override = folder / "docker-compose.override.yaml"
    override.write_text(mine)
    settings = settings_for(folder, tmp_path / "state")
    plan = plan_and_apply(settings, incident_report())
    assert plan.override is not None and plan.override.base_sha256 is not None
    assert "comments" in " ".join(plan.override.notes)
    merged = yaml.safe_load(override.read_text())
    assert merged["services"]["api"]["environment"] == {"LOG_LEVEL": "DEBUG"}
    assert merged["services"]["nginx"] == {"restart": "unless-stopped"}
    for service in ("api", "worker", "worker_beat", "plugin_daemon"):
        assert "host.docker.internal:host-gateway" in merged["services"][service]["extra_hosts"]
    undo_latest(settings, folder)
    assert override.read_text() == mine


def test_missing_env_is_created_from_the_example_and_undo_removes_it(tmp_path: Path) -> None:
    folder = dify_folder(tmp_path, env=False)
    (folder / ".env.example").chmod(0o640)
    settings = settings_for(folder, tmp_path / "state")
    plan = plan_and_apply(settings, report_of(finding("env.file", ".env is missing")))
    assert plan.env is not None and plan.env.base_sha256 is None
    assert "-OPENAI_API_BASE=https://api.openai.com/v1" in plan.env.preview
    example = (folder / ".env.example").read_text()
    created = (folder / ".env").read_text()
    assert created == example.replace(
        "OPENAI_API_BASE=https://api.openai.com/v1\n", f"OPENAI_API_BASE={CONTAINER_URL}/v1\n"
    )
    assert stat.S_IMODE((folder / ".env").stat().st_mode) == 0o640
    restored = undo_latest(settings, folder)
    assert not (folder / ".env").exists()
    assert f"{folder / '.env'} (removed: the fix created it)" in restored


def test_applying_records_the_restart_and_a_private_backup(tmp_path: Path) -> None:
    folder = incident_folder(tmp_path)
    before = (folder / ".env").read_bytes()
    settings = settings_for(folder, tmp_path / "state")
    plan = plan_and_apply(settings, incident_report())
    after = (folder / ".env").read_bytes()
    assert after == before.replace(
        f"OPENAI_API_BASE={LOOPBACK_URL}/v1\n".encode(),
        f"OPENAI_API_BASE={CONTAINER_URL}/v1\n".encode(),
    )
    pending = read_pending(settings, folder)
    assert pending is not None and pending.services == plan.restart_services
    assert not pending.db_changed
    [made] = list(backups.iter_backups(settings.backup_path))
    assert made.state == "applied" and made.plan_id == plan.id
    assert stat.S_IMODE(made.dir.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in made.dir.iterdir())
    undo_latest(settings, folder)
    assert (folder / ".env").read_bytes() == before
    assert not (folder / "docker-compose.override.yaml").exists()
