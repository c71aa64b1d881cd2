"""`logs`: the last lines of a Dify service's container log, cleaned and redacted.

The engine applies tail and since (docker-py `logs(tail=<int>, since=<epoch>)`; a string tail
silently means "everything"), and the answer is consumed as a stream, line by line, so memory
depends on LINES, never on the size of the log. Each line is decoded (invalid UTF-8 replaced),
stripped of ANSI escape sequences and control characters, redacted, then filtered by `grep`
(case-insensitive substring; it filters within the fetched LINES, it does not search the whole
log), then shortened if it is absurdly long. Redaction runs before grep, so grep can never be
used to probe for a secret's value, and before shortening, so a cut never reveals half a secret.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from config.i18n import gettext as _
from config.i18n import ngettext
from handlers.envfile import read_env_file
from handlers.project import DifyProject, discover
from handlers.redact import Redactor, redactor_for
from handlers.results import HandlerError

if TYPE_CHECKING:
    import docker

    from config.settings import Settings

DEFAULT_SERVICE = "api"
DEFAULT_LINES = 50
MAX_LINES = 5000
MAX_GREP = 200
# A single log line longer than this is shown cut (Dify logs whole prompts on one line).
MAX_LINE_CHARS = 10_000
# Bytes of one line kept for decoding and redaction: more than is shown (4 bytes per character
# at worst, plus room), so a secret straddling the cut is still seen whole by the redactor.
MAX_LINE_BYTES = MAX_LINE_CHARS * 4 + 4096
# Everything returned, at most (older lines are dropped first): 5000 lines of 10 000
# characters would otherwise be 50 MB.
MAX_TEXT_CHARS = 2_000_000
FETCH_DEADLINE = 30.0
USAGE = "logs [SERVICE] [LINES] [--since 10m] [--grep TEXT]"

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_INTEGER = re.compile(r"^[+-]?\d+$")
# Bounded repeats: a 5000-digit number is refused by length, never handed to int() (which
# refuses more than 4300 digits with a ValueError) or to timedelta (OverflowError).
_DURATION = re.compile(r"^(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?$")
MAX_SINCE_DAYS = 3650
# An ISO time before this is not a log line's time (the engine counts from 1970).
_EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
# CSI (colours, cursor moves), OSC (titles, hyperlinks), other two-byte escapes, and every C0/C1
# control character except tab and newline; also the bidirectional overrides that can make a
# line read differently from what it contains.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]{0,4096}(?:\x07|\x1b\\)?"
    r"|\x1b[()*+][0-9A-Za-z]"
    r"|\x1b[@-Z\\-_]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)


class LogsUsageError(HandlerError):
    """Bad arguments to `logs` (the CLI exits 2 on it, the bot shows the usage)."""


class UnknownService(LogsUsageError):
    """SERVICE is not one of the project's compose services; `.services` lists the valid ones."""

    def __init__(self, message: str, services: Sequence[str]) -> None:
        super().__init__(message)
        self.services = tuple(services)


@dataclass(frozen=True)
class Since:
    """`--since`: a duration back from now (10m, 2h, 1d, 1h30m) or an ISO time."""

    text: str
    seconds: float | None = None
    at: datetime | None = None  # timezone-aware

    def epoch(self, now: float | None = None) -> float:
        """Seconds since the epoch, as the engine wants it (positive: 0 means "no since")."""
        if self.at is not None:
            value = self.at.timestamp()
        else:
            value = (time.time() if now is None else now) - (self.seconds or 0)
        return max(1.0, round(value, 6))


@dataclass(frozen=True)
class LogRequest:
    service: str = DEFAULT_SERVICE
    lines: int = DEFAULT_LINES
    since: Since | None = None
    grep: str | None = None

    def describe(self) -> str:
        """ "api, last 100 lines, since 10m, matching 'timeout'" (for headers and audit)."""
        last = ngettext("last {count} line", "last {count} lines", self.lines)
        parts = [self.service, last.format(count=self.lines)]
        if self.since is not None:
            parts.append(_("since {when}").format(when=self.since.text))
        if self.grep:
            parts.append(_("matching {text}").format(text=repr(self.grep)))
        return ", ".join(parts)


