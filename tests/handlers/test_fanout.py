"""fan_out's own time bound: the fan-out answers within the slowest deadline plus GRACE, and
says for each host whether it ran out of time or was never asked (more hosts than are asked at
once). The operation stands for a transport's call: a sleep of known length, no host needed."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from config.hosts import HostEntry
from handlers import fanout
from handlers import transport as t


@dataclass
class Stub:
    """What fan_out reads of a transport: its host."""

    host: HostEntry


def hosts(count: int, deadline: float) -> Sequence[Stub]:
    return [Stub(HostEntry(f"h{i:02}", None, deadline=deadline)) for i in range(count)]


def test_every_host_answers_when_there_is_time() -> None:
    def op(tr: Stub) -> t.Answer:
        time.sleep(0.05)
        return t.Answer(tr.host.name, 0, {"ok": True})

    answers = fanout.fan_out(hosts(fanout.MAX_PARALLEL + 4, 2.0), op)  # type: ignore[arg-type]
    assert [a.host for a in answers] == [f"h{i:02}" for i in range(fanout.MAX_PARALLEL + 4)]
    assert all(a.exit_code == 0 and a.problem is None for a in answers)


def test_late_hosts_and_never_asked_hosts_are_told_apart_within_the_bound() -> None:
    release = threading.Event()
    ran: list[str] = []

    def op(tr: Stub) -> t.Answer:
        ran.append(tr.host.name)
        release.wait(10)  # hangs past every deadline (bounded: released below)
        return t.Answer(tr.host.name, 0, {})

    count, deadline = fanout.MAX_PARALLEL + 2, 0.3
    started = time.monotonic()
    try:
        answers = fanout.fan_out(hosts(count, deadline), op)  # type: ignore[arg-type]
        took = time.monotonic() - started
    finally:
        release.set()
    assert took <= deadline + fanout.GRACE + 0.5, took
    problems = [a.problem for a in answers]
    assert all(p is not None and p.id == t.HOST_DEADLINE for p in problems)
    late = [a.host for a in answers if "no answer within its deadline" in a.problem.summary]  # type: ignore[union-attr]
    never = [a.host for a in answers if "not asked" in a.problem.summary]  # type: ignore[union-attr]
    assert len(late) == fanout.MAX_PARALLEL and len(never) == 2
    assert set(late) == set(ran[: fanout.MAX_PARALLEL]) and not set(never) & set(ran)
    time.sleep(0.1)
    assert not set(never) & set(ran)  # cancelled: they never start afterwards either
