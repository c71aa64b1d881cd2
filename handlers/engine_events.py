"""Following the Docker engine's container events for the Dify project, so the watch checks at
once when a container dies, runs out of memory, changes health, restarts or is removed.

One long-lived `GET /events` stream, filtered by the engine (type, event names, the compose
project label): an idle stack costs nothing. A lost stream (engine restarted, socket gone) is
reopened with backoff, 1 s doubling to 30 s; reopening it after a loss is itself reported, so
the watch notices an engine that came back without waiting for its next interval.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from config.settings import Settings
from handlers.engine import make_client
from handlers.project import PROJECT, SERVICE

log = logging.getLogger(__name__)

EVENTS = ("die", "oom", "health_status", "restart", "destroy")
# A quiet engine sends nothing: the read times out and the stream is reopened, which also
# proves now and then that the engine is still there.
STREAM_TIMEOUT = 300.0
RETRY_FIRST = 1.0
RETRY_MAX = 30.0


class EventFollower:
    def __init__(
        self,
        settings: Settings,
        on_event: Callable[[str], None],
        project: Callable[[], str | None],
        retry_first: float = RETRY_FIRST,
    ) -> None:
        self._settings = settings
        self._on_event = on_event
        self._project = project  # the Dify project's name when known (None: any project)
        self._retry_first = retry_first
        self._stop = threading.Event()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name="engine-events", daemon=True)
        self.connected = threading.Event()  # set while a stream is open (tests, logs)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()  # unblocks the reader
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self._retry_first
        lost = False
        while not self._stop.is_set():
            client = None
            try:
                client = make_client(self._settings, timeout=STREAM_TIMEOUT)
                self._stream = client.events(
                    decode=True,
                    filters={"type": "container", "event": list(EVENTS), "label": [PROJECT]},
                )
                self.connected.set()
                delay = self._retry_first
                if lost:
                    lost = False
                    self._on_event("engine events stream back")
                for event in self._stream:
                    if self._stop.is_set():
                        break
                    self._deliver(event)
                lost = True  # the engine ended the stream: it is going away
            except Exception as exc:  # engine gone, socket closed, read timeout
                if not self._stop.is_set():
                    log.debug("engine events stream lost: %s", exc)
                    # A quiet engine's read timeout is not a loss; anything else is.
                    lost = lost or "timed out" not in str(exc).lower()
            finally:
                self.connected.clear()
                self._stream = None
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()
            if self._stop.wait(delay):
                break
            delay = min(RETRY_MAX, delay * 2)

    def _deliver(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        wanted = self._project()
        if wanted is not None and attributes.get(PROJECT) != wanted:
            return
        action = str(event.get("Action") or event.get("status") or "?")[:60]
        service = str(attributes.get(SERVICE, "?"))[:60]
        self._on_event(f"{action} {service}")
