"""Facts the probes of Dify's model runtime share (plugin, capabilities, timeouts, chat,
errors), each computed once per check through `Facts.memo`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from handlers import plugin_db, service_logs, timeline
from handlers.facts import Facts, Skip
from handlers.parallel import parallel_map
from handlers.redact import redactor_for
from handlers.results import HandlerError

OLLAMA_PROVIDER_1X = "langgenius/ollama/ollama"
LOG_SERVICES = ("api", "worker", "plugin_daemon")


def has_plugin_daemon(facts: Facts) -> bool:
    """Whether this Dify release runs plugins (1.x): a plugin_daemon container or service."""
    project = facts.project()
    if "plugin_daemon" in project.containers:
        return True
    try:
        return "plugin_daemon" in facts.compose().services
    except Skip:
        return False


def recent_log(facts: Facts, service: str) -> service_logs.RecentLog:
    """The service's last 15 minutes of log, redacted with `.env` and its own environment."""

    def compute() -> service_logs.RecentLog:
        cid = facts.project().running(service)
        if cid is None:
            return service_logs.RecentLog(service, (), False, "not running")
        redactor = redactor_for(
            facts.settings, env_values=facts.env_or_empty(), container_env=facts.container_env(cid)
        )
        return service_logs.recent_log(facts.client(), service, cid, redactor, facts.budget())

    return facts.memo(f"logs:{service}", compute)


def recent_logs(facts: Facts) -> list[service_logs.RecentLog]:
    """api, worker and plugin_daemon (where they run), read at the same time."""
    project = facts.project()
    services = [s for s in LOG_SERVICES if s in project.containers]
    return parallel_map(lambda s: recent_log(facts, s), services)


@dataclass(frozen=True)
class PluginState:
    installations: tuple[plugin_db.Installation, ...]
    database: str
    error: str | None = None  # could not read it (the probe says so; never "ok" on it)


def plugin_state(facts: Facts) -> PluginState:
    def compute() -> PluginState:
        project = facts.project()
        daemon = project.running("plugin_daemon")
        daemon_env = facts.container_env(daemon) if daemon else {}
        name = plugin_db.plugin_database_name(daemon_env, facts.env_or_empty())
        mysql = project.running("db_mysql")
        service = "db_mysql" if mysql else project.db_service
        cid = mysql or project.running(service)
        if service is None or cid is None:
            return PluginState((), name, "no running database container")
        db_env = facts.container_env(cid)
        if mysql:
            where = plugin_db.PluginDatabase(
                service, cid, "mysql", name, "root", db_env.get("MYSQL_ROOT_PASSWORD")
            )
        else:
            user = db_env.get("POSTGRES_USER") or facts.env_or_empty().get("DB_USERNAME")
            where = plugin_db.PluginDatabase(service, cid, "postgresql", name, user or "postgres")
            # Read by the psql of Dify's rows (Facts.credentials) when it could; by its own
            # exec otherwise, which also says why it could not.
            output = facts.plugin_follow_up()
            if output is not None and output.database == name:
                installed = plugin_db.from_follow_up(output)
                if installed is not None:
                    return PluginState(tuple(installed), name)
        try:
            found = plugin_db.read_installations(facts.client(), where, facts.budget())
        except HandlerError as exc:
            return PluginState((), name, str(exc))
        return PluginState(tuple(found), name)

    return facts.memo("plugin_state", compute)


@dataclass(frozen=True)
class ModelShow:
    """Ollama's POST /api/show for one model: what it says the model can do."""

    model: str
    capabilities: tuple[str, ...] | None  # None: this Ollama does not report them
    context_length: int | None  # the model's maximum, from model_info
    num_ctx: int | None  # a Modelfile PARAMETER num_ctx, if any
    error: str | None = None


def _context_length(info: dict[str, Any]) -> int | None:
    arch = info.get("general.architecture")
    value = info.get(f"{arch}.context_length") if arch else None
    if value is None:
        value = next((v for k, v in info.items() if str(k).endswith(".context_length")), None)
    return int(value) if isinstance(value, int | float) else None


def _num_ctx(parameters: object) -> int | None:
    for line in str(parameters or "").splitlines()[:200]:
        words = line.split()
        if len(words) == 2 and words[0] == "num_ctx" and words[1].isdigit():
            return int(words[1])
    return None


def show(facts: Facts, model: str) -> ModelShow:
    def compute() -> ModelShow:
        base = facts.settings.ollama_url.rstrip("/")
        try:
            with timeline.span("http POST /api/show"):
                answer = facts.http().post(
                    f"{base}/api/show", json={"model": model}, timeout=facts.budget()
                )
        except httpx.HTTPError as exc:
            return ModelShow(model, None, None, None, f"{type(exc).__name__}")
        try:
            data = answer.json()
        except json.JSONDecodeError:
            data = {}
        if answer.status_code != 200 or not isinstance(data, dict):
            error = data.get("error") if isinstance(data, dict) else None
            return ModelShow(model, None, None, None, str(error or f"HTTP {answer.status_code}"))
        caps = data.get("capabilities")
        info: dict[str, Any] = (
            data["model_info"] if isinstance(data.get("model_info"), dict) else {}
        )
        return ModelShow(
            model,
            tuple(str(c) for c in caps) if isinstance(caps, list) else None,
            _context_length(info),
            _num_ctx(data.get("parameters")),
        )

    return facts.memo(f"show:{model}", compute)


def shows(facts: Facts, models: list[str]) -> dict[str, ModelShow]:
    return dict(zip(models, parallel_map(lambda m: show(facts, m), models), strict=True))


def by_every_name(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Ollama's model entries by every name they answer to (`name`, `model`, without the
    implicit `:latest`), as Dify may store any of them."""
    named: dict[str, dict[str, Any]] = {}
    for entry in entries:
        for key in ("name", "model"):
            name = str(entry.get(key) or "")
            if name:
                named[name] = entry
                named[name.removesuffix(":latest")] = entry
    return named


def loaded_models(facts: Facts) -> dict[str, dict[str, Any]]:
    """/api/ps: the models loaded now, by every name they answer to."""
    return by_every_name(facts.ollama().loaded)


def pulled_models(facts: Facts) -> dict[str, dict[str, Any]]:
    """/api/tags: the models pulled, by every name they answer to."""
    return by_every_name(facts.ollama().models)
