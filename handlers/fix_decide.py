"""Deciding the fix-env plan from a gathered Scene and a check Report: pure, no engine, no files.

One function per concern, in the order the plan runs them: `.env` (create it from the
template, point OPENAI_API_BASE at the host), the database (rewrite wrong Ollama base URLs, or
web-UI steps when FIX_DATABASE=false), the compose override (host-gateway for the model
callers, decided after the database because the new URLs say whether it is needed), then the
manual instructions and what stays unfixed. `plan` puts them together.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from config.i18n import gettext as _
from config.settings import Settings
from handlers import backup as backups
from handlers import db_fix, env_edit
from handlers.envfile import decode_for_editing, parse_env_text
from handlers.fix_model import DbStep, EnvStep, Instruction, OverrideStep, Plan, RowPlan
from handlers.fix_scene import Scene
from handlers.override import GATEWAY_NAME, GATEWAY_SERVICES, merge_gateway, missing_gateway
from handlers.probes.ollama import ollama_host_remedy
from handlers.project import DB_FIX_SERVICES
from handlers.redact import Redactor, redactor_for
from handlers.results import HandlerError, Report, Status
from handlers.urls import PUBLIC_OPENAI_BASE, host_of, is_loopback_url, without_credentials


@dataclass
class Decision:
    """What one concern adds to the plan."""

    fixes: list[str] = field(default_factory=list)  # finding ids it addresses
    restart: list[str] = field(default_factory=list)  # services to recreate afterwards
    instructions: list[Instruction] = field(default_factory=list)
    unfixed: list[str] = field(default_factory=list)


# --- 1 and 2: .env ---------------------------------------------------------------------------
@dataclass
class EnvOutcome:
    step: EnvStep | None
    values: dict[str, str]  # .env as it will read after the plan (for the later concerns)
    redactor: Redactor
    decision: Decision


def decide_env(scene: Scene, settings: Settings) -> EnvOutcome:
    """Create `.env` from `.env.example` when it is missing; point OPENAI_API_BASE at the host
    when it is loopback or the public OpenAI default."""
    decision = Decision()
    current = scene.env_bytes
    template = scene.template_path
    template_bytes = scene.read(template) if current is None else None
    values = scene.env_values
    if current is not None:
        text: str | None = decode_for_editing(current)
    elif template_bytes is not None:
        text = decode_for_editing(template_bytes)
        values = dict(parse_env_text(text).values)
    else:
        text = None
        decision.unfixed.append(
            _(
                "env.file: {path} is missing and there is no .env.example next to it; "
                "copy Dify's .env.example there."
            ).format(path=scene.env_path)
        )
    redactor = redactor_for(settings, env_values=values, env_path=scene.env_path)
    if text is None:
        return EnvOutcome(None, values, redactor, decision)
    wanted: dict[str, str] = {}
    old_url = effective_openai_base(scene, values)
    followers = env_followers(scene)
    if old_url and (is_loopback_url(old_url) or old_url.rstrip("/") == PUBLIC_OPENAI_BASE):
        if followers == []:
            # The compose files set it themselves: a `.env` edit would reach no container.
            decision.unfixed.append(
                _(
                    "env.file: OPENAI_API_BASE in .env reaches no container here (the compose "
                    "files set it themselves); change it where they do."
                )
            )
        else:
            env_edit.check_value("FIX_OLLAMA_URL", settings.fix_ollama_url)
            wanted["OPENAI_API_BASE"] = settings.fix_ollama_url
    if not wanted and current is not None:
        return EnvOutcome(None, values, redactor, decision)
    new_text, _changed = env_edit.set_values(text, wanted)
    if current is None:
        preview = (
            env_edit.masked_diff(text, new_text, ".env", redactor, old_label=".env.example")
            or "(an unchanged copy)"
        )
    else:
        preview = env_edit.masked_diff(text, new_text, ".env", redactor)
    step = EnvStep(
        path=str(scene.env_path),
        base_sha256=backups.sha256(current),
        template=str(template) if current is None else None,
        template_sha256=backups.sha256(template_bytes),
        values=wanted,
        preview=preview,
    )
    scene.required_compose_files()  # no compose files: nothing could apply the new .env
    decision.fixes.append("env.file")
    if followers is None:
        decision.restart += [s for s in GATEWAY_SERVICES if s in scene.declared]
    else:
        decision.restart += followers
    return EnvOutcome(step, dict(parse_env_text(new_text).values), redactor, decision)


def env_followers(scene: Scene) -> list[str] | None:
    """Services a change of OPENAI_API_BASE in `.env` reaches (the gather step read the files
    with a marker value there): the model callers first; None when unknown."""
    if scene.env_followers is None:
        return None
    order = {name: i for i, name in enumerate(GATEWAY_SERVICES)}
    return sorted(scene.env_followers, key=lambda s: (order.get(s, len(order)), s))


def effective_openai_base(scene: Scene, values: dict[str, str]) -> str | None:
    """OPENAI_API_BASE as the model callers get it: `.env`'s, or on Dify 1.14+ the value an
    envs/*.env file gives them where `.env` does not set it (`.env` is read last, so setting it
    there wins)."""
    value = values.get("OPENAI_API_BASE")
    if value is not None or scene.compose is None:
        return value
    for service in GATEWAY_SERVICES:
        config = scene.compose.services.get(service)
        if config is not None and "OPENAI_API_BASE" in config.environment:
            return config.environment["OPENAI_API_BASE"]
    return None


# --- 4: the database -------------------------------------------------------------------------
@dataclass
class DbOutcome:
    step: DbStep | None
    changes: list[db_fix.RowChange]
    decision: Decision


def decide_database(
    scene: Scene, report: Report, settings: Settings, values: dict[str, str], redactor: Redactor
) -> DbOutcome:
    """Rewrite the Ollama rows that point at loopback or end in /v1 or /api (then purge the
    credential cache); with FIX_DATABASE=false, the web-UI steps instead."""
    decision = Decision()
    if scene.rows_error is not None:
        decision.unfixed.append(
            _("dify.base_url: could not read Dify's database ({error}).").format(
                error=scene.rows_error
            )
        )
    elif scene.db is None and report.finding("dify.base_url") is not None:
        decision.unfixed.append(
            _(
                "dify.base_url: the db container is not running, so the stored base URLs were "
                "not read."
            )
        )
    changes = db_fix.plan_changes(scene.rows, settings.fix_ollama_base_url)
    if not changes:
        return DbOutcome(None, changes, decision)
    if not settings.fix_database:
        models = "\n".join(
            f"- {c.row.model} ({c.row.model_type}): {without_credentials(c.old_url)} -> "
            f"{without_credentials(c.new_url)}"
            for c in changes
        )
        decision.instructions.append(
            Instruction(
                "dify.base_url",
                _("Change the Ollama base URL in Dify's web UI (FIX_DATABASE=false)"),
                _(
                    "Open Dify -> Settings -> Model Provider -> Ollama, edit each model below, set "
                    "its base URL as shown and save (Dify then refreshes its cache itself):"
                )
                + "\n"
                + models,
            )
        )
        decision.fixes.append("dify.base_url")
        return DbOutcome(None, changes, decision)
    assert scene.db is not None  # rows were read, so from somewhere
    redis_host = values.get("REDIS_HOST", "redis")
    redis = "redis" if scene.running("redis") and redis_host in ("redis", "") else None
    step = DbStep(
        service=scene.db.service,
        user=scene.db.user,
        database=scene.db.database,
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
            for c in changes
        ],
        redis_service=redis,
        redis_db=db_fix.redis_db_number(values),
        preview="\n".join(env_edit.mask_text(c.describe(), redactor) for c in changes),
    )
    decision.fixes += ["dify.base_url", "container.reach"]
    decision.restart += [s for s in DB_FIX_SERVICES if s in scene.declared]
    return DbOutcome(step, changes, decision)


# --- 3: the compose override -----------------------------------------------------------------
def final_urls(
    scene: Scene, settings: Settings, changes: list[db_fix.RowChange], values: dict[str, str]
) -> list[str]:
    """The Ollama URLs Dify will use once the plan is applied."""
    changed = {c.row.id for c in changes}
    urls = [c.new_url for c in changes] + [
        r.stored_url for r in scene.rows if r.stored_url and r.id not in changed
    ]
    if not urls and values.get("OPENAI_API_BASE"):
        urls.append(values["OPENAI_API_BASE"])
    return urls or [settings.fix_ollama_base_url]


def gateway_needed(scene: Scene, report: Report) -> tuple[list[str], str]:
    """Services whose compose config lacks host-gateway although Dify will call
    host.docker.internal and the name does not resolve natively; plus why."""
    if scene.compose is None:
        return [], f"cannot read the compose files ({scene.compose_config_error})"
    missing = missing_gateway(scene.compose)
    if not missing:
        return [], "already mapped in the compose files"
    dns = report.finding("container.dns")
    if dns is not None and dns.status is Status.FAIL and GATEWAY_NAME in dns.summary:
        return missing, f"{GATEWAY_NAME} does not resolve in the containers (container.dns)"
    # The name may still be needed after the fix (loopback URLs become host.docker.internal):
    # what a running model caller said about it (gathered), else what the engine is.
    gateway = scene.gateway
    if gateway is not None and gateway.service is not None:
        service = gateway.service
        if gateway.mapped:
            # Set on the container but not in the files: a recreate would lose it.
            return missing, f"{service} maps {GATEWAY_NAME} but the compose files do not"
        if gateway.resolves:
            return [], f"{GATEWAY_NAME} resolves natively in {service} ({gateway.method})"
        return missing, f"{GATEWAY_NAME} does not resolve in {service}"
    if gateway is not None and "Docker Desktop" in gateway.engine_os:
        return [], "Docker Desktop defines host.docker.internal itself"
    return missing, "Linux engine: the name exists only with host-gateway"


@dataclass
class OverrideOutcome:
    step: OverrideStep | None
    decision: Decision


def decide_override(
    scene: Scene, report: Report, urls: list[str], redactor: Redactor
) -> OverrideOutcome:
    """Map host.docker.internal to the host for the model callers when Dify will call that
    name and it does not resolve without the mapping."""
    decision = Decision()
    if not any(host_of(u) == GATEWAY_NAME for u in urls):
        return OverrideOutcome(None, decision)
    files = scene.required_compose_files()
    services, why = gateway_needed(scene, report)
    dns = report.finding("container.dns")
    if not services and dns is not None and dns.status is Status.FAIL:
        # The files already say it; the containers were created before they did.
        decision.instructions.append(
            Instruction(
                "container.dns",
                _("Recreate the containers that still lack the host-gateway mapping"),
                _(
                    "{why} ({files}), but the running containers were created before: "
                    "`dify-ollama restart` recreates them."
                ).format(why=why, files=", ".join(str(f.name) for f in files)),
            )
        )
    if not services:
        return OverrideOutcome(None, decision)
    path = scene.override_path
    old = scene.read(path)
    old_text = old.decode("utf-8") if old is not None else None
    change = merge_gateway(old_text, services, path)
    if change is None:
        return OverrideOutcome(None, decision)
    step = OverrideStep(
        path=str(path),
        base_sha256=backups.sha256(old),
        services=list(change.services),
        preview=env_edit.masked_diff(
            old_text or "", change.new_text, path.name, redactor, context=2
        ),
        notes=[f"why: {why}", *change.notes],
    )
    decision.fixes += ["container.dns", "container.reach"]
    decision.restart += list(change.services)
    return OverrideOutcome(step, decision)


# --- what fix-env cannot do ------------------------------------------------------------------
def instructions(report: Report) -> list[Instruction]:
    out = []
    bind = report.finding("ollama.bind")
    if bind is not None and bind.status is Status.FAIL:
        out.append(
            Instruction(
                "ollama.bind", _("Make Ollama listen beyond loopback"), ollama_host_remedy()
            )
        )
    return out


def unfixed(report: Report, plan: Plan) -> list[str]:
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
        remedy = _(" Fix: {remedy}").format(remedy=finding.remedy) if finding.remedy else ""
        lines.append(f"{finding.id}: {finding.summary}.{remedy}")
    return lines


def plan(scene: Scene, report: Report, settings: Settings) -> Plan:
    """The repairs the report calls for, given the files and rows in `scene`."""
    project = scene.project
    if scene.compose_config_error is not None:
        # Nothing could be applied: every restart needs Compose to read the project.
        raise HandlerError(
            _(
                "Compose cannot read the project ({error}); fix that first, nothing was planned "
                "or changed"
            ).format(error=scene.compose_config_error)
        )
    result = Plan(
        id=secrets.token_hex(6),
        created_at=backups.utc_stamp(),
        project=project.name,
        dify_dir=str(project.working_dir),
        env_path=str(scene.env_path),
    )
    env = decide_env(scene, settings)
    db = decide_database(scene, report, settings, env.values, env.redactor)
    urls = final_urls(scene, settings, db.changes, env.values)
    override = decide_override(scene, report, urls, env.redactor)
    result.env, result.db, result.override = env.step, db.step, override.step
    for decision in (env.decision, db.decision, override.decision):
        result.fixes += decision.fixes
        result.restart_services += decision.restart
        result.instructions += decision.instructions
        result.unfixed += decision.unfixed
    result.instructions += instructions(report)
    if result.has_changes:
        result.fixes.append("env.drift")
    result.fixes = list(dict.fromkeys(result.fixes))
    result.unfixed += unfixed(report, result)
    result.restart_services = list(dict.fromkeys(result.restart_services))
    return result
