"""The history: every check run, alert and mutating action, in SQLite under STATE_DIR.

WAL mode (the bot writes while `dify-ollama history` reads), rows older than HISTORY_DAYS
pruned. The audit JSONL stays the record of who asked what; this is what happened when.
A damaged or locked database never stops anything: every call degrades to "no history"
and `problem` says why (a damaged file for good, a lock until it is released).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from handlers.results import Report, Status
from handlers.watch import ActionDone

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT = 0.5  # seconds a write waits for another writer before giving up this once
RETRY_AFTER = 30.0  # seconds before a locked database is tried again
PRUNE_EVERY = 3600.0
SUMMARY_LIMIT = 300
# The reach latency the chart draws: from plugin_daemon (Dify 1.x runs the Ollama plugin there),
# else the slowest caller (0.x has no plugin_daemon).
LATENCY_KEYS = ("plugin_daemon_ms", "slowest_ms")

SCHEMA = """
CREATE TABLE IF NOT EXISTS checks (
  id INTEGER PRIMARY KEY, host TEXT NOT NULL, at REAL NOT NULL, trigger TEXT NOT NULL,
  duration_ms INTEGER NOT NULL, status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS checks_at ON checks (host, at);
CREATE TABLE IF NOT EXISTS findings (
  check_id INTEGER NOT NULL, finding TEXT NOT NULL, status TEXT NOT NULL,
  summary TEXT NOT NULL, metrics TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS findings_check ON findings (check_id);
CREATE TABLE IF NOT EXISTS alerts (
  id INTEGER PRIMARY KEY, host TEXT NOT NULL, at REAL NOT NULL, incident TEXT NOT NULL,
  kind TEXT NOT NULL, findings TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_at ON alerts (host, at);
CREATE TABLE IF NOT EXISTS actions (
  id INTEGER PRIMARY KEY, host TEXT NOT NULL, at REAL NOT NULL, user TEXT NOT NULL,
  command TEXT NOT NULL, outcome TEXT NOT NULL, request_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS actions_at ON actions (host, at);
"""


@dataclass(frozen=True)
class FindingRow:
    id: str
    status: Status
    summary: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckRow:
    at: float
    trigger: str
    duration_ms: int
    status: Status
    findings: tuple[FindingRow, ...] = ()

    @property
    def latency_ms(self) -> float | None:
        reach = next((f for f in self.findings if f.id == "container.reach"), None)
        if reach is None:
            return None
        return next((reach.metrics[k] for k in LATENCY_KEYS if k in reach.metrics), None)

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(f.id for f in self.findings if f.status in (Status.FAIL, Status.WARN))


@dataclass(frozen=True)
class AlertRow:
    at: float
    incident: str
    kind: str
    findings: tuple[str, ...]


class History:
    def __init__(
        self,
        path: Path,
        days: int = 30,
        host: str = "local",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.days = days
        self.host = host
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._damaged = False
        self._retry_at = 0.0
        self._pruned_at = 0.0
        self.problem: str | None = None

    # --- connection ---------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        if self._damaged or time.monotonic() < self._retry_at:
            return None
        conn = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, check_same_thread=False, isolation_level=None
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            self.path.chmod(0o600)
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            self._fail(exc)
            return None
        self._conn = conn
        if self.problem:
            log.info("history database %s usable again", self.path)
        self.problem = None
        return conn

    def _fail(self, exc: BaseException) -> None:
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            problem = f"history database {self.path} is locked by another program; retrying"
            self._retry_at = time.monotonic() + RETRY_AFTER
        else:
            problem = (
                f"history database {self.path} is unusable ({type(exc).__name__}: "
                f"{str(exc)[:120]}); running without history. Move the file away to start "
                "a new one."
            )
            self._damaged = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        if problem != self.problem:
            log.warning("%s", problem)
        self.problem = problem

    def _run(self, default: T, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._connect()
            if conn is None:
                return default
            try:
                return work(conn)
            except (sqlite3.Error, OSError) as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                self._fail(exc)
                return default

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def usable(self) -> bool:
        return self._run(False, lambda _conn: True)

    # --- writes ---------------------------------------------------------------------------
    def record_check(self, report: Report, trigger: str, at: float | None = None) -> bool:
        when = self._clock() if at is None else at

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            cursor = conn.execute(
                "INSERT INTO checks (host, at, trigger, duration_ms, status) VALUES (?,?,?,?,?)",
                (self.host, when, trigger[:200], report.duration_ms, str(report.status)),
            )
            check_id = cursor.lastrowid
            conn.executemany(
                "INSERT INTO findings (check_id, finding, status, summary, metrics) "
                "VALUES (?,?,?,?,?)",
                [
                    (
                        check_id,
                        f.id,
                        str(f.status),
                        f.summary[:SUMMARY_LIMIT],
                        json.dumps(f.metrics, separators=(",", ":")),
                    )
                    for f in report.findings
                ],
            )
            conn.execute("COMMIT")
            self._prune(conn, when)
            return True

        return self._run(False, work)

    def record_alert(
        self, incident: str, kind: str, findings: Iterable[str], at: float | None = None
    ) -> bool:
        when = self._clock() if at is None else at

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "INSERT INTO alerts (host, at, incident, kind, findings) VALUES (?,?,?,?,?)",
                (self.host, when, incident, kind, ",".join(findings)),
            )
            return True

        return self._run(False, work)

    def record_action(
        self, user: str, command: str, outcome: str, request_id: str = "", at: float | None = None
    ) -> bool:
        when = self._clock() if at is None else at

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "INSERT INTO actions (host, at, user, command, outcome, request_id) "
                "VALUES (?,?,?,?,?,?)",
                (self.host, when, user[:100], command[:100], outcome[:50], request_id[:50]),
            )
            return True

        return self._run(False, work)

    def _prune(self, conn: sqlite3.Connection, now: float) -> None:
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        cutoff = now - self.days * 86400
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "DELETE FROM findings WHERE check_id IN (SELECT id FROM checks WHERE at < ?)",
            (cutoff,),
        )
        for table in ("checks", "alerts", "actions"):
            conn.execute(f"DELETE FROM {table} WHERE at < ?", (cutoff,))  # noqa: S608 - fixed names
        conn.execute("COMMIT")

    # --- reads ----------------------------------------------------------------------------
    def checks_since(self, since: float, limit: int = 50_000) -> list[CheckRow]:
        def work(conn: sqlite3.Connection) -> list[CheckRow]:
            rows = conn.execute(
                "SELECT id, at, trigger, duration_ms, status FROM checks "
                "WHERE host = ? AND at >= ? ORDER BY at LIMIT ?",
                (self.host, since, limit),
            ).fetchall()
            if not rows:
                return []
            findings: dict[int, list[FindingRow]] = {}
            for check_id, finding, status, summary, metrics in conn.execute(
                "SELECT check_id, finding, status, summary, metrics FROM findings "
                "WHERE check_id >= ? AND check_id <= ?",
                (rows[0][0], rows[-1][0]),
            ):
                findings.setdefault(check_id, []).append(
                    FindingRow(finding, Status(status), summary, _metrics(metrics))
                )
            return [
                CheckRow(at, trigger, duration, Status(status), tuple(findings.get(cid, ())))
                for cid, at, trigger, duration, status in rows
            ]

        return self._run([], work)

    def last_check(self) -> CheckRow | None:
        def work(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT at FROM checks WHERE host = ? ORDER BY at DESC LIMIT 1", (self.host,)
            ).fetchone()
            return None if row is None else float(row[0])

        at = self._run(None, work)
        if at is None:
            return None
        rows = self.checks_since(at)
        return rows[-1] if rows else None

    def alerts_since(self, since: float) -> list[AlertRow]:
        def work(conn: sqlite3.Connection) -> list[AlertRow]:
            return [
                AlertRow(at, incident, kind, tuple(f for f in findings.split(",") if f))
                for at, incident, kind, findings in conn.execute(
                    "SELECT at, incident, kind, findings FROM alerts WHERE host = ? AND at >= ? "
                    "ORDER BY at",
                    (self.host, since),
                )
            ]

        return self._run([], work)

    def actions_between(self, start: float, end: float) -> list[ActionDone]:
        def work(conn: sqlite3.Connection) -> list[ActionDone]:
            return [
                ActionDone(at, user, command, outcome)
                for at, user, command, outcome in conn.execute(
                    "SELECT at, user, command, outcome FROM actions "
                    "WHERE host = ? AND at >= ? AND at <= ? ORDER BY at",
                    (self.host, start, end),
                )
            ]

        return self._run([], work)


def _metrics(raw: str) -> dict[str, float]:
    try:
        data = json.loads(raw)
        return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (ValueError, TypeError):
        return {}


def open_history(state_dir: Path, days: int, host: str = "local") -> History:
    """The history under STATE_DIR (opened lazily; check `problem` after a call)."""
    return History(state_dir.expanduser() / "history.sqlite3", days, host)
