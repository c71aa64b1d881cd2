"""Facts several probes need (engine, project, .env, database rows, Ollama's answers), each
computed once per check, on first use, by whichever probe asks first; the others wait for it.
"""

from __future__ import annotations

import functools
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import docker
import httpx

from config.settings import Settings
from handlers import compose_file, container_exec, dify_db, engine
from handlers.envfile import EnvFile, read_env_file
from handlers.project import DifyProject, discover
from handlers.results import HandlerError
from handlers.urls import (
    DEFAULT_DIFY_OLLAMA_URL,
    PUBLIC_OPENAI_BASE,
    host_of,
    without_credentials,
)

T = TypeVar("T")

# The whole check answers within CHECK_TIMEOUT + DEADLINE_MARGIN; a probe started late gets
# less than CHECK_TIMEOUT so that its exec (EXEC_MARGIN of set-up) still lands in time. The
# margins leave the CLI's own start-up inside the promised CHECK_TIMEOUT + 1 s.
DEADLINE_MARGIN = 0.6
EXEC_MARGIN = 0.45


@functools.cache
def _tls() -> ssl.SSLContext:
    # httpx builds a TLS context (loading the CA bundle) for every client: ~60 ms of CPU, twice
    # per check, most of what a watch costs when idle. The context is only read: share it.
    return httpx.create_ssl_context()


def http_client(timeout: float) -> httpx.Client:
    """An httpx client for probes. trust_env=False: a proxy variable on the host must not
    capture a loopback probe."""
    return httpx.Client(timeout=timeout, trust_env=False, verify=_tls())


class Skip(Exception):
    """A probe cannot run because a prerequisite failed; the message names it."""


@dataclass(frozen=True)
class DifyUrl:
    url: str
    source: str  # database | OPENAI_API_BASE | default

    @property
    def shown(self) -> str:
        return without_credentials(self.url)


@dataclass(frozen=True)
class OllamaAnswer:
    ok: bool
    version: str | None
    error: str | None
    models: tuple[dict[str, Any], ...] = ()
    loaded: tuple[dict[str, Any], ...] = ()


