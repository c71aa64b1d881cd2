"""Undoing an applied `fix-env` (see `handlers/fix_apply.py`) from the backup it saved.

Gather (the project, its rows), decide (`row_updates`: which rows go back, refusing when one
was changed since the fix), act (a safety backup of the current state, the files byte for byte,
the rows in one transaction, the cache purged, a pending restart recorded).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker

from config.i18n import gettext as _
from config.i18n import ngettext
from config.settings import Settings
from handlers import backup as backups
from handlers import db_fix, dify_db, env_edit
from handlers.engine import connect
from handlers.fix_cache import purge_after_rows
from handlers.fix_scene import Scene, gather
from handlers.mutation_lock import exclusive
from handlers.pending import Pending, record_pending
from handlers.project import discover
from handlers.redact import Redactor, redactor_for
from handlers.results import HandlerError, Progress, no_progress


@dataclass
class UndoResult:
    backup_id: str
    restored: list[str]
    restart_services: list[str]
    warnings: list[str] = field(default_factory=list)
    safety_copy: str = ""

    def lines(self) -> list[str]:
        out = [_("restored: {what}").format(what=r) for r in self.restored]
        out += [_("warning: {what}").format(what=w) for w in self.warnings]
        if self.safety_copy:
            out.append(
                _("the state before this undo is saved in {folder}").format(folder=self.safety_copy)
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class UndoConflict(HandlerError):
    """Files changed after the fix: undo would overwrite (or delete) someone's later edit.
    `diff` shows what changed since the fix, secrets masked; `--force` overrides."""

    def __init__(self, backup_id: str, paths: list[str], diff: str) -> None:
        self.backup_id = backup_id
        self.paths = paths
        self.diff = diff
        super().__init__(
            ngettext(
                "{paths} changed after fix-env wrote it (backup {id}); undo would overwrite "
                "that, so nothing was changed",
                "{paths} changed after fix-env wrote them (backup {id}); undo would overwrite "
                "that, so nothing was changed",
                len(paths),
            ).format(paths=", ".join(paths), id=backup_id)
        )


@dataclass(frozen=True)
class FileUndo:
    """What undo does with one saved file, decided from its current bytes."""

    saved: backups.SavedFile
    action: str  # restore | unchanged (already as before the fix) | conflict


def file_undos(
    backup: backups.Backup, current: dict[str, bytes | None], force: bool = False
) -> list[FileUndo]:
    """Per saved file (pure): restore it when it holds what the fix wrote, leave it when it
    already holds what was there before, else a conflict (someone changed it since; `force`
    restores anyway). `current`: each file's bytes now, by its target path (None: absent)."""
    decided = []
    for saved in backup.files:
        now = backups.sha256(current.get(saved.target))
        if now == saved.sha256:
            action = "unchanged"  # also: a file the fix created is already gone again
        elif force or (saved.written_sha256 is not None and now == saved.written_sha256):
            action = "restore"
        else:
            action = "conflict"
        decided.append(FileUndo(saved, action))
    return decided


def conflict_diff(
    backup: backups.Backup,
    conflicts: list[FileUndo],
    current: dict[str, bytes | None],
    redactor: Redactor,
) -> str:
    """What changed in each conflicting file since the fix wrote it, secrets masked."""
    parts = []
    for item in conflicts:
        saved = item.saved
        wrote = backup.written_bytes(saved)
        now = current.get(saved.target)
        if wrote is None:
            parts.append(
                _("{path}: what the fix wrote was not recorded (an older backup)").format(
                    path=saved.path
                )
            )
            continue
        if now is None:
            parts.append(_("{path}: deleted after the fix").format(path=saved.path))
            continue
        diff = changed_lines(
            wrote.decode("utf-8", "replace"),
            now.decode("utf-8", "replace"),
            f"{saved.path} (as fix-env wrote it)",
            f"{saved.path} (now)",
            redactor,
        )
        parts.append(
            diff
            or _("{path}: differs in bytes only (line endings or encoding)").format(path=saved.path)
        )
    return "\n".join(parts)


