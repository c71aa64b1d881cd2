"""`check`: every probe at once, each in its own thread, under one hard deadline."""

from __future__ import annotations

import logging
import queue
import threading
import time

from config.settings import Settings
from handlers.facts import Facts, Skip
from handlers.probes import PROBES, Probe
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


def _redactor(facts: Facts) -> list[str]:
    """Secret values known to this check, longest first, so no finding can carry one."""
    try:
        values = facts.env().secret_values()
    except (Skip, HandlerError):
        values = set()
    for token in (
        facts.settings.slack_bot_token,
        facts.settings.slack_app_token,
        facts.settings.slack_signing_secret,
    ):
        if token is not None and token.get_secret_value():
            values.add(token.get_secret_value())
    return sorted(values, key=len, reverse=True)


def _scrub(finding: Finding, secrets: list[str]) -> Finding:
    fields = {}
    for name in ("summary", "detail", "remedy"):
        text = getattr(finding, name)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, "[REDACTED]")
        fields[name] = text
    return Finding(
        finding.id,
        finding.status,
        fields["summary"],
        fields["detail"],
        fields["remedy"],
        finding.service,
        finding.fixable,
    )


def run_check(settings: Settings, only: tuple[str, ...] = ()) -> Report:
    """Run the probes (all, or the ids in `only`) and return the report within the deadline."""
    start = time.monotonic()
    facts = Facts(settings)
    probes = [(fid, probe) for fid, probe in PROBES if not only or fid in only]
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
    secrets = _redactor(facts)
    findings = []
    for finding_id, _ in probes:
        finding = found.get(finding_id) or Finding(
            finding_id,
            Status.FAIL,
            f"no answer within the check deadline ({deadline - start:.1f} s)",
            remedy="Something on the host is hanging; run `dify-ollama check` again and read "
            "the probe's evidence.",
        )
        findings.append(_scrub(finding, secrets))
    context = {"host": facts.hostname}
    project, _ = facts.project_or_error() if "dify.project" in found else (None, None)
    if project is not None:
        context.update({"dify_dir": str(project.working_dir), "project": project.name})
    return Report(tuple(findings), int((time.monotonic() - start) * 1000), context)
