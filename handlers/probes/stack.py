"""Probes of the engine and of Dify's compose project."""

from __future__ import annotations

from handlers import container_exec
from handlers.compose_binary import detect_compose
from handlers.engine import docker_host
from handlers.facts import Facts, Skip
from handlers.parallel import parallel_map
from handlers.results import Finding, Status

CORE_SERVICES = ("api", "worker", "plugin_daemon")
HEALTH_URLS = {
    "api": "http://localhost:5001/health",
    "plugin_daemon": "http://localhost:5002/health/check",
}


def docker_engine(facts: Facts) -> Finding:
    _, problem, version = facts.engine()
    host = docker_host(facts.settings)
    if problem is not None:
        return Finding(
            "docker.engine",
            Status.FAIL,
            f"Docker engine unreachable: {problem.message}",
            detail=f"DOCKER_HOST={host} ({problem.reason})",
            remedy=problem.remedy,
        )
    return Finding("docker.engine", Status.OK, f"Docker {version} answers at {host}")


def dify_project(facts: Facts) -> Finding:
    project, error = facts.project_or_error()
    compose = detect_compose()
    compose_text = f"{compose.label} {compose.version}" if compose else "no compose CLI found"
    if project is None:
        client, _, _ = facts.engine()
        status = Status.SKIP if client is None else Status.FAIL
        summary = "needs docker.engine" if client is None else "Dify compose project not found"
        return Finding(
            "dify.project",
            status,
            summary,
            detail=error or "",
            remedy=(
                ""
                if client is None
                else "Start Dify (`docker compose up -d` in its docker folder), or set DIFY_DIR "
                "to that folder / DIFY_COMPOSE_PROJECT to its project name."
            ),
        )
    env_state = "present" if project.env_path.exists() else "missing"
    detail = (
        f"project {project.name}, folder {project.working_dir}, .env {project.env_path} "
        f"({env_state}), compose: {compose_text}"
    )
    if compose is None:
        return Finding(
            "dify.project",
            Status.WARN,
            f"Dify project {project.name} found, but neither `docker compose` nor "
            "`docker-compose` is installed",
            detail=detail,
            remedy="Install the Compose plugin (`apt-get install docker-compose-plugin`); "
            "restart and fix-env need it to recreate containers.",
        )
    return Finding(
        "dify.project", Status.OK, f"Dify project {project.name} in {project.working_dir}", detail
    )


def _declared(facts: Facts, service: str) -> bool:
    """Whether this Dify release has the service (by its compose files, else its containers)."""
    try:
        return service in facts.compose().services
    except Skip:
        return service in facts.project().containers


def dify_containers(facts: Facts) -> Finding:
    project = facts.project()
    wanted = [s for s in CORE_SERVICES if s in project.containers or _declared(facts, s)]
    db = project.db_service or "db_postgres"
    wanted.append(db)
    lines, bad, starting = [], [], []
    for service in wanted:
        info = project.container(service)
        if info is None:
            lines.append(f"{service}: no container")
            bad.append(service)
            continue
        health = f", {info.health}" if info.health else ""
        lines.append(f"{service}: {info.state}{health} ({info.name})")
        if info.state != "running" or info.health == "unhealthy":
            bad.append(service)
        elif info.health == "starting":
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
            f"not running or unhealthy: {', '.join(bad)}",
            detail=detail,
            remedy=f"`cd {project.working_dir} && {up} up -d {' '.join(bad)}`, then read "
            f"`dify-ollama logs {bad[0]}` for why it stopped.",
            service=bad[0],
            metrics=metrics,
        )
    if starting:
        return Finding(
            "dify.containers",
            Status.WARN,
            f"still starting: {', '.join(starting)}",
            detail=detail,
            remedy="Wait for the health checks to pass, then check again.",
            service=starting[0],
            metrics=metrics,
        )
    return Finding(
        "dify.containers", Status.OK, f"running: {', '.join(wanted)}", detail, metrics=metrics
    )


def dify_health(facts: Facts) -> Finding:
    project = facts.project()
    client = facts.client()
    lines, bad = [], []
    targets = []
    for service, url in HEALTH_URLS.items():
        if service not in project.containers:
            continue
        try:
            targets.append((service, url, facts.running(service)))
        except Skip as exc:
            lines.append(f"{service}: not probed ({exc})")
            bad.append(service)

    def get(target: tuple[str, str, str]) -> container_exec.HttpProbe:
        return container_exec.http_get(client, target[2], target[1], facts.budget())

    for (service, url, _), probe in zip(targets, parallel_map(get, targets), strict=True):
        if probe.ok:
            lines.append(f"{service}: {url} -> {probe.status} in {probe.latency_ms} ms")
        else:
            why = f"HTTP {probe.status}" if probe.status else f"{probe.error}: {probe.error_text}"
            lines.append(f"{service}: {url} -> {why}")
            bad.append(service)
    if not lines:
        raise Skip("needs dify.containers (no api or plugin_daemon container)")
    if bad:
        return Finding(
            "dify.health",
            Status.FAIL,
            f"health endpoint not answering: {', '.join(bad)}",
            detail="; ".join(lines),
            remedy=f"Read `dify-ollama logs {bad[0]}`; restart it with "
            f"`dify-ollama restart {bad[0]}`.",
            service=bad[0],
        )
    return Finding(
        "dify.health", Status.OK, "api and plugin_daemon health endpoints answer", "; ".join(lines)
    )
