"""Applying a saved `fix-env` plan (made by `handlers/fix_plan.py`) exactly as it was shown.

Applying re-reads the files and rows the plan read and refuses when anything changed since the
preview (the plan holds their checksums), so what is applied is exactly what was shown. Applying
takes the host's mutation lock, saves a backup of every file and row it will touch, then writes
`.env`, the compose override and the database (one transaction) and purges Dify's credential
cache. A failure rolls back what was already written; a killed process leaves each file old or
new (atomic renames) and the backup in place.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from config.settings import Settings
from handlers import backup as backups
from handlers import db_fix, env_edit
from handlers.compose_cli import compose_argv, compose_environment, compose_files, find_compose
from handlers.envfile import parse_env_text
from handlers.fix_plan import (
    DbStep,
    Plan,
    Progress,
    _noop,
    _running,
    _Scene,
    _scene,
    load_plan,
    save_plan,
)
from handlers.mutation_lock import exclusive
from handlers.override import merge_gateway
from handlers.pending import Pending, record_pending
from handlers.project import DifyProject
from handlers.results import HandlerError


@dataclass
class ApplyResult:
    plan_id: str
    backup_id: str
    backup_dir: str
    changed: list[str]
    restart_services: list[str]
    db_changed: bool
    warnings: list[str] = field(default_factory=list)
    duration_ms: int = 0

    def lines(self) -> list[str]:
        out = [f"changed: {c}" for c in self.changed]
        out += [f"warning: {w}" for w in self.warnings]
        out.append(f"backup: {self.backup_dir} (undo: `dify-ollama fix-env --undo`)")
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _verify_unchanged(path: Path, expected: str | None, what: str) -> bytes | None:
    data = backups.read_bytes(backups.resolve_target(path))
    if backups.sha256(data) != expected:
        raise HandlerError(
            f"{what} changed since the plan was shown; nothing was changed (run fix-env again)"
        )
    return data


def _validate_override(
    settings: Settings, project: DifyProject, files: tuple[Path, ...], override: Path
) -> Callable[[Path], None] | None:
    """A check that Compose accepts the merged files (`config -q`), when Compose exists."""
    compose = find_compose()
    if compose is None:
        return None
    others = [f for f in files if f.resolve() != backups.resolve_target(override)]

    def validate(tmp: Path) -> None:
        argv = compose_argv(
            compose, project.name, str(project.working_dir), tuple(str(f) for f in [*others, tmp])
        )
        try:
            done = subprocess.run(
                [*argv, "config", "-q"],
                cwd=project.working_dir,
                env=compose_environment(settings),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HandlerError(f"could not validate the override with compose: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            raise HandlerError(
                f"compose rejects the merged override ({tail[0][:300]}); nothing was changed"
            )

    return validate


def _rollback_files(backup: backups.Backup, written: list[backups.SavedFile]) -> list[str]:
    """Put back files already written; returns what could not be restored."""
    failed = []
    for saved in reversed(written):
        try:
            _restore_file(backup, saved)
        except (HandlerError, OSError) as exc:
            failed.append(f"{saved.path}: {exc}")
    return failed


def _restore_file(backup: backups.Backup, saved: backups.SavedFile) -> None:
    data = backup.saved_bytes(saved)
    if data is None:
        backups.remove_file(Path(saved.target))
        return
    exact = None
    if saved.mode is not None and saved.uid is not None and saved.gid is not None:
        exact = backups.Ownership(saved.mode, saved.uid, saved.gid)
    backups.atomic_write(Path(saved.target), data, exact=exact)


def apply_plan(
    settings: Settings,
    plan_id: str,
    *,
    user: str,
    source: str,
    progress: Progress = _noop,
) -> ApplyResult:
    """Apply a saved plan exactly as shown; at most once (AlreadyDone on a repeat)."""
    start = time.monotonic()
    plan = load_plan(settings, plan_id)
    if plan.state == "cancelled":
        raise HandlerError(f"plan {plan.id} was cancelled; run fix-env again")
    if not plan.has_changes:
        raise HandlerError("this plan changes nothing (only manual steps); nothing to apply")
    with exclusive(
        settings.state_path, "fix-env apply", user, source, key=f"apply:{plan.id}"
    ) as rec:
        result = _apply(settings, plan, user, progress, start)
        if rec is not None:
            rec.result = result.to_json()
        plan.state = "applied"
        save_plan(settings, plan)
        return result


def _apply(
    settings: Settings, plan: Plan, user: str, progress: Progress, start: float
) -> ApplyResult:
    scene = _scene(settings)
    project = scene.project
    if str(project.working_dir) != plan.dify_dir:
        raise HandlerError(
            f"the plan is for {plan.dify_dir} but the Dify project is now in "
            f"{project.working_dir}; run fix-env again"
        )
    progress("checking that nothing changed since the plan was shown")
    # Everything is read and verified before the first write.
    new_env: bytes | None = None
    env_like: backups.Ownership | None = None
    if plan.env:
        current = _verify_unchanged(scene.env_path, plan.env.base_sha256, ".env")
        if current is None:
            template = Path(plan.env.template or "")
            text = _verify_unchanged(template, plan.env.template_sha256, ".env.example") or b""
            env_like = backups.Ownership.of(os.stat(template))
        else:
            text = current
        new_text, _ = env_edit.set_values(text.decode("utf-8"), plan.env.values)
        new_env = new_text.encode("utf-8")
    new_override: bytes | None = None
    files = compose_files(project)
    if plan.override:
        path = Path(plan.override.path)
        old = _verify_unchanged(path, plan.override.base_sha256, path.name)
        change = merge_gateway(
            old.decode("utf-8") if old is not None else None, plan.override.services, path
        )
        if change is None:
            raise HandlerError(f"{path.name} already has the mapping; run fix-env again")
        new_override = change.new_text.encode("utf-8")
    changes: list[db_fix.RowChange] = []
    db_cid = None
    if plan.db:
        db_cid = _running(project, plan.db.service)
        if db_cid is None:
            raise HandlerError(f"{plan.db.service} is not running; nothing was changed")
        current_rows = {
            (r.table, r.id): r
            for r in db_fix.read_rows(
                scene.client, db_cid, plan.db.user, plan.db.database, settings.check_timeout * 2
            )
        }
        for planned in plan.db.rows:
            row = current_rows.get((planned.table, planned.id))
            if row is None or row.config_sha256 != planned.config_sha256:
                raise HandlerError(
                    f"Ollama row {planned.model} ({planned.id}) changed since the plan was shown; "
                    "nothing was changed (run fix-env again)"
                )
            changes.append(
                db_fix.RowChange(
                    row,
                    planned.old_url,
                    planned.new_url,
                    db_fix.rewrite_config(row.config, planned.new_url),
                )
            )

    progress("saving a backup of everything that will change")
    roles = []
    if plan.env:
        roles.append(("env", scene.env_path))
    if plan.override:
        roles.append(("override", Path(plan.override.path)))
    rows_saved = [
        {
            **c.row.to_json(),
            "new_config": c.new_config,
            "db_service": plan.db.service if plan.db else None,
            "db_user": plan.db.user if plan.db else None,
            "database": plan.db.database if plan.db else None,
        }
        for c in changes
    ]
    backup = backups.create_backup(
        settings.backup_path,
        project=project.name,
        dify_dir=project.working_dir,
        user=user,
        operation="fix-env",
        files=roles,
        rows=rows_saved,
        plan_id=plan.id,
    )
    changed: list[str] = []
    written: list[backups.SavedFile] = []
    try:
        if plan.env and new_env is not None:
            saved = backup.file("env")
            progress(f"writing {scene.env_path}")
            backups.atomic_write(scene.env_path, new_env, like=env_like)
            if saved is not None:
                written.append(saved)
            changed.append(
                f"{scene.env_path}: "
                + ("created from .env.example" if plan.env.base_sha256 is None else "edited")
                + (
                    f", OPENAI_API_BASE={plan.env.values['OPENAI_API_BASE']}"
                    if "OPENAI_API_BASE" in plan.env.values
                    else ""
                )
            )
        if plan.override and new_override is not None:
            path = Path(plan.override.path)
            saved = backup.file("override")
            progress(f"writing {path}")
            # A new override takes the mode and owner of Dify's own compose file.
            backups.atomic_write(
                path,
                new_override,
                like=backups.Ownership.of(os.stat(files[0])),
                validate=_validate_override(settings, project, files, path),
            )
            if saved is not None:
                written.append(saved)
            changed.append(f"{path}: host-gateway for {', '.join(plan.override.services)}")
        if plan.db and changes and db_cid is not None:
            progress(f"rewriting {len(changes)} Ollama base URL(s) in one transaction")
            db_fix.apply_changes(
                scene.client,
                db_cid,
                plan.db.user,
                plan.db.database,
                changes,
                settings.check_timeout * 4,
            )
            changed += [env_edit.mask_text(c.describe(), scene.secrets) for c in changes]
    except BaseException as exc:
        failed = _rollback_files(backup, written)
        backup.mark("failed", notes=[f"apply failed: {exc}", *failed])
        restored = ", ".join(s.path for s in written) or "nothing had been written yet"
        if failed:
            raise HandlerError(
                f"fix-env failed: {exc}. Rolling back failed for: {'; '.join(failed)}. "
                f"The originals are in {backup.dir}."
            ) from None
        if isinstance(exc, HandlerError):
            raise HandlerError(
                f"fix-env failed: {exc}. Restored: {restored}; nothing is changed."
            ) from None
        raise

    warnings: list[str] = []
    if plan.db and changes:
        warnings += _purge(settings, scene, plan.db, progress)
    backup.mark(
        "applied",
        restart_services=list(plan.restart_services),
        db_changed=bool(changes),
    )
    record_pending(
        settings,
        Pending(
            dify_dir=str(project.working_dir),
            services=list(plan.restart_services),
            db_changed=bool(changes),
            backup=backup.id,
        ),
    )
    return ApplyResult(
        plan_id=plan.id,
        backup_id=backup.id,
        backup_dir=str(backup.dir),
        changed=changed,
        restart_services=list(plan.restart_services),
        db_changed=bool(changes),
        warnings=warnings,
        duration_ms=int((time.monotonic() - start) * 1000),
    )


def _purge(settings: Settings, scene: _Scene, db: DbStep, progress: Progress) -> list[str]:
    """Purge Dify's credential cache; a failure is a warning (the rows are already right)."""
    redis_cid = _running(scene.project, db.redis_service) if db.redis_service else None
    if redis_cid is None:
        return [db_fix.purge_instruction(scene.project.name, db.redis_db)]
    # Re-read .env: the password must come from the file as it is now.
    env = scene.env.values if scene.env else {}
    try:
        fresh = backups.read_bytes(backups.resolve_target(scene.env_path))
        if fresh is not None:
            env = parse_env_text(fresh.decode("utf-8", "replace")).values
    except HandlerError:
        pass
    progress("deleting Dify's cached credentials in Redis")
    try:
        db_fix.purge_cache(
            scene.client,
            redis_cid,
            env.get("REDIS_PASSWORD") or None,
            settings.check_timeout * 2,
            database=db.redis_db,
            username=env.get("REDIS_USERNAME") or None,
        )
    except HandlerError as exc:
        return [
            f"the database is fixed but Dify's cache was not purged ({exc}). "
            + db_fix.purge_instruction(scene.project.name, db.redis_db)
        ]
    return []
