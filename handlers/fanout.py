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
from config.i18n import gettext as _
from config.i18n import ngettext
from config.settings import Settings
from handlers import transport as t
from handlers.report_text import label
from handlers.results import Report, Status
from handlers.text_width import char_width, display_width, ljust

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
    transports: Sequence[t.Transport],
    op: Callable[[t.Transport], t.Answer],
    longer: float = 0.0,
) -> list[t.Answer]:
    """op on every transport in parallel; answers in the transports' order. `longer`: seconds
    op was asked to wait on top of the hosts' deadlines (`restart --wait`)."""
    if not transports:
        return []
    limit = max(tr.host.deadline for tr in transports) + longer + GRACE
    started = time.monotonic()
    pool = ThreadPoolExecutor(
        max_workers=min(MAX_PARALLEL, len(transports)), thread_name_prefix="host"
    )
    try:
        futures = [pool.submit(op, tr) for tr in transports]
        wait_all(futures, timeout=limit)
        answers = []
        for tr, future in zip(transports, futures, strict=True):
            answers.append(_answer(tr.host, future, started, longer))
        return answers
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _answer(host: HostEntry, future: object, started: float, longer: float) -> t.Answer:
    from concurrent.futures import Future

    assert isinstance(future, Future)
    if future.cancel():  # still queued: never started (and now never will)
        problem = t.host_problem(
            host.name,
            t.HOST_DEADLINE,
            _(
                "{host}: not asked: the hosts before it took the fan-out's {seconds} s "
                "({parallel} hosts are asked at once)"
            ),
            "",
            _("Ask fewer hosts at once, or give the slow ones shorter deadlines in HOSTS_FILE."),
            seconds=f"{time.monotonic() - started:.1f}",
            parallel=MAX_PARALLEL,
        )
        return t.Answer(host.name, 1, problem=problem, seconds=time.monotonic() - started)
    if not future.done():
        problem = t.host_problem(
            host.name,
            t.HOST_DEADLINE,
            _("{host}: no answer within its deadline ({seconds} s)"),
            "",
            _("Raise the host's `deadline` in HOSTS_FILE, or look at the host."),
            seconds=f"{host.deadline + longer:g}",
        )
        return t.Answer(host.name, 1, problem=problem, seconds=time.monotonic() - started)
    error = future.exception()
    if error is not None:
        problem = t.host_problem(
            host.name, t.HOST_ANSWER, _("{host}: the request failed"), str(error)[:300], ""
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
        if len(problems) > 1:
            return _("{id}: {summary} (+{count} more)").format(
                id=problems[0].id, summary=problems[0].summary, count=len(problems) - 1
            )
        if problems:
            return f"{problems[0].id}: {problems[0].summary}"
        if self.status is Status.SKIP:
            return _("nothing could be checked")
        count = len(self.report.findings)
        return ngettext("{count} check ok", "{count} checks ok", count).format(count=count)


def summary_rows(answers: Sequence[t.Answer]) -> list[HostRow]:
    """A row per host, worst first (then by name)."""
    rows = [HostRow(a.host, t.as_report(a), a.seconds) for a in answers]
    return sorted(rows, key=lambda r: (_RANK[r.status], r.host))


def overall(rows: Sequence[HostRow]) -> Status:
    return rows[0].status if rows else Status.SKIP


def tally(rows: Sequence[HostRow]) -> str:
    """ "2 fail, 1 ok": how many hosts have each status, in the current language."""
    counts = {s: sum(1 for r in rows if r.status is s) for s in Status}
    return ", ".join(
        _("{count} {status}").format(count=n, status=label(s).lower())
        for s, n in counts.items()
        if n
    )


def _cut(text: str, room: int) -> str:
    """`text` within `room` columns (wide characters count two), with … when cut."""
    if display_width(text) <= room:
        return text
    used, end = 0, 0
    for end, char in enumerate(text):  # noqa: B007 - `end` is where the cut goes
        used += char_width(char)
        if used > room - 1:
            break
    return text[:end] + "…"


def summary_text(rows: Sequence[HostRow], width: int = 80) -> str:
    """The terminal's table: status, host, seconds, what to look at first."""
    words = {r.host: label(r.status).upper() for r in rows}
    status_width = max([6, display_width(_("STATUS")), *map(display_width, words.values())])
    name_width = max([4, display_width(_("HOST")), *(len(r.host) for r in rows)])
    lines = [
        f"{ljust(_('STATUS'), status_width)}  {ljust(_('HOST'), name_width)}  "
        f"{' ' * max(0, 6 - display_width(_('TIME')))}{_('TIME')}  {_('FIRST PROBLEM')}"
    ]
    for row in rows:
        head = (
            f"{ljust(words[row.host], status_width)}  {row.host:<{name_width}}  "
            f"{row.seconds:>5.1f}s  "
        )
        lines.append(head + _cut(row.headline, max(10, width - display_width(head))))
    lines.append(
        _("{count} host(s): {tally}; overall {status}").format(
            count=len(rows), tally=tally(rows), status=label(overall(rows)).lower()
        )
    )
    return "\n".join(lines) + "\n"
