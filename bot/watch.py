"""The watch in `serve`: check every WATCH_INTERVAL and at once on the engine's events for the
Dify project, fold each report into the watch's state (handlers/watch.py decides, purely),
and post what changed into WATCH_CHANNEL. Checks go through the bot's single flight, so a
watch run and a `/dify-ollama check` arriving together share one probe set.

Also here: the wrapper that records every check run (history, metrics) and the audit
listener that records mutating actions, because both are how the bot feeds the history.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.render.watch import render_alert, render_thread_line
from handlers.engine_events import EventFollower
from handlers.history import History
from handlers.metrics import CheckMetrics
from handlers.results import HandlerError, Report
from handlers.watch import Notice, WatchState, step
from handlers.watch_store import list_mutes, load_state, mutes_of, save_state

if TYPE_CHECKING:
    from bot.home import HomeTab
    from bot.runtime import Runtime
    from bot.subcommands import Registry
    from config.settings import Settings

log = logging.getLogger(__name__)

SETTLE = 1.0  # seconds to let a burst of engine events arrive before checking
NOT_ACTIONS = ("denied", "usage", "unknown", "busy")

_trigger = threading.local()


@contextlib.contextmanager
def triggered_by(what: str) -> Iterator[None]:
    """Check runs started in this block are recorded as triggered by `what`."""
    before = getattr(_trigger, "what", None)
    _trigger.what = what
    try:
        yield
    finally:
        _trigger.what = before


def recording(
    check: Callable[[Settings], Report], history: History, metrics: CheckMetrics | None
) -> Callable[[Settings], Report]:
    """`check`, recording every run it makes (not every request it answers: single flight)."""

    def run(settings: Settings) -> Report:
        report = check(settings)
        trigger = getattr(_trigger, "what", None) or "slack"
        at = time.time()
        history.record_check(report, trigger, at)
        if metrics is not None:
            metrics.observe(report, trigger, at)
        return report

    return run


def default_check(settings: Settings) -> Report:
    from handlers.check import run_check  # lazy: pulls in docker-py

    return run_check(settings)


def action_recorder(history: History, registry: Registry) -> Callable[[dict[str, Any]], None]:
    """An audit listener: lines of mutating commands and buttons become history actions."""
    from bot.subcommands import ACTION_PREFIX

    mutating = {s.name for s in registry.subcommands.values() if s.mutating} | {
        a.command or a.action_id.removeprefix(ACTION_PREFIX)
        for a in registry.actions.values()
        if a.mutating
    }

    def listen(line: dict[str, Any]) -> None:
        command = str(line.get("command", ""))
        outcome = str(line.get("outcome", ""))
        if command in mutating and outcome and outcome not in NOT_ACTIONS:
            history.record_action(
                str(line.get("user", "?")), command, outcome, str(line.get("request_id", ""))
            )

    return listen


class WatchService:
    def __init__(
        self,
        runtime: Runtime,
        history: History,
        metrics: CheckMetrics | None,
        home: HomeTab | None = None,
        clock: Callable[[], float] = time.time,
        host: str | None = None,
    ) -> None:
        """`host`: a host of HOSTS_FILE, watched through its transport (every
        WATCH_INTERVAL; engine events are this machine's only), its state kept apart and its
        name in every alert; None: this machine."""
        settings = runtime.settings
        if not settings.watch_channel:
            raise ValueError("the watch needs WATCH_CHANNEL")
        self.runtime = runtime
        self.settings = settings
        self.channel: str = settings.watch_channel
        self.host = host
        self.history = history
        self.metrics = metrics if host is None else None
        self.home = home if host is None else None
        self._clock = clock
        self._state_dir = settings.state_path / "hosts" / host if host else settings.state_path
        self.state, problem = load_state(self._state_dir)
        if problem:
            log.warning("%s", problem)
        if host is not None and self.state.host != host:
            self.state = replace(self.state, host=host)
        self.last_report: Report | None = None
        self.runs = 0
        self._refs: dict[str, str] = {}
        self._lock = threading.Lock()  # one watch run at a time
        self._reasons: list[str] = []
        self._reasons_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"watch-{host}" if host else "watch", daemon=True
        )
        self.events = EventFollower(settings, self.poke, self._project) if host is None else None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        log.info(
            "watch: checking every %g s and on engine events, alerts to %s",
            self.settings.watch_interval,
            self.channel,
        )
        self._thread.start()
        if self.events is not None:
            self.events.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self.events is not None:
            self.events.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def poke(self, reason: str) -> None:
        """An engine event (or anything else) asks for a check now."""
        with self._reasons_lock:
            if len(self._reasons) < 100:
                self._reasons.append(reason)
        self._wake.set()

    def _project(self) -> str | None:
        report = self.last_report
        return report.context.get("project") if report is not None else None

    def _loop(self) -> None:
        interval = self.settings.watch_interval
        min_gap = min(5.0, interval / 2)
        next_at = time.monotonic()
        last_run = 0.0
        while not self._stop.is_set():
            wait = next_at - time.monotonic()
            if wait > 0:
                self._wake.wait(wait)
            if self._stop.is_set():
                return
            with self._reasons_lock:
                reasons, self._reasons = self._reasons, []
            self._wake.clear()
            if reasons:
                # Let the rest of a burst (die, destroy, restart ...) arrive, and keep event
                # checks apart: an engine in an event storm must not cost a core.
                gap = max(SETTLE, min_gap - (time.monotonic() - last_run))
                if self._stop.wait(gap):
                    return
                with self._reasons_lock:
                    reasons += self._reasons
                    self._reasons = []
                self._wake.clear()
            trigger = f"watch:event {reasons[0]}" if reasons else "watch:interval"
            last_run = time.monotonic()
            # Every WATCH_INTERVAL from the start of a run: a slow check does not stretch it.
            next_at = last_run + interval
            try:
                self.run_once(trigger)
            except Exception:  # the watch must outlive any bug in one run
                log.exception("watch run failed")

    # --- one run --------------------------------------------------------------------------
    def run_once(self, trigger: str = "watch:interval") -> list[Notice]:
        with self._lock:
            if self.host is not None:
                from handlers.transport import as_report

                report = as_report(self.runtime.hosts.transport(self.host, "watch").check())
            else:
                with triggered_by(trigger):
                    report, _shared = self.runtime.checks.get(None)
            self.last_report = report
            self.runs += 1
            now = self._clock()
            mutes = mutes_of(list_mutes(self.settings.state_path, now))
            incident = self.state.incident
            actions = self.history.actions_between(incident.opened_at, now) if incident else []
            before = self.state
            state, notices = step(
                before,
                report,
                now=now,
                fail_after=self.settings.watch_fail_after,
                mutes=mutes,
                actions=actions,
            )
            for notice in notices:
                state = self._tell(state, notice, report, now)
                self.history.record_alert(notice.incident.id, notice.kind, notice.finding_ids, now)
            self.state = state
            try:
                save_state(self._state_dir, state)
            except HandlerError as exc:
                log.warning("watch state not saved (%s): alerts may repeat after a restart", exc)
            if self.metrics is not None:
                open_count = sum(m.open for m in state.incident.members) if state.incident else 0
                self.metrics.set_alerts_open(open_count)
            if self.home is not None and (notices or before.last != state.last):
                self.home.refresh()
            return notices

    def _ref(self, notice: Notice) -> str | None:
        return notice.incident.ref or self._refs.get(notice.incident.id)

    def _tell(self, state: WatchState, notice: Notice, report: Report, now: float) -> WatchState:
        client = self.runtime.client
        incident = notice.incident
        # A host's alert gets no finding buttons: those act on this machine.
        buttons = self.runtime.registry.finding_buttons if self.host is None else []
        text, blocks = render_alert(incident, now, report, buttons)
        try:
            ref = self._ref(notice)
            if ref is None:  # opened now, or the alert could not be posted before
                response = client.chat_postMessage(
                    channel=self.channel, text=text, blocks=blocks, unfurl_links=False
                )
                ref = str(response["ts"])
                self._refs[incident.id] = ref
                state = state.with_ref(incident.id, ref)
                if notice.kind == "opened":
                    return state
            line = render_thread_line(notice, now)
            if line is not None:
                client.chat_postMessage(
                    channel=self.channel, text=line, thread_ts=ref, unfurl_links=False
                )
            client.chat_update(channel=self.channel, ts=ref, text=text, blocks=blocks)
        except Exception as exc:  # Slack down: the state moves on, the next change retries
            log.warning("watch: could not post %s for %s: %s", notice.kind, incident.id, exc)
        return state
