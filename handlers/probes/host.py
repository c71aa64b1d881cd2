"""Probes of the host itself: Dify's web entry and free resources."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx

from config.i18n import gettext as _
from handlers.facts import Facts, Skip, http_client
from handlers.results import Finding, Status

GIB = 1024**3
# Dify's documented minimum: 2 CPU cores and 4 GiB of memory.
MIN_CPUS = 2
MIN_MEMORY = 4 * GIB
MIN_DISK = 5 * GIB
CRITICAL_DISK = 512 * 1024**2


def dify_web(facts: Facts) -> Finding:
    env = facts.env_or_empty()
    facts.project()  # no project: nothing to say about its web port
    port = env.get("EXPOSE_NGINX_PORT") or "80"
    if not port.isdigit():
        return Finding(
            "dify.web",
            Status.WARN,
            _("EXPOSE_NGINX_PORT={port} is not a port number").format(port=repr(port)),
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        with http_client(facts.budget(), tls=False) as http:  # http:// only
            response = http.get(url)
    except httpx.TimeoutException:
        return Finding(
            "dify.web",
            Status.FAIL,
            _("Dify's web entry {url} does not answer in {seconds} s").format(
                url=url, seconds=f"{facts.timeout:g}"
            ),
            remedy=_("Check the nginx container: `dify-ollama logs nginx`."),
            service="nginx",
        )
    except httpx.HTTPError as exc:
        return Finding(
            "dify.web",
            Status.FAIL,
            _("nothing answers at {url}").format(url=url),
            detail=str(exc)[:200],
            remedy=_(
                "Start nginx (`docker compose up -d nginx` in Dify's folder); if port "
                "{port} is taken by another program, change EXPOSE_NGINX_PORT."
            ).format(port=port),
            service="nginx",
        )
    code = response.status_code
    if code >= 500:
        return Finding(
            "dify.web",
            Status.FAIL,
            _("{url} answers HTTP {code}: nginx is up but api/web behind it are not").format(
                url=url, code=code
            ),
            remedy=_("`dify-ollama logs api` and `dify-ollama logs web`."),
            service="api",
        )
    return Finding("dify.web", Status.OK, _("{url} answers HTTP {code}").format(url=url, code=code))


def _meminfo() -> dict[str, int]:
    values = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return values


def available_memory() -> int:
    """MemAvailable in bytes (0 when unknown)."""
    return _meminfo().get("MemAvailable", 0)


def host_resources(facts: Facts) -> Finding:
    mem = _meminfo()
    total, available = mem.get("MemTotal", 0), mem.get("MemAvailable", 0)
    cpus = os.cpu_count() or 0
    try:
        folder = facts.project().working_dir
    except Skip:
        folder = Path.cwd()
    try:
        disk = shutil.disk_usage(folder if folder.exists() else Path("/"))
        free_disk = disk.free
    except OSError:
        free_disk = -1
    largest = 0
    largest_name = ""
    answer = facts.ollama()
    for model in answer.models:
        size = int(model.get("size") or 0)
        if size > largest:
            largest, largest_name = size, str(model.get("name"))
    facts_line = _(
        "{cpus} CPUs, memory {available} GiB available of {total} GiB, "
        "disk {free} GiB free at {folder}"
    ).format(
        cpus=cpus,
        available=f"{available / GIB:.1f}",
        total=f"{total / GIB:.1f}",
        free=f"{free_disk / GIB:.1f}",
        folder=folder,
    )
    if largest:
        facts_line += _(", largest model {name} {size} GiB").format(
            name=largest_name, size=f"{largest / GIB:.1f}"
        )
    problems, failing = [], False
    if 0 <= free_disk < CRITICAL_DISK:
        problems.append(_("disk almost full: backups and container logs will fail"))
        failing = True
    elif 0 <= free_disk < MIN_DISK:
        problems.append(_("less than {size} GiB free disk").format(size=MIN_DISK // GIB))
    if total and total < MIN_MEMORY:
        problems.append(_("less memory than Dify's minimum of 4 GiB"))
    if cpus and cpus < MIN_CPUS:
        problems.append(_("fewer CPUs than Dify's minimum of 2"))
    if largest and available and largest > available:
        problems.append(
            _(
                "{name} ({size} GiB) does not fit in available memory: it will load slowly or fail"
            ).format(name=largest_name, size=f"{largest / GIB:.1f}")
        )
    if problems:
        return Finding(
            "host.resources",
            Status.FAIL if failing else Status.WARN,
            "; ".join(problems),
            detail=facts_line,
            remedy=_(
                "Free disk space (`docker system df`, `docker image prune`), or give the host "
                "more memory / use a smaller model (`ollama list`)."
            ),
        )
    return Finding("host.resources", Status.OK, facts_line)
