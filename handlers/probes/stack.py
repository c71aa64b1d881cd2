"""Probes of the engine and of Dify's compose project."""

from __future__ import annotations

from config.i18n import gettext as _
from config.i18n import ngettext
from handlers import container_exec
from handlers.compose_binary import detect_compose
from handlers.engine import docker_host
from handlers.facts import Facts, Skip
from handlers.layout import HEALTH_URLS
from handlers.parallel import parallel_map
from handlers.project import ContainerInfo
from handlers.results import Finding, Status

CORE_SERVICES = ("api", "worker", "plugin_daemon")


def docker_engine(facts: Facts) -> Finding:
    _client, problem, version = facts.engine()
    host = docker_host(facts.settings)
    if problem is not None:
        return Finding(
            "docker.engine",
            Status.FAIL,
            _("Docker engine unreachable: {problem}").format(problem=problem.message),
            detail=f"DOCKER_HOST={host} ({problem.reason})",
            remedy=problem.remedy,
        )
    return Finding(
        "docker.engine",
        Status.OK,
        _("Docker {version} answers at {host}").format(version=version, host=host),
    )


def dify_project(facts: Facts) -> Finding:
    project, error = facts.project_or_error()
    compose = detect_compose()
    compose_text = f"{compose.label} {compose.version}" if compose else "no compose CLI found"
    if project is None:
        client, _problem, _version = facts.engine()
        status = Status.SKIP if client is None else Status.FAIL
        summary = (
            _("needs docker.engine") if client is None else _("Dify compose project not found")
        )
        return Finding(
            "dify.project",
            status,
            summary,
            detail=error or "",
            remedy=(
                ""
                if client is None
                else _(
                    "Start Dify (`docker compose up -d` in its docker folder), or set DIFY_DIR "
                    "to that folder / DIFY_COMPOSE_PROJECT to its project name."
                )
            ),
        )
    layout = facts.layout()
    env_state = "present" if project.env_path.exists() else "missing"
    release = (
        f"release {layout.release} (from the {layout.release_source})"
        if layout.release
        else "release unknown (no version in the api image tag or /health)"
    )
    detail = (
        f"project {project.name}, folder {project.working_dir}, .env {project.env_path} "
        f"({env_state}); {release}; layout {layout.kind}; created by "
        + (
            f"Compose {layout.compose_version} ({layout.compose_flavour})"
            if layout.compose_flavour
            else "an unknown Compose (no containers)"
        )
        + f"; installed: {compose_text}; metadata DB {layout.db_kind}"
        + (f" ({layout.db_service})" if layout.db_service else "")
    )
    summary = _("Dify project {name} in {folder}: {layout}").format(
        name=project.name, folder=project.working_dir, layout=layout.describe()
    )
    try:
        facts.compose()
    except Skip as exc:
        # Compose would refuse the project too: no `up`, no recreate, until this is fixed.
        return Finding(
            "dify.project",
            Status.WARN,
            _("{summary}; Compose cannot read the project").format(summary=summary),
            detail=f"{detail}; {exc}",
            remedy=_(
                "Fix what the detail names in {folder} (`docker compose config -q` there shows "
                "the same); restart and fix-env refuse until then."
            ).format(folder=project.working_dir),
        )
    if compose is None:
        return Finding(
            "dify.project",
            Status.WARN,
            _("{summary}; neither `docker compose` nor `docker-compose` is installed").format(
                summary=summary
            ),
            detail=detail,
            remedy=_(
                "Install the Compose plugin (`apt-get install docker-compose-plugin`); "
                "restart and fix-env need it to recreate containers."
            ),
        )
    return Finding("dify.project", Status.OK, summary, detail)