class Facts:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.check_timeout
        self.deadline = time.monotonic() + settings.check_timeout + DEADLINE_MARGIN
        self.hostname = socket.gethostname()
        self._lock = threading.Lock()
        self._memo: dict[str, Future[Any]] = {}

    def _once(self, key: str, compute: Callable[[], T]) -> T:
        with self._lock:
            future = self._memo.get(key)
            owner = future is None
            if future is None:
                future = Future()
                self._memo[key] = future
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:
                future.set_exception(exc)
        return cast(T, future.result())

    def budget(self) -> float:
        """Seconds a probe started now may wait: CHECK_TIMEOUT, less if the deadline is near."""
        return max(0.5, min(self.timeout, self.deadline - time.monotonic() - EXEC_MARGIN))

    # -- engine and project ------------------------------------------------------------
    def engine(self) -> tuple[docker.DockerClient | None, engine.EngineProblem | None, str]:
        # A hung engine must not hold the report past the deadline either.
        return self._once("engine", lambda: engine.ping(self.settings, self.timeout + 0.3))

    def client(self) -> docker.DockerClient:
        client, problem, _ = self.engine()
        if client is None:
            raise Skip(f"needs docker.engine ({problem.reason if problem else 'down'})")
        return client

    def project(self) -> DifyProject:
        def compute() -> DifyProject:
            client, _, _ = self.engine()
            return discover(client, self.settings)

        try:
            return self._once("project", compute)
        except HandlerError:
            raise Skip("needs dify.project") from None

    def project_or_error(self) -> tuple[DifyProject | None, str | None]:
        try:
            return self._once("project", lambda: discover(self.engine()[0], self.settings)), None
        except HandlerError as exc:
            return None, str(exc)

    def env(self) -> EnvFile:
        project = self.project()
        try:
            return self._once("env", lambda: read_env_file(project.env_path))
        except HandlerError as exc:
            raise Skip(f"needs env.file ({exc})") from None

    def env_or_empty(self) -> dict[str, str]:
        try:
            return self.env().values
        except Skip:
            return {}

    def compose(self) -> compose_file.ComposeConfig:
        project = self.project()

        def compute() -> compose_file.ComposeConfig:
            files = compose_file.effective_files(project.config_files, project.working_dir)
            if not files:
                raise HandlerError(f"no compose file found in {project.working_dir}")
            return compose_file.load_compose(files, self.env_or_empty())

        try:
            return self._once("compose", compute)
        except HandlerError as exc:
            raise Skip(f"cannot read the compose files ({exc})") from None

    def inspect(self, container_id: str) -> dict[str, Any]:
        return self._once(
            f"inspect:{container_id}", lambda: self.client().api.inspect_container(container_id)
        )

    def running(self, service: str) -> str:
        """The id of the service's running container, or Skip naming why there is none."""
        info = self.project().container(service)
        if info is None:
            raise Skip(f"needs dify.containers ({service} has no container)")
        if info.state != "running":
            raise Skip(f"needs dify.containers ({service} is {info.state})")
        return info.id

    def model_callers(self) -> list[str]:
        from handlers.project import MODEL_CALLERS

        project = self.project()
        return [s for s in MODEL_CALLERS if s in project.containers]

    def resolution(self, container_id: str, name: str) -> container_exec.Resolution:
        """How a host name resolves inside a container (shared by the dns and reach probes).

        An `extra_hosts` entry is what Docker writes into the container's /etc/hosts, and the
        inspect data is already here: only names without one cost a file read or an exec.
        """

        def compute() -> container_exec.Resolution:
            hosts = (self.inspect(container_id).get("HostConfig") or {}).get("ExtraHosts") or []
            for entry in hosts:
                host, _, address = str(entry).partition(":")
                if host == name and address:
                    return container_exec.Resolution(name, (address,), "extra_hosts")
            return container_exec.resolve(self.client(), container_id, name, self.budget())

        return self._once(f"resolve:{container_id}:{name}", compute)

    # -- database ------------------------------------------------------------------------
    def inspected_environments(self) -> list[list[str]]:
        """Config.Env of every container this check has inspected so far (for the scrubber:
        evidence may quote whatever a container holds, a proxy password or a DSN)."""
        with self._lock:
            done = [
                f
                for key, f in self._memo.items()
                if key.startswith("inspect:") and f.done() and f.exception() is None
            ]
        return [list((f.result().get("Config") or {}).get("Env") or []) for f in done]

    def container_env(self, container_id: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in (self.inspect(container_id).get("Config") or {}).get("Env") or []:
            key, _, value = str(item).partition("=")
            env[key] = value
        return env

    def credentials(self) -> list[dify_db.CredentialRow]:
        project = self.project()

        def compute() -> list[dify_db.CredentialRow]:
            env = self.env_or_empty()
            cid = self.running(dify_db.db_service(project, env))
            # The login the running PostgreSQL was started with: on the critical path of
            # every container probe, and right even when .env changed since.
            where = dify_db.resolve_login(project, env, self.container_env(cid))
            return dify_db.open_database(self.client(), project, where).read_rows(self.budget())

        return self._once("credentials", compute)

    def dify_urls(self) -> list[DifyUrl]:
        """The Ollama URLs Dify uses: from the database, else OPENAI_API_BASE, else default."""

        def compute() -> list[DifyUrl]:
            try:
                rows = self.credentials()
            except (HandlerError, Skip):
                rows = []
            urls = list(dict.fromkeys(r.base_url for r in rows if r.base_url))
            if urls:
                return [DifyUrl(u, "database") for u in urls]
            legacy = self.env_or_empty().get("OPENAI_API_BASE", "")
            if legacy and legacy.rstrip("/") != PUBLIC_OPENAI_BASE:
                return [DifyUrl(legacy, "OPENAI_API_BASE")]
            return [DifyUrl(DEFAULT_DIFY_OLLAMA_URL, "default")]

        return self._once("dify_urls", compute)

    def dify_hosts(self) -> list[str]:
        return list(dict.fromkeys(host_of(u.url) for u in self.dify_urls() if host_of(u.url)))

    # -- Ollama on the host ----------------------------------------------------------------
    def _http(self) -> httpx.Client:
        return http_client(self.timeout)

    def ollama(self) -> OllamaAnswer:
        def compute() -> OllamaAnswer:
            base = self.settings.ollama_url.rstrip("/")
            try:
                with self._http() as http:
                    version = http.get(f"{base}/api/version", timeout=self.budget())
                    if version.status_code != 200:
                        return OllamaAnswer(
                            False, None, f"GET /api/version answered HTTP {version.status_code}"
                        )
                    tags = http.get(f"{base}/api/tags", timeout=self.budget())
                    loaded = http.get(f"{base}/api/ps", timeout=self.budget())
            except httpx.TimeoutException:
                return OllamaAnswer(False, None, f"no answer within {self.timeout:g} s (hung)")
            except httpx.ConnectError as exc:
                reason = "connection refused" if "refused" in str(exc).lower() else str(exc)
                return OllamaAnswer(False, None, reason[:200])
            except httpx.HTTPError as exc:
                return OllamaAnswer(False, None, f"{type(exc).__name__}: {str(exc)[:200]}")
            try:
                ver = str(version.json().get("version", "?"))
                models = tuple(tags.json().get("models") or ()) if tags.status_code == 200 else ()
                running = (
                    tuple(loaded.json().get("models") or ()) if loaded.status_code == 200 else ()
                )
            except (ValueError, AttributeError):
                return OllamaAnswer(False, None, "answered, but not with Ollama's JSON")
            return OllamaAnswer(True, ver, None, models, running)

        return self._once("ollama", compute)
