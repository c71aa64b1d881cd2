"""Plain result objects shared by every handler, the CLI and the Slack app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

# A long operation tells how it goes, one short line at a time (the CLI prints them, Slack
# edits one message with them).
Progress = Callable[[str], None]


def no_progress(_: str) -> None:
    """A Progress that shows nothing."""
    return None


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


# Worst first: the overall verdict is the worst status of any finding. A skip ranks lowest:
# check reports every skip's prerequisites, and a skip no failing prerequisite explains is made
# a warning (handlers.probes.account_for_skips); a report of nothing but skips is SKIP, exit 1.
_RANK = {Status.FAIL: 3, Status.WARN: 2, Status.OK: 1, Status.SKIP: 0}


@dataclass(frozen=True)
class Finding:
    """One established fact about the stack.

    `id` is a stable interface (alerts key on it). `detail` is the evidence, `remedy` the exact
    command or setting to change. `service` names the compose service the finding is about,
    when there is one, so a renderer can offer that service's logs. `fixable` is true when
    `fix-env` knows how to repair it. `metrics` carries the probe's key figures as numbers
    (e.g. `plugin_daemon_ms`: reach latency), so history and /metrics never parse the text.
    """

    id: str
    status: Status
    summary: str
    detail: str = ""
    remedy: str = ""
    service: str | None = None
    fixable: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    # How long its probe ran, waits on shared facts included (set by the check; not a fact).
    duration_ms: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    duration_ms: int
    # Where and what was checked: host name, Dify folder, compose project. Never secrets.
    context: dict[str, str] = field(default_factory=dict)
    # Where the time went: `before_first_probe_ms` (from the process start or the request,
    # when known) and `spans` (handlers/timeline.py). Measurements, not facts.
    timing: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def status(self) -> Status:
        """The worst finding's status; SKIP when nothing at all was checked (every finding a
        skip): that is never "ok"."""
        if self.findings and all(f.status is Status.SKIP for f in self.findings):
            return Status.SKIP
        worst = Status.OK
        for finding in self.findings:
            if _RANK[finding.status] > _RANK[worst]:
                worst = finding.status
        return worst

    def finding(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status in (Status.FAIL, Status.WARN))

    def to_json(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "findings": [f.to_json() for f in self.findings],
            "duration_ms": self.duration_ms,
            "context": dict(self.context),
            "timing": dict(self.timing),
        }

    @property
    def exit_code(self) -> int:
        """1 when something fails or nothing could be checked; 0 otherwise."""
        return 1 if self.status in (Status.FAIL, Status.SKIP) else 0


class HandlerError(Exception):
    """A failure a handler explains to the user in one line (never containing a secret)."""
