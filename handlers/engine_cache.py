"""What a long-running process (the bot) may keep between checks, and no longer than it is true.

Kept: the engine connection and its version, the Dify project (its containers, their state and
health), each container's inspect data, which tools each image has, and the parse of `.env` /
compose files by their exact bytes. Everything but the parses is invalidated by the engine's
own event stream (`/events`, containers of compose projects): a container created, started,
stopped, dying, destroyed, renamed, paused, updated or changing health drops the project and
that container's entries. The engine publishes an event before it answers the call that caused
it, and a thread here applies it as it arrives.

While the stream is not connected (engine down or restarted, the stream cut), the cache is
disabled: every fact is computed afresh, exactly as in a one-shot `check`. A reconnected stream
starts from an empty cache, since events may have been missed in between. Parses are keyed by
the file's bytes (read every time), so they cannot be stale.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from config.settings import Settings
from handlers import container_exec, engine
from handlers.project import PROJECT

log = logging.getLogger(__name__)
T = TypeVar("T")

# Container actions that change nothing the check reads (our own probes cause most of them).
HARMLESS = ("exec_", "archive-path", "extract-to-dir", "attach", "detach", "resize", "top")
RETRY = (0.5, 1.0, 2.0, 5.0, 10.0)  # seconds between reconnection attempts, then the last


class EngineCache:
    """Facts that survive between checks while the engine's event stream is connected."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._live = False
        self._stop = threading.Event()
        self._client: Any = None
        self._version = ""
        self._stream: Any = None
        self._entries: dict[str, Any] = {}
        self._parses: dict[tuple[str, str], Any] = {}
        self._thread: threading.Thread | None = None
        self.hits = 0  # served from the cache (tests and the bench read it)
        self.invalidations = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> EngineCache:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="engine-events", daemon=True
                )
                self._thread.start()
        return self

    def wait_live(self, timeout: float) -> bool:
        """True once the stream is connected (tests, and the first check after start)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.live:
                return True
            time.sleep(0.01)
        return self.live

    def close(self) -> None:
        self._stop.set()
        self.cut()

    def cut(self) -> None:
        """Close the event stream as a dying engine would: the cache goes disabled until the
        watcher has reconnected (and starts over empty)."""
        with self._lock:
            stream = self._stream
            self._disable()
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    @property
    def live(self) -> bool:
        with self._lock:
            return self._live

    # -- what the check asks ----------------------------------------------------------------
    def connection(self) -> tuple[Any, str] | None:
        """(client, version) of the live connection, or None while disabled."""
        with self._lock:
            if not self._live:
                return None
            self.hits += 1
            return self._client, self._version

    def remember(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()` kept under `key` while the stream stays connected and no event
        touched it (keys: "project", "inspect:<container id>")."""
        with self._lock:
            live = self._live
            if live and key in self._entries:
                self.hits += 1
                return self._entries[key]  # type: ignore[no-any-return]
            generation = self.invalidations
        value = compute()
        with self._lock:
            # Stored only if nothing happened meanwhile: an event during compute may mean
            # the value is already old.
            if self._live and live and generation == self.invalidations:
                self._entries[key] = value
        return value

    def parsed(self, kind: str, data: bytes, parse: Callable[[], T]) -> T:
        """`parse()` of these exact bytes, kept whatever the stream does (bytes cannot lie)."""
        key = (kind, hashlib.sha256(data).hexdigest())
        with self._lock:
            if key in self._parses:
                self.hits += 1
                return self._parses[key]  # type: ignore[no-any-return]
        value = parse()
        with self._lock:
            if len(self._parses) > 32:  # bounded: old versions of the files go
                self._parses.clear()
            self._parses[key] = value
        return value

    # -- the event stream ---------------------------------------------------------------------
    def _disable(self) -> None:
        # Callers hold the lock.
        self._live = False
        self._entries.clear()
        self.invalidations += 1

    def _invalidate(self, container_id: str) -> None:
        with self._lock:
            self._entries.pop("project", None)
            self._entries.pop(f"inspect:{container_id}", None)
            self.invalidations += 1
        container_exec.forget(container_id)

    def apply(self, event: dict[str, Any]) -> None:
        """One decoded engine event."""
        if event.get("Type") != "container":
            return
        action = str(event.get("Action") or event.get("status") or "")
        if action.startswith(HARMLESS):
            return
        self._invalidate(str(event.get("id") or (event.get("Actor") or {}).get("ID") or ""))

    def _connect(self) -> bool:
        client, problem, version = engine.ping(self.settings)
        if client is None:
            log.info("engine cache: engine unreachable (%s)", problem.reason if problem else "?")
            return False
        stream = client.api.events(decode=True, filters={"type": "container", "label": PROJECT})
        with self._lock:
            self._client, self._version, self._stream = client, version, stream
            self._entries.clear()
            self.invalidations += 1
            self._live = True
        return True

    def _watch(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                if self._connect():
                    attempt = 0
                    for event in self._stream:
                        if isinstance(event, dict):
                            self.apply(event)
                        if self._stop.is_set():
                            break
            except Exception as exc:  # the stream broke: same as the engine going away
                log.info("engine cache: event stream ended: %s", type(exc).__name__)
            with self._lock:
                self._disable()
                self._stream = None
            container_exec.forget_all()
            self._stop.wait(RETRY[min(attempt, len(RETRY) - 1)])
            attempt += 1
