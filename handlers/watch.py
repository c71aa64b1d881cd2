"""The watch's decisions: (previous state, a check report) -> (new state, notices). Pure.

One open incident per host at a time: the findings that turn bad together open it (one alert
message), later ones join it, each recovery is noted in its thread, and the incident closes
when every member has recovered. A finding counts as bad after `fail_after` consecutive bad
runs (or at once when it flaps), and as recovered after `fail_after` consecutive good runs
while no longer flapping: a flapping finding keeps its incident open and only its count grows.
A skipped finding says nothing either way. When the engine is down, or Dify is taken down on
purpose (no containers of the project at all), only the findings that still mean something are
considered, so one message says so and the consequences stay silent.

The bot renders the notices (bot/render/watch.py) and posts them; nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from handlers.results import Finding, Report, Status

HOST = "local"  # every record is keyed by host; one host per bot for now
FLAP_WINDOW = 10  # observations remembered per finding
FLAP_CHANGES = 4  # status changes within the window that make a finding "flapping"
DETAIL_LIMIT = 1500  # evidence kept per finding in the state (the report has all of it)

Situation = Literal["normal", "engine-down", "dify-stopped"]
NoticeKind = Literal["opened", "joined", "changed", "flapping", "recovered", "closed", "updated"]
BAD = (Status.FAIL, Status.WARN)

# What still means something when the engine is down / Dify was taken down: the rest fails or
# skips only as a consequence and must not add noise.
HOST_SIDE = ("docker.engine", "ollama.host", "ollama.bind")
WHEN_STOPPED = (*HOST_SIDE, "dify.project", "dify.containers")

_DIGITS = re.compile(r"[0-9]{1,30}")


def situation_of(report: Report) -> Situation:
    engine = report.finding("docker.engine")
    if engine is not None and engine.status is Status.FAIL:
        return "engine-down"
    project = report.finding("dify.project")
    if project is not None and project.status is Status.FAIL:
        return "dify-stopped"
    containers = report.finding("dify.containers")
    if (
        containers is not None
        and containers.status is Status.FAIL
        and containers.metrics.get("containers") == 0
    ):
        return "dify-stopped"
    return "normal"


def _considered(report: Report, situation: Situation) -> dict[str, Finding]:
    keep = {"engine-down": HOST_SIDE, "dify-stopped": WHEN_STOPPED}.get(situation)
    return {
        f.id: f
        for f in report.findings
        if f.status is not Status.SKIP and (keep is None or f.id in keep)
    }


@dataclass(frozen=True)
class Track:
    """What the watch remembers of one finding id."""

    status: Status = Status.OK
    bad_streak: int = 0
    ok_streak: int = 0
    recent: tuple[bool, ...] = ()  # bad? per observation, oldest first

    def observe(self, status: Status) -> Track:
        bad = status in BAD
        return Track(
            status=status,
            bad_streak=self.bad_streak + 1 if bad else 0,
            ok_streak=0 if bad else self.ok_streak + 1,
            recent=(*self.recent, bad)[-FLAP_WINDOW:],
        )

    @property
    def changes(self) -> int:
        return sum(1 for a, b in zip(self.recent, self.recent[1:], strict=False) if a != b)

    @property
    def flapping(self) -> bool:
        return self.changes >= FLAP_CHANGES


@dataclass(frozen=True)
class Seen:
    """A finding as an alert shows it."""

    id: str
    status: Status
    summary: str
    detail: str = ""
    remedy: str = ""
    service: str | None = None
    fixable: bool = False
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, finding: Finding) -> Seen:
        return cls(
            finding.id,
            finding.status,
            finding.summary,
            finding.detail[:DETAIL_LIMIT],
            finding.remedy,
            finding.service,
            finding.fixable,
            dict(finding.metrics),
        )

    def to_finding(self) -> Finding:
        return Finding(
            self.id,
            self.status,
            self.summary,
            self.detail,
            self.remedy,
            self.service,
            self.fixable,
            metrics=dict(self.metrics),
        )


@dataclass(frozen=True)
class Member:
    finding: Seen
    since: float  # when the watch confirmed it bad
    was: Status = Status.OK  # the status before it went bad (what changed)
    recovered_at: float | None = None
    flaps: int = 0  # times it went bad again after a good run, within the incident

    @property
    def open(self) -> bool:
        return self.recovered_at is None


@dataclass(frozen=True)
class Incident:
    id: str
    host: str
    opened_at: float
    members: tuple[Member, ...]
    situation: Situation = "normal"
    ref: str | None = None  # where the bot posted it (a Slack message ts); None until posted
    closed_at: float | None = None
    flapping_noted: bool = False

    def member(self, finding_id: str) -> Member | None:
        return next((m for m in self.members if m.finding.id == finding_id), None)

    @property
    def flaps(self) -> int:
        return sum(m.flaps for m in self.members)

    @property
    def finding_ids(self) -> tuple[str, ...]:
        return tuple(m.finding.id for m in self.members)


@dataclass(frozen=True)
class ActionDone:
    """A mutating action (fix-env, restart) from the history, for "recovered ..., by whom"."""

    at: float
    user: str
    command: str
    outcome: str


@dataclass(frozen=True)
class Mutes:
    all_until: float | None = None
    findings: Mapping[str, float] = field(default_factory=dict)  # finding id -> until

    def muted(self, finding_id: str, now: float) -> bool:
        if self.all_until is not None and self.all_until > now:
            return True
        until = self.findings.get(finding_id)
        return until is not None and until > now

    def active(self, now: float) -> Mutes:
        return Mutes(
            self.all_until if self.all_until is not None and self.all_until > now else None,
            {k: v for k, v in self.findings.items() if v > now},
        )


@dataclass(frozen=True)
class Notice:
    """Something to tell: `opened` posts the alert; `updated` only edits it; every other kind
    goes into the alert's thread and edits the alert too."""

    kind: NoticeKind
    incident: Incident
    finding_ids: tuple[str, ...] = ()
    actions: tuple[ActionDone, ...] = ()

    @property
    def in_thread(self) -> bool:
        return self.kind not in ("opened", "updated")


