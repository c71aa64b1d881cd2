"""Probes of Dify's configuration: database base URLs, `.env`, drift, default secrets."""

from __future__ import annotations

import hashlib
from pathlib import Path

from config.i18n import gettext as _
from handlers.compose_file import ENVIRONMENT
from handlers.envfile import read_env_file
from handlers.facts import Facts, Skip
from handlers.layout import KIND_ENV_FILES, KIND_SHARED_ENV, env_consumers
from handlers.results import Finding, HandlerError, Status
from handlers.urls import PUBLIC_OPENAI_BASE, bad_suffix, is_loopback_url, without_credentials

GOOD_BASE_URL = "http://host.docker.internal:11434"
# Keys compared in env.drift even though .env holds them: their change is what the on-call
# person is usually waiting for, so a difference there is a failure, not a warning.
CRITICAL_DRIFT = frozenset({"OPENAI_API_BASE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"})

# SHA-256 prefixes of the public default values in Dify's .env.example (1.x), and the `.env`
# key each belongs to. Digests, so this repository does not carry the literal passwords; the
# values of these keys in the `.env.example` beside the `.env` count as public too. A container
# running with one of them (under whatever name: plugin_daemon's SERVER_KEY is
# PLUGIN_DAEMON_KEY) is flagged.
PUBLIC_DEFAULTS = {
    "SECRET_KEY": "0f44b34c6311bcb5",
    "DB_PASSWORD": "b8ba9c61cc9ff699",
    "REDIS_PASSWORD": "b8ba9c61cc9ff699",
    "PLUGIN_DAEMON_KEY": "481c0ab8a6f9e9dc",
    "PLUGIN_DIFY_INNER_API_KEY": "217ef27f7b2a2f89",
    "SANDBOX_API_KEY": "a4b744973756871c",
    "WEAVIATE_API_KEY": "1989496b76464a0c",
}


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def dify_base_url(facts: Facts) -> Finding:
    facts.project()
    try:
        rows = facts.credentials()
    except HandlerError as exc:
        return Finding(
            "dify.base_url",
            Status.WARN,
            _("could not read Ollama base URLs from Dify's database"),
            detail=str(exc),
            remedy=_("Check the URL by hand in Dify: Settings -> Model Provider -> Ollama."),
        )
    if not rows:
        return Finding(
            "dify.base_url",
            Status.OK,
            _("no Ollama model credentials in Dify's database"),
            detail="tables provider_model_credentials, provider_models and "
            "load_balancing_model_configs hold no Ollama rows",
        )
    bad, lines = [], []
    for row in rows:
        where = f"{row.model} ({row.model_type}, {row.table})"
        if not row.config_readable or row.base_url is None:
            lines.append(f"{where}: base_url not readable")
            continue
        shown = without_credentials(row.base_url)
        problem = None
        if is_loopback_url(row.base_url):
            problem = "loopback: inside the container that is the container itself"
        elif suffix := bad_suffix(row.base_url):
            problem = f"ends in {suffix}: the Ollama plugin appends /api/chat itself (404)"
        lines.append(f"{where}: {shown}" + (f" <- {problem}" if problem else ""))
        if problem:
            bad.append(row)
    if bad:
        models = ", ".join(sorted({r.model for r in bad}))
        return Finding(
            "dify.base_url",
            Status.FAIL,
            _("Ollama base URL wrong for {count} model credential(s): {models}").format(
                count=len(bad), models=models
            ),
            detail="; ".join(lines),
            remedy=_(
                "Set the base URL of these models to {url} (no path) in Dify: "
                "Settings -> Model Provider -> Ollama, or run `dify-ollama fix-env` which "
                "rewrites them in the database and clears Dify's credential cache."
            ).format(url=GOOD_BASE_URL),
            service="plugin_daemon",
            fixable=True,
        )
    return Finding(
        "dify.base_url",
        Status.OK,
        _("{count} Ollama credential(s), base URLs fine").format(count=len(rows)),
        "; ".join(lines),
    )


def _effective(facts: Facts, key: str) -> tuple[str, str] | None:
    """(value, where it comes from) of `key` as the model callers get it from the compose
    files: on Dify 1.14+ an envs/*.env file may set it where `.env` does not. None when the
    files cannot be read or no model caller gets the key."""
    config = facts.compose_or_none()
    if config is None:
        return None
    for service in facts.model_callers() or list(config.services):
        svc = config.services.get(service)
        if svc is not None and key in svc.environment:
            source = svc.sources.get(key, ENVIRONMENT)
            return svc.environment[key], source
    return None