@dataclass(frozen=True)
class LogResult:
    service: str
    container: str  # container name, e.g. docker-api-1
    container_id: str  # short id
    state: str  # running, exited, restarting, ...
    project: str
    lines_requested: int
    lines_fetched: int  # lines the engine sent (the tail, within --since)
    lines_returned: int  # after --grep
    text: str  # cleaned and redacted, "\n"-joined, no trailing newline
    truncated: bool  # lines were cut or dropped to stay within the limits
    redactions: int  # secrets replaced by [REDACTED]
    since: str | None = None
    grep: str | None = None  # as given, redacted
    notes: tuple[str, ...] = ()  # stopped container, empty log, unreadable .env ...
    services: tuple[str, ...] = ()  # the project's services (valid SERVICE values)
    elapsed_ms: int = 0

    @property
    def empty(self) -> bool:
        return self.lines_returned == 0

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n") if self.text else []

    def to_json(self) -> dict[str, Any]:
        """`logs --json`: every field, with the (redacted) log as a list of lines."""
        data = asdict(self)
        del data["text"]
        data["lines"] = self.lines
        data["description"] = self.describe()
        return data

    def describe(self) -> str:
        return LogRequest(self.service, self.lines_requested, None, self.grep).describe() + (
            ", " + _("since {when}").format(when=self.since) if self.since else ""
        )


# --- arguments ---------------------------------------------------------------------------------
def _whole_number() -> str:
    return _("LINES must be a whole number from 1 to {most}").format(most=MAX_LINES)


def parse_lines(value: str | int) -> int:
    """LINES: a whole number 1..5000."""
    if isinstance(value, bool):
        raise LogsUsageError(
            _("LINES must be a whole number from 1 to {most}").format(most=MAX_LINES)
        )
    if isinstance(value, str):
        text = value.strip()
        if not _INTEGER.match(text):
            shown = text[:40]
            raise LogsUsageError(
                _("LINES must be a whole number from 1 to {most} (got {value})").format(
                    most=MAX_LINES, value=repr(shown)
                )
            )
        digits = text.lstrip("+-").lstrip("0")
        if len(digits) > len(str(MAX_LINES)):
            text_of = (
                _("LINES must be from 1 to {most} (got a negative {digits}-digit number)")
                if text.startswith("-")
                else _("LINES must be from 1 to {most} (got a {digits}-digit number)")
            )
            raise LogsUsageError(text_of.format(most=MAX_LINES, digits=len(digits)))
        number = int(text)
    elif isinstance(value, int):
        number = value
    else:
        raise LogsUsageError(
            _("LINES must be a whole number from 1 to {most}").format(most=MAX_LINES)
        )
    if not 1 <= number <= MAX_LINES:
        raise LogsUsageError(
            _("LINES must be from 1 to {most} (got {value})").format(most=MAX_LINES, value=number)
        )
    return number


def parse_since(text: str) -> Since:
    """10m, 2h, 30s, 1d, 1h30m, or an ISO 8601 time (naive = this host's local time), within
    the last ten years."""
    raw = text.strip()
    match = _DURATION.match(raw.lower()) if raw else None
    if match and any(match.groups()):
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        total = days * 86400 + hours * 3600 + minutes * 60 + seconds  # exact, never overflows
        if total <= 0:
            raise LogsUsageError(_("--since must be a positive duration such as 10m"))
        if total > MAX_SINCE_DAYS * 86400:
            raise LogsUsageError(_("--since is more than ten years back"))
        return Since(raw, seconds=float(total))
    if re.fullmatch(r"[\d dhms]{1,80}", raw.lower()) and any(c.isdigit() for c in raw):
        raise LogsUsageError(
            _(
                "--since takes a duration such as 30s, 10m, 2h, 1d or 1h30m, each part at most "
                "9 digits (got {value})"
            ).format(value=repr(raw[:40]))
        )
    try:
        at = datetime.fromisoformat(raw)
        if at.tzinfo is None:
            at = at.astimezone()  # the host's local time, as `docker logs --since` reads it
        at.timestamp()
    except (ValueError, OverflowError, OSError):
        raise LogsUsageError(
            _(
                "--since takes a duration (30s, 10m, 2h, 1d) or an ISO time such as "
                "2025-01-31T14:00:00Z (got {value})"
            ).format(value=repr(raw[:40]))
        ) from None
    if at < _EARLIEST:
        raise LogsUsageError(
            _("--since {value} is before 1970: no log line is that old").format(
                value=repr(raw[:40])
            )
        )
    return Since(raw, at=at)


