"""Sharing one run of an expensive probe between the requests that arrive while it runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedRun(Generic[T]):
    """`get(arrived_at)` returns a result from a run that was in progress or finished after the
    request arrived: requests arriving while a run is going share it (one probe set, many
    replies), including requests that waited in the executor queue meanwhile. A request never
    gets a result that was complete before it arrived."""

    def __init__(self, fn: Callable[[], T], clock: Callable[[], float] = time.monotonic) -> None:
        self._fn = fn
        self._clock = clock
        self._lock = threading.Lock()
        self._running: Future[T] | None = None
        self._last: tuple[float, T] | None = None  # (finished_at, result) of the last success
        self.runs = 0  # how many times fn actually ran (tests and logs)

    def last_finished(self) -> float | None:
        """When (on the clock) the last successful run finished; None before the first."""
        with self._lock:
            return None if self._last is None else self._last[0]

    def get(self, arrived_at: float | None = None) -> tuple[T, bool]:
        """Return (result, shared). Exceptions of a shared run reach every waiter."""
        arrived = self._clock() if arrived_at is None else arrived_at
        with self._lock:
            if self._running is not None:
                running = self._running
                owner = False
            elif self._last is not None and self._last[0] >= arrived:
                return self._last[1], True
            else:
                running = self._running = Future()
                owner = True
                self.runs += 1
        if not owner:
            return running.result(), True
        try:
            result = self._fn()
        except BaseException as exc:
            with self._lock:
                self._running = None
            running.set_exception(exc)
            raise
        with self._lock:
            self._running = None
            self._last = (self._clock(), result)
        running.set_result(result)
        return result, False
