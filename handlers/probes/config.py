"""Probes of Dify's configuration: database base URLs, `.env`, drift, default secrets."""

from __future__ import annotations

import hashlib

from handlers.envfile import read_env_file
from handlers.facts import Facts, Skip
from handlers.results import Finding, HandlerError, Status
from handlers.urls import PUBLIC_OPENAI_BASE, bad_suffix, is_loopback_url, without_credentials

GOOD_BASE_URL = "http://host.docker.internal:11434"
# Keys compared in env.drift even though .env holds them: their change is what the on-call
# person is usually waiting for, so a difference there is a failure, not a warning.
CRITICAL_DRIFT = frozenset({"OPENAI_API_BASE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"})

# SHA-256 prefixes of the public default values in Dify's .env.example (1.x). Digests, so this
# repository does not carry the literal passwords; any same-named key still equal to the
# `.env.example` beside the `.env` is flagged too.
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
            "could not read Ollama base URLs from Dify's database",
            detail=str(exc),
            remedy="Check the URL by hand in Dify: Settings -> Model Provider -> Ollama.",
        )
    if not rows:
        return Finding(
            "dify.base_url",
            Status.OK,
            "no Ollama model credentials in Dify's database",
            detail="tables provider_model_credentials / provider_models hold no Ollama rows",
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
            f"Ollama base URL wrong for {len(bad)} model credential(s): {models}",
            detail="; ".join(lines),
            remedy=f"Set the base URL of these models to {GOOD_BASE_URL} (no path) in Dify: "
            "Settings -> Model Provider -> Ollama, or run `dify-ollama fix-env` which rewrites "
            "them in the database and clears Dify's credential cache.",
            service="plugin_daemon",
            fixable=True,
        )
    return Finding(
        "dify.base_url",
        Status.OK,
        f"{len(rows)} Ollama credential(s), base URLs fine",
        "; ".join(lines),
    )


def env_file(facts: Facts) -> Finding:
    project = facts.project()
    path = project.env_path
    example = path.parent / ".env.example"
    try:
        env = read_env_file(path)
    except HandlerError as exc:
        missing = not path.exists() and not path.is_symlink()
        return Finding(
            "env.file",
            Status.FAIL,
            f".env problem: {exc}",
            detail=f"expected at {path}" + (f"; {example} exists" if example.exists() else ""),
            remedy=(
                f"`cp {example} {path}` (or `dify-ollama fix-env`), then `dify-ollama restart`."
                if missing
                else f"Make {path} a readable regular file for the bot's user."
            ),
            fixable=missing and example.exists(),
        )
    legacy = "plugin_daemon" in project.containers
    note = (
        " On Dify 1.x OPENAI_API_BASE is a legacy variable: the Ollama plugin uses the base URL "
        "stored per model (see dify.base_url)."
        if legacy
        else ""
    )
    base = env.get("OPENAI_API_BASE")
    if base and is_loopback_url(base):
        return Finding(
            "env.file",
            Status.FAIL,
            f"OPENAI_API_BASE points at loopback ({without_credentials(base)})",
            detail=f"{path}: inside a container 127.0.0.1 is the container itself.{note}",
            remedy="Set OPENAI_API_BASE=http://host.docker.internal:11434/v1 (`dify-ollama "
            "fix-env`), then recreate the containers (`dify-ollama restart`).",
            fixable=True,
        )
    value = without_credentials(base) if base else "unset"
    status = Status.OK
    summary = f".env present ({len(env.values)} keys), OPENAI_API_BASE={value}"
    if base and base.rstrip("/") == PUBLIC_OPENAI_BASE:
        summary += " (the public default)"
    if env.undecodable:
        lines = ", ".join(str(n) for n in env.undecodable[:10])
        return Finding(
            "env.file",
            Status.WARN,
            f".env line {lines} is not valid UTF-8",
            detail=f"{path}: Compose v1 (docker-compose) refuses the whole file; v2 passes the "
            f"bytes on unchanged. {summary}.{note}",
            remedy=f"Re-save {path} as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), then "
            "`dify-ollama restart`.",
        )
    return Finding("env.file", status, summary, detail=f"{path}.{note}".strip())


def env_drift(facts: Facts) -> Finding:
    env = facts.env()
    compose = facts.compose()
    client_services = [
        s
        for s in ("api", "worker", "worker_beat", "plugin_daemon")
        if s in facts.project().containers
    ]
    if not client_services:
        raise Skip("needs dify.containers (none of api, worker, plugin_daemon has a container)")
    drift: dict[str, list[str]] = {}
    critical: set[str] = set()
    for service in client_services:
        config = compose.services.get(service)
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
            f"running environment of {', '.join(client_services)} matches .env and the "
            "compose files",
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
        f"{len(keys)} variable(s) differ between .env and the running containers: recreate needed",
        detail="differs: " + ", ".join(shown) + more + ". `docker restart` does not re-read "
        ".env; the environment is fixed when a container is created.",
        remedy=f"`dify-ollama restart` (recreates {', '.join(services)} with "
        "`docker compose up -d --no-deps`).",
        service=services[0],
    )


def dify_secrets(facts: Facts) -> Finding:
    project = facts.project()
    env = facts.env()
    example_values: dict[str, str] = {}
    example = project.env_path.parent / ".env.example"
    if example.exists():
        try:
            example_values = read_env_file(example).values
        except HandlerError:
            example_values = {}
    flagged = []
    for key, digest in PUBLIC_DEFAULTS.items():
        value = env.values.get(key)
        if value is None:
            # unset: compose falls back to the default written in docker-compose.yaml
            flagged.append(f"{key} (unset: compose uses the public default)")
            continue
        if value and (_digest(value) == digest or example_values.get(key) == value):
            flagged.append(key)
    if flagged:
        return Finding(
            "dify.secrets",
            Status.WARN,
            f"{len(flagged)} secret(s) still have Dify's public default value",
            detail="keys: " + ", ".join(flagged) + " (values are never shown)",
            remedy="Generate new values (`openssl rand -base64 42`) for these keys in "
            f"{project.env_path}; change DB_PASSWORD/REDIS_PASSWORD together with the data "
            "they protect, then recreate the stack.",
        )
    return Finding("dify.secrets", Status.OK, "no public default secret in .env")
