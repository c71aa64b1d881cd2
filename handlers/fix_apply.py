"""Applying a saved `fix-env` plan (made by `handlers/fix_plan.py`) exactly as it was shown.

Applying gathers the files and rows the plan read (`handlers/fix_scene.py`) and `prepare`
refuses, without touching anything, when one of them changed since the preview (the plan holds
their checksums): what is applied is exactly what was shown. Then it acts: it takes the host's
mutation lock, saves a backup of every file and row it will touch, writes `.env`, the compose
override and the database (one transaction) and purges Dify's credential cache. A failure rolls
back what was already written; a killed process leaves each file old or new (atomic renames)
and the backup in place.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker

from config.i18n import gettext as _
from config.settings import Settings
from handlers import backup as backups
from handlers import db_fix, dify_db, env_edit
from handlers.compose_cli import file_validator
from handlers.engine import connect
from handlers.envfile import decode_for_editing, encode_for_writing
from handlers.fix_cache import purge_after_rows
from handlers.fix_model import Plan
from handlers.fix_plan import load_plan, save_plan
from handlers.fix_scene import Scene, gather
from handlers.mutation_lock import exclusive
from handlers.override import merge_gateway
from handlers.pending import Pending, record_pending
from handlers.redact import redactor_for
from handlers.results import HandlerError, Progress, no_progress


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
        out = [_("changed: {what}").format(what=c) for c in self.changed]
        out += [_("warning: {what}").format(what=w) for w in self.warnings]
        out.append(
            _("backup: {folder} (undo: `dify-ollama fix-env --undo`)").format(
                folder=self.backup_dir
            )
        )
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- decide: what exactly gets written (pure) -------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """The bytes and rows applying writes, computed before the first write."""

    new_env: bytes | None
    new_override: bytes | None
    changes: tuple[db_fix.RowChange, ...]


def _unchanged(data: bytes | None, expected: str | None, what: str) -> bytes | None:
    if backups.sha256(data) != expected:
        raise HandlerError(
            _(
                "{what} changed since the plan was shown; nothing was changed (run fix-env again)"
            ).format(what=what)
        )
    return data


def prepare(plan: Plan, scene: Scene) -> Prepared:
    """What applying `plan` writes, from what `scene` holds; HandlerError (nothing changed)
    when a file or row the plan read changed since it was shown."""
    if str(scene.project.working_dir) != plan.dify_dir:
        raise HandlerError(
            _(
                "the plan is for {planned} but the Dify project is now in {now}; run fix-env again"
            ).format(planned=plan.dify_dir, now=scene.project.working_dir)
        )
    new_env: bytes | None = None
    if plan.env:
        text = _unchanged(scene.env_bytes, plan.env.base_sha256, ".env")
        if text is None:
            template = scene.read(plan.env.template or "")
            text = _unchanged(template, plan.env.template_sha256, ".env.example") or b""
        new_text, _changed = env_edit.set_values(decode_for_editing(text), plan.env.values)
        new_env = encode_for_writing(new_text)
    scene.required_compose_files()
    new_override: bytes | None = None
    if plan.override:
        path = Path(plan.override.path)
        old = _unchanged(scene.read(path), plan.override.base_sha256, path.name)
        change = merge_gateway(
            old.decode("utf-8") if old is not None else None, plan.override.services, path
        )
        if change is None:
            raise HandlerError(
                _("{file} already has the mapping; run fix-env again").format(file=path.name)
            )
        new_override = change.new_text.encode("utf-8")
    changes: list[db_fix.RowChange] = []
    if plan.db:
        if scene.rows_error is not None:
            raise HandlerError(scene.rows_error)
        current = {(r.table, r.id): r for r in scene.rows}
        for planned in plan.db.rows:
            row = current.get((planned.table, planned.id))
            if row is None or row.config is None or row.config_sha256 != planned.config_sha256:
                raise HandlerError(
                    _(
                        "Ollama row {model} ({id}) changed since the plan was shown; nothing was "
                        "changed (run fix-env again)"
                    ).format(model=planned.model, id=planned.id)
                )
            new_config = db_fix.rewrite_config(row.config, planned.new_url)
            changes.append(db_fix.RowChange(row, planned.old_url, planned.new_url, new_config))
    return Prepared(new_env, new_override, tuple(changes))


# --- act ---------------------------------------------------------------------------------------
def apply_plan(
    settings: Settings,
    plan_id: str,
    *,
    user: str,
    source: str,
    progress: Progress = no_progress,
) -> ApplyResult:
    """Apply a saved plan exactly as shown; at most once (AlreadyDone on a repeat)."""
    start = time.monotonic()
    plan = load_plan(settings, plan_id)
    if plan.state == "cancelled":
        raise HandlerError(_("plan {id} was cancelled; run fix-env again").format(id=plan.id))
    if not plan.has_changes:
        raise HandlerError(_("this plan changes nothing (only manual steps); nothing to apply"))
    with exclusive(
        settings.state_path, "fix-env apply", user, source, key=f"apply:{plan.id}"
    ) as rec:
        client = connect(settings)
        scene = gather_for(settings, client, plan)
        result = apply_to(settings, plan, scene, client, user=user, progress=progress)
        result.duration_ms = int((time.monotonic() - start) * 1000)
        if rec is not None:
            rec.result = result.to_json()
        plan.state = "applied"
        save_plan(settings, plan)
        return result


def gather_for(settings: Settings, client: docker.DockerClient | None, plan: Plan) -> Scene:
    """The scene a plan is applied to: the files and rows it read, read again."""
    login = None
    if plan.db:
        login = dify_db.DbLogin(plan.db.service, plan.db.user, plan.db.database)
    paths = [p for p in (plan.override and plan.override.path, plan.env and plan.env.template) if p]
    return gather(settings, client, rows=login, also_read=paths, gateway=False)


def apply_to(
    settings: Settings,
    plan: Plan,
    scene: Scene,
    client: docker.DockerClient | None,
    *,
    user: str,
    progress: Progress = no_progress,
) -> ApplyResult:
    """Apply `plan` to the host `scene` was gathered from (the caller holds the lock): verify,
    back up, write, purge, record the pending restart. `client` None: no engine, so the plan
    must not write the database."""
    start = time.monotonic()
    project = scene.project
    progress(_("checking that nothing changed since the plan was shown"))
    # Everything is read and verified before the first write.
    ready = prepare(plan, scene)
    files = scene.required_compose_files()
    env_like = None
    if plan.env and plan.env.base_sha256 is None:
        env_like = backups.Ownership.of(os.stat(plan.env.template or ""))

    progress(_("saving a backup of everything that will change"))
    roles = []
    if plan.env:
        roles.append(("env", scene.env_path))
    if plan.override:
        roles.append(("override", Path(plan.override.path)))
    db = plan.db
    rows_saved = [
        {
            **c.row.to_json(),
            "new_config": c.new_config,
            "db_service": db.service if db else None,
            "db_user": db.user if db else None,
            "database": db.database if db else None,
        }
        for c in ready.changes
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
    # What is about to be written, kept before the first write: undo then restores a file
    # only while it holds exactly this (a kill mid-apply leaves each file old or new).
    if plan.env and ready.new_env is not None:
        backup.record_written("env", ready.new_env)
    if plan.override and ready.new_override is not None:
        backup.record_written("override", ready.new_override)
    backup.save_manifest()
    redactor = redactor_for(settings, env_values=scene.env_values, env_path=scene.env_path)
    changed: list[str] = []
    written: list[str] = []  # roles of the files already replaced
    warnings: list[str] = []
    try:
        if plan.env and ready.new_env is not None:
            progress(_("writing {path}").format(path=scene.env_path))
            backups.atomic_write(scene.env_path, ready.new_env, like=env_like)
            written.append("env")
            changed.append(
                f"{scene.env_path}: "
                + (_("created from .env.example") if plan.env.base_sha256 is None else _("edited"))
                + (
                    f", OPENAI_API_BASE={plan.env.values['OPENAI_API_BASE']}"
                    if "OPENAI_API_BASE" in plan.env.values
                    else ""
                )
            )
        if plan.override and ready.new_override is not None:
            path = Path(plan.override.path)
            progress(_("writing {path}").format(path=path))
            # A new override takes the mode and owner of Dify's own compose file.
            backups.atomic_write(
                path,
                ready.new_override,
                like=backups.Ownership.of(os.stat(files[0])),
                validate=file_validator(settings, project, files, path),
            )
            written.append("override")
            changed.append(
                _("{path}: host-gateway for {services}").format(
                    path=path, services=", ".join(plan.override.services)
                )
            )
        if db and ready.changes:
            progress(
                _("rewriting {count} Ollama base URL(s) in one transaction").format(
                    count=len(ready.changes)
                )
            )
            database = dify_db.open_database(
                _engine(client),
                project,
                dify_db.DbLogin(db.service, db.user, db.database),
                scene.env_values,
            )
            warnings += database.write_rows(
                [c.update() for c in ready.changes], settings.check_timeout * 4
            )
            changed += [env_edit.mask_text(c.describe(), redactor) for c in ready.changes]
    except dify_db.DatabaseStateUnknown as exc:
        # The rows may hold the new URLs: keep what was written and the backup (undo puts
        # back exactly the rows that changed), and say so.
        backup.mark("prepared", notes=[f"database state unknown: {exc}"])
        record_pending(
            settings,
            Pending(
                dify_dir=str(project.working_dir),
                services=list(plan.restart_services),
                db_changed=True,
                backup=backup.id,
            ),
        )
        raise HandlerError(
            _(
                "fix-env: {error}. The files shown as changed were written; `dify-ollama check` "
                "shows what the database holds now, and {undo} puts back everything that changed."
            ).format(error=exc, undo=f"`dify-ollama fix-env --undo {backup.id}`")
        ) from None
    except BaseException as exc:
        failed = backup.put_back(written)
        backup.mark("failed", notes=[f"apply failed: {exc}", *failed])
        restored = ", ".join(f.path for r in written if (f := backup.file(r)) is not None)
        if failed:
            raise HandlerError(
                _(
                    "fix-env failed: {error}. Rolling back failed for: {failed}. The originals "
                    "are in {folder}."
                ).format(error=exc, failed="; ".join(failed), folder=backup.dir)
            ) from None
        if isinstance(exc, HandlerError):
            raise HandlerError(
                _("fix-env failed: {error}. Restored: {restored}; nothing is changed.").format(
                    error=exc, restored=restored or _("nothing had been written yet")
                )
            ) from None
        raise

    db_changed = bool(ready.changes)
    if db and db_changed:
        warnings += purge_after_rows(
            _engine(client),
            settings,
            project,
            db.redis_service,
            db.redis_db,
            scene.env_values,
            progress,
        )
    backup.mark("applied", restart_services=list(plan.restart_services), db_changed=db_changed)
    record_pending(
        settings,
        Pending(
            dify_dir=str(project.working_dir),
            services=list(plan.restart_services),
            db_changed=db_changed,
            backup=backup.id,
        ),
    )
    return ApplyResult(
        plan_id=plan.id,
        backup_id=backup.id,
        backup_dir=str(backup.dir),
        changed=changed,
        restart_services=list(plan.restart_services),
        db_changed=db_changed,
        warnings=warnings,
        duration_ms=int((time.monotonic() - start) * 1000),
    )


def _engine(client: docker.DockerClient | None) -> docker.DockerClient:
    if client is None:
        raise HandlerError(_("writing Dify's database needs the Docker engine"))
    return client
