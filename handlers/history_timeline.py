"""The history as a timeline: incidents (start, end, findings, actions), the reach latency and
the status of every check over a window. Pure: built from rows read before."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from config.i18n import gettext as _
from handlers.history import CheckRow
from handlers.results import Status
from handlers.watch import ActionDone

_SINCE = re.compile(r"([0-9]{1,4})([mhdw])")
_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_WINDOW = 3650 * 86400


def parse_since(text: str) -> float:
    """`24h`, `7d`, `90m`, `2w` -> seconds; ValueError with a one-line message otherwise."""
    match = _SINCE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"`{text[:40]}` is not a window such as 24h, 7d, 90m or 2w")
    seconds = int(match.group(1)) * _UNIT[match.group(2)]
    if not 0 < seconds <= MAX_WINDOW:
        raise ValueError(f"`{text[:40]}` must be between 1 minute and 10 years")
    return float(seconds)


@dataclass(frozen=True)
class Incident:
    start: float
    end: float | None  # None: still going at the last check
    findings: tuple[str, ...]
    worst: Status
    actions: tuple[ActionDone, ...]

    def duration(self, now: float) -> float:
        return (self.end if self.end is not None else now) - self.start


@dataclass(frozen=True)
class Timeline:
    since: float
    now: float
    checks: int
    incidents: tuple[Incident, ...]
    latency: tuple[tuple[float, float | None], ...]  # (at, reach latency in ms) per check
    band: tuple[tuple[float, Status], ...]  # (at, verdict) per check
    actions: tuple[ActionDone, ...]
    problem: str | None = None  # the history was unavailable: why

    def to_json(self) -> dict[str, Any]:
        return {
            "since": iso(self.since),
            "until": iso(self.now),
            "checks": self.checks,
            "problem": self.problem,
            "incidents": [
                {
                    "start": iso(i.start),
                    "end": iso(i.end) if i.end is not None else None,
                    "duration_s": round(i.duration(self.now)),
                    "worst": str(i.worst),
                    "findings": list(i.findings),
                    "actions": [_action_json(a) for a in i.actions],
                }
                for i in self.incidents
            ],
            "latency_ms": [{"at": iso(at), "ms": ms} for at, ms in self.latency],
            "actions": [_action_json(a) for a in self.actions],
        }


def _action_json(action: ActionDone) -> dict[str, Any]:
    return {
        "at": iso(action.at),
        "user": action.user,
        "command": action.command,
        "outcome": action.outcome,
    }


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def build_timeline(
    checks: Sequence[CheckRow],
    actions: Sequence[ActionDone],
    since: float,
    now: float,
    problem: str | None = None,
) -> Timeline:
    """Incidents are the stretches of consecutive checks with a warning or a failure; each
    ends at the first check without one after it."""
    incidents: list[Incident] = []
    start: float | None = None
    found: dict[str, None] = {}
    worst = Status.WARN
    for check in checks:
        bad = check.problems
        if bad:
            if start is None:
                start, found, worst = check.at, {}, Status.WARN
            found.update(dict.fromkeys(bad))
            if check.status is Status.FAIL:
                worst = Status.FAIL
        elif start is not None:
            incidents.append(_incident(start, check.at, found, worst, actions))
            start = None
    if start is not None:
        incidents.append(_incident(start, None, found, worst, actions))
    return Timeline(
        since=since,
        now=now,
        checks=len(checks),
        incidents=tuple(incidents),
        latency=tuple((c.at, c.latency_ms) for c in checks),
        band=tuple((c.at, c.status) for c in checks),
        actions=tuple(actions),
        problem=problem,
    )


def _incident(
    start: float,
    end: float | None,
    found: dict[str, None],
    worst: Status,
    actions: Sequence[ActionDone],
) -> Incident:
    until = end if end is not None else float("inf")
    done = tuple(a for a in actions if start <= a.at <= until)
    return Incident(start, end, tuple(found), worst, done)


def span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return _("{s} s").format(s=seconds)
    if seconds < 7200:
        return _("{m} min").format(m=seconds // 60)
    if seconds < 2 * 86400:
        return _("{h} h {m} min").format(h=seconds // 3600, m=seconds % 3600 // 60)
    return _("{d} d {h} h").format(d=seconds // 86400, h=seconds % 86400 // 3600)


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def timeline_lines(timeline: Timeline) -> list[str]:
    """The timeline for a terminal: a header, then one block per incident, newest first."""
    lines = [
        _("History {since} .. {now}: {checks} checks, {count} incident(s)").format(
            since=stamp(timeline.since),
            now=stamp(timeline.now),
            checks=timeline.checks,
            count=len(timeline.incidents),
        )
    ]
    if timeline.problem:
        lines.append(_("warning: {what}").format(what=timeline.problem))
    for incident in reversed(timeline.incidents):
        end = stamp(incident.end) if incident.end is not None else _("ongoing")
        lines.append(
            f"  {incident.worst.upper():4}  {stamp(incident.start)} .. {end} "
            f"({span(incident.duration(timeline.now))}): {', '.join(incident.findings)}"
        )
        for action in incident.actions:
            lines.append(
                "        "
                + _("{time} {command} by {who} -> {outcome}").format(
                    time=stamp(action.at),
                    command=action.command,
                    who=action.user,
                    outcome=action.outcome,
                )
            )
    return lines