def env_file(facts: Facts) -> Finding:
    project = facts.project()
    path = project.env_path
    example = path.parent / ".env.example"
    layout = facts.layout()
    try:
        env = facts.env_file()
    except HandlerError as exc:
        missing = not path.exists() and not path.is_symlink()
        required = (
            " Every Dify service lists ./.env as a required env_file: Compose refuses to "
            "start or recreate anything without it."
            if layout.kind == KIND_ENV_FILES
            else ""
        )
        return Finding(
            "env.file",
            Status.FAIL,
            _(".env problem: {error}").format(error=exc),
            detail=f"expected at {path}"
            + (f"; {example} exists" if example.exists() else "")
            + required,
            remedy=(
                _("`cp {example} {path}` (or `dify-ollama fix-env`), then `dify-ollama restart`.")
                if missing
                else _("Make {path} a readable regular file for the bot's user.")
            ).format(example=example, path=path),
            fixable=missing and example.exists(),
        )
    legacy = "plugin_daemon" in project.containers or layout.kind in (
        KIND_ENV_FILES,
        KIND_SHARED_ENV,
    )
    note = (
        " On Dify 1.x OPENAI_API_BASE is a legacy variable: the Ollama plugin uses the base URL "
        "stored per model (see dify.base_url)."
        if legacy
        else ""
    )
    base = env.get("OPENAI_API_BASE")
    where = str(path)
    effective = _effective(facts, "OPENAI_API_BASE") if layout.kind == KIND_ENV_FILES else None
    if effective is not None and effective[1] != ENVIRONMENT:
        # 1.14+: the containers get the value of the last env_file that sets it.
        base, where = effective[0], effective[1]
    if base and is_loopback_url(base):
        return Finding(
            "env.file",
            Status.FAIL,
            _("OPENAI_API_BASE points at loopback ({url})").format(url=without_credentials(base)),
            detail=f"set in {where}: inside a container 127.0.0.1 is the container itself.{note}",
            remedy=_(
                "Set OPENAI_API_BASE=http://host.docker.internal:11434/v1 in {path} "
                "(`dify-ollama fix-env`), then recreate the containers (`dify-ollama restart`)."
            ).format(path=path),
            fixable=True,
        )
    value = without_credentials(base) if base else _("unset")
    summary = _(".env present ({count} keys), OPENAI_API_BASE={value}").format(
        count=len(env.values), value=value
    )
    if where != str(path):
        summary += _(" (from {name})").format(name=Path(where).name)
    if base and base.rstrip("/") == PUBLIC_OPENAI_BASE:
        summary += _(" (the public default)")
    if env.undecodable:
        lines = ", ".join(str(n) for n in env.undecodable[:10])
        return Finding(
            "env.file",
            Status.WARN,
            _(".env line {lines} is not valid UTF-8").format(lines=lines),
            detail=f"{path}: Compose v1 (docker-compose) refuses the whole file; v2 passes the "
            f"bytes on unchanged. {summary}.{note}",
            remedy=_(
                "Re-save {path} as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), then "
                "`dify-ollama restart`."
            ).format(path=path),
        )
    return Finding("env.file", Status.OK, summary, detail=f"{path}.{note}".strip())


def _drift_services(facts: Facts) -> list[str]:
    """The services with a container whose environment follows `.env` (what `restart`
    recreates): the shared-environment services, and on 1.14+ every env_file reader."""
    project = facts.project()
    config = facts.compose_or_none()
    declared = set(config.services) if config is not None else set(project.containers)
    return [s for s in env_consumers(config, declared) if s in project.containers]


def env_drift(facts: Facts) -> Finding:
    env = facts.env()
    client_services = _drift_services(facts)
    if not client_services:
        raise Skip(_("needs dify.containers (none of api, worker, plugin_daemon has a container)"))
    drift: dict[str, list[str]] = {}
    critical: set[str] = set()
    for service in client_services:
        # Each container as the Compose that created it reads the files (v1 and v2 differ).
        config = facts.compose(facts.flavour(service)).services.get(service)
        info = facts.project().container(service)
        if config is None or info is None:
            continue
        running = facts.container_env(info.id)
        for key, expected in config.environment.items():
            actual = running.get(key)
            if actual is None and expected == "":
                continue
            if actual != expected:
                drift.setdefault(key, []).append(service)
                if key in CRITICAL_DRIFT:
                    critical.add(key)
    del env  # read for its side effect: a missing .env skips this probe with its reason
    if not drift:
        return Finding(
            "env.drift",
            Status.OK,
            _("running environment of {services} matches .env and the compose files").format(
                services=", ".join(client_services)
            ),
        )
    keys = sorted(drift)
    services = sorted({s for v in drift.values() for s in v})
    shown = []
    for key in keys[:12]:
        # names only: the values may be secrets
        shown.append(f"{key} ({', '.join(drift[key])})")
    more = f" and {len(keys) - 12} more" if len(keys) > 12 else ""
    return Finding(
        "env.drift",
        Status.FAIL if critical else Status.WARN,
        _(
            "{count} variable(s) differ between .env and the running containers: recreate needed"
        ).format(count=len(keys)),
        detail="differs: " + ", ".join(shown) + more + ". `docker restart` does not re-read "
        ".env; the environment is fixed when a container is created.",
        remedy=_(
            "`dify-ollama restart` (recreates {services} with `docker compose up -d --no-deps`)."
        ).format(services=", ".join(services)),
        service=services[0],
    )


