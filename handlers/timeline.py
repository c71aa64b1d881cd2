"""Where a check spends its time: spans of probes, shared facts, execs and HTTP calls.

A span records what ran (`name`), when (ms since the check started), inside which span it ran
(`parent`), and, for a probe that waited on a fact another probe was computing, which span it
waited for (`waits`). That is enough to walk the critical path back from the last finding:
`critical_path` does it, `check --json` carries the spans, bench/bench_check.py prints them.

The current span travels in a context variable; threads started by the check copy the
context (see `in_context`), so an exec deep inside a probe lands under that probe.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass
class Span:
    name: str
    start: float  # time.monotonic()
    end: float | None = None
    parent: int | None = None  # index of the span this one ran inside
    waits: int | None = None  # index of the span this one waited for (a fact being computed)

    def to_json(self, origin: float) -> dict[str, Any]:
        end = self.end if self.end is not None else self.start
        return {
            "name": self.name,
            "start_ms": round((self.start - origin) * 1000, 1),
            "end_ms": round((end - origin) * 1000, 1),
            "parent": self.parent,
            "waits": self.waits,
        }


class Timeline:
    """The spans of one check (thread-safe; appending only)."""

    def __init__(self, origin: float | None = None) -> None:
        self.origin = time.monotonic() if origin is None else origin
        self._lock = threading.Lock()
        self.spans: list[Span] = []

    def open(self, name: str, parent: int | None, waits: int | None = None) -> int:
        with self._lock:
            self.spans.append(Span(name, time.monotonic(), parent=parent, waits=waits))
            return len(self.spans) - 1

    def close(self, index: int) -> None:
        with self._lock:
            self.spans[index].end = time.monotonic()

    def first_start(self, prefix: str) -> float | None:
        with self._lock:
            starts = [s.start for s in self.spans if s.name.startswith(prefix)]
        return min(starts) if starts else None

    def to_json(self, rename: Callable[[str], str] = lambda name: name) -> list[dict[str, Any]]:
        with self._lock:
            spans = list(self.spans)
        out = []
        for span in spans:
            data = span.to_json(self.origin)
            data["name"] = rename(span.name)
            out.append(data)
        return out


_CURRENT: contextvars.ContextVar[tuple[Timeline, int | None] | None] = contextvars.ContextVar(
    "dify_ollama_span", default=None
)


def current() -> int | None:
    """The index of the span running in this context (None outside any)."""
    state = _CURRENT.get()
    return state[1] if state is not None else None


@contextlib.contextmanager
def recording(timeline: Timeline) -> Iterator[Timeline]:
    """Spans opened in this context (and in contexts copied from it) go to `timeline`."""
    token = _CURRENT.set((timeline, None))
    try:
        yield timeline
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def span(name: str, waits: int | None = None) -> Iterator[int | None]:
    """Record `name` as a span of the running check; nothing outside a check."""
    state = _CURRENT.get()
    if state is None:
        yield None
        return
    timeline, parent = state
    index = timeline.open(name, parent, waits)
    token = _CURRENT.set((timeline, index))
    try:
        yield index
    finally:
        _CURRENT.reset(token)
        timeline.close(index)


def in_context(fn: Callable[..., R]) -> Callable[..., R]:
    """`fn` bound to a copy of the caller's context: for work handed to another thread."""
    context = contextvars.copy_context()
    return lambda *args: context.run(fn, *args)


def critical_path(spans: list[dict[str, Any]], roots: str = "probe ") -> list[dict[str, Any]]:
    """The chain of spans that bounds the total, in time order: the top-level span (named
    with `roots`) that ended last, then inside it the span that ended last, preceded by the
    one that ended before that one started, and so on; a wait leads to the fact waited for.
    Each span comes with its `depth` in the chain."""
    top = [i for i, s in enumerate(spans) if s["name"].startswith(roots) and s["parent"] is None]
    if not top:
        return []
    children: dict[int, list[int]] = {}
    for i, s in enumerate(spans):
        if s["parent"] is not None:
            children.setdefault(s["parent"], []).append(i)
    seen: set[int] = set()
    path: list[dict[str, Any]] = []

    def expand(index: int, depth: int) -> None:
        if index in seen or depth > 20:
            return
        seen.add(index)
        path.append({**spans[index], "depth": depth})
        waited = spans[index]["waits"]
        if waited is not None:
            expand(waited, depth + 1)
        chain: list[int] = []
        limit = spans[index]["end_ms"] + 0.5
        kids = children.get(index, [])
        for _ in range(len(kids)):
            before = [k for k in kids if k not in chain and spans[k]["end_ms"] <= limit]
            if not before:
                break
            last = max(before, key=lambda k: spans[k]["end_ms"])
            chain.append(last)
            limit = spans[last]["start_ms"] + 0.5
        for kid in reversed(chain):
            expand(kid, depth + 1)

    expand(max(top, key=lambda i: spans[i]["end_ms"]), 0)
    return path


def process_start() -> float | None:
    """When this process started, on the time.monotonic() clock (Linux; None elsewhere).

    /proc/self/stat has it in clock ticks since boot; CLOCK_BOOTTIME is the same clock.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of stat(5); two fields sit before the ")"
        hertz = os.sysconf("SC_CLK_TCK")
        started = ticks / hertz
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.monotonic() - max(0.0, age)