def changed_lines(old: str, new: str, old_label: str, new_label: str, redactor: Redactor) -> str:
    """A unified diff computed on the real lines, then masked line by line: a secret that
    changed shows as a changed line, its values hidden on both sides."""
    diff = difflib.unified_diff(
        old.splitlines(), new.splitlines(), old_label, new_label, n=1, lineterm=""
    )
    out = []
    for line in diff:
        if line.startswith(("---", "+++", "@@")):
            out.append(env_edit.mask_text(line, redactor))
        else:
            out.append(line[:1] + env_edit.mask_line(line[1:], redactor))
    return "\n".join(out)


def saved_login(backup: backups.Backup) -> dify_db.DbLogin | None:
    """Where the backup's rows were read and written (None: the fix wrote no rows)."""
    if not backup.rows:
        return None
    first = backup.rows[0]
    return dify_db.DbLogin(
        str(first.get("db_service")), str(first.get("db_user")), str(first.get("database"))
    )


def row_updates(backup: backups.Backup, scene: Scene) -> list[dify_db.RowUpdate]:
    """The rows to put back (pure): each row the fix rewrote, from what it wrote to what it
    found. HandlerError (nothing changed) when a row is gone or was changed after the fix."""
    if not backup.rows:
        return []
    if backup.dify_dir != str(scene.project.working_dir):
        raise HandlerError(
            _(
                "backup {id} is for {planned}, the Dify project is now in {now}; nothing was "
                "changed"
            ).format(id=backup.id, planned=backup.dify_dir, now=scene.project.working_dir)
        )
    if scene.rows_error is not None:
        raise HandlerError(scene.rows_error)
    current = {(r.table, r.id): r for r in scene.rows}
    updates = []
    for saved in backup.rows:
        row = current.get((saved["table"], saved["id"]))
        if row is None:
            raise HandlerError(
                _("Ollama row {model} ({id}) no longer exists; nothing was changed").format(
                    model=saved["model"], id=saved["id"]
                )
            )
        if row.config == saved["config"]:
            continue  # never rewritten (e.g. the fix was interrupted before the database)
        if row.config != saved["new_config"]:
            raise HandlerError(
                _(
                    "Ollama row {model} ({id}) was changed after the fix (in Dify's UI?); undo "
                    "would overwrite that, so nothing was changed"
                ).format(model=saved["model"], id=saved["id"])
            )
        updates.append(
            dify_db.RowUpdate(saved["table"], saved["id"], saved["new_config"], saved["config"])
        )
    return updates


def undo(
    settings: Settings,
    *,
    user: str,
    source: str,
    backup_id: str | None = None,
    progress: Progress = no_progress,
    force: bool = False,
) -> UndoResult:
    """Restore the most recent fix-env backup (or `backup_id`): files byte for byte with
    their mode and owner, database rows in one transaction, then purge the cache again.
    UndoConflict when a file changed after the fix (`force`: restore it anyway)."""
    client = connect(settings)
    root = settings.backup_path
    if backup_id is None:
        working_dir = discover(client, settings).working_dir
        found = backups.latest_undoable(root, working_dir)
        if found is None:
            raise HandlerError(
                _("no fix-env backup to undo for {folder} in {root}").format(
                    folder=working_dir, root=root
                )
            )
        backup_id = found.id
    key = f"undo:{backup_id}"
    with exclusive(settings.state_path, "fix-env undo", user, source, key=key) as rec:
        backup = backups.find_backup(root, backup_id)
        if backup.state == "undone":
            raise HandlerError(
                _("backup {id} was already undone at {time}").format(
                    id=backup.id, time=backup.undone_at
                )
            )
        if backup.state == "failed":
            raise HandlerError(
                _("backup {id} belongs to a fix that was rolled back; nothing to undo").format(
                    id=backup.id
                )
            )
        scene = gather(settings, client, rows=saved_login(backup), gateway=False)
        result = undo_to(settings, backup, scene, client, user=user, progress=progress, force=force)
        if rec is not None:
            rec.result = result.to_json()
        return result


