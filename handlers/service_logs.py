"""The recent lines of a container's log, for probes that look for Dify's own complaints.

The engine applies `since` and `tail`; the stream is read until a byte budget is spent, in a
daemon thread under a deadline (a stuck engine cannot hold the check). Lines come cleaned
(handlers/logs.py's `clean_line`), cut to MAX_LINE_CHARS and redacted before anyone sees them.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from handlers import timeline
from handlers.logs import MAX_LINE_CHARS, clean_line
from handlers.redact import Redactor

if TYPE_CHECKING:
    import docker

WINDOW_SECONDS = 15 * 60  # "recently": the last 15 minutes
MAX_LINES = 5000
MAX_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class RecentLog:
    service: str
    lines: tuple[str, ...]  # cleaned, cut, redacted; oldest first
    complete: bool  # False: the byte budget or the deadline cut it short
    error: str | None = None  # the log could not be read at all


def recent_log(
    client: docker.DockerClient,
    service: str,
    container_id: str,
    redactor: Redactor,
    timeout: float,
    *,
    window: float = WINDOW_SECONDS,
    max_lines: int = MAX_LINES,
    max_bytes: int = MAX_BYTES,
) -> RecentLog:
    """The lines `container_id` logged in the last `window` seconds (at most `max_lines`,
    `max_bytes`), read within `timeout`."""
    box: queue.Queue[tuple[list[bytes], bool, str | None]] = queue.Queue(maxsize=1)
    since = int(time.time() - window)

    def read() -> None:
        chunks: list[bytes] = []
        size, complete, error = 0, True, None
        try:
            stream = client.api.logs(
                container_id,
                stdout=True,
                stderr=True,
                stream=True,
                follow=False,  # docker-py follows a stream unless told not to
                since=since,
                tail=max_lines,
            )
            for chunk in stream:
                chunks.append(chunk)
                size += len(chunk)
                if size >= max_bytes:
                    complete = False
                    break
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        except Exception as exc:  # any engine error: say so, the probe decides
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        box.put((chunks, complete, error))

    with timeline.span(f"logs @{container_id[:12]}"):
        threading.Thread(target=read, name=f"logs-{service}", daemon=True).start()
        try:
            chunks, complete, error = box.get(timeout=timeout)
        except queue.Empty:
            return RecentLog(service, (), False, f"no log within {timeout:g} s")
    if error is not None:
        return RecentLog(service, (), False, error)
    raw = b"".join(chunks)[:max_bytes]
    lines = []
    for part in raw.split(b"\n"):
        if part:
            text = clean_line(part.rstrip(b"\r"))[:MAX_LINE_CHARS]
            lines.append(redactor.redact(text))
    return RecentLog(service, tuple(lines), complete)


def describe(log: RecentLog) -> str:
    """How much of the log was read, for evidence."""
    if log.error:
        return f"{log.service}: log not read ({log.error})"
    cut = ", cut to stay within limits" if not log.complete else ""
    return f"{log.service}: {len(log.lines)} lines{cut}"
