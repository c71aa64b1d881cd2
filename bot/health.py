"""Is the Docker engine reachable? Probed at startup and again (at most every 30 s) when a
reply wants to say so. The bot runs either way; replies carry a note while it is down."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from config.settings import Settings

log = logging.getLogger(__name__)

Probe = Callable[[], "str | None"]  # None: reachable; else one line saying why not


def engine_probe(settings: Settings) -> Probe:
    def probe() -> str | None:
        from handlers import engine  # lazy: docker-py is heavy and only needed here

        client, problem, _version = engine.ping(settings)
        if client is not None:
            client.close()
        if problem is None:
            return None
        return f"{problem.message}. {problem.remedy}"

    return probe


class EngineStatus:
    def __init__(self, probe: Probe, max_age: float = 30.0) -> None:
        self._probe = probe
        self._max_age = max_age
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._note: str | None = None

    def refresh(self) -> str | None:
        try:
            note = self._probe()
        except Exception as exc:  # a probe bug must not stop the bot
            note = f"engine probe failed: {type(exc).__name__}"
            log.exception("engine probe failed")
        with self._lock:
            self._note, self._checked_at = note, time.monotonic()
        return note

    def cached(self) -> str | None:
        """The last known note without probing (safe in the ack path)."""
        with self._lock:
            return self._note

    def age(self) -> float | None:
        """Seconds since the last probe finished; None before the first one."""
        with self._lock:
            return None if self._checked_at is None else time.monotonic() - self._checked_at

    def note(self) -> str | None:
        with self._lock:
            fresh = (
                self._checked_at is not None and time.monotonic() - self._checked_at < self._max_age
            )
            if fresh:
                return self._note
        return self.refresh()
