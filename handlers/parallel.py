"""Running a few blocking probes side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from handlers.timeline import in_context

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(fn: Callable[[T], R], items: Sequence[T], max_workers: int = 8) -> list[R]:
    """fn over items, concurrently, results in order. Each fn must bound its own time (every
    exec and HTTP call in the probes does), so the pool's join at the end cannot hang."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(
        max_workers=min(max_workers, len(items)), thread_name_prefix="probe"
    ) as pool:
        # Each item runs in a copy of the caller's context: its spans land under the caller's.
        futures = [pool.submit(in_context(fn), item) for item in items]
        return [future.result() for future in futures]
