"""The bot's own bounded executor: Slack work never runs on bolt's listener pool.

ThreadPoolExecutor bounds the threads but not its queue; a semaphore bounds queued plus running
jobs so a burst of requests is refused with a friendly "busy" instead of piling up for minutes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class BoundedExecutor:
    def __init__(self, workers: int, max_pending: int = 200, name: str = "dify-ollama") -> None:
        self.workers = workers
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(max_pending)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any] | None:
        """Queue `fn(*args)`; None when `max_pending` jobs are already queued or running."""
        if not self._slots.acquire(blocking=False):
            return None
        try:
            future = self._pool.submit(fn, *args)
        except RuntimeError:  # shut down
            self._slots.release()
            return None
        future.add_done_callback(lambda _f: self._slots.release())
        return future

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
