"""Facts several probes need (engine, project, .env, database rows, Ollama's answers), each
computed once per check, on first use, by whichever probe asks first; the others wait for it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import docker
import httpx

from config.i18n import gettext as _
from config.settings import Settings
from handlers import (
    compose_cli,
    compose_file,
    container_exec,
    dify_db,
    engine,
    plugin_db,
    timeline,
)
from handlers.creation import Creation, creation_of
from handlers.engine_cache import EngineCache
from handlers.envfile import EnvFile, read_env_file
from handlers.layout import API_HEALTH_URL, HEALTH_URLS, Layout, describe_layout, release_from_image
from handlers.project import MODEL_CALLERS, DifyProject, discover
from handlers.results import HandlerError
from handlers.urls import (
    DEFAULT_DIFY_OLLAMA_URL,
    PUBLIC_OPENAI_BASE,
    host_of,
    is_ip,
    root_of,
    without_credentials,
)

T = TypeVar("T")

# The whole check answers within CHECK_TIMEOUT + DEADLINE_MARGIN; a probe started late gets
# less than CHECK_TIMEOUT so that its exec (EXEC_MARGIN of set-up) still lands in time. The
# margins leave the CLI's own start-up inside the promised CHECK_TIMEOUT + 1 s.
DEADLINE_MARGIN = 0.6
EXEC_MARGIN = 0.45


def short_ids(text: str) -> str:
    """A fact's key as a span name: container ids cut to Docker's 12 characters, URLs
    without their credentials."""
    kind, _, rest = text.partition(":")
    if not rest:
        return kind
    cid, _, tail = rest.partition(":")
    cid = cid[:12] if len(cid) == 64 else cid
    return f"{kind}:{cid}" + (f":{without_credentials(tail)}" if tail else "")


@functools.cache
def _tls() -> ssl.SSLContext:
    # httpx builds a TLS context (loading the CA bundle) for every client: ~60 ms of CPU, twice
    # per check, most of what a watch costs when idle. The context is only read: share it.
    return httpx.create_ssl_context()


@functools.cache
def _no_ca() -> ssl.SSLContext:
    # Verifying, with no CA loaded: a client that only calls http:// URLs never uses it, and
    # an https URL reached by mistake fails verification instead of going unchecked.
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def http_client(timeout: float, tls: bool = True) -> httpx.Client:
    """An httpx client for probes. trust_env=False: a proxy variable on the host must not
    capture a loopback probe. `tls=False` for a client that only calls http:// URLs (it does
    not follow redirects): loading the CA bundle is most of a client's cost."""
    return httpx.Client(timeout=timeout, trust_env=False, verify=_tls() if tls else _no_ca())


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


class LazyValues(Mapping[str, str]):
    """A mapping computed on first access (then kept)."""

    def __init__(self, load: Callable[[], Mapping[str, str]]) -> None:
        self._load = load
        self._values: Mapping[str, str] | None = None

    def _data(self) -> Mapping[str, str]:
        if self._values is None:
            self._values = self._load()
        return self._values

    def __getitem__(self, key: str) -> str:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


# Seconds before the deadline that the layout stops waiting for api's /health version.
LAYOUT_MARGIN = 1.0


