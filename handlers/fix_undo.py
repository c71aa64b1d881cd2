"""Undoing an applied `fix-env` (see `handlers/fix_apply.py`) from the backup it saved."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from config.settings import Settings
from handlers import backup as backups
from handlers import db_fix
from handlers.fix_apply import _purge, _restore_file
from handlers.fix_plan import DbStep, Progress, _noop, _running, _Scene, _scene
from handlers.mutation_lock import exclusive
from handlers.pending import Pending, record_pending
from handlers.results import HandlerError


@dataclass
class UndoResult:
    backup_id: str
    restored: list[str]
    restart_services: list[str]
    warnings: list[str] = field(default_factory=list)
    safety_copy: str = ""

    def lines(self) -> list[str]:
        out = [f"restored: {r}" for r in self.restored]
        out += [f"warning: {w}" for w in self.warnings]
        if self.safety_copy:
            out.append(f"the state before this undo is saved in {self.safety_copy}")
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def undo(
    settings: Settings,
    *,
    user: str,
    source: str,
    backup_id: str | None = None,
    progress: Progress = _noop,
) -> UndoResult:
    """Restore the most recent fix-env backup (or `backup_id`): files byte for byte with
    their mode and owner, database rows in one transaction, then purge the cache again."""
    scene = _scene(settings)
    root = settings.backup_path
    if backup_id is None:
        found = backups.latest_undoable(root, scene.project.working_dir)
        if found is None:
            raise HandlerError(
                f"no fix-env backup to undo for {scene.project.working_dir} in {root}"
            )
        backup_id = found.id
    key = f"undo:{backup_id}"
    with exclusive(settings.state_path, "fix-env undo", user, source, key=key) as rec:
        backup = backups.find_backup(root, backup_id)
        if backup.state == "undone":
            raise HandlerError(f"backup {backup.id} was already undone at {backup.undone_at}")
        if backup.state == "failed":
            raise HandlerError(
                f"backup {backup.id} belongs to a fix that was rolled back; nothing to undo"
            )
        result = _undo(settings, scene, backup, user, progress)
        if rec is not None:
            rec.result = result.to_json()
        return result


def _undo(
    settings: Settings,
    scene: _Scene,
    backup: backups.Backup,
    user: str,
    progress: Progress,
) -> UndoResult:
    updates: list[tuple[str, str, str, str]] = []
    db_cid = None
    db_user = database = ""
    if backup.rows:
        if backup.dify_dir != str(scene.project.working_dir):
            raise HandlerError(
                f"backup {backup.id} is for {backup.dify_dir}, the Dify project is now in "
                f"{scene.project.working_dir}; nothing was changed"
            )
        first = backup.rows[0]
        db_user, database = str(first.get("db_user")), str(first.get("database"))
        db_cid = _running(scene.project, first.get("db_service"))
        if db_cid is None:
            raise HandlerError(f"{first.get('db_service')} is not running; nothing was changed")
        current = {
            (r.table, r.id): r
            for r in db_fix.read_rows(
                scene.client, db_cid, db_user, database, settings.check_timeout * 2
            )
        }
        for saved_row in backup.rows:
            row = current.get((saved_row["table"], saved_row["id"]))
            if row is None:
                raise HandlerError(
                    f"Ollama row {saved_row['model']} ({saved_row['id']}) no longer exists; "
                    "nothing was changed"
                )
            if row.config == saved_row["config"]:
                continue  # never rewritten (e.g. the fix was interrupted before the database)
            if row.config != saved_row["new_config"]:
                raise HandlerError(
                    f"Ollama row {saved_row['model']} ({saved_row['id']}) was changed after the "
                    "fix (in Dify's UI?); undo would overwrite that, so nothing was changed"
                )
            updates.append(
                (saved_row["table"], saved_row["id"], saved_row["new_config"], saved_row["config"])
            )

    progress("saving the current state before undoing")
    safety = backups.create_backup(
        settings.backup_path,
        project=scene.project.name,
        dify_dir=scene.project.working_dir,
        user=user,
        operation="pre-undo",
        files=[(f.role, Path(f.path)) for f in backup.files],
        rows=[{"table": t, "id": i, "config": new} for t, i, new, _ in updates],
        prefix="pre-undo-",
    )
    restored: list[str] = []
    done: list[backups.SavedFile] = []
    try:
        for saved in backup.files:
            progress(f"restoring {saved.path}")
            _restore_file(backup, saved)
            done.append(saved)
            restored.append(
                saved.path if saved.existed else f"{saved.path} (removed: the fix created it)"
            )
        if updates and db_cid is not None:
            progress(f"restoring {len(updates)} Ollama row(s) in one transaction")
            db_fix.write_rows(
                scene.client,
                db_cid,
                db_user,
                database,
                updates,
                settings.check_timeout * 4,
                what="restoring base_url",
            )
            restored.append(f"{len(updates)} Ollama row(s) in {database}")
    except BaseException as exc:
        # Put the files back as they were just before this undo.
        failed = []
        for saved in reversed(done):
            copy = safety.file(saved.role)
            if copy is not None:
                try:
                    _restore_file(safety, copy)
                except (HandlerError, OSError) as err:
                    failed.append(f"{saved.path}: {err}")
        more = f" Could not put back: {'; '.join(failed)}." if failed else ""
        raise HandlerError(f"undo failed: {exc}; nothing is changed.{more}") from None
    safety.mark("applied")
    warnings: list[str] = []
    if updates:
        db_step = DbStep(
            service=str(backup.rows[0].get("db_service")),
            user=db_user,
            database=database,
            rows=[],
            redis_service="redis",
            redis_db=_redis_db(scene),
            preview="",
        )
        warnings += _purge(settings, scene, db_step, progress)
    backup.mark("undone", undone_at=backups.utc_stamp())
    record_pending(
        settings,
        Pending(
            dify_dir=str(scene.project.working_dir),
            services=list(backup.restart_services),
            db_changed=bool(updates),
            backup=backup.id,
        ),
    )
    return UndoResult(backup.id, restored, list(backup.restart_services), warnings, str(safety.dir))


def _redis_db(scene: _Scene) -> int:
    try:
        return int((scene.env.values if scene.env else {}).get("REDIS_DB") or 0)
    except ValueError:
        return 0
