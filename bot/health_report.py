"""What /healthz says: gather (Slack connection, engine, last check), then decide, purely.

200 only when the bot can do its job: Slack can reach it (Socket Mode: the WebSocket is up;
HTTP mode: this very server answers) and the Docker engine answers. Anything else is 503 with
the reason, so a supervisor (Docker's HEALTHCHECK, systemd, a load balancer) sees the truth.
The last check's age is reported, never judged: a quiet week without `check` is healthy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.version import version

if TYPE_CHECKING:
    from bot.runtime import Runtime

HEALTH_PATH = "/healthz"


@dataclass(frozen=True)
class Health:
    version: str
    mode: str  # "socket" or "http"
    slack_ok: bool
    slack_detail: str
    engine_note: str | None  # None: reachable; else why not
    engine_age: float | None  # seconds since the engine was probed
    check_age: float | None  # seconds since the last check finished; None: none yet

    @property
    def ok(self) -> bool:
        return self.slack_ok and self.engine_note is None

    @property
    def status_code(self) -> int:
        return 200 if self.ok else 503

    def to_json(self) -> dict[str, Any]:
        def rounded(age: float | None) -> float | None:
            return None if age is None else round(age, 1)

        return {
            "status": "ok" if self.ok else "fail",
            "version": self.version,
            "mode": self.mode,
            "slack": {"ok": self.slack_ok, "detail": self.slack_detail},
            "engine": {
                "ok": self.engine_note is None,
                "detail": self.engine_note or "reachable",
                "checked_seconds_ago": rounded(self.engine_age),
            },
            "last_check_seconds_ago": rounded(self.check_age),
        }


def gather(runtime: Runtime, mode: str, slack: Callable[[], tuple[bool, str]]) -> Health:
    """Read the state now. The engine is probed again only when its last probe is older than
    EngineStatus's max age (30 s), so a health poller cannot hammer the engine."""
    slack_ok, slack_detail = slack()
    engine_note = runtime.engine.note()
    finished = runtime.checks.last_finished()
    return Health(
        version=version(),
        mode=mode,
        slack_ok=slack_ok,
        slack_detail=slack_detail,
        engine_note=engine_note,
        engine_age=runtime.engine.age(),
        check_age=None if finished is None else time.monotonic() - finished,
    )


def body(health: Health) -> bytes:
    return (json.dumps(health.to_json()) + "\n").encode()


def http_serving() -> tuple[bool, str]:
    """HTTP mode: a request reaching /healthz proves the server Slack posts to is serving."""
    return True, "HTTP serving /slack/events"


def wsgi_answer(runtime: Runtime, method: str) -> tuple[str, list[tuple[str, str]], list[bytes]]:
    """HTTP mode's /healthz as (status line, headers, body chunks) for a WSGI application."""
    state = gather(runtime, "http", http_serving)
    payload = body(state)
    status = "200 OK" if state.ok else "503 Service Unavailable"
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(payload))),
        ("Cache-Control", "no-store"),
    ]
    return status, headers, [payload if method == "GET" else b""]