def parse_service(text: str) -> str:
    if not _SERVICE_NAME.match(text):
        raise LogsUsageError(
            _("SERVICE must be a compose service name such as api (got {value})").format(
                value=repr(text[:40])
            )
        )
    return text


def parse_grep(text: str) -> str:
    if not text.strip():
        raise LogsUsageError(_("--grep needs some text to look for"))
    if len(text) > MAX_GREP:
        raise LogsUsageError(
            _("--grep text is longer than {most} characters").format(most=MAX_GREP)
        )
    return text


def from_positionals(words: Sequence[str]) -> tuple[str, int]:
    """[SERVICE] [LINES]: one number alone is LINES (`logs 100`), one word alone is SERVICE."""
    if len(words) > 2:
        raise LogsUsageError(
            _("too many arguments ({words}); usage: {usage}").format(
                words=repr(" ".join(words)[:80]), usage=USAGE
            )
        )
    service, lines = DEFAULT_SERVICE, DEFAULT_LINES
    if len(words) == 2:
        service, lines = parse_service(words[0]), parse_lines(words[1])
    elif len(words) == 1:
        if _INTEGER.match(words[0].strip()):
            lines = parse_lines(words[0])
        else:
            service = parse_service(words[0])
    return service, lines


def parse_request(args: Sequence[str]) -> LogRequest:
    """The Slack arguments (already split like a shell would): pure, no I/O."""
    positionals: list[str] = []
    since: Since | None = None
    grep: str | None = None
    items = iter(args)
    for arg in items:
        name, eq, inline = arg.partition("=")
        if name in ("--since", "-s", "--grep", "-g"):
            value = inline if eq else next(items, None)
            if value is None:
                raise LogsUsageError(_("{option} needs a value").format(option=name))
            if name in ("--since", "-s"):
                since = parse_since(value)
            else:
                grep = parse_grep(value)
        elif arg.startswith("-") and not _INTEGER.match(arg):
            raise LogsUsageError(
                _("unknown option {option}; usage: {usage}").format(
                    option=repr(arg[:40]), usage=USAGE
                )
            )
        else:
            positionals.append(arg)
    service, lines = from_positionals(positionals)
    return LogRequest(service, lines, since, grep)


# --- fetching ----------------------------------------------------------------------------------
def clean_line(raw: bytes) -> str:
    """Bytes of one log line as readable text: UTF-8 (invalid bytes replaced), no escapes."""
    text = raw.decode("utf-8", errors="replace")
    return _CONTROL.sub("", text) if not text.isprintable() else text


def split_lines(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, int]]:
    """Frames of the log stream as lines (frames split and join lines arbitrarily in TTY mode).

    Yields (line, bytes cut off the end of it). A line longer than MAX_LINE_BYTES keeps its
    start only; the rest is skipped without being stored.
    """
    pending = bytearray()
    dropped = 0
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            room = MAX_LINE_BYTES - len(pending)
            if len(piece) > room:
                pending += piece[: max(0, room)]
                dropped += len(piece) - max(0, room)
            else:
                pending += piece
            if end < 0:
                break
            yield bytes(pending), dropped
            pending.clear()
            dropped = 0
            start = end + 1
    if pending or dropped:
        yield bytes(pending), dropped


def _engine_error(exc: BaseException, settings: Settings) -> HandlerError:
    from handlers import engine

    problem = engine.explain(exc, engine.docker_host(settings))
    return HandlerError(
        _("Docker engine: {problem}. {remedy}").format(
            problem=problem.message, remedy=problem.remedy
        )
    )


