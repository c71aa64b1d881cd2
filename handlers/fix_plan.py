"""`fix-env`: a plan from the check findings, shown first, applied on confirmation, undoable.

The plan is computed from a check Report plus the current files and rows, and saved under
`<STATE_DIR>/plans/<id>.json` (private) with the checksums of everything it read. Applying
re-reads them and refuses when anything changed since the preview, so what is applied is
exactly what was shown. Applying takes the host's mutation lock, saves a backup of every file
and row it will touch, then writes `.env`, the compose override and the database (one
transaction) and purges Dify's credential cache. A failure rolls back what was already
written; a killed process leaves each file old or new (atomic renames) and the backup in place.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker

from config.settings import Settings
from handlers import backup as backups
from handlers import compose_file, container_exec, db_fix, env_edit
from handlers.compose_cli import compose_argv, find_compose
from handlers.envfile import EnvFile, parse_env_text
from handlers.mutation_lock import exclusive
from handlers.override import (
    GATEWAY_NAME,
    GATEWAY_SERVICES,
    declared_services,
    merge_gateway,
    override_path,
)
from handlers.project import MODEL_CALLERS, DifyProject, discover
from handlers.restart import (
    DB_FIX_SERVICES,
    Pending,
    compose_environment,
    compose_files,
    connect,
    record_pending,
)
from handlers.results import Finding, HandlerError, Report, Status
from handlers.urls import PUBLIC_OPENAI_BASE, host_of, is_loopback_url, without_credentials

Progress = Callable[[str], None]
PLANS_DIR = "plans"
LEGACY_NOTE = (
    "OPENAI_API_BASE is a legacy variable on Dify 1.x (the Ollama plugin uses the base URL "
    "stored per model); it is set because people follow the documented steps."
)
# Findings a plan addresses (the others are listed as not fixed by fix-env).
HANDLED = ("env.file", "dify.base_url", "container.dns", "container.reach", "env.drift")


def _noop(_: str) -> None:
    return None


@dataclass
class EnvStep:
    path: str
    base_sha256: str | None  # None: .env does not exist and is created
    template: str | None  # .env.example when creating
    template_sha256: str | None
    values: dict[str, str]  # KEY -> new value (never a secret key)
    preview: str


@dataclass
class OverrideStep:
    path: str
    base_sha256: str | None
    services: list[str]
    preview: str
    notes: list[str] = field(default_factory=list)


@dataclass
class RowPlan:
    table: str
    id: str
    model: str
    model_type: str
    old_url: str
    new_url: str
    config_sha256: str


@dataclass
class DbStep:
    service: str
    user: str
    database: str
    rows: list[RowPlan]
    redis_service: str | None
    redis_db: int
    preview: str


@dataclass
class Instruction:
    finding: str
    title: str
    text: str


@dataclass
class Plan:
    id: str
    created_at: str
    project: str
    dify_dir: str
    env_path: str
    env: EnvStep | None = None
    override: OverrideStep | None = None
    db: DbStep | None = None
    instructions: list[Instruction] = field(default_factory=list)
    unfixed: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)  # finding ids the plan addresses
    restart_services: list[str] = field(default_factory=list)
    state: str = "planned"  # planned | applied | cancelled

    @property
    def has_changes(self) -> bool:
        return bool(self.env or self.override or self.db)

    @property
    def writes_database(self) -> bool:
        return self.db is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        data = dict(data)
        env = data.pop("env", None)
        ovr = data.pop("override", None)
        db = data.pop("db", None)
        instructions = [Instruction(**i) for i in data.pop("instructions", [])]
        plan = cls(**data, instructions=instructions)
        plan.env = EnvStep(**env) if env else None
        plan.override = OverrideStep(**ovr) if ovr else None
        if db:
            rows = [RowPlan(**r) for r in db.pop("rows", [])]
            plan.db = DbStep(**db, rows=rows)
        return plan

    def summary(self) -> str:
        parts = []
        if self.env:
            parts.append("create .env" if self.env.base_sha256 is None else "edit .env")
        if self.override:
            parts.append("compose override")
        if self.db:
            parts.append(f"rewrite {len(self.db.rows)} database row(s) + purge cache")
        return ", ".join(parts) or "no changes"

    def render(self) -> str:
        """The whole plan as text: what changes (secret values masked), then what is manual."""
        out = [f"fix-env plan {self.id} for Dify project {self.project} in {self.dify_dir}"]
        number = 0
        if self.env:
            number += 1
            if self.env.base_sha256 is None:
                out.append(
                    f"{number}. Create {self.env_path} as a copy of {self.env.template}, with:"
                )
            else:
                out.append(f"{number}. Edit {self.env_path} (only the lines shown change):")
            out.append(_indent(self.env.preview))
            if "OPENAI_API_BASE" in self.env.values:
                out.append(_indent(LEGACY_NOTE))
        if self.override:
            number += 1
            verb = "Create" if self.override.base_sha256 is None else "Merge into"
            out.append(
                f"{number}. {verb} {self.override.path}: map {GATEWAY_NAME} to the host "
                f"(host-gateway) for {', '.join(self.override.services)}:"
            )
            out.append(_indent(self.override.preview))
            out.extend(_indent(n) for n in self.override.notes)
        if self.db:
            number += 1
            out.append(
                f"{number}. WRITE DIFY'S DATABASE ({self.db.service}, database {self.db.database}):"
                f" set only the base_url field of {len(self.db.rows)} Ollama row(s), in one "
                "transaction, after saving the original rows to the backup:"
            )
            out.append(_indent(self.db.preview))
            number += 1
            if self.db.redis_service:
                out.append(
                    f"{number}. Delete Dify's cached credentials in Redis "
                    f"({self.db.redis_service}, db {self.db.redis_db}; keys "
                    f"{', '.join(db_fix.CACHE_PATTERNS)}) so Dify reads the new URLs."
                )
            else:
                out.append(
                    f"{number}. Dify's Redis is not a container of this project: "
                    + db_fix.purge_instruction(self.project, self.db.redis_db)
                )
        if self.restart_services:
            out.append(
                "Then restart to apply it: `dify-ollama restart` recreates "
                + ", ".join(self.restart_services)
                + " (db and redis keep running)."
            )
        if self.instructions:
            out.append("By hand (fix-env cannot do these for you):")
            for item in self.instructions:
                out.append(f"- {item.title}:")
                out.append(_indent(item.text))
        if self.unfixed:
            out.append("Not fixed by fix-env (see `dify-ollama check`):")
            out.extend(f"- {line}" for line in self.unfixed)
        if not self.has_changes and not self.instructions:
            out.append("Nothing to fix: no finding that fix-env repairs is failing.")
        return "\n".join(out)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


# --- reading the current state ------------------------------------------------------------
@dataclass
class _Scene:
    client: docker.DockerClient
    project: DifyProject
    env_path: Path
    env_bytes: bytes | None
    env: EnvFile | None
    secrets: set[str]


def _scene(settings: Settings) -> _Scene:
    client = connect(settings)
    project = discover(client, settings)
    env_path = project.env_path
    data = backups.read_bytes(backups.resolve_target(env_path))
    env = parse_env_text(data.decode("utf-8", "replace"), env_path) if data is not None else None
    found = set(env.secret_values()) if env else set()
    return _Scene(client, project, env_path, data, env, found)


def _db_params(env: dict[str, str]) -> tuple[str, str]:
    return env.get("DB_USERNAME") or "postgres", env.get("DB_DATABASE") or "dify"


def _running(project: DifyProject, service: str | None) -> str | None:
    info = project.container(service) if service else None
    return info.id if info is not None and info.state == "running" else None


def _gateway_needed(
    settings: Settings, scene: _Scene, report: Report, files: tuple[Path, ...]
) -> tuple[list[str], str]:
    """Services whose compose config lacks host-gateway although Dify will call
    host.docker.internal and the name does not resolve natively; plus why."""
    env_values = scene.env.values if scene.env else {}
    try:
        config = compose_file.load_compose(files, env_values)
    except HandlerError as exc:
        return [], f"cannot read the compose files ({exc})"
    declared = [s for s in GATEWAY_SERVICES if s in config.services]
    missing = [
        s
        for s in declared
        if not any(
            h.split(":", 1)[0].strip() == GATEWAY_NAME for h in config.services[s].extra_hosts
        )
    ]
    if not missing:
        return [], "already mapped in the compose files"
    dns = report.finding("container.dns")
    if dns is not None and dns.status is Status.FAIL and GATEWAY_NAME in dns.summary:
        return missing, f"{GATEWAY_NAME} does not resolve in the containers (container.dns)"
    # The name may still be needed after the fix (loopback URLs become host.docker.internal):
    # ask a running model caller whether it resolves without any mapping (Docker Desktop).
    for service in MODEL_CALLERS:
        cid = _running(scene.project, service)
        if cid is None:
            continue
        attrs = scene.client.api.inspect_container(cid)
        mapped = [
            h
            for h in (attrs.get("HostConfig") or {}).get("ExtraHosts") or []
            if str(h).split(":", 1)[0] == GATEWAY_NAME
        ]
        if mapped:
            # Set on the container but not in the files: a recreate would lose it.
            return missing, f"{service} maps {GATEWAY_NAME} but the compose files do not"
        res = container_exec.resolve(scene.client, cid, GATEWAY_NAME, settings.check_timeout)
        if res.resolved:
            return [], f"{GATEWAY_NAME} resolves natively in {service} ({res.method})"
        return missing, f"{GATEWAY_NAME} does not resolve in {service}"
    try:
        system = str(scene.client.info().get("OperatingSystem", ""))
    except Exception:
        system = ""
    if "Docker Desktop" in system:
        return [], "Docker Desktop defines host.docker.internal itself"
    return missing, "Linux engine: the name exists only with host-gateway"


def _instructions(report: Report) -> list[Instruction]:
    from handlers.probes.ollama import ollama_host_remedy  # the per-OS text check also shows

    out = []
    bind = report.finding("ollama.bind")
    if bind is not None and bind.status is Status.FAIL:
        out.append(
            Instruction("ollama.bind", "Make Ollama listen beyond loopback", ollama_host_remedy())
        )
    return out


def _unfixed(report: Report, plan: Plan) -> list[str]:
    """Failing findings this plan does not repair (with their own remedy).

    A finding counts as repaired when it is fixable and a step of the plan addresses it;
    env.drift always does, because the restart that follows a fix recreates the containers.
    """
    lines = []
    explained = {i.finding for i in plan.instructions}
    for finding in report.findings:
        if finding.status is not Status.FAIL or finding.id in explained:
            continue
        if finding.id in plan.fixes and (finding.fixable or finding.id == "env.drift"):
            continue
        remedy = f" Fix: {finding.remedy}" if finding.remedy else ""
        lines.append(f"{finding.id}: {finding.summary}.{remedy}")
    return lines


def fixable(finding: Finding) -> bool:
    """Whether a finding gets a "Fix" button: failing and repairable by fix-env."""
    return finding.status is Status.FAIL and finding.fixable


def make_plan(settings: Settings, report: Report) -> Plan:
    """Plan the repairs the report calls for, reading the current files and rows."""
    scene = _scene(settings)
    project = scene.project
    plan = Plan(
        id=secrets.token_hex(6),
        created_at=backups.utc_stamp(),
        project=project.name,
        dify_dir=str(project.working_dir),
        env_path=str(scene.env_path),
    )
    env_values = dict(scene.env.values) if scene.env else {}
    restart: list[str] = []

    # 1 and 2: .env
    template = scene.env_path.parent / ".env.example"
    env_text: str | None = None
    template_sha = None
    if scene.env_bytes is not None:
        env_text = scene.env_bytes.decode("utf-8")
    elif template.exists():
        template_bytes = backups.read_bytes(template) or b""
        template_sha = backups.sha256(template_bytes)
        env_text = template_bytes.decode("utf-8")
        env_values = dict(parse_env_text(env_text).values)
        scene.secrets |= set(parse_env_text(env_text).secret_values())
    else:
        plan.unfixed.append(
            f"env.file: {scene.env_path} is missing and there is no .env.example next to it; "
            "copy Dify's .env.example there."
        )
    if env_text is not None:
        current = env_values.get("OPENAI_API_BASE")
        wanted: dict[str, str] = {}
        if current and (is_loopback_url(current) or current.rstrip("/") == PUBLIC_OPENAI_BASE):
            env_edit.check_value("FIX_OLLAMA_URL", settings.fix_ollama_url)
            wanted["OPENAI_API_BASE"] = settings.fix_ollama_url
        new_text, _ = env_edit.set_values(env_text, wanted)
        if wanted or scene.env_bytes is None:
            if scene.env_bytes is None:
                preview = (
                    env_edit.masked_diff(
                        env_text, new_text, ".env", scene.secrets, old_label=".env.example"
                    )
                    or "(an unchanged copy)"
                )
            else:
                preview = env_edit.masked_diff(env_text, new_text, ".env", scene.secrets)
            plan.env = EnvStep(
                path=str(scene.env_path),
                base_sha256=backups.sha256(scene.env_bytes),
                template=str(template) if scene.env_bytes is None else None,
                template_sha256=template_sha,
                values=wanted,
                preview=preview,
            )
            plan.fixes.append("env.file")
            declared = declared_services(compose_files(project))
            restart += [s for s in GATEWAY_SERVICES if s in declared]
            env_values = dict(parse_env_text(new_text).values)

    # 4: the database
    db_service = project.db_service
    fix_rows: list[db_fix.RowChange] = []
    rows: list[db_fix.RawRow] = []
    db_cid = _running(project, db_service)
    db_user, database = _db_params(env_values)
    if db_cid is not None:
        try:
            rows = db_fix.read_rows(
                scene.client, db_cid, db_user, database, settings.check_timeout * 2
            )
        except HandlerError as exc:
            plan.unfixed.append(f"dify.base_url: could not read Dify's database ({exc}).")
    elif report.finding("dify.base_url") is not None:
        plan.unfixed.append(
            "dify.base_url: the db container is not running, so the stored base URLs were not read."
        )
    fix_rows = db_fix.plan_changes(rows, settings.fix_ollama_base_url)
    if fix_rows and settings.fix_database:
        redis = "redis" if _running(project, "redis") else None
        redis_host = env_values.get("REDIS_HOST", "redis")
        if redis_host not in ("redis", ""):
            redis = None
        try:
            redis_db = int(env_values.get("REDIS_DB") or 0)
        except ValueError:
            redis_db = 0
        plan.db = DbStep(
            service=str(db_service),
            user=db_user,
            database=database,
            rows=[
                RowPlan(
                    c.row.table,
                    c.row.id,
                    c.row.model,
                    c.row.model_type,
                    c.old_url,
                    c.new_url,
                    c.row.config_sha256,
                )
                for c in fix_rows
            ],
            redis_service=redis,
            redis_db=redis_db,
            preview="\n".join(env_edit.mask_text(c.describe(), scene.secrets) for c in fix_rows),
        )
        plan.fixes += ["dify.base_url", "container.reach"]
        restart += list(DB_FIX_SERVICES)
    elif fix_rows:
        models = "\n".join(
            f"- {c.row.model} ({c.row.model_type}): {without_credentials(c.old_url)} -> "
            f"{without_credentials(c.new_url)}"
            for c in fix_rows
        )
        plan.instructions.append(
            Instruction(
                "dify.base_url",
                "Change the Ollama base URL in Dify's web UI (FIX_DATABASE=false)",
                "Open Dify -> Settings -> Model Provider -> Ollama, edit each model below, set "
                "its base URL as shown and save (Dify then refreshes its cache itself):\n" + models,
            )
        )
        plan.fixes.append("dify.base_url")

    # 3: the compose override (after the database: the new URLs decide whether it is needed)
    final_urls = [c.new_url for c in fix_rows] + [
        r.base_url for r in rows if r.base_url and r.id not in {c.row.id for c in fix_rows}
    ]
    if not final_urls and env_values.get("OPENAI_API_BASE"):
        final_urls.append(env_values["OPENAI_API_BASE"])
    if not final_urls:
        final_urls.append(settings.fix_ollama_base_url)
    if any(host_of(u) == GATEWAY_NAME for u in final_urls):
        files = compose_files(project)
        services, why = _gateway_needed(settings, scene, report, files)
        dns = report.finding("container.dns")
        if not services and dns is not None and dns.status is Status.FAIL:
            # The files already say it; the containers were created before they did.
            plan.instructions.append(
                Instruction(
                    "container.dns",
                    "Recreate the containers that still lack the host-gateway mapping",
                    f"{why} ({', '.join(str(f.name) for f in files)}), but the running "
                    "containers were created before: `dify-ollama restart` recreates them.",
                )
            )
        if services:
            path = override_path(project.working_dir)
            old = backups.read_bytes(backups.resolve_target(path))
            old_text = old.decode("utf-8") if old is not None else None
            change = merge_gateway(old_text, services, path)
            if change is not None:
                diff = env_edit.masked_diff(
                    old_text or "", change.new_text, path.name, scene.secrets, context=2
                )
                plan.override = OverrideStep(
                    path=str(path),
                    base_sha256=backups.sha256(old),
                    services=list(change.services),
                    preview=diff,
                    notes=[f"why: {why}", *change.notes],
                )
                plan.fixes += ["container.dns", "container.reach"]
                restart += list(change.services)

    plan.instructions += _instructions(report)
    if plan.has_changes:
        plan.fixes.append("env.drift")
    plan.fixes = list(dict.fromkeys(plan.fixes))
    plan.unfixed += _unfixed(report, plan)
    plan.restart_services = list(dict.fromkeys(restart))
    save_plan(settings, plan)
    return plan


# --- persistence ----------------------------------------------------------------------------
def _plan_path(settings: Settings, plan_id: str) -> Path:
    if not plan_id.isalnum() or len(plan_id) > 32:
        raise HandlerError(f"not a plan id: {plan_id[:40]!r}")
    return settings.state_path / PLANS_DIR / f"{plan_id}.json"


def save_plan(settings: Settings, plan: Plan) -> None:
    path = _plan_path(settings, plan.id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    backups.atomic_write(
        path,
        json.dumps(plan.to_json(), indent=2).encode(),
        like=backups.Ownership(0o600, os.geteuid(), os.getegid()),
    )


def load_plan(settings: Settings, plan_id: str) -> Plan:
    try:
        data = json.loads(_plan_path(settings, plan_id).read_text())
    except FileNotFoundError:
        raise HandlerError(f"plan {plan_id} is unknown on this host (run fix-env again)") from None
    except (OSError, ValueError) as exc:
        raise HandlerError(f"plan {plan_id} cannot be read: {exc}") from None
    return Plan.from_json(data)


def cancel_plan(settings: Settings, plan_id: str) -> Plan:
    plan = load_plan(settings, plan_id)
    if plan.state == "planned":
        plan.state = "cancelled"
        save_plan(settings, plan)
    return plan


# --- applying ---------------------------------------------------------------------------------
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


# --- undo ---------------------------------------------------------------------------------------
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
