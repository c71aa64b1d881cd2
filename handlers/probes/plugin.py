"""dify.plugin: the Ollama plugin is installed for every tenant that has Ollama models, and
its runtime came up in plugin_daemon (its database, its recent log, its environment)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from config.i18n import gettext as _
from handlers import runtime_facts
from handlers.facts import Facts, Skip
from handlers.plugin_db import OLLAMA_PLUGIN, Installation
from handlers.results import Finding, HandlerError, Status
from handlers.timeline import in_context
from handlers.urls import without_credentials


def no_plugins() -> str:
    """The start of the skip on 0.x (probes.NOT_APPLICABLE matches it)."""
    return _("Dify 0.x has no plugins")


def recreate() -> str:
    return _(
        "then recreate plugin_daemon (`dify-ollama restart plugin_daemon` recreates it when "
        ".env changed; a plain `docker restart` does not re-read .env)"
    )


DOWNLOAD_WORDS = (
    "failed to install dependencies",
    "pip",
    "uv ",
    "could not find a version",
    "no matching distribution",
    "connection",
    "timed out",
    "timeout",
    "network is unreachable",
    "temporary failure in name resolution",
)


@dataclass(frozen=True)
class RuntimeTrouble:
    kind: str  # init | download | signature | runtime
    count: int
    sample: str
    plugin: str  # the plugin the daemon named before the failure ("" when none)


def runtime_troubles(lines: Sequence[str]) -> list[RuntimeTrouble]:
    """plugin_daemon's complaints about starting a plugin, attributed to the plugin named by
    the "init environment for plugin <id>" line before them (linear: one pass, substrings)."""
    current = ""
    found: dict[tuple[str, str], list[str]] = {}
    for line in lines:
        low = line.lower()
        at = low.find("init environment for plugin ")
        if at >= 0 and "failed" not in low:
            current = line[at + len("init environment for plugin ") :].split()[0][:200]
            continue
        # "init environment failed" (older daemons), "failed to init environment" (newer:
        # launcher_local.go joins it after the cause, so it may end a line of its own)
        if "init environment" in low and "failed" in low:
            kind = "download" if any(w in low for w in DOWNLOAD_WORDS) else "init"
        elif "bad signature" in low or "plugin verification has been enabled" in low:
            kind = "signature"
        elif "plugin runtime not found" in low or "no available node, plugin not found" in low:
            kind = "runtime"
        else:
            continue
        found.setdefault((kind, current), []).append(line.strip()[:300])
    return [RuntimeTrouble(k, len(v), v[0], p) for (k, p), v in found.items()]


def _ours(trouble: RuntimeTrouble) -> bool:
    # A failure the daemon did not attribute could be ours; another plugin's is not.
    return not trouble.plugin or trouble.plugin.startswith(OLLAMA_PLUGIN + ":")


# (.env name, the names plugin_daemon reads it by): compose hands PLUGIN_PYTHON_ENV_INIT_TIMEOUT
# to the daemon as PYTHON_ENV_INIT_TIMEOUT (docker-compose.yaml; the daemon's
# internal/types/app/config.go reads PYTHON_ENV_INIT_TIMEOUT, PIP_MIRROR_URL).
_OFFLINE_KEYS = (
    ("PIP_MIRROR_URL", ("PIP_MIRROR_URL",)),
    (
        "PLUGIN_PYTHON_ENV_INIT_TIMEOUT",
        ("PYTHON_ENV_INIT_TIMEOUT", "PLUGIN_PYTHON_ENV_INIT_TIMEOUT"),
    ),
    ("HTTP_PROXY", ("HTTP_PROXY", "http_proxy")),
    ("HTTPS_PROXY", ("HTTPS_PROXY", "https_proxy")),
)


def _offline_settings(env: Mapping[str, str]) -> str:
    """What the running daemon has for the settings an offline install needs."""
    parts = []
    for shown, names in _OFFLINE_KEYS:
        value = next((env[n] for n in names if env.get(n)), None)
        parts.append(f"{shown}={without_credentials(value) if value else 'unset'}")
    return ", ".join(parts)


def verdict(
    tenants: Sequence[str],
    installations: Sequence[Installation],
    db_error: str | None,
    troubles: Sequence[RuntimeTrouble],
    daemon_env: Mapping[str, str],
    database: str,
    log_error: str | None = None,
) -> Finding:
    """The finding, from what was read (pure: the tests give it any situation)."""
    by_tenant = {i.tenant_id: i for i in installations}
    lines = [f"plugin database {database}"]
    for i in installations:
        lines.append(
            f"tenant {i.tenant_id}: {i.identifier.split('@')[0]} ({i.runtime_type or '?'} "
            f"runtime{'' if i.package else ', package row missing'})"
        )
    ours = [t for t in troubles if _ours(t)]
    others = [t for t in troubles if not _ours(t)]
    for t in ours:
        lines.append(f"plugin_daemon log: {t.count} x {t.kind}: {t.sample}")
    if others:
        lines.append(
            "other plugins failing: " + ", ".join(sorted({t.plugin.split("@")[0] for t in others}))
        )
    missing = [t for t in tenants if t not in by_tenant]
    if db_error is None and missing:
        lines.append("without the plugin: " + ", ".join(missing))
        return Finding(
            "dify.plugin",
            Status.FAIL,
            _(
                "the Ollama plugin is not installed for {missing} of {total} workspace(s) with "
                "Ollama models"
            ).format(missing=len(missing), total=len(tenants)),
            detail="; ".join(lines)
            + " (Dify shows: plugin not found / the model list stays empty)",
            remedy=_(
                "Install it in those workspaces: Dify -> Plugins -> Install plugin -> "
                "Marketplace -> Ollama ({plugin}); an offline host: download the .difypkg "
                "on a connected machine and use Install from local package file."
            ).format(plugin=OLLAMA_PLUGIN),
            service="plugin_daemon",
        )
    unpacked = [t for t in tenants if t in by_tenant and not by_tenant[t].package]
    if db_error is None and unpacked:
        return Finding(
            "dify.plugin",
            Status.FAIL,
            _(
                "the Ollama plugin installed for {count} workspace(s) refers to a package "
                "plugin_daemon does not have"
            ).format(count=len(unpacked)),
            detail="; ".join(lines)
            + " (plugin_installations names a plugin_unique_identifier with no row in plugins: "
            "the daemon cannot start it; Dify shows: plugin not found)",
            remedy=_(
                "Reinstall the plugin in those workspaces (Dify -> Plugins -> Ollama -> "
                "Remove, then install it again from the Marketplace or a local .difypkg)."
            ),
            service="plugin_daemon",
        )
    kinds = {t.kind for t in ours}
    if "signature" in kinds:
        return Finding(
            "dify.plugin",
            Status.FAIL,
            _("plugin_daemon refuses the Ollama plugin package: bad signature"),
            detail="; ".join(lines),
            remedy=_(
                "Install the package from the Marketplace, or (a repackaged plugin you trust) "
                "set FORCE_VERIFYING_SIGNATURE=false in .env, {recreate}."
            ).format(recreate=recreate()),
            service="plugin_daemon",
        )
    if kinds & {"download", "init"}:
        offline = "download" in kinds
        remedy = (
            _(
                "The plugin's Python packages could not be downloaded (an offline host?): set "
                "PIP_MIRROR_URL to a reachable mirror, or HTTP_PROXY/HTTPS_PROXY (with NO_PROXY "
                "for Dify's own services) for plugin_daemon, and raise "
                "PLUGIN_PYTHON_ENV_INIT_TIMEOUT for slow links ({settings}), {recreate}."
            ).format(settings=_offline_settings(daemon_env), recreate=recreate())
            if offline
            else _(
                "Read `dify-ollama logs plugin_daemon 500` for the cause, fix it, then "
                "reinstall the plugin (Plugins -> Ollama -> Remove, then install again)."
            )
        )
        return Finding(
            "dify.plugin",
            Status.FAIL,
            _("the Ollama plugin's runtime did not start: init environment failed")
            + (_(" (package download)") if offline else ""),
            detail="; ".join(lines),
            remedy=remedy,
            service="plugin_daemon",
        )
    if "runtime" in kinds:
        return Finding(
            "dify.plugin",
            Status.FAIL,
            _("plugin_daemon has no running Ollama plugin (plugin runtime not found)"),
            detail="; ".join(lines),
            remedy=_(
                "`dify-ollama restart plugin_daemon`; if it persists, reinstall the plugin "
                "(Plugins -> Ollama -> Remove, then install again) and read "
                "`dify-ollama logs plugin_daemon 500`."
            ),
            service="plugin_daemon",
        )
    if db_error is not None:
        return Finding(
            "dify.plugin",
            Status.WARN,
            _("could not read plugin_daemon's database: installation not verified"),
            detail=f"{db_error}; " + "; ".join(lines),
            remedy=_("Check Dify -> Plugins for Ollama; `dify-ollama logs plugin_daemon`."),
            service="plugin_daemon",
        )
    if log_error is not None and tenants:
        return Finding(
            "dify.plugin",
            Status.WARN,
            _(
                "the Ollama plugin is installed, but plugin_daemon's log could not be read: its "
                "runtime is not verified"
            ),
            detail=f"plugin_daemon log: {log_error}; " + "; ".join(lines),
            remedy=_("`dify-ollama logs plugin_daemon` shows what the daemon says."),
            service="plugin_daemon",
        )
    if not tenants:
        return Finding(
            "dify.plugin",
            Status.OK,
            _("no Ollama model configured in Dify, so no workspace needs the plugin"),
            detail="; ".join(lines),
        )
    versions = sorted({by_tenant[t].version for t in tenants})
    return Finding(
        "dify.plugin",
        Status.OK,
        _(
            "Ollama plugin {versions} installed for {count} workspace(s); no runtime error in "
            "plugin_daemon's last 15 min"
        ).format(versions=", ".join(versions), count=len(tenants)),
        detail="; ".join(lines),
    )


def dify_plugin(facts: Facts) -> Finding:
    if not runtime_facts.has_plugin_daemon(facts):
        return Finding(
            "dify.plugin",
            Status.SKIP,
            _("{no_plugins}: api and worker call Ollama themselves").format(
                no_plugins=no_plugins()
            ),
        )
    cid = facts.running("plugin_daemon")
    # plugin_daemon's database and log do not depend on Dify's rows: read all three at once
    # (one after the other, the second psql doubled this probe's time and led the check).
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe-plugin") as pool:
        state_job = pool.submit(in_context(runtime_facts.plugin_state), facts)
        log_job = pool.submit(in_context(runtime_facts.recent_log), facts, "plugin_daemon")
        try:
            rows = facts.credentials()
        except HandlerError as exc:
            raise Skip(_("needs dify.base_url ({error})").format(error=exc)) from None
        state, log = state_job.result(), log_job.result()
    tenants = sorted({r.tenant_id for r in rows if r.provider == runtime_facts.OLLAMA_PROVIDER_1X})
    return verdict(
        tenants,
        state.installations,
        state.error,
        runtime_troubles(log.lines),
        facts.container_env(cid),
        state.database,
        log.error,
    )