def _state_note(name: str, state: dict[str, Any]) -> str | None:
    status = str(state.get("Status") or "unknown")
    if status == "running":
        return None
    if status == "restarting":
        return _("container {name} is restarting over and over: its last lines say why").format(
            name=name
        )
    if status == "created":
        return _("container {name} was created but never started").format(name=name)
    finished = str(state.get("FinishedAt") or "")[:19].replace("T", " ")
    code = state.get("ExitCode")
    when = (
        _(" at {time} UTC").format(time=finished)
        if finished and not finished.startswith("0001")
        else ""
    )
    return _(
        "container {name} is stopped ({status}, exit code {code}{when}); these are its last "
        "lines before it stopped"
    ).format(name=name, status=status, code=code, when=when)


def _redactor(
    settings: Settings, project: DifyProject, container_env: list[str] | None, notes: list[str]
) -> Redactor:
    env_values: dict[str, str] = {}
    try:
        env_values = read_env_file(project.env_path).values
    except HandlerError as exc:
        # The container's environment holds the shared secrets too (x-shared-env), and the
        # patterns still apply: go on, but say what was not used.
        notes.append(
            _(
                "could not read Dify's .env ({error}); redacting with the container's "
                "environment and the secret patterns only"
            ).format(error=exc)
        )
    return redactor_for(
        settings, env_values=env_values, container_env=container_env, env_path=project.env_path
    )


@dataclass
class _Collected:
    lines: deque[str] = field(default_factory=deque)
    chars: int = 0
    fetched: int = 0
    redactions: int = 0
    truncated: bool = False


def _collect(
    chunks: Iterable[bytes], redactor: Redactor, grep: str | None, limit: int, out: _Collected
) -> None:
    """Fill `out` line by line (so whatever was read survives an interrupted stream)."""
    needle = grep.casefold() if grep else None
    # Bytes dropped from each line read and not yet processed (redact_lines reads ahead).
    cut: deque[int] = deque()

    def cleaned() -> Iterator[str]:
        for raw, dropped in split_lines(chunks):
            cut.append(dropped)
            yield clean_line(raw.removesuffix(b"\r"))

    for line, count in redactor.redact_lines(cleaned()):
        dropped = cut.popleft() if cut else 0
        out.fetched += 1
        out.redactions += count
        if needle is not None and needle not in line.casefold():
            continue
        if len(line) > MAX_LINE_CHARS or dropped:
            line = line[:MAX_LINE_CHARS] + " … [line cut]"
            out.truncated = True
        if len(out.lines) >= limit:
            # The engine applied the tail; this only guards against one that did not.
            out.chars -= len(out.lines.popleft()) + 1
        out.lines.append(line)
        out.chars += len(line) + 1
        while out.chars > MAX_TEXT_CHARS and out.lines:
            out.chars -= len(out.lines.popleft()) + 1
            out.truncated = True


def _close(stream: Any) -> None:
    # Already closed or half torn down (the watchdog got there first): nothing left to free.
    with contextlib.suppress(Exception):
        stream.close()


