"""dify.errors: what Dify itself complained about recently, each complaint linked to the finding
that explains it. The last 15 minutes of api, worker and plugin_daemon, read by the engine
(`since`, bounded lines and bytes), redacted before they are scanned; counts and the first line
of each, never more."""

from __future__ import annotations

from collections.abc import Sequence

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
            "could not read the logs of api, worker or plugin_daemon",
            detail="; ".join(notes),
            remedy="`dify-ollama logs api` shows why (log driver, engine).",
        )
    if not hits:
        return Finding(
            "dify.errors",
            Status.OK,
            f"no known Ollama error in the last {WINDOW_MINUTES} min of "
            f"{', '.join(log.service for log in read)}",
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
        f"Dify logged {first.count} x `{first.shown}` in the last {WINDOW_MINUTES} min "
        f"{_link(first)}" + (f" (and {len(hits) - 1} more kinds)" if len(hits) > 1 else ""),
        detail="; ".join(lines + notes),
        remedy="Each line names the finding that explains it: "
        + (", ".join(dict.fromkeys(linked)) or "see the hints")
        + ". Errors logged before a fix stay in the log for up to "
        f"{WINDOW_MINUTES} min: check again afterwards.",
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
