"""`check`: every probe at once, each in its own thread, under one hard deadline."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import replace

from config.settings import Settings
from handlers.facts import Facts, Skip
from handlers.probes import PROBES, Probe, account_for_skips, with_prerequisites
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
        return Finding(finding_id, Status.FAIL, f"probe error: {type(exc).__name__}: {exc}"[:300])


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


def run_check(settings: Settings, only: tuple[str, ...] = ()) -> Report:
    """Run the probes (all, or the ids in `only` with their prerequisites) and return the
    report within the deadline."""
    start = time.monotonic()
    facts = Facts(settings)
    run = with_prerequisites(only)
    probes = [(fid, probe) for fid, probe in PROBES if fid in run]
    results: queue.Queue[tuple[str, Finding]] = queue.Queue()
    for finding_id, probe in probes:
        threading.Thread(
            target=lambda f=finding_id, p=probe: results.put((f, _run_probe(f, p, facts))),
            name=f"probe-{finding_id}",
            daemon=True,
        ).start()
    deadline = facts.deadline
    found: dict[str, Finding] = {}
    while len(found) < len(probes):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            finding_id, finding = results.get(timeout=remaining)
        except queue.Empty:
            break
        found[finding_id] = finding
    redactor = _redactor(facts)
    findings = []
    for finding_id, _ in probes:
        finding = found.get(finding_id) or Finding(
            finding_id,
            Status.FAIL,
            f"no answer within the check deadline ({deadline - start:.1f} s)",
            remedy="Something on the host is hanging; run `dify-ollama check` again and read "
            "the probe's evidence.",
        )
        findings.append(_scrub(finding, redactor))
    context = {"host": facts.hostname}
    project, _ = facts.project_or_error() if "dify.project" in found else (None, None)
    if project is not None:
        context.update({"dify_dir": str(project.working_dir), "project": project.name})
    elapsed = int((time.monotonic() - start) * 1000)
    return Report(account_for_skips(tuple(findings)), elapsed, context)
