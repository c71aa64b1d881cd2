"""`check`: every probe at once, each in its own thread, under one hard deadline."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from config.i18n import gettext as _
from config.settings import Settings
from handlers import timeline
from handlers.engine_cache import EngineCache
from handlers.facts import Facts, Skip
from handlers.probes import ON_REQUEST, PROBES, Probe, account_for_skips, with_prerequisites
from handlers.probes.chat import CHAT_MODES
from handlers.project import DifyProject
from handlers.redact import Redactor, environment_secrets, redactor_for
from handlers.results import Finding, HandlerError, Report, Status

log = logging.getLogger(__name__)


def _run_probe(finding_id: str, probe: Probe, facts: Facts) -> Finding:
    try:
        return probe(facts)
    except Skip as exc:
        return Finding(finding_id, Status.SKIP, str(exc))
    except HandlerError as exc:
        return Finding(finding_id, Status.FAIL, str(exc))
    except Exception as exc:  # a probe bug must not hide the other findings
        log.exception("probe %s crashed", finding_id)
        text = _("probe error: {error}").format(error=f"{type(exc).__name__}: {exc}")
        return Finding(finding_id, Status.FAIL, text[:300])


def _redactor(facts: Facts) -> Redactor:
    """The logs' redactor, fed with this check's `.env`, the environment of every container it
    inspected and the bot's own tokens, so that no finding can carry a secret whatever evidence
    a probe quoted."""
    try:
        values = facts.env().values
    except (Skip, HandlerError):
        values = {}
    env_path = None
    with contextlib.suppress(Skip, HandlerError):
        env_path = facts.project().env_path
    containers = environment_secrets(facts.inspected_environments(), env_path=env_path)
    return redactor_for(facts.settings, env_values=values, env_path=env_path, extra=containers)


def _scrub(finding: Finding, redactor: Redactor) -> Finding:
    return replace(
        finding,
        summary=redactor.redact(finding.summary),
        detail=redactor.redact(finding.detail),
        remedy=redactor.redact(finding.remedy),
    )


def run_check(
    settings: Settings,
    only: tuple[str, ...] = (),
    *,
    since: float | None = None,
    cache: EngineCache | None = None,
    chat: str = "off",
) -> Report:
    """Run the probes (all, or the ids in `only` with their prerequisites) and return the
    report within the deadline.

    `since` (a time.monotonic() value: the process start, the Slack request) is where the
    report's `before_first_probe_ms` counts from. `cache`: what a long-running process keeps
    between checks (handlers/engine_cache.py). `chat`: "on" adds dify.chat (as naming it in
    `only` does), "if-loaded" adds it when its model is loaded already; with it, the report
    may take CHAT_TIMEOUT (its own deadline) instead of CHECK_TIMEOUT.
    """
    if chat not in CHAT_MODES:
        raise ValueError(f"chat must be one of {CHAT_MODES}")
    if "dify.chat" in only and chat == "off":
        chat = "on"
    start = time.monotonic()
    spans = timeline.Timeline(start)
    run = with_prerequisites(only)
    if chat == "off":
        run = tuple(fid for fid in run if fid not in ON_REQUEST)
    with timeline.recording(spans):
        facts = Facts(settings, cache, chat)
        facts.read_plugins = "dify.plugin" in run
        deadline = facts.deadline
        if chat != "off" and "dify.chat" in run:
            deadline = max(deadline, start + settings.chat_timeout + 1.5)
        found, durations = _run_probes(facts, run, deadline)
    facts.close()
    probes = [fid for fid, _ in PROBES if fid in run]
    redactor = _redactor(facts)
    findings = []
    for finding_id in probes:
        finding = found.get(finding_id) or Finding(
            finding_id,
            Status.FAIL,
            _("no answer within the check deadline ({seconds} s)").format(
                seconds=f"{deadline - start:.1f}"
            ),
            remedy=_(
                "Something on the host is hanging; run `dify-ollama check` again and read "
                "the probe's evidence."
            ),
        )
        finding = replace(
            finding, duration_ms=durations.get(finding_id, int(1000 * (deadline - start)))
        )
        findings.append(_scrub(finding, redactor))
    context = {"host": facts.hostname}
    project, _error = facts.project_or_error() if "dify.project" in found else (None, None)
    if project is not None:
        context.update({"dify_dir": str(project.working_dir), "project": project.name})
    return Report(
        account_for_skips(tuple(findings)),
        int((time.monotonic() - start) * 1000),
        context,
        _timing(spans, since, project, redactor),
    )


def _run_probes(
    facts: Facts, wanted: Collection[str], deadline: float
) -> tuple[dict[str, Finding], dict[str, int]]:
    """The probes in `wanted`, each in its own thread; what answered before `deadline`, and
    how long each took."""
    probes = [(fid, probe) for fid, probe in PROBES if fid in wanted]
    results: queue.Queue[tuple[str, Finding, int]] = queue.Queue()

    def run(finding_id: str, probe: Probe) -> None:
        began = time.monotonic()
        with timeline.span(f"probe {finding_id}"):
            finding = _run_probe(finding_id, probe, facts)
        results.put((finding_id, finding, int((time.monotonic() - began) * 1000)))

    for finding_id, probe in probes:
        threading.Thread(
            target=timeline.in_context(run),
            args=(finding_id, probe),
            name=f"probe-{finding_id}",
            daemon=True,
        ).start()
    found: dict[str, Finding] = {}
    durations: dict[str, int] = {}
    while len(found) < len(probes):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            finding_id, finding, took = results.get(timeout=remaining)
        except queue.Empty:
            break
        found[finding_id] = finding
        durations[finding_id] = took
    return found, durations


def _timing(
    spans: timeline.Timeline, since: float | None, project: DifyProject | None, redactor: Redactor
) -> dict[str, Any]:
    """The report's timing: spans with container ids named by their service, and redacted
    like every finding (a span may name a URL, and a URL may carry a password)."""
    names = {}
    if project is not None:
        names = {info.id[:12]: service for service, info in project.containers.items()}

    def rename(name: str) -> str:
        for short, service in names.items():
            name = name.replace(short, service)
        return redactor.redact(name)

    first = spans.first_start("probe ")
    before = None
    if since is not None and first is not None:
        before = max(0, round((first - since) * 1000))
    return {"before_first_probe_ms": before, "spans": spans.to_json(rename)}


def verification_check(settings: Settings) -> Report:
    """The check after fix-env/restart: every probe, and the chat test when the model is loaded
    already (the finding says which happened: a chat would load it otherwise)."""
    return run_check(settings, chat="if-loaded")