def undo_to(
    settings: Settings,
    backup: backups.Backup,
    scene: Scene,
    client: docker.DockerClient | None,
    *,
    user: str,
    progress: Progress = no_progress,
    force: bool = False,
) -> UndoResult:
    """Undo `backup` on the host `scene` was gathered from (the caller holds the lock).
    `client` None: no engine, so the backup must hold no database rows to put back."""
    current = {f.target: backups.read_bytes(Path(f.target)) for f in backup.files}
    files = file_undos(backup, current, force)
    conflicts = [f for f in files if f.action == "conflict"]
    if conflicts:
        redactor = redactor_for(settings, env_values=scene.env_values, env_path=scene.env_path)
        raise UndoConflict(
            backup.id,
            [f.saved.path for f in conflicts],
            conflict_diff(backup, conflicts, current, redactor),
        )
    updates = row_updates(backup, scene)
    project = scene.project
    progress(_("saving the current state before undoing"))
    safety = backups.create_backup(
        settings.backup_path,
        project=project.name,
        dify_dir=project.working_dir,
        user=user,
        operation="pre-undo",
        files=[(f.role, Path(f.path)) for f in backup.files],
        rows=[{"table": u.table, "id": u.id, "config": u.old} for u in updates],
        prefix="pre-undo-",
    )
    restored: list[str] = []
    done: list[str] = []  # roles already restored
    notes: list[str] = []
    login = saved_login(backup)
    try:
        for item in files:
            saved = item.saved
            if item.action == "unchanged":
                restored.append(_("{path} (already as before the fix)").format(path=saved.path))
                continue
            progress(_("restoring {path}").format(path=saved.path))
            backup.restore(saved)
            done.append(saved.role)
            restored.append(
                saved.path
                if saved.existed
                else _("{path} (removed: the fix created it)").format(path=saved.path)
            )
        if updates and login is not None:
            progress(
                _("restoring {count} Ollama row(s) in one transaction").format(count=len(updates))
            )
            if client is None:
                raise HandlerError(_("restoring Dify's database needs the Docker engine"))
            database = dify_db.open_database(client, project, login, scene.env_values)
            notes += database.write_rows(
                updates, settings.check_timeout * 4, what="restoring base_url"
            )
            restored.append(
                _("{count} Ollama row(s) in {database}").format(
                    count=len(updates), database=login.database
                )
            )
    except dify_db.DatabaseStateUnknown as exc:
        # The files are back; the rows may or may not be: the backup stays undoable, and a
        # second undo restores exactly the rows still holding the fix's value.
        raise HandlerError(
            _(
                "undo: {error}. The files were restored ({restored}); run {undo} again to finish "
                "the rows, and `dify-ollama check` to see what the database holds."
            ).format(
                error=exc,
                restored=", ".join(restored) or _("none"),
                undo=f"`dify-ollama fix-env --undo {backup.id}`",
            )
        ) from None
    except BaseException as exc:
        # Put the files back as they were just before this undo.
        failed = safety.put_back(done)
        more = (
            _(" Could not put back: {failed}.").format(failed="; ".join(failed)) if failed else ""
        )
        raise HandlerError(
            _("undo failed: {error}; nothing is changed.{more}").format(error=exc, more=more)
        ) from None
    safety.mark("applied")
    warnings: list[str] = list(notes)
    if updates and client is not None:
        redis_db = db_fix.redis_db_number(scene.env_values)
        warnings += purge_after_rows(
            client, settings, project, "redis", redis_db, scene.env_values, progress
        )
    backup.mark("undone", undone_at=backups.utc_stamp())
    record_pending(
        settings,
        Pending(
            dify_dir=str(project.working_dir),
            services=list(backup.restart_services),
            db_changed=bool(updates),
            backup=backup.id,
        ),
    )
    return UndoResult(backup.id, restored, list(backup.restart_services), warnings, str(safety.dir))
