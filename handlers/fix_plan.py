"""`fix-env`: a plan from the check findings, shown first, applied on confirmation, undoable.

The plan is computed from a check Report plus the current files and rows, and saved under
`<STATE_DIR>/plans/<id>.json` (private) with the checksums of everything it read. This module
plans, reads the current state and keeps the plans; `handlers/fix_apply.py` applies a plan and
`handlers/fix_undo.py` undoes an applied one.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker

from config.settings import Settings
from handlers import backup as backups
from handlers import compose_file, container_exec, db_fix, env_edit
from handlers.compose_cli import compose_files
from handlers.engine import connect
from handlers.envfile import EnvFile, parse_env_text
from handlers.override import (
    GATEWAY_NAME,
    GATEWAY_SERVICES,
    declared_services,
    merge_gateway,
    override_path,
)
from handlers.project import DB_FIX_SERVICES, MODEL_CALLERS, DifyProject, discover
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
