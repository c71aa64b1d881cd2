"""Audit trail: one JSON line per command and button click, optionally echoed to a channel."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Auditor:
    def __init__(
        self,
        path: Path,
        echo: Callable[[dict[str, Any]], None] | None = None,
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


def describe(line: dict[str, Any]) -> str:
    """The audit line as one Slack mrkdwn line for AUDIT_CHANNEL."""
    args = " ".join(str(a) for a in line.get("args") or ())
    command = f"{line.get('command', '?')} {args}".strip()
    return (
        f":memo: <@{line.get('user', '?')}> `{command[:300]}` in <#{line.get('channel', '?')}>"
        f" -> *{line.get('outcome', '?')}* ({line.get('duration_ms', 0)} ms,"
        f" id `{line.get('request_id', '')}`)"
    )
