"""One way to ask any Dify host for a check, a log, a fix-env or a restart: the transport.

Two implementations answer the same operations with the same JSON shapes (those of the CLI's
`--json`): `LocalTransport` calls the handlers in this process, `handlers.ssh_transport`
runs the product's own CLI on the host over SSH and reads its JSON. The handlers themselves
never know which host they serve.

A host that cannot answer (down, SSH refused, wrong host key, product missing, deadline)
becomes an `Answer` with a `problem`: a host-level Finding with the remedy, never a hang or a
traceback. `as_report` turns any answer into a check Report, so renderers need no new shapes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from config.hosts import HostEntry
from config.i18n import gettext as _
from config.settings import ConfigError, Settings, load_settings
from handlers.results import Finding, HandlerError, Report, Status

FixMode = Literal["plan", "apply", "undo"]

# Host-level finding ids (the host, not its Dify, is the problem).
HOST_REACH = "host.reach"  # down, unreachable, SSH refused or not authorized
HOST_KEY = "host.key"  # its host key is not the pinned one
HOST_PRODUCT = "host.product"  # no dify-ollama (or it refused the command)
HOST_DEADLINE = "host.deadline"  # no answer within the host's deadline
HOST_ANSWER = "host.answer"  # an answer that is not the CLI's JSON


@dataclass(frozen=True)
class Answer:
    """What one host said: the CLI's JSON and exit code, or a host-level problem."""

    host: str
    exit_code: int
    data: dict[str, Any] | None = None
    problem: Finding | None = None
    error: str = ""  # the command's own one-line error (stderr), when it gave one
    seconds: float = field(default=0.0, compare=False)

    @property
    def reached(self) -> bool:
        return self.problem is None


class Transport(Protocol):
    """The operations every host answers. Arguments are validated by the caller's parser and
    again by the CLI on the host (argv words, never a shell string)."""

    @property
    def host(self) -> HostEntry: ...

    def check(self, only: Sequence[str] = (), chat: bool = False) -> Answer:
        """chat: also the chat test (dify.chat), as `check --chat`."""
        ...

    def logs(
        self, service: str, lines: int, since: str | None = None, grep: str | None = None
    ) -> Answer: ...

    def fix_env(self, mode: FixMode, ref: str | None = None) -> Answer:
        """plan: make and save a plan (JSON of the plan); apply: apply the saved plan `ref`
        exactly as shown; undo: restore backup `ref` (None: the latest)."""
        ...

    def restart(
        self,
        services: Sequence[str] = (),
        *,
        everything: bool = False,
        wait: float | None = None,
        verify: bool = True,
    ) -> Answer:
        """As `restart [SERVICE...] [--all --yes-really] [--wait S] [--no-check]`: everything is
        the full down + up (the caller confirmed it), wait None the host's default, verify
        False no check afterwards."""
        ...

    def close(self) -> None: ...


CHAT_TIMEOUT_DEFAULT = 60.0  # config.settings Settings.chat_timeout's default


def chat_allowance(host: HostEntry) -> float:
    """Seconds the chat test may add to a check's deadline on `host`: the CHAT_TIMEOUT its
    entry sets, else the product's default (the host bounds the chat itself by it)."""
    try:
        return float(host.settings.get("CHAT_TIMEOUT", CHAT_TIMEOUT_DEFAULT))
    except ValueError:
        return CHAT_TIMEOUT_DEFAULT


def host_problem(
    host: str, finding_id: str, summary: str, detail: str, remedy: str, **values: object
) -> Finding:
    """A host-level finding: `summary` is a translated message with `{host}` (and `values`)."""
    return Finding(finding_id, Status.FAIL, summary.format(host=host, **values), detail, remedy)


def failed(host: HostEntry, finding: Finding, started: float) -> Answer:
    return Answer(host.name, 1, problem=finding, seconds=time.monotonic() - started)


def report_from_json(data: dict[str, Any]) -> Report:
    """A check report as the CLI's `check --json` printed it (on any host)."""
    findings = []
    for raw in data.get("findings") or ():
        if not isinstance(raw, dict):
            continue
        try:
            status = Status(str(raw.get("status")))
        except ValueError:
            status = Status.FAIL  # an unknown status is never read as ok
        metrics = raw.get("metrics") if isinstance(raw.get("metrics"), dict) else {}
        findings.append(
            Finding(
                id=str(raw.get("id", "?")),
                status=status,
                summary=str(raw.get("summary", "")),
                detail=str(raw.get("detail", "")),
                remedy=str(raw.get("remedy", "")),
                service=raw.get("service") if isinstance(raw.get("service"), str) else None,
                fixable=bool(raw.get("fixable", False)),
                metrics={
                    str(k): float(v)
                    for k, v in (metrics or {}).items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                },
                duration_ms=int(raw.get("duration_ms") or 0),
            )
        )
    context = data.get("context")
    return Report(
        findings=tuple(findings),
        duration_ms=int(data.get("duration_ms") or 0),
        context={str(k): str(v) for k, v in context.items()} if isinstance(context, dict) else {},
    )