@dataclass(frozen=True)
class WatchState:
    host: str = HOST
    tracks: Mapping[str, Track] = field(default_factory=dict)
    incident: Incident | None = None
    situation: Situation = "normal"
    checked_at: float | None = None
    last: Mapping[str, Status] = field(default_factory=dict)  # the last report, per finding

    def with_ref(self, incident_id: str, ref: str) -> WatchState:
        """The bot posted the incident's alert as `ref`."""
        if self.incident is None or self.incident.id != incident_id:
            return self
        return replace(self, incident=replace(self.incident, ref=ref))


def _changed(old: Seen, new: Finding) -> bool:
    if old.status is not new.status:
        return True
    return _DIGITS.sub("#", old.summary[:500]) != _DIGITS.sub("#", new.summary[:500])


def step(
    state: WatchState,
    report: Report,
    *,
    now: float,
    fail_after: int,
    mutes: Mutes | None = None,
    actions: Iterable[ActionDone] = (),
) -> tuple[WatchState, list[Notice]]:
    """Fold one report into the state; return the new state and what to tell."""
    mutes = mutes or Mutes()
    situation = situation_of(report)
    considered = _considered(report, situation)
    previous = dict(state.tracks)
    tracks = dict(previous)
    for finding_id, finding in considered.items():
        tracks[finding_id] = tracks.get(finding_id, Track()).observe(finding.status)

    incident = state.incident
    notes: list[tuple[NoticeKind, tuple[str, ...]]] = []
    members: list[Member] = list(incident.members) if incident is not None else []
    flapping_noted = incident.flapping_noted if incident is not None else False

    # Members of the open incident: recovered, flapping, changed.
    recovered: list[str] = []
    for index, member in enumerate(members):
        seen = considered.get(member.finding.id)
        if seen is None:
            continue
        finding = seen
        track = tracks[finding.id]
        if member.open and finding.status not in BAD:
            if track.ok_streak >= fail_after and not track.flapping:
                members[index] = replace(member, recovered_at=now, finding=Seen.of(finding))
                recovered.append(finding.id)
            continue
        if finding.status not in BAD:
            continue
        if not member.open:
            continue  # handled with the new candidates below (joins again)
        before = previous.get(finding.id)
        if before is not None and before.status not in BAD:
            members[index] = replace(member, flaps=member.flaps + 1, finding=Seen.of(finding))
            notes.append(("updated" if flapping_noted else "flapping", (finding.id,)))
            flapping_noted = True
        elif _changed(member.finding, finding):
            members[index] = replace(member, finding=Seen.of(finding))
            # While it flaps, its text changes with every bounce: the alert shows the latest.
            quiet = flapping_noted or track.flapping
            notes.append(("updated" if quiet else "changed", (finding.id,)))

    # New bad findings: confirmed by their streak, or flapping.
    joined: list[str] = []
    for finding_id, finding in considered.items():
        if finding.status not in BAD or mutes.muted(finding_id, now):
            continue
        track = tracks[finding_id]
        if track.bad_streak < fail_after and not track.flapping:
            continue
        current = next((m for m in members if m.finding.id == finding_id), None)
        if current is not None and current.open:
            continue
        was = previous[finding_id].status if finding_id in previous else Status.OK
        if current is not None:  # recovered earlier in this incident, bad again
            index = members.index(current)
            members[index] = replace(
                current, recovered_at=None, flaps=current.flaps + 1, finding=Seen.of(finding)
            )
        else:
            members.append(Member(Seen.of(finding), since=now, was=_before_bad(was, track)))
        joined.append(finding_id)

    if incident is None and joined:
        incident = Incident(
            id=f"{state.host}-{int(now * 1000)}",
            host=state.host,
            opened_at=now,
            members=tuple(members),
            situation=situation,
        )
        notes.insert(0, ("opened", tuple(joined)))
    elif incident is not None:
        incident = replace(
            incident,
            members=tuple(members),
            situation=situation if joined else incident.situation,
            flapping_noted=flapping_noted,
        )
        if joined:
            notes.append(("joined", tuple(joined)))
        if recovered:
            notes.append(("recovered", tuple(recovered)))

    notices: list[Notice] = []
    closed = incident is not None and all(not m.open for m in incident.members)
    if incident is not None and closed:
        incident = replace(incident, closed_at=now)
        done = tuple(a for a in actions if incident.opened_at <= a.at <= now)
        notes = [n for n in notes if n[0] != "recovered"]
        notes.append(("closed", incident.finding_ids))
        notices = [Notice(kind, incident, ids, done) for kind, ids in notes]
    elif incident is not None:
        notices = [Notice(kind, incident, ids) for kind, ids in notes]
    notices = [n for n in notices if not all(mutes.muted(i, now) for i in n.finding_ids)]

    new_state = WatchState(
        host=state.host,
        tracks=tracks,
        incident=None if closed else incident,
        situation=situation,
        checked_at=now,
        last={f.id: f.status for f in report.findings},
    )
    return new_state, notices


