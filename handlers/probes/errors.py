"""dify.errors: what Dify itself complained about recently, each complaint linked to the finding
that explains it. The last 15 minutes of api, worker and plugin_daemon, read by the engine
(`since`, bounded lines and bytes), redacted before they are scanned; counts and the first line
of each, never more."""

from __future__ import annotations

from collections.abc import Sequence

from config.i18n import gettext as _
from handlers import error_texts, runtime_facts, service_logs
from handlers.facts import Facts
from handlers.results import Finding, Status
from handlers.urls import host_of, port_of

WINDOW_MINUTES = service_logs.WINDOW_SECONDS // 60


def _link(hit: error_texts.Hit) -> str:
    return f"-> {hit.text.finding}" if hit.text.finding else f"({hit.text.hint})"


def verdict(logs: Sequence[service_logs.RecentLog], hits: Sequence[error_texts.Hit]) -> Finding:
    """The finding from the logs read and what was found in them (pure)."""
    read = [log for log in logs if log.error is None]
    notes = [service_logs.describe(log) for log in logs]
    if not read:
        return Finding(
            "dify.errors",
            Status.WARN,
            _("could not read the logs of api, worker or plugin_daemon"),
            detail="; ".join(notes),
            remedy=_("`dify-ollama logs api` shows why (log driver, engine)."),
        )
    if not hits:
        return Finding(
            "dify.errors",
            Status.OK,
            _("no known Ollama error in the last {minutes} min of {services}").format(
                minutes=WINDOW_MINUTES, services=", ".join(log.service for log in read)
            ),
            detail="; ".join(notes),
        )
    lines = [
        f"{h.count} x `{h.shown}` in {', '.join(h.services)} {_link(h)}; first: {h.sample}"
        for h in hits
    ]
    first = hits[0]
    linked = [h.text.finding for h in hits if h.text.finding]
    return Finding(
        "dify.errors",
        Status.WARN,
        _("Dify logged {count} x {text} in the last {minutes} min {link}").format(
            count=first.count, text=f"`{first.shown}`", minutes=WINDOW_MINUTES, link=_link(first)
        )
        + (_(" (and {count} more kinds)").format(count=len(hits) - 1) if len(hits) > 1 else ""),
        detail="; ".join(lines + notes),
        remedy=_(
            "Each line names the finding that explains it: {findings}. Errors logged before a "
            "fix stay in the log for up to {minutes} min: check again afterwards."
        ).format(
            findings=", ".join(dict.fromkeys(linked)) or _("see the hints"),
            minutes=WINDOW_MINUTES,
        ),
        service=first.services[0],
    )


def dify_errors(facts: Facts) -> Finding:
    logs = runtime_facts.recent_logs(facts)
    hosts = []
    for url in facts.dify_urls():
        host = host_of(url.url)
        if host:  # as URLs show them, and as urllib3's errors do (host='h', port=11434)
            hosts += [f"{host}:{port_of(url.url)}", f"port={port_of(url.url)}"]
    hits = error_texts.scan(((log.service, log.lines) for log in logs), hosts)
    return verdict(logs, hits)
