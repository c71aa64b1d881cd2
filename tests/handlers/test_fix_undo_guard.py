"""Undo never throws away an edit made after the fix, and backups stay private wherever
BACKUP_DIR is: real files in a look-alike Dify folder, no engine (the end-to-end undo with
database rows runs in test_fix_plan.py)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from config.settings import Settings
from handlers import backup as backups
from handlers import fix_decide
from handlers.fix_apply import apply_to, gather_for
from handlers.fix_scene import gather
from handlers.fix_undo import UndoConflict, file_undos, saved_login, undo_to
from handlers.redact import MASK
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

ROTATED = "Rotated-After-The-Fix-9f3a1c"


def apply(settings: Settings, report: Report) -> backups.Backup:
    plan = fix_decide.plan(scene_of(settings), report, settings)
    apply_to(settings, plan, gather_for(settings, None, plan), None, user="me")
    [made] = list(backups.iter_backups(settings.backup_path))
    return made


def undo(settings: Settings, backup: backups.Backup, force: bool = False) -> list[str]:
    scene = gather(settings, None, rows=saved_login(backup), gateway=False)
    return undo_to(settings, backup, scene, None, user="me", force=force).restored


def test_a_password_rotated_after_the_fix_is_not_put_back(tmp_path: Path) -> None:
    folder = incident_folder(tmp_path)
    env = folder / ".env"
    settings = settings_for(folder, tmp_path / "state")
    backup = apply(settings, incident_report())
    fixed = env.read_text()
    assert f"OPENAI_API_BASE={CONTAINER_URL}/v1" in fixed
    rotated = "\n".join(
        f"DB_PASSWORD={ROTATED}" if line.startswith("DB_PASSWORD=") else line
        for line in fixed.splitlines()
    )
    env.write_text(rotated + "\n")

    with pytest.raises(UndoConflict) as refused:
        undo(settings, backup)
    assert env.read_text() == rotated + "\n"  # nothing changed
    assert "changed after fix-env wrote" in str(refused.value)
    assert "DB_PASSWORD" in refused.value.diff and MASK in refused.value.diff
    assert ROTATED not in refused.value.diff and ROTATED not in str(refused.value)
    assert backups.find_backup(settings.backup_path, backup.id).state == "applied"

    # --force restores the backup anyway, after saving the current state
    restored = undo(settings, backups.find_backup(settings.backup_path, backup.id), force=True)
    assert f"OPENAI_API_BASE={LOOPBACK_URL}/v1" in env.read_text()
    assert str(env) in restored
    [safety] = [b for b in backups.iter_backups(settings.backup_path) if b.operation == "pre-undo"]
    saved = safety.file("env")
    assert saved is not None and ROTATED.encode() in (safety.saved_bytes(saved) or b"")


def test_a_created_env_that_was_filled_in_later_is_not_deleted(tmp_path: Path) -> None:
    folder = dify_folder(tmp_path, env=False)
    settings = settings_for(folder, tmp_path / "state")
    backup = apply(settings, report_of(finding("env.file", ".env is missing")))
    env = folder / ".env"
    env.write_text(env.read_text() + "SECRET_KEY=filled-in-by-hand-later-0c1d\n")
    with pytest.raises(UndoConflict) as refused:
        undo(settings, backup)
    assert env.exists() and "filled-in-by-hand" in env.read_text()
    assert "+SECRET_KEY=" + MASK in refused.value.diff
    assert "filled-in-by-hand" not in refused.value.diff


def test_each_file_is_judged_on_its_own_bytes(tmp_path: Path) -> None:
    """Restore what still holds the fix's bytes, leave what is already as before (an apply
    killed before that write), refuse the rest; `force` restores the rest too."""
    folder = incident_folder(tmp_path)
    settings = settings_for(folder, tmp_path / "state")
    backup = apply(settings, incident_report())
    env, override = backup.file("env"), backup.file("override")
    assert env is not None and override is not None
    original_env = backup.saved_bytes(env)
    wrote_env = backup.written_bytes(env)
    wrote_override = backup.written_bytes(override)
    assert wrote_env is not None and wrote_override is not None
    cases: dict[str, dict[str, bytes | None]] = {
        "restore": {env.target: wrote_env, override.target: wrote_override},
        "unchanged": {env.target: original_env, override.target: None},
        "conflict": {env.target: wrote_env + b"X=1\n", override.target: b"services: {}\n"},
    }
    for expected, current in cases.items():
        assert {u.action for u in file_undos(backup, current)} == {expected}, expected
    forced = file_undos(backup, cases["conflict"], force=True)
    assert {u.action for u in forced} == {"restore"}


def test_an_existing_backup_dir_is_never_chmoded(tmp_path: Path) -> None:
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    folder = incident_folder(tmp_path)
    settings = settings_for(folder, tmp_path / "state", backup_dir=shared)
    backup = apply(settings, incident_report())
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert backup.dir.parent == shared
    assert stat.S_IMODE(backup.dir.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in backup.dir.iterdir())


def test_a_missing_backup_dir_is_created_private(tmp_path: Path) -> None:
    folder = incident_folder(tmp_path)
    settings = settings_for(folder, tmp_path / "state", backup_dir=tmp_path / "new" / "backups")
    apply(settings, incident_report())
    assert stat.S_IMODE((tmp_path / "new" / "backups").stat().st_mode) == 0o700


def test_a_folder_planted_in_a_shared_backup_dir_is_never_undone(tmp_path: Path) -> None:
    """In a shared BACKUP_DIR anyone may create a folder with a manifest naming Dify's .env:
    only this user's private folders count as backups."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)
    folder = incident_folder(tmp_path)
    planted = shared / "29991231T235959.000000Z-evil00"
    planted.mkdir()
    (planted / "evil-env").write_text("OPENAI_API_BASE=http://attacker.example/v1\n")
    manifest = {
        "id": planted.name,
        "created_at": "29991231T235959.000000Z",
        "project": "docker",
        "dify_dir": str(folder),
        "user": "mallory",
        "operation": "fix-env",
        "state": "applied",
        "files": [
            {
                "role": "env",
                "path": str(folder / ".env"),
                "target": str(folder / ".env"),
                "existed": True,
                "copy": "evil-env",
                "sha256": backups.sha256((planted / "evil-env").read_bytes()),
            }
        ],
    }
    (planted / backups.MANIFEST).write_text(json.dumps(manifest))
    for mode, owner in ((0o755, os.geteuid()), (0o700, 65534)):
        planted.chmod(mode)
        if os.geteuid() == 0:
            os.chown(planted, owner, -1)
        elif owner != os.geteuid():
            continue  # only root can give the folder away
        assert backups.latest_undoable(shared, folder) is None
        with pytest.raises(Exception, match="no backup"):
            backups.find_backup(shared, planted.name)
