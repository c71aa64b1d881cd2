"""Asking several hosts at once: a transport per host, answers in parallel, one summary.

Every host bounds its own time (its deadline); the fan-out itself waits at most the slowest
deadline plus GRACE, and a host still running then is reported as such.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass

from config.hosts import HostEntry
from config.settings import Settings
from handlers import transport as t
from handlers.results import Report, Status

GRACE = 1.0
MAX_PARALLEL = 16
_RANK = {Status.FAIL: 0, Status.SKIP: 1, Status.WARN: 2, Status.OK: 3}  # worst first


def make_transport(
    settings: Settings, host: HostEntry, pool: object | None, user: str, source: str
) -> t.Transport:
    if host.ssh is None:
        return t.LocalTransport(settings, host, user, source)
    from handlers.ssh_transport import SshPool, SshTransport

    assert isinstance(pool, SshPool)
    return SshTransport(host, pool)


def fan_out(
    transports: Sequence[t.Transport], op: Callable[[t.Transport], t.Answer]
) -> list[t.Answer]:
    """op on every transport in parallel; answers in the transports' order."""
    if not transports:
        return []
    limit = max(tr.host.deadline for tr in transports) + GRACE
    started = time.monotonic()
    pool = ThreadPoolExecutor(
        max_workers=min(MAX_PARALLEL, len(transports)), thread_name_prefix="host"
    )
    try:
        futures = [pool.submit(op, tr) for tr in transports]
        wait_all(futures, timeout=limit)
        answers = []
        for tr, future in zip(transports, futures, strict=True):
            answers.append(_answer(tr.host, future, started))
        return answers
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _answer(host: HostEntry, future: object, started: float) -> t.Answer:
    from concurrent.futures import Future

    assert isinstance(future, Future)
    if not future.done():
        problem = t.host_problem(
            host.name,
            t.HOST_DEADLINE,
            f"{{host}}: no answer within its deadline ({host.deadline:g} s)",
            "",
            "Raise the host's `deadline` in HOSTS_FILE, or look at the host.",
        )
        return t.Answer(host.name, 1, problem=problem, seconds=time.monotonic() - started)
    error = future.exception()
    if error is not None:
        problem = t.host_problem(
            host.name, t.HOST_ANSWER, "{host}: the request failed", str(error)[:300], ""
        )
        return t.Answer(host.name, 1, problem=problem, seconds=time.monotonic() - started)
    answer = future.result()
    assert isinstance(answer, t.Answer)
    return answer


@dataclass(frozen=True)
class HostRow:
    """One host in a summary: its report (or the finding why there is none)."""

    host: str
    report: Report
    seconds: float

    @property
    def status(self) -> Status:
        return self.report.status

    @property
    def headline(self) -> str:
        """The worst finding's summary (what to look at first), or that all is well."""
        problems = sorted(self.report.problems, key=lambda f: _RANK[f.status])
        if problems:
            extra = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            return f"{problems[0].id}: {problems[0].summary}{extra}"
        if self.status is Status.SKIP:
            return "nothing could be checked"
        return f"{len(self.report.findings)} checks ok"


def summary_rows(answers: Sequence[t.Answer]) -> list[HostRow]:
    """A row per host, worst first (then by name)."""
    rows = [HostRow(a.host, t.as_report(a), a.seconds) for a in answers]
    return sorted(rows, key=lambda r: (_RANK[r.status], r.host))


def overall(rows: Sequence[HostRow]) -> Status:
    return rows[0].status if rows else Status.SKIP


def summary_text(rows: Sequence[HostRow], width: int = 80) -> str:
    """The terminal's table: status, host, seconds, what to look at first."""
    name_width = max([4, *(len(r.host) for r in rows)])
    lines = [f"{'STATUS':<6}  {'HOST':<{name_width}}  {'TIME':>6}  FIRST PROBLEM"]
    for row in rows:
        head = f"{str(row.status).upper():<6}  {row.host:<{name_width}}  {row.seconds:>5.1f}s  "
        room = max(10, width - len(head))
        headline = row.headline if len(row.headline) <= room else row.headline[: room - 1] + "…"
        lines.append(head + headline)
    worst = overall(rows)
    counts = {s: sum(1 for r in rows if r.status is s) for s in Status}
    lines.append(
        f"{len(rows)} host(s): "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + f"; overall {worst}"
    )
    return "\n".join(lines) + "\n"