def fetch_logs(
    settings: Settings,
    service: str = DEFAULT_SERVICE,
    lines: int = DEFAULT_LINES,
    since: str | Since | None = None,
    grep: str | None = None,
    *,
    client: docker.DockerClient | None = None,
    deadline: float = FETCH_DEADLINE,
) -> LogResult:
    """The last `lines` lines of `service`'s container log, cleaned and redacted.

    Raises LogsUsageError (bad LINES/since/grep, UnknownService listing the valid services) or
    HandlerError (engine down, explained; container gone; driver keeps no readable log).
    """
    started = time.monotonic()
    lines = parse_lines(lines)
    service = parse_service(service)
    since_spec = parse_since(since) if isinstance(since, str) else since
    grep = parse_grep(grep) if grep is not None else None
    # Here, not at the top: `dify-ollama logs --help` must not pay for docker-py.
    import requests
    from docker.errors import APIError, DockerException, NotFound

    from handlers import engine

    own_client = client is None
    api = client or engine.make_client(settings)
    try:
        try:
            project = discover(api, settings)
        except (DockerException, requests.RequestException, OSError) as exc:
            raise _engine_error(exc, settings) from None
        info = project.container(service)
        if info is None:
            if not project.containers:
                raise HandlerError(
                    _(
                        "compose project {project} has no containers on this engine: "
                        "start Dify (`docker compose up -d` in its docker folder)"
                    ).format(project=repr(project.name))
                )
            raise UnknownService(
                _("no service {service} in compose project {project}; services: {services}").format(
                    service=repr(service),
                    project=repr(project.name),
                    services=", ".join(project.services),
                ),
                project.services,
            )
        notes: list[str] = []
        attrs: dict[str, Any] = {}
        try:
            attrs = api.api.inspect_container(info.id)
            redactor = _redactor(settings, project, (attrs.get("Config") or {}).get("Env"), notes)
            stream = api.api.logs(
                info.id,
                stdout=True,
                stderr=True,
                stream=True,
                follow=False,  # docker-py follows by default when streaming
                tail=lines,  # an int: a string would silently mean "all"
                since=since_spec.epoch() if since_spec is not None else None,
            )
        except NotFound:
            raise HandlerError(
                _("container {name} disappeared while reading it (recreated?): try again").format(
                    name=info.name
                )
            ) from None
        except APIError as exc:
            explanation = str(exc.explanation or exc)
            if "does not support reading" in explanation or "logging driver" in explanation:
                driver = ((attrs.get("HostConfig") or {}).get("LogConfig") or {}).get("Type", "?")
                where = (
                    _("give the service {setting} (or `local`) in the compose file to keep one")
                    if driver == "none"
                    else _("read its log where that driver sends it")
                ).format(setting="`logging: {driver: json-file}`")
                raise HandlerError(
                    _(
                        "container {name} logs with driver {driver}, which keeps nothing the "
                        "engine can read back: {where}"
                    ).format(name=info.name, driver=repr(driver), where=where)
                ) from None
            raise HandlerError(
                _("the engine refused to read {name}'s log: {error}").format(
                    name=info.name, error=explanation[:200]
                )
            ) from None
        except (DockerException, requests.RequestException, OSError) as exc:
            raise _engine_error(exc, settings) from None

        # The stream has no read timeout (docker-py disables it): a watchdog closes it.
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            _close(stream)

        watchdog = threading.Timer(max(0.1, deadline - (time.monotonic() - started)), stop)
        watchdog.daemon = True
        watchdog.start()
        collected = _Collected()
        try:
            _collect(stream, redactor, grep, lines, collected)
        except (DockerException, requests.RequestException, OSError) as exc:
            if not timed_out.is_set():
                raise _engine_error(exc, settings) from None
        except Exception:
            if not timed_out.is_set():  # reading a stream closed under it: expected then
                raise
        finally:
            watchdog.cancel()
            _close(stream)
        if timed_out.is_set():
            collected.truncated = True
            notes.append(
                _("stopped reading after {seconds} s: the engine is slow").format(
                    seconds=f"{deadline:g}"
                )
            )
    finally:
        if own_client:
            api.close()

    # The grep text is echoed back (Slack header, notes): a secret typed into it is redacted
    # like the log, since a slash command's own text is not visible to the channel.
    shown_grep = redactor.redact(grep) if grep else None
    state = attrs.get("State") or {}
    note = _state_note(info.name, state)
    if note:
        notes.insert(0, note)
    if collected.fetched == 0:
        if since_spec is not None:
            notes.append(_("no log lines since {when}").format(when=since_spec.text))
        else:
            notes.append(
                _("{service} (container {name}) has written nothing to its log").format(
                    service=service, name=info.name
                )
            )
    elif not collected.lines and grep:
        notes.append(
            _("none of the last {count} lines contains {text}").format(
                count=collected.fetched, text=repr(shown_grep)
            )
        )
    return LogResult(
        service=service,
        container=info.name,
        container_id=info.id[:12],
        state=str(state.get("Status") or info.state),
        project=project.name,
        lines_requested=lines,
        lines_fetched=collected.fetched,
        lines_returned=len(collected.lines),
        text="\n".join(collected.lines),
        truncated=collected.truncated,
        redactions=collected.redactions,
        since=since_spec.text if since_spec is not None else None,
        grep=shown_grep,
        notes=tuple(notes),
        services=project.services,
        elapsed_ms=int((time.monotonic() - started) * 1000),
    )