def _container_line(service: str, info: ContainerInfo | None, one_shot: bool) -> tuple[str, str]:
    """(line, verdict): verdict ok | bad | starting."""
    if info is None:
        return f"{service}: no container", "bad"
    if one_shot:
        if info.state == "exited":
            code = info.exit_code
            verdict = "ok" if code == 0 else "bad"
            return f"{service}: one-shot, exited with code {code} ({info.name})", verdict
        if info.state in ("running", "created"):
            return f"{service}: one-shot, {info.state} ({info.name})", "starting"
        return f"{service}: one-shot, {info.state} ({info.name})", "bad"
    health = f", {info.health}" if info.health else ""
    line = f"{service}: {info.state}{health} ({info.name})"
    if info.state != "running" or info.health == "unhealthy":
        return line, "bad"
    return line, "starting" if info.health == "starting" else "ok"


def dify_containers(facts: Facts) -> Finding:
    project = facts.project()
    layout = facts.layout()
    wanted = list(layout.services) or [s for s in CORE_SERVICES if s in project.containers]
    lines, bad, starting = [], [], []
    for service in wanted:
        line, verdict = _container_line(
            service, project.container(service), service in layout.one_shot
        )
        lines.append(line)
        if verdict == "bad":
            bad.append(service)
        elif verdict == "starting":
            starting.append(service)
    detail = "; ".join(lines)
    # How many containers the project has at all: 0 means it was taken down (`compose down`),
    # which the watch tells apart from a crash (containers present, not running).
    metrics = {"containers": float(len(project.containers)), "not_running": float(len(bad))}
    if bad:
        compose = detect_compose()
        up = compose.label if compose else "docker compose"
        return Finding(
            "dify.containers",
            Status.FAIL,
            _("not running or unhealthy: {services}").format(services=", ".join(bad)),
            detail=detail,
            remedy=_(
                "{command}, then read `dify-ollama logs {service}` for why it stopped."
            ).format(
                command=f"`cd {project.working_dir} && {up} up -d {' '.join(bad)}`",
                service=bad[0],
            ),
            service=bad[0],
            metrics=metrics,
        )
    if starting:
        return Finding(
            "dify.containers",
            Status.WARN,
            _("still starting: {services}").format(services=", ".join(starting)),
            detail=detail,
            remedy=_("Wait for the health checks to pass, then check again."),
            service=starting[0],
            metrics=metrics,
        )
    done = [s for s in wanted if s in layout.one_shot]
    summary = _("running: {services}").format(
        services=", ".join(s for s in wanted if s not in layout.one_shot)
    )
    if done:
        summary += _(" ({services} completed)").format(services=", ".join(done))
    return Finding("dify.containers", Status.OK, summary, detail, metrics=metrics)


def dify_health(facts: Facts) -> Finding:
    project = facts.project()
    facts.client()  # no engine: Skip, even when DIFY_DIR found the project
    lines, bad = [], []
    targets = []
    for service, url in HEALTH_URLS.items():
        if service not in project.containers:
            continue
        try:
            facts.running(service)
            targets.append((service, url))
        except Skip as exc:
            lines.append(f"{service}: not probed ({exc})")
            bad.append(service)

    def get(target: tuple[str, str]) -> container_exec.HttpProbe:
        return facts.health(*target)

    for (service, url), probe in zip(targets, parallel_map(get, targets), strict=True):
        if probe.ok:
            lines.append(f"{service}: {url} -> {probe.status} in {probe.latency_ms} ms")
        else:
            why = f"HTTP {probe.status}" if probe.status else f"{probe.error}: {probe.error_text}"
            lines.append(f"{service}: {url} -> {why}")
            bad.append(service)
    if not lines:
        raise Skip(_("needs dify.containers (no api or plugin_daemon container)"))
    if bad:
        return Finding(
            "dify.health",
            Status.FAIL,
            _("health endpoint not answering: {services}").format(services=", ".join(bad)),
            detail="; ".join(lines),
            remedy=_(
                "Read `dify-ollama logs {service}`; restart it with "
                "`dify-ollama restart {service}`."
            ).format(service=bad[0]),
            service=bad[0],
        )
    probed = [s for s, _url in targets]
    summary = ngettext(
        "{services} health endpoint answers", "{services} health endpoints answer", len(probed)
    ).format(services=_(" and ").join(probed))
    return Finding("dify.health", Status.OK, summary, "; ".join(lines))