# The names a secret of `.env` takes inside containers, besides its own.
SECRET_ALIASES = {
    "DB_PASSWORD": ("POSTGRES_PASSWORD", "MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD", "PGPASSWORD"),
    "REDIS_PASSWORD": ("REDISCLI_AUTH",),
    "PLUGIN_DAEMON_KEY": ("SERVER_KEY", "DIFY_AGENT_PLUGIN_DAEMON_API_KEY"),
    "PLUGIN_DIFY_INNER_API_KEY": ("DIFY_INNER_API_KEY", "INNER_API_KEY_FOR_PLUGIN"),
    "SANDBOX_API_KEY": ("CODE_EXECUTION_API_KEY", "API_KEY"),
    "WEAVIATE_API_KEY": ("AUTHENTICATION_APIKEY_ALLOWED_KEYS",),
}


def _public_digests(facts: Facts) -> dict[str, set[str]]:
    """digest -> the `.env` keys whose public default it is: Dify's built-in defaults, plus
    the values of those keys in the `.env.example` beside `.env`."""
    digests: dict[str, set[str]] = {}
    for key, digest in PUBLIC_DEFAULTS.items():
        digests.setdefault(digest, set()).add(key)
    example = facts.project().env_path.parent / ".env.example"
    if example.exists():
        try:
            values = read_env_file(example).values
        except HandlerError:
            values = {}
        for key in PUBLIC_DEFAULTS:
            if values.get(key):
                digests.setdefault(_digest(values[key]), set()).add(key)
    return digests


def _secret_keys(name: str, value: str, digests: dict[str, set[str]]) -> set[str]:
    """The `.env` secrets a container variable holds the public default of: by value, and
    where several share a value (DB_PASSWORD, REDIS_PASSWORD), by the variable's name."""
    keys = digests.get(_digest(value)) if value else None
    if not keys:
        return set()
    named = {k for k in keys if name == k or name in SECRET_ALIASES.get(k, ())}
    return named or set(keys)


def _running_with(facts: Facts) -> dict[str, dict[str, str]]:
    """service -> its environment: the containers' (what they really run with), else, with no
    containers, what the compose files give them."""
    project = facts.project()
    if project.containers:
        return {s: facts.container_env(i.id) for s, i in sorted(project.containers.items())}
    config = facts.compose_or_none()
    return {s: dict(c.environment) for s, c in (config.services if config else {}).items()}


def dify_secrets(facts: Facts) -> Finding:
    """Judges the values the containers actually run with: a public default in a key no
    container gets (PLUGIN_DAEMON_KEY on 0.x) is no finding."""
    project = facts.project()
    digests = _public_digests(facts)
    users: dict[str, list[str]] = {}
    for service, env in _running_with(facts).items():
        for name, value in env.items():
            for key in _secret_keys(name, value, digests):
                if service not in users.setdefault(key, []):
                    users[key].append(service)
    flagged = [k for k in PUBLIC_DEFAULTS if k in users]
    if flagged:
        return Finding(
            "dify.secrets",
            Status.WARN,
            _("{count} secret(s) still have Dify's public default value").format(
                count=len(flagged)
            ),
            detail="keys: "
            + ", ".join(f"{k} (in {', '.join(users[k])})" for k in flagged)
            + " (values are never shown)",
            remedy=_(
                "Generate new values (`openssl rand -base64 42`) for these keys in {path}; "
                "change DB_PASSWORD/REDIS_PASSWORD together with the data they protect, then "
                "recreate the stack."
            ).format(path=project.env_path),
        )
    return Finding(
        "dify.secrets",
        Status.OK,
        _("no container runs with one of Dify's public default secrets"),
    )
