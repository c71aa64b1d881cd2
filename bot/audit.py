"""Audit trail: one JSON line per command and button click, optionally echoed to a channel."""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.delivery import deliver
from bot.render.mrkdwn import channel_link, code, escape, mention

log = logging.getLogger(__name__)

ECHO_QUEUE = 1000  # audit lines waiting for AUDIT_CHANNEL


class Auditor:
    def __init__(
        self,
        path: Path,
        echo: Callable[[dict[str, Any]], object] | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.path = path
        self._echo = echo
        # Arguments are typed by people: a token pasted into `logs --grep` must not land in
        # the audit file or the audit channel.
        self._redact = redact or (lambda text: text)
        self._lock = threading.Lock()
        # Called with every line written (the watch's history records mutating actions).
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def write(self, **record: Any) -> dict[str, Any]:
        record = {key: self._clean(value) for key, value in record.items()}
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **record}
        data = (json.dumps(line, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # O_APPEND: one write per line, so concurrent processes never interleave a line.
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
        except OSError as exc:
            # Losing an audit line must not lose the command; the log keeps the line instead.
            log.error("audit write to %s failed (%s): %s", self.path, exc, data.decode().strip())
        for listener in self.listeners:
            try:
                listener(line)
            except Exception as exc:  # a listener must not cost the command
                log.warning("audit listener failed: %s", exc)
        if self._echo is not None:
            try:
                self._echo(line)
            except Exception as exc:  # echo is best effort
                log.warning("audit echo failed: %s", exc)
        return line


class EchoQueue:
    """Audit lines on their way to AUDIT_CHANNEL: a bounded queue and one thread of their own,
    so a busy executor never drops them and a slow Slack never holds a command. A full queue
    drops the line, counts it and says so in the log (never silently); each post is retried a
    few times (bot.delivery)."""

    def __init__(
        self,
        post: Callable[[dict[str, Any]], object],
        size: int = ECHO_QUEUE,
        name: str = "audit-echo",
    ) -> None:
        self._post = post
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=size)
        self.dropped = 0
        self._last_warning = float("-inf")
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, line: dict[str, Any]) -> bool:
        try:
            self._queue.put_nowait(line)
            return True
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_warning >= 1.0:  # at most one warning a second, with the count
                self._last_warning = now
                log.warning(
                    "audit channel echo queue full (%d lines): %d line(s) not echoed so far; "
                    "the audit file has them all",
                    self._queue.maxsize,
                    self.dropped,
                )
            return False

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                return
            deliver("audit channel echo", functools.partial(self._post, line))

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the lines already queued (bounded wait)."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


def describe(line: dict[str, Any]) -> str:
    """The audit line as one Slack mrkdwn line for AUDIT_CHANNEL. Everything in it was typed by
    someone or read from a record: inert (no mention, link or broadcast can come out of it)."""
    args = " ".join(str(a) for a in line.get("args") or ())
    command = f"{line.get('command', '?')} {args}".strip()
    who = mention(str(line.get("user", "?")))
    where = channel_link(str(line.get("channel", "?")))
    outcome = escape(str(line.get("outcome", "?")))
    return (
        f":memo: {who} {code(command)} in {where} -> *{outcome}*"
        f" ({int(line.get('duration_ms') or 0)} ms, id {code(str(line.get('request_id', '')))})"
    )