class Facts:
    def __init__(
        self, settings: Settings, cache: EngineCache | None = None, chat: str = "off"
    ) -> None:
        self.settings = settings
        self.cache = cache  # what a long-running process keeps between checks
        self.chat = chat  # dify.chat: off | on | if-loaded (handlers/probes/chat.py)
        # dify.plugin runs: Dify's rows' psql reads plugin_daemon's database too
        self.read_plugins = True
        self.timeout = settings.check_timeout
        self.deadline = time.monotonic() + settings.check_timeout + DEADLINE_MARGIN
        self.hostname = socket.gethostname()
        self._lock = threading.Lock()
        self._memo: dict[str, Future[Any]] = {}
        self._spans: dict[str, int | None] = {}

    def _once(self, key: str, compute: Callable[[], T]) -> T:
        with self._lock:
            future = self._memo.get(key)
            owner = future is None
            if future is None:
                future = Future()
                self._memo[key] = future
        name = short_ids(key)
        if owner:
            with timeline.span(f"fact {name}") as index:
                with self._lock:
                    self._spans[key] = index
                try:
                    future.set_result(compute())
                except BaseException as exc:
                    future.set_exception(exc)
        elif not future.done():
            with self._lock:
                computing = self._spans.get(key)
            with timeline.span(f"wait {name}", waits=computing):
                return cast(T, future.result())
        return cast(T, future.result())

    def budget(self) -> float:
        """Seconds a probe started now may wait: CHECK_TIMEOUT, less if the deadline is near."""
        return max(0.5, min(self.timeout, self.deadline - time.monotonic() - EXEC_MARGIN))

    # -- engine and project ------------------------------------------------------------
    def engine(self) -> tuple[docker.DockerClient | None, engine.EngineProblem | None, str]:
        def compute() -> tuple[docker.DockerClient | None, engine.EngineProblem | None, str]:
            connection = self.cache.connection() if self.cache is not None else None
            if connection is not None:  # the live event stream proves the engine answers
                return connection[0], None, connection[1]
            # A hung engine must not hold the report past the deadline either.
            return engine.ping(self.settings, self.timeout + 0.3)

        return self._once("engine", compute)

    def _remember(self, key: str, compute: Callable[[], T]) -> T:
        return self.cache.remember(key, compute) if self.cache is not None else compute()

    def _discover(self) -> DifyProject:
        return self._remember("project", lambda: discover(self.engine()[0], self.settings))

    def client(self) -> docker.DockerClient:
        client, problem, _version = self.engine()
        if client is None:
            raise Skip(
                _("needs docker.engine ({reason})").format(
                    reason=problem.reason if problem else "down"
                )
            )
        return client

    def project(self) -> DifyProject:
        try:
            return self._once("project", self._discover)
        except HandlerError:
            raise Skip(_("needs dify.project")) from None

    def project_or_error(self) -> tuple[DifyProject | None, str | None]:
        try:
            return self._once("project", self._discover), None
        except HandlerError as exc:
            return None, str(exc)

    def env_file(self) -> EnvFile:
        """`.env`, read once per check; HandlerError saying why it cannot be read."""
        project = self.project()
        memo = self.cache.parsed if self.cache is not None else None
        return self._once("env", lambda: read_env_file(project.env_path, memo))

    def env(self) -> EnvFile:
        try:
            return self.env_file()
        except HandlerError as exc:
            raise Skip(_("needs env.file ({error})").format(error=exc)) from None

    def env_or_empty(self) -> dict[str, str]:
        try:
            return self.env().values
        except Skip:
            return {}

    def compose(self, flavour: str | None = None) -> compose_file.ComposeConfig:
        """The compose files as the Compose that created the stack reads them (`flavour`:
        another one), with the clean environment the product's compose calls get."""
        project = self.project()
        flavour = flavour or self.flavour()

        def compute() -> compose_file.ComposeConfig:
            files = compose_file.effective_files(
                self.creation().files or project.config_files, project.working_dir
            )
            if not files:
                raise HandlerError(f"no compose file found in {project.working_dir}")
            return compose_cli.read_config(
                self.settings, project, files, flavour, project.env_files
            )

        try:
            return self._once(f"compose:{flavour}", compute)
        except HandlerError as exc:
            raise Skip(_("cannot read the compose files ({error})").format(error=exc)) from None

    # -- layout: how the stack was created, which release --------------------------------------
    def creation(self) -> Creation:
        project = self.project()
        return self._once("creation", lambda: creation_of(project))

    def flavour(self, service: str | None = None) -> str:
        """The Compose flavour that created the stack (or `service`), by its labels; without
        containers, the one installed here."""
        creation = self.creation()
        found = creation.flavour_of(service) if service else creation.flavour
        return found or compose_file.installed_flavour()

    def compose_or_none(self) -> compose_file.ComposeConfig | None:
        try:
            return self.compose()
        except Skip:
            return None

    def health(self, service: str, url: str) -> container_exec.HttpProbe:
        """GET `url` inside the service's running container (once per check)."""
        return self.http_in(service, self.running(service), url)

    def _api_version(self) -> str | None:
        """The release api's /health reports, waited for only while the findings that need
        the layout (dify.project, env.file, ...) can still answer in time: a slow health
        endpoint leaves the release unknown, it never makes them miss the deadline."""
        answer: Future[container_exec.HttpProbe] = Future()

        def run() -> None:
            try:
                answer.set_result(self.health("api", API_HEALTH_URL))
            except BaseException as exc:
                answer.set_exception(exc)

        threading.Thread(target=timeline.in_context(run), name="api-version", daemon=True).start()
        wait = max(0.0, self.deadline - time.monotonic() - LAYOUT_MARGIN)
        try:
            probe = answer.result(timeout=wait)
        except (TimeoutError, Skip):
            return None
        with contextlib.suppress(ValueError, AttributeError):
            return str(json.loads(probe.body).get("version") or "") or None
        return None

    def layout(self) -> Layout:
        """Release, layout, Compose and database kind (the api image tag, else /health)."""

        def compute() -> Layout:
            project = self.project()
            api = project.container("api")
            version = None
            if api is not None and release_from_image(api.image) is None:
                version = self._api_version()
            return describe_layout(
                project, self.creation(), self.compose_or_none(), self.env_or_empty(), version
            )

        return self._once("layout", compute)

    def inspect(self, container_id: str) -> dict[str, Any]:
        key = f"inspect:{container_id}"
        return self._once(
            key,
            lambda: self._remember(key, lambda: self.client().api.inspect_container(container_id)),
        )

    def running(self, service: str) -> str:
        """The id of the service's running container, or Skip naming why there is none."""
        info = self.project().container(service)
        if info is None:
            raise Skip(
                _("needs dify.containers ({service} has no container)").format(service=service)
            )
        if info.state != "running":
            raise Skip(
                _("needs dify.containers ({service} is {state})").format(
                    service=service, state=info.state
                )
            )
        return info.id

    def model_callers(self) -> list[str]:
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
            service = next(
                (s for s, i in self.project().containers.items() if i.id == container_id), ""
            )
            live = self.survey(service, container_id) if service else None
            found = live.resolution(name) if live is not None else None
            if found is not None:
                return found
            return container_exec.resolve(self.client(), container_id, name, self.budget())

        return self._once(f"resolve:{container_id}:{name}", compute)

    # -- one exec per container -------------------------------------------------------------
    def prefetch(self, key: str, fact: Callable[[], object]) -> None:
        """Start `fact` (a memoized getter of this class whose key is `key`) in the
        background unless it is known or under way: for work whose inputs are ready before
        the probe that needs it gets there. Its errors surface when the probe asks."""
        with self._lock:
            if key in self._memo:
                return

        def run() -> None:
            with contextlib.suppress(Exception):
                fact()

        threading.Thread(
            target=timeline.in_context(run), name=f"prefetch-{key}", daemon=True
        ).start()

    def survey_targets(self) -> list[str]:
        """The Ollama URLs a container survey asks about: Dify's when the database has
        already answered, else those known without it (OPENAI_API_BASE, the default), a
        guess that usually equals the database's URL and saves a second exec after it."""
        with self._lock:
            known = self._memo.get("dify_urls")
        if known is not None and known.done() and known.exception() is None:
            return [u.url for u in known.result()][:3]
        guesses = [DEFAULT_DIFY_OLLAMA_URL]
        legacy = self.env_or_empty().get("OPENAI_API_BASE", "")
        if legacy and legacy.rstrip("/") != PUBLIC_OPENAI_BASE:
            guesses.insert(0, legacy)
        return guesses

    def _survey_urls(self, service: str, cid: str) -> tuple[list[str], tuple[str, ...]]:
        """(URLs, host names) a survey of this container asks about: its health endpoint,
        Ollama's /api/version at the likely URLs, their names not mapped by extra_hosts."""
        health = HEALTH_URLS.get(service)
        roots = list(dict.fromkeys(root_of(u) for u in self.survey_targets()))
        urls = ([health] if health else []) + [r + "/api/version" for r in roots]
        hosts = [host_of(r) for r in roots]
        names = tuple(
            dict.fromkeys(h for h in hosts if h and not is_ip(h) and not self._mapped(cid, h))
        )
        return urls, names

    def survey(self, service: str, cid: str) -> container_exec.LiveSurvey | None:
        """One exec in a model caller answering its health endpoint, Ollama at the likely
        URLs and their host names together; started here, answers arrive as they come.
        None when the image has no python3 (then `prefetch_surveys` asks tool by tool)."""

        def compute() -> container_exec.LiveSurvey | None:
            urls, names = self._survey_urls(service, cid)
            client = self.client()
            path = self.container_env(cid).get("PATH")
            if not container_exec.has_python(client, cid, path):  # stats: before the budget
                return None
            health = HEALTH_URLS.get(service)
            direct = (health,) if health else ()
            return container_exec.start_survey(
                client, cid, urls, self.budget(), direct=direct, names=names
            )

        return self._once(f"survey:{cid}", compute)

    def prefetch_surveys(self) -> None:
        """Start the survey of every running model caller and health-checked service; in an
        image without python3, the GETs of its health endpoint and of the likeliest Ollama URL
        (an exec each)."""
        project = self.project()
        for service in dict.fromkeys([*MODEL_CALLERS, *HEALTH_URLS]):
            cid = project.running(service)
            if cid is not None:
                self.prefetch(f"prefetch:{cid}", functools.partial(self._prefetch, service, cid))

    def _prefetch(self, service: str, cid: str) -> None:
        if self.survey(service, cid) is not None:
            return
        urls, _ = self._survey_urls(service, cid)
        health = HEALTH_URLS.get(service)
        env = container_exec.tool_proxy_env(self.container_env(cid)) or None
        for url in urls[: 2 if health else 1]:
            extra = None if url == health else env
            self.prefetch(
                f"get:{cid}:{url}", functools.partial(self.http_in, service, cid, url, extra)
            )

    def http_in(
        self,
        service: str,
        cid: str,
        url: str,
        environment: dict[str, str] | None = None,
    ) -> container_exec.HttpProbe:
        """GET url inside the container: the survey's answer when it asked already, else with
        the best HTTP tool the image has (once per check)."""
        live = self.survey(service, cid)
        probe = live.http(url) if live is not None else None
        if probe is not None:
            return probe

        def get() -> container_exec.HttpProbe:
            path = self.container_env(cid).get("PATH")
            container_exec.find_tools(self.client(), cid, path)  # stats before the budget
            return container_exec.http_get(self.client(), cid, url, self.budget(), environment)

        return self._once(f"get:{cid}:{url}", get)

    def _mapped(self, container_id: str, name: str) -> bool:
        hosts = (self.inspect(container_id).get("HostConfig") or {}).get("ExtraHosts") or []
        return any(str(entry).partition(":")[0] == name for entry in hosts)

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
            # Parsed only if the db container's own environment lacks the login: .env is
            # the slowest thing to read on the way to the query.
            env = LazyValues(self.env_or_empty)
            cid = self.running(dify_db.db_service(project, env))
            # The login the running database was started with: on the critical path of
            # every container probe, and right even when .env changed since.
            db_env = self.container_env(cid)
            where = dify_db.resolve_login(project, env, db_env)
            database = dify_db.open_database(self.client(), project, where, env, db_env)
            follow_up = None
            with contextlib.suppress(Exception):  # optional: plugin_state reads on its own
                follow_up = self._plugin_follow_up(project, env)
            if follow_up is None or not isinstance(database, dify_db.PostgresInContainer):
                return database.read_rows(self.budget())
            rows, output = database.read_rows_then(self.budget(), follow_up)
            if output is not None:  # for plugin_state (runtime_facts), which waits for us
                self._once("plugin_follow_up", lambda: output)
            return rows

        return self._once("credentials", compute)

    def _plugin_follow_up(
        self, project: DifyProject, env: Mapping[str, str]
    ) -> dify_db.FollowUp | None:
        """plugin_daemon's installations, read by the psql of Dify's rows when both live on
        the same PostgreSQL (as runtime_facts.plugin_state would read them). The database is
        named from `.env` (or the default), not from plugin_daemon's own environment, whose
        inspection would wait on the critical path; plugin_state takes the read only when
        the name is the one the daemon was started with."""
        daemon = project.running("plugin_daemon")
        if not self.read_plugins or daemon is None or project.running("db_mysql"):
            return None
        return plugin_db.follow_up(plugin_db.plugin_database_name({}, env))

    def plugin_follow_up(self) -> dify_db.FollowUpOutput | None:
        """What the rows' psql read of plugin_daemon's database, once `credentials` is done;
        None when it did not read it."""
        with contextlib.suppress(Exception):  # its own exec then says what is wrong
            self.credentials()
        with self._lock:
            known = self._memo.get("plugin_follow_up")
        if known is not None and known.done() and known.exception() is None:
            return cast("dify_db.FollowUpOutput", known.result())
        return None

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
    def http(self) -> httpx.Client:
        """One HTTP client for the check's host-side calls (closed by `close`).

        `http_client`'s: no proxy from the host's environment, the shared TLS context (none
        for an http:// OLLAMA_URL: this client only calls OLLAMA_URL)."""
        tls = urlsplit(self.settings.ollama_url).scheme != "http"
        return self._once("http", lambda: http_client(self.timeout, tls))

    def close(self) -> None:
        with self._lock:
            client = self._memo.get("http")
        if client is not None and client.done() and client.exception() is None:
            with contextlib.suppress(Exception):
                client.result().close()

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()` once per check under `key`, whoever asks first; the others wait for
        it (and get its exception too). For facts that probe modules share."""
        return self._once(key, compute)

    def ollama(self) -> OllamaAnswer:
        def compute() -> OllamaAnswer:
            base = self.settings.ollama_url.rstrip("/")
            http = self.http()  # outlives this fact: closed with the check

            def get(path: str) -> httpx.Response:
                with timeline.span(f"http GET {path}"):
                    return http.get(f"{base}{path}", timeout=self.budget())

            try:
                # The three at once (each bounded by the budget): a hung Ollama costs one
                # timeout, and a healthy one a round trip instead of three in a row.
                with ThreadPoolExecutor(3, thread_name_prefix="ollama") as pool:
                    version, tags, loaded = [
                        pool.submit(timeline.in_context(get), path)
                        for path in ("/api/version", "/api/tags", "/api/ps")
                    ]
                    if version.result().status_code != 200:
                        return OllamaAnswer(
                            False,
                            None,
                            f"GET /api/version answered HTTP {version.result().status_code}",
                        )
                    tags.result(), loaded.result()  # their errors, if any, go to the handlers
            except httpx.TimeoutException:
                return OllamaAnswer(False, None, f"no answer within {self.timeout:g} s (hung)")
            except httpx.ConnectError as exc:
                reason = "connection refused" if "refused" in str(exc).lower() else str(exc)
                return OllamaAnswer(False, None, reason[:200])
            except httpx.HTTPError as exc:
                return OllamaAnswer(False, None, f"{type(exc).__name__}: {str(exc)[:200]}")
            try:
                ver = str(version.result().json().get("version", "?"))
                listed, running_now = tags.result(), loaded.result()
                models = (
                    tuple(listed.json().get("models") or ()) if listed.status_code == 200 else ()
                )
                running = (
                    tuple(running_now.json().get("models") or ())
                    if running_now.status_code == 200
                    else ()
                )
            except (ValueError, AttributeError):
                return OllamaAnswer(False, None, "answered, but not with Ollama's JSON")
            return OllamaAnswer(True, ver, None, models, running)

        return self._once("ollama", compute)