def as_report(answer: Answer) -> Report:
    """Any answer to `check` as a Report: the host's own, or one finding saying why not."""
    context = {"host": answer.host}
    if answer.problem is not None:
        return Report((answer.problem,), int(answer.seconds * 1000), context)
    if answer.data is None or not isinstance(answer.data.get("findings"), list):
        problem = Finding(
            HOST_ANSWER,
            Status.FAIL,
            _("{host} did not answer with a check report").format(host=answer.host),
            answer.error[:300],
            _("Run `dify-ollama check --json` on that host and read its error."),
        )
        return Report((problem,), int(answer.seconds * 1000), context)
    report = report_from_json(answer.data)
    if not report.findings:  # nothing checked is never ok
        empty = Finding(
            HOST_ANSWER, Status.FAIL, _("{host} returned no findings").format(host=answer.host)
        )
        return Report((empty,), report.duration_ms, context)
    if "host" in report.context:  # the machine's own name, as its check saw it
        context["hostname"] = report.context["host"]
    return Report(report.findings, report.duration_ms, {**report.context, **context})


# --- in-process ----------------------------------------------------------------------------
def host_settings(base: Settings, host: HostEntry) -> Settings:
    """The bot's settings with the host entry's own values (DIFY_DIR, OLLAMA_URL...)."""
    if not host.settings:
        return base
    overrides = {key.lower(): value for key, value in host.settings.items()}
    try:
        return load_settings(None, **{**_explicit(base), **overrides})
    except ConfigError as exc:
        raise HandlerError(f"host {host.name}: {exc}") from None


def _explicit(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.model_fields_set}


class LocalTransport:
    """This machine, in-process: the handlers the CLI and the bot already use."""

    def __init__(self, settings: Settings, host: HostEntry, user: str, source: str) -> None:
        self._host = host
        self._base = settings
        self._user = user
        self._source = source

    @property
    def host(self) -> HostEntry:
        return self._host

    def _call(self, work: Any) -> Answer:
        started = time.monotonic()
        try:
            code, data = work(host_settings(self._base, self._host))
        except HandlerError as exc:
            return Answer(self._host.name, 1, error=str(exc), seconds=time.monotonic() - started)
        return Answer(self._host.name, code, data, seconds=time.monotonic() - started)

    def check(self, only: Sequence[str] = (), chat: bool = False) -> Answer:
        from handlers.check import run_check

        def work(settings: Settings) -> tuple[int, dict[str, Any]]:
            report = run_check(settings, tuple(only), chat="on" if chat else "off")
            return report.exit_code, report.to_json()

        return self._call(work)

    def logs(
        self, service: str, lines: int, since: str | None = None, grep: str | None = None
    ) -> Answer:
        from handlers.logs import fetch_logs

        return self._call(
            lambda s: (0, fetch_logs(s, service, lines, since=since, grep=grep).to_json())
        )

    def fix_env(self, mode: FixMode, ref: str | None = None) -> Answer:
        from handlers import fix_apply, fix_plan, fix_undo
        from handlers.check import run_check

        def work(settings: Settings) -> tuple[int, dict[str, Any]]:
            if mode == "undo":
                done = fix_undo.undo(settings, user=self._user, source=self._source, backup_id=ref)
                return 0, done.to_json()
            if mode == "apply":
                if ref is None:
                    raise HandlerError("fix-env apply needs the plan id that was shown")
                plan = fix_plan.load_plan(settings, ref)
                applied = fix_apply.apply_plan(settings, ref, user=self._user, source=self._source)
                return 0, {"plan": plan.to_json(), "applied": applied.to_json()}
            plan = fix_plan.make_plan(settings, run_check(settings))
            return 0, plan.to_json()

        return self._call(work)

    def restart(
        self,
        services: Sequence[str] = (),
        *,
        everything: bool = False,
        wait: float | None = None,
        verify: bool = True,
    ) -> Answer:
        from handlers.check import verification_check
        from handlers.restart import DEFAULT_WAIT, restart_and_check

        def work(settings: Settings) -> tuple[int, dict[str, Any]]:
            verified = restart_and_check(
                settings,
                "all" if everything else "services" if services else "apply",
                services,
                user=self._user,
                source=self._source,
                wait=DEFAULT_WAIT if wait is None else wait,
                check=verification_check if verify else None,
            )
            data: dict[str, Any] = {"restart": verified.restart.to_json()}
            if verified.report is not None:
                data["check"] = verified.report.to_json()
            return verified.exit_code, data

        return self._call(work)

    def close(self) -> None:
        return None