def _before_bad(last_status: Status, track: Track) -> Status:
    """What the finding was before this bad stretch: ok unless it was never seen good."""
    return Status.OK if any(not bad for bad in track.recent) else last_status


# --- persistence (plain JSON; handlers/watch_store.py reads and writes the file) -------------
def _seen_json(seen: Seen) -> dict[str, Any]:
    return {
        "id": seen.id,
        "status": str(seen.status),
        "summary": seen.summary,
        "detail": seen.detail,
        "remedy": seen.remedy,
        "service": seen.service,
        "fixable": seen.fixable,
        "metrics": dict(seen.metrics),
    }


def _seen_of(data: Mapping[str, Any]) -> Seen:
    return Seen(
        id=str(data["id"]),
        status=Status(data["status"]),
        summary=str(data.get("summary", "")),
        detail=str(data.get("detail", "")),
        remedy=str(data.get("remedy", "")),
        service=data.get("service"),
        fixable=bool(data.get("fixable", False)),
        metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
    )


def incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "host": incident.host,
        "opened_at": incident.opened_at,
        "situation": incident.situation,
        "ref": incident.ref,
        "closed_at": incident.closed_at,
        "flapping_noted": incident.flapping_noted,
        "members": [
            {
                "finding": _seen_json(m.finding),
                "since": m.since,
                "was": str(m.was),
                "recovered_at": m.recovered_at,
                "flaps": m.flaps,
            }
            for m in incident.members
        ],
    }


def incident_of(data: Mapping[str, Any]) -> Incident:
    situation = data.get("situation", "normal")
    return Incident(
        id=str(data["id"]),
        host=str(data.get("host", HOST)),
        opened_at=float(data["opened_at"]),
        situation=situation if situation in ("engine-down", "dify-stopped") else "normal",
        ref=data.get("ref"),
        closed_at=data.get("closed_at"),
        flapping_noted=bool(data.get("flapping_noted", False)),
        members=tuple(
            Member(
                finding=_seen_of(m["finding"]),
                since=float(m["since"]),
                was=Status(m.get("was", "ok")),
                recovered_at=m.get("recovered_at"),
                flaps=int(m.get("flaps", 0)),
            )
            for m in data.get("members", [])
        ),
    )


def state_json(state: WatchState) -> dict[str, Any]:
    return {
        "version": 1,
        "host": state.host,
        "situation": state.situation,
        "checked_at": state.checked_at,
        "last": {k: str(v) for k, v in state.last.items()},
        "tracks": {
            k: {
                "status": str(t.status),
                "bad_streak": t.bad_streak,
                "ok_streak": t.ok_streak,
                "recent": [int(b) for b in t.recent],
            }
            for k, t in state.tracks.items()
        },
        "incident": incident_json(state.incident) if state.incident else None,
    }


def state_of(data: Mapping[str, Any]) -> WatchState:
    """The state from its JSON; raises KeyError/ValueError/TypeError on a damaged file."""
    situation = data.get("situation", "normal")
    return WatchState(
        host=str(data.get("host", HOST)),
        situation=situation if situation in ("engine-down", "dify-stopped") else "normal",
        checked_at=data.get("checked_at"),
        last={str(k): Status(v) for k, v in (data.get("last") or {}).items()},
        tracks={
            str(k): Track(
                status=Status(t["status"]),
                bad_streak=int(t["bad_streak"]),
                ok_streak=int(t["ok_streak"]),
                recent=tuple(bool(b) for b in t.get("recent", ()))[-FLAP_WINDOW:],
            )
            for k, t in (data.get("tracks") or {}).items()
        },
        incident=incident_of(data["incident"]) if data.get("incident") else None,
    )
