"""Connecting to the Docker engine and explaining why that failed."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

import docker
from docker.errors import DockerException

from config.i18n import gettext as _
from config.settings import Settings
from handlers.results import HandlerError

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# Pinned so constructing a client never contacts the daemon (docker-py asks for the version
# otherwise); 1.41 is Docker 20.10, which every engine that can run Dify 1.x speaks.
API_VERSION = "1.41"


@dataclass(frozen=True)
class EngineProblem:
    """Why the engine did not answer, in words an on-call engineer acts on."""

    reason: str  # socket-missing | permission-denied | refused | timeout | error
    message: str
    remedy: str


def docker_host(settings: Settings) -> str:
    return settings.docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def make_client(settings: Settings, timeout: float | None = None) -> docker.DockerClient:
    """A client that has not talked to the engine yet (no I/O here)."""
    host = docker_host(settings)
    client = docker.DockerClient(
        base_url=host,
        version=API_VERSION,
        timeout=timeout or max(5.0, settings.check_timeout * 2),
    )
    if host.startswith("unix://"):
        # No proxy ever applies to a Unix socket, yet requests looks for one in the whole
        # environment on every call: a third of the CPU a check spent on engine calls.
        client.api.trust_env = False
    return client


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [exc]
    while stack and len(seen) < 20:
        current = stack.pop()
        if current is None or current in seen:
            continue
        seen.append(current)
        stack.extend([current.__cause__, current.__context__])
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
        # urllib3 keeps the low-level error on `.reason` (MaxRetryError, NewConnectionError).
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return seen


def explain(exc: BaseException, host: str) -> EngineProblem:
    """Map the exception zoo of docker-py/requests/urllib3 to one of a few causes."""
    text = " ".join(str(c) for c in _causes(exc)).lower()
    codes = {getattr(c, "errno", None) for c in _causes(exc)}
    socket_path = host.removeprefix("unix://") if host.startswith("unix://") else None
    if isinstance(exc, FileNotFoundError) or errno.ENOENT in codes or "no such file" in text:
        return EngineProblem(
            "socket-missing",
            _("Docker socket {socket} does not exist").format(socket=socket_path or host),
            _("Start the engine (`sudo systemctl start docker`) or set DOCKER_HOST to its socket."),
        )
    if errno.EACCES in codes or "permission denied" in text:
        return EngineProblem(
            "permission-denied",
            _("permission denied on {socket}").format(socket=socket_path or host),
            _(
                "Run the bot as a user in the `docker` group (`sudo usermod -aG docker $USER`, "
                "then log in again) or as root."
            ),
        )
    if errno.ECONNREFUSED in codes or "connection refused" in text:
        return EngineProblem(
            "refused",
            _("the engine at {host} refused the connection").format(host=host),
            _(
                "The socket exists but nothing answers: restart the engine "
                "(`sudo systemctl restart docker`) and check `journalctl -u docker`."
            ),
        )
    if "timed out" in text or "timeout" in text:
        return EngineProblem(
            "timeout",
            _("the engine at {host} did not answer in time").format(host=host),
            _("The engine is overloaded or stuck: check `journalctl -u docker` and `docker info`."),
        )
    first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    return EngineProblem(
        "error",
        _("engine error at {host}: {error}").format(host=host, error=first_line),
        _("Check `docker info`."),
    )


def ping(
    settings: Settings, timeout: float | None = None
) -> tuple[docker.DockerClient | None, EngineProblem | None, str]:
    """Return a connected client, or the problem; plus the engine version when known.

    `timeout` bounds every API call of the returned client (default: max(5 s, 2x CHECK_TIMEOUT)).
    """
    host = docker_host(settings)
    try:
        client = make_client(settings, timeout)
        client.ping()
        version = str(client.version().get("Version", "?"))
        return client, None, version
    except (DockerException, OSError, Exception) as exc:
        return None, explain(exc, host), ""


def connect(settings: Settings) -> docker.DockerClient:
    """A client that answered a ping; HandlerError saying why and what to do otherwise."""
    client, problem, _ = ping(settings)
    if client is None:
        reason = problem.message if problem else "no answer"
        remedy = problem.remedy if problem else ""
        raise HandlerError(f"Docker engine unreachable: {reason}. {remedy}".strip())
    return client
