"""The App Home tab: published when a user opens it (app_home_opened) and again, for everyone
who opened it, when the watch sees the state change."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from bot.render.home import HostView, render_home
from handlers.history import History
from handlers.watch import HOST
from handlers.watch_store import list_mutes, load_state

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from config.settings import Settings

log = logging.getLogger(__name__)

MAX_VIEWERS = 500


def host_view(settings: Settings, history: History, now: float) -> HostView:
    last = history.last_check()
    state, _problem = load_state(settings.state_path)
    findings: tuple[Any, ...] = ()
    if last is not None:
        findings = tuple((f.id, f.status, f.summary) for f in last.findings)
    return HostView(
        host=HOST,
        checked_at=last.at if last is not None else None,
        trigger=last.trigger if last is not None else None,
        findings=findings,
        incident=state.incident,
        mutes=tuple(list_mutes(settings.state_path, now)),
        watching=settings.watch_channel,
        problem=history.problem,
    )


class HomeTab:
    def __init__(self, runtime: Runtime, history: History) -> None:
        self.runtime = runtime
        self.history = history
        self._viewers: dict[str, None] = {}
        self._lock = threading.Lock()

    def view(self) -> dict[str, Any]:
        now = time.time()
        return render_home([host_view(self.runtime.settings, self.history, now)], now)

    def publish(self, user_id: str) -> None:
        self.runtime.client.views_publish(user_id=user_id, view=self.view())

    def opened(self, user_id: str) -> None:
        """app_home_opened (ack path): remember the viewer, publish on the executor."""
        with self._lock:
            self._viewers.pop(user_id, None)
            self._viewers[user_id] = None
            while len(self._viewers) > MAX_VIEWERS:
                self._viewers.pop(next(iter(self._viewers)))
        self.runtime.executor.submit(self._safe_publish, user_id)

    def refresh(self) -> None:
        """The state changed: publish again for everyone who opened the tab."""
        with self._lock:
            viewers = list(self._viewers)
        if not viewers:
            return
        view = self.view()
        for user_id in viewers:
            try:
                self.runtime.client.views_publish(user_id=user_id, view=view)
            except Exception as exc:
                log.warning("home tab refresh for %s failed: %s", user_id, exc)

    def _safe_publish(self, user_id: str) -> None:
        try:
            self.publish(user_id)
        except Exception as exc:
            log.warning("home tab publish for %s failed: %s", user_id, exc)
