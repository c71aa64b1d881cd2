"""Running commands inside containers with hard deadlines, whatever tools the image has.

docker-py's exec_run waits forever while a command is silent, and the client timeout does not
bound it. So every command is bounded twice: by `timeout N` inside the container, and by a
deadline in the caller (a daemon thread, so a stuck exec can never keep the process alive).
The output is read by exec_stream, which keeps the frames docker-py can drop.
"""

from __future__ import annotations

import contextlib
import io
import json
import queue
import tarfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import docker

from handlers import exec_stream, timeline

JSON_TYPE = "Content-Type: application/json"
NOT_FOUND_MARKERS = ("executable file not found", "no such file or directory", "not found")


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None  # None: the caller's deadline passed first
    stdout: str
    stderr: str
    duration_ms: int

    @property
    def timed_out(self) -> bool:
        # 124 is what coreutils and busybox `timeout` return when they kill the command.
        return self.exit_code is None or self.exit_code in (124, 143)

    @property
    def missing_command(self) -> bool:
        text = (self.stdout + self.stderr).lower()
        return self.exit_code in (126, 127) or (
            self.exit_code not in (0, None) and "executable file not found" in text
        )


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def run(
    client: docker.DockerClient,
    container_id: str,
    argv: list[str],
    timeout: float,
    environment: dict[str, str] | None = None,
    user: str = "",
    bound_inside: bool = True,
) -> ExecResult:
    """Run argv in the container; never blocks longer than `timeout` + 1 s."""
    with timeline.span(f"exec {argv[0]} @{container_id[:12]}"):
        return _run(client, container_id, argv, timeout, environment, user, bound_inside)


def _run(
    client: docker.DockerClient,
    container_id: str,
    argv: list[str],
    timeout: float,
    environment: dict[str, str] | None,
    user: str,
    bound_inside: bool,
) -> ExecResult:
    # GNU timeout takes fractions; busybox truncates them, which only makes it stricter.
    command = ["timeout", f"{max(1.0, timeout):.1f}", *argv] if bound_inside else list(argv)
    box: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=1)
    start = time.monotonic()

    def work() -> None:
        try:
            created = client.api.exec_create(
                container_id, command, stdout=True, stderr=True, environment=environment, user=user
            )
            out, err = exec_stream.collect(
                exec_stream.start(client.api, created["Id"], timeout + 2.0)
            )
            code = client.api.exec_inspect(created["Id"]).get("ExitCode")
            box.put((code, out, err, None))
        except Exception as exc:
            box.put((None, b"", b"", exc))

    threading.Thread(target=work, name=f"exec-{argv[0]}", daemon=True).start()
    try:
        code, out, err, exc = box.get(timeout=timeout + 1.0)
    except queue.Empty:
        return ExecResult(None, "", "deadline passed", int((time.monotonic() - start) * 1000))
    elapsed = int((time.monotonic() - start) * 1000)
    if exc is not None:
        text = str(exc)
        if bound_inside and any(m in text.lower() for m in NOT_FOUND_MARKERS) and "timeout" in text:
            # An image without `timeout` (rare): rely on the caller's deadline alone.
            return _run(client, container_id, argv, timeout, environment, user, False)
        return ExecResult(127 if "not found" in text.lower() else 1, "", text, elapsed)
    result = ExecResult(code, _decode(out), _decode(err), elapsed)
    if bound_inside and result.missing_command and "timeout" in result.stderr.split(":")[0]:
        return _run(client, container_id, argv, timeout, environment, user, False)
    return result


@dataclass(frozen=True)
class HttpProbe:
    url: str
    tool: str  # curl | wget | python3 | none
    status: int | None  # HTTP status, None when no HTTP answer came back
    body: str
    error: str | None  # refused | dns | timeout | proxy | reset | no-http-client | other text
    error_text: str
    latency_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


_PY_GET = """
import sys, time, urllib.request, urllib.error, socket
url, t = sys.argv[1], float(sys.argv[2])
data = sys.argv[3].encode() if len(sys.argv) > 3 else None
start = time.monotonic()
try:
    req = urllib.request.Request(url, data=data, headers={'Content-Type': 'application/json'})
    r = urllib.request.urlopen(req, timeout=t)
    body = r.read(4096).decode('utf-8', 'replace')
    print('STATUS', r.status, round((time.monotonic() - start) * 1000))
    print(body)
except urllib.error.HTTPError as e:
    print('STATUS', e.code, round((time.monotonic() - start) * 1000))
    print(e.read(4096).decode('utf-8', 'replace'))
except Exception as e:
    reason = getattr(e, 'reason', e)
    print('ERROR', type(reason).__name__, str(reason)[:300])
    sys.exit(2)
"""


def classify_error(text: str) -> str:
    """One word for why an HTTP request from inside a container failed."""
    low = text.lower()
    if "proxy" in low or "curl: (5)" in low or "curl: (97)" in low:
        return "proxy"
    if any(
        m in low
        for m in (
            "could not resolve",
            "bad address",
            "name or service not known",
            "gaierror",
            "temporary failure in name resolution",
            "no address associated",
            "curl: (6)",
        )
    ):
        return "dns"
    if "refused" in low or "curl: (7)" in low:
        return "refused"
    if "timed out" in low or "timeout" in low or "curl: (28)" in low:
        return "timeout"
    if "reset" in low or "curl: (56)" in low or "curl: (52)" in low:
        return "reset"
    if "no route" in low or "unreachable" in low:
        return "unreachable"
    return "other"


def _curl(
    client: docker.DockerClient,
    cid: str,
    url: str,
    timeout: float,
    environment: dict[str, str] | None = None,
    post: str | None = None,
) -> ExecResult:
    argv = ["curl", "-sS", "-o", "-", "--max-time", f"{timeout:g}"]
    argv += ["-w", "\n__STATUS__ %{http_code} %{time_total}"]
    if post is not None:
        argv += ["-H", JSON_TYPE, "--data-binary", post]
    return run(client, cid, [*argv, url], timeout, environment=environment)


def _parse_curl(url: str, res: ExecResult) -> HttpProbe:
    body, _, tail = res.stdout.rpartition("\n__STATUS__ ")
    status = None
    latency = res.duration_ms
    if tail:
        parts = tail.split()
        if parts and parts[0].isdigit() and parts[0] != "000":
            status = int(parts[0])
        if len(parts) > 1:
            with contextlib.suppress(ValueError):
                latency = round(float(parts[1]) * 1000)
    if status is not None:
        return HttpProbe(url, "curl", status, body, None, "", latency)
    text = res.stderr.strip() or ("timed out" if res.timed_out else f"exit {res.exit_code}")
    error = "timeout" if res.timed_out else classify_error(text)
    return HttpProbe(url, "curl", None, "", error, text[:300], latency)


def _parse_wget(url: str, res: ExecResult) -> HttpProbe:
    text = (res.stderr or "").strip()
    if res.exit_code == 0:
        return HttpProbe(url, "wget", 200, res.stdout, None, "", res.duration_ms)
    # busybox: "wget: server returned error: HTTP/1.1 404 Not Found"
    marker = "HTTP/1."
    if marker in text:
        after = text.split(marker, 1)[1].split()
        if len(after) > 1 and after[1].isdigit():
            return HttpProbe(url, "wget", int(after[1]), "", None, text[:300], res.duration_ms)
    if res.timed_out:
        return HttpProbe(url, "wget", None, "", "timeout", "timed out", res.duration_ms)
    return HttpProbe(url, "wget", None, "", classify_error(text), text[:300], res.duration_ms)


def _parse_python(url: str, res: ExecResult) -> HttpProbe:
    lines = res.stdout.splitlines()
    if lines and lines[0].startswith("STATUS "):
        parts = lines[0].split()
        latency = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else res.duration_ms
        return HttpProbe(url, "python3", int(parts[1]), "\n".join(lines[1:]), None, "", latency)
    if res.timed_out:
        return HttpProbe(url, "python3", None, "", "timeout", "timed out", res.duration_ms)
    text = " ".join(lines[:2]) or res.stderr.strip()
    return HttpProbe(url, "python3", None, "", classify_error(text), text[:300], res.duration_ms)


# Which tool worked last time, per container id: saves failed execs on every later probe.
_TOOL_CACHE: dict[str, str] = {}
_FOUND_CACHE: dict[str, frozenset[str]] = {}
_PYTHON_CACHE: dict[str, bool] = {}
_STAT_LOCKS: dict[str, threading.Lock] = {}
BIN_DIRS = ("/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin")
TOOLS = ("curl", "wget", "python3", "getent")


def forget(container_id: str) -> None:
    """Drop what is known about a container's tools (it changed or is gone)."""
    for cache in (_TOOL_CACHE, _FOUND_CACHE, _PYTHON_CACHE, _STAT_LOCKS):
        cache.pop(container_id, None)


def forget_all() -> None:
    for cache in (_TOOL_CACHE, _FOUND_CACHE, _PYTHON_CACHE):
        cache.clear()


def _exists(client: docker.DockerClient, container_id: str, path: str) -> bool | None:
    """Stat a path in the container's filesystem through the engine (no process spawned)."""
    try:
        response = client.api.head(
            client.api._url("/containers/{0}/archive", container_id),
            params={"path": path},
            timeout=5,
        )
    except Exception:  # an old engine or a proxy in between: fall back to trying
        return None
    if response.status_code == 200:
        return True
    return False if response.status_code == 404 else None


def search_dirs(path: str | None) -> tuple[str, ...]:
    """Where an exec finds a bare command name: the folders of the container's PATH (the
    process gets the container's environment), else the engine's default PATH."""
    dirs = tuple(dict.fromkeys(d.rstrip("/") for d in (path or "").split(":") if d[:1] == "/"))
    return dirs[:16] or BIN_DIRS


def find_tools(
    client: docker.DockerClient, container_id: str, path: str | None = None
) -> frozenset[str] | None:
    """Which of curl, wget, python3 and getent an exec can run by name, by stat in the
    folders of `path` (the container's PATH; the engine's default without one); None when
    unknown.

    A stat costs ~1 ms on a quiet engine, up to 5 under load, and the engine answers them one
    at a time: a busybox image (PATH=/bin) needs 4, not 24. A failed exec costs 50-500 ms.
    """
    with _STAT_LOCKS.setdefault(container_id, threading.Lock()):  # one stat run per container
        if container_id in _FOUND_CACHE:
            return _FOUND_CACHE[container_id]
        with timeline.span(f"stat tools @{container_id[:12]}"):
            return _find_tools(client, container_id, search_dirs(path))


def _find_tools(
    client: docker.DockerClient, container_id: str, dirs: tuple[str, ...]
) -> frozenset[str] | None:
    found = set()
    for tool in TOOLS:
        for folder in dirs:
            exists = _exists(client, container_id, f"{folder}/{tool}")
            if exists is None:
                return None
            if exists:
                found.add(tool)
                break
    result = frozenset(found)
    _FOUND_CACHE[container_id] = result
    return result


def read_file(
    client: docker.DockerClient, container_id: str, path: str, limit: int = 1 << 20
) -> str | None:
    """A small file of the container, through the engine's archive API (no exec)."""
    try:
        with timeline.span(f"read {path} @{container_id[:12]}"):
            stream, _ = client.api.get_archive(container_id, path)
            data = b"".join(stream)
    except Exception:  # any engine error: the caller falls back to an exec
        return None
    try:
        with tarfile.open(fileobj=io.BytesIO(data[: limit + 4096])) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            handle = tar.extractfile(member) if member else None
            return handle.read(limit).decode("utf-8", "replace") if handle else None
    except (tarfile.TarError, OSError):
        return None


def tool_proxy_env(env: Mapping[str, str]) -> dict[str, str]:
    """Lower-case copies of upper-case proxy variables: curl and busybox wget read only the
    lower-case ones, Dify's Python code reads both."""
    extra = {}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        if env.get(key) and key.lower() not in env:
            extra[key.lower()] = env[key]
    return extra


def http_get(
    client: docker.DockerClient,
    container_id: str,
    url: str,
    timeout: float,
    environment: dict[str, str] | None = None,
    *,
    post: str | None = None,
) -> HttpProbe:
    """GET url (POST the JSON text `post`, when given) from inside the container with curl,
    else wget, else python3.

    The container's own proxy variables apply, as they do to Dify's code running there;
    `environment` adds variables for this one request (e.g. lower-case proxy names, which
    curl and wget read while Python's requests reads both cases).
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http URL: {url!r}")
    order = ["curl", "wget", "python3"]
    found = find_tools(client, container_id)
    if found is not None:
        order = [tool for tool in order if tool in found]
    cached = _TOOL_CACHE.get(container_id)
    if cached in order:
        order.remove(cached)
        order.insert(0, cached)
    for tool in order:
        if tool == "curl":
            res = _curl(client, container_id, url, timeout, environment, post)
            parse = _parse_curl
        elif tool == "wget":
            extra = [] if post is None else ["--header", JSON_TYPE, "--post-data", post]
            argv = ["wget", "-O", "-", *extra, url]
            res = run(client, container_id, argv, timeout, environment)
            parse = _parse_wget
        else:
            argv = ["python3", "-c", _PY_GET, url, f"{timeout:g}"]
            res = run(
                client, container_id, [*argv, *([post] if post else [])], timeout, environment
            )
            parse = _parse_python
        if res.missing_command:
            continue
        if res.exit_code is None:
            return HttpProbe(
                url, tool, None, "", "timeout", "no answer before the deadline", res.duration_ms
            )
        _TOOL_CACHE[container_id] = tool
        return parse(url, res)
    return HttpProbe(
        url, "none", None, "", "no-http-client", "image has no curl, wget or python3", 0
    )


@dataclass(frozen=True)
class Resolution:
    name: str
    addresses: tuple[str, ...]
    method: str
    error: str = ""

    @property
    def resolved(self) -> bool:
        return bool(self.addresses)


def _hosts_lookup(text: str, name: str) -> tuple[str, ...]:
    found = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) > 1 and name in fields[1:]:
            found.append(fields[0])
    return tuple(dict.fromkeys(found))


def resolve(
    client: docker.DockerClient, container_id: str, name: str, timeout: float
) -> Resolution:
    """Resolve a host name inside the container as its programs would: the hosts file (where
    extra_hosts lands; read through the engine, no exec), then the resolver (getent, python3 or
    busybox nslookup), which also covers Docker Desktop's built-in host.docker.internal."""
    hosts = read_file(client, container_id, "/etc/hosts")
    if hosts is not None and (addresses := _hosts_lookup(hosts, name)):
        return Resolution(name, addresses, "hosts-file")
    found = find_tools(client, container_id)

    def may(tool: str) -> bool:
        return found is None or tool in found

    if may("getent"):
        # `ahosts` (getaddrinfo) rather than `hosts`: the latter asks for IPv6 first and, with
        # only an IPv4 entry in /etc/hosts, falls through to a DNS query that can hang.
        res = run(client, container_id, ["getent", "ahosts", name], timeout)
        if not res.missing_command:
            if res.exit_code == 0:
                addrs = tuple(
                    dict.fromkeys(
                        line.split()[0] for line in res.stdout.splitlines() if line.strip()
                    )
                )
                return Resolution(name, addrs, "getent")
            if res.exit_code == 2:
                return Resolution(name, (), "getent", "not found")
            if res.exit_code is None or res.timed_out:
                return Resolution(name, (), "getent", "timed out")
    if may("python3"):
        code = (
            "import socket,sys\n"
            "print(' '.join(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], None)})))"
        )
        res = run(client, container_id, ["python3", "-c", code, name], timeout)
        if not res.missing_command:
            if res.exit_code == 0:
                return Resolution(name, tuple(res.stdout.split()), "python3")
            why = "not found" if "gaierror" in res.stderr else res.stderr[-200:]
            return Resolution(name, (), "python3", "timed out" if res.timed_out else why)
    res = run(client, container_id, ["nslookup", name], timeout)
    if res.exit_code == 0:
        addrs = tuple(
            line.split()[-1]
            for line in res.stdout.splitlines()[2:]
            if line.strip().lower().startswith("address")
        )
        if addrs:
            return Resolution(name, addrs, "nslookup")
    return Resolution(
        name, (), "hosts-file+nslookup", "timed out" if res.timed_out else "not found"
    )


# --- one exec per container: health, Ollama and name resolution together -----------------------
# Every Dify image that calls Ollama (api, worker, plugin_daemon) has python3: one process
# answers all the check's questions about that container, in parallel threads, each bounded.
# Its own endpoints (localhost) are asked without a proxy; everything else as Dify's code
# asks, with the container's proxy variables.
_PY_SURVEY = r"""
import json, socket, sys, threading, time, urllib.error, urllib.request
# The requests end at the caller's wall-clock time (the host's clock: containers share its
# kernel), however late this interpreter started; a clock that disagrees gets the plain limit.
limit = float(sys.argv[1])
left = float(sys.argv[2]) - time.time()
if -5.0 < left <= limit + 0.5:
    limit = max(0.25, left)
urls, direct, names = json.loads(sys.argv[3])
lock = threading.Lock()
def say(*item):
    # One line per answer, as soon as it is known: if the exec is cut off, what came is kept.
    with lock:
        sys.stdout.write(json.dumps(item) + "\n")
        sys.stdout.flush()
def get(url):
    start = time.monotonic()
    opener = urllib.request.build_opener(
        *([urllib.request.ProxyHandler({})] if url in direct else []))
    ms = lambda: round((time.monotonic() - start) * 1000)
    try:
        r = opener.open(url, timeout=limit)
        say("http", url, {"status": r.status, "ms": ms(),
                          "body": r.read(4096).decode("utf-8", "replace")})
    except urllib.error.HTTPError as e:
        say("http", url, {"status": e.code, "ms": ms(),
                          "body": e.read(4096).decode("utf-8", "replace")})
    except Exception as e:
        reason = getattr(e, "reason", e)
        say("http", url, {"error": (type(reason).__name__ + " " + str(reason))[:300],
                          "ms": ms()})
def resolve(name):
    try:
        say("dns", name, sorted({a[4][0] for a in socket.getaddrinfo(name, None)}))
    except Exception as e:
        say("dns", name, (type(e).__name__ + " " + str(e))[:200])
jobs = [threading.Thread(target=get, args=(u,), daemon=True) for u in urls]
jobs += [threading.Thread(target=resolve, args=(n,), daemon=True) for n in names]
for job in jobs:
    job.start()
end = time.monotonic() + limit + 0.2
for job in jobs:
    job.join(max(0.0, end - time.monotonic()))
"""
PYTHON_PATHS = ("/usr/local/bin/python3", "/usr/bin/python3", "/bin/python3")


class LiveSurvey:
    """The answers of one survey exec, each available as soon as the container printed it:
    a health endpoint that answers at once is not held back by an Ollama that hangs."""

    def __init__(self, urls: list[str], names: tuple[str, ...], deadline: float) -> None:
        self.urls, self.names, self.deadline = list(urls), names, deadline
        self._cond = threading.Condition()
        self._http: dict[str, HttpProbe] = {}
        self._dns: dict[str, Resolution] = {}
        self._done = False
        self._usable = True
        self._ms = 0
        self.span: int | None = None  # the exec's span, for the waits on it

    def feed(self, line: str, elapsed_ms: int) -> None:
        try:
            item = json.loads(line)
        except ValueError:
            return
        if not (isinstance(item, list) and len(item) == 3):
            return
        kind, key, data = item[0], str(item[1]), item[2]
        with self._cond:
            if kind == "http" and key in self.urls:
                self._http[key] = _survey_http(key, data, elapsed_ms)
            elif kind == "dns" and key in self.names:
                self._dns[key] = _survey_dns(key, data)
            self._cond.notify_all()

    def finish(self, cut_off: bool, elapsed_ms: int) -> None:
        with self._cond:
            self._done, self._ms = True, elapsed_ms
            self._usable = cut_off or bool(self._http or self._dns)
            self._cond.notify_all()

    @property
    def usable(self) -> bool:
        with self._cond:
            return self._usable

    def _wait(self, ready: Callable[[], bool]) -> bool:
        """Wait until `ready()` or the exec ended; False when the survey is of no use."""
        with timeline.span("wait survey", waits=self.span), self._cond:
            while not ready() and not self._done:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._usable or ready()

    def http(self, url: str) -> HttpProbe | None:
        """The answer for `url` (a timeout if none came in time); None when the survey was
        not asked about it or could not run (ask tool by tool then)."""
        if url not in self.urls or not self._wait(lambda: url in self._http):
            return None
        with self._cond:
            return self._http.get(url) or HttpProbe(
                url, "python3", None, "", "timeout", "no answer before the deadline", self._ms
            )

    def resolution(self, name: str) -> Resolution | None:
        if name not in self.names or not self._wait(lambda: name in self._dns):
            return None
        with self._cond:
            return self._dns.get(name) or Resolution(name, (), "python3", "timed out")


def has_python(client: docker.DockerClient, container_id: str, path: str | None = None) -> bool:
    """Whether an exec can run python3 by name, by stat (no exec) of its usual places among
    the folders of `path` (the container's PATH, see find_tools); cached per container."""
    with _STAT_LOCKS.setdefault(container_id, threading.Lock()):
        if container_id not in _PYTHON_CACHE:
            found = _FOUND_CACHE.get(container_id)
            if found is not None:
                _PYTHON_CACHE[container_id] = "python3" in found
            else:
                dirs = search_dirs(path)
                usual = [p for p in PYTHON_PATHS if p.rpartition("/")[0] in dirs]
                places = usual + [f"{d}/python3" for d in dirs if f"{d}/python3" not in usual]
                with timeline.span(f"stat python3 @{container_id[:12]}"):
                    exists = any(_exists(client, container_id, p) for p in places)
                _PYTHON_CACHE[container_id] = exists
        return _PYTHON_CACHE[container_id]


def _survey_http(url: str, data: object, fallback_ms: int) -> HttpProbe:
    if not isinstance(data, dict):
        return HttpProbe(url, "python3", None, "", "timeout", "no answer before the deadline", 0)
    ms = data.get("ms")
    latency = ms if isinstance(ms, int) else fallback_ms
    status = data.get("status")
    if isinstance(status, int):
        body = data.get("body")
        return HttpProbe(url, "python3", status, str(body or ""), None, "", latency)
    text = str(data.get("error") or "no answer")
    return HttpProbe(url, "python3", None, "", classify_error(text), text[:300], latency)


def _survey_dns(name: str, data: object) -> Resolution:
    if isinstance(data, list) and data:
        return Resolution(name, tuple(str(a) for a in data), "python3")
    if data is None:
        return Resolution(name, (), "python3", "timed out")
    text = str(data)
    return Resolution(name, (), "python3", "not found" if "gaierror" in text else text[-200:])


def start_survey(
    client: docker.DockerClient,
    container_id: str,
    urls: list[str],
    timeout: float,
    *,
    direct: tuple[str, ...] = (),
    names: tuple[str, ...] = (),
) -> LiveSurvey | None:
    """GET each URL (those in `direct` without a proxy) and resolve each name, all in one
    python3 exec in the container, concurrently, within `timeout`; returns at once, the
    answers arrive in the LiveSurvey. None when the image has no python3."""
    for url in urls:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"not an http URL: {url!r}")
    if not has_python(client, container_id):
        return None
    started = time.monotonic()
    live = LiveSurvey(urls, names, started + timeout + 1.0)
    payload = json.dumps([urls, list(direct), list(names)])
    # The requests give up a little before the exec's own bound, so their answers (timeouts
    # included) are printed rather than cut off with the process; counted from now, not from
    # python3's start, which a loaded host delays by up to a second.
    limit = max(0.5, timeout - 0.4)
    command = ["timeout", f"{max(1.0, timeout):.1f}", "python3", "-c", _PY_SURVEY]
    command += [f"{limit:.2f}", f"{time.time() + limit:.3f}", payload]

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    def work() -> None:
        code: int | None = None
        with timeline.span(f"exec python3 @{container_id[:12]}") as span:
            live.span = span
            try:
                created = client.api.exec_create(container_id, command, stdout=True, stderr=True)
                pending = b""
                for stream, data in exec_stream.start(client.api, created["Id"], timeout + 2.0):
                    if stream != exec_stream.STDOUT:
                        continue
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines[:64]:
                        live.feed(line.decode("utf-8", "replace"), elapsed())
                code = client.api.exec_inspect(created["Id"]).get("ExitCode")
            except Exception as exc:  # the engine refused the exec: ask tool by tool
                code = 127 if "not found" in str(exc).lower() else None
        # Cut off by `timeout` (124, 143): the answers missing are timeouts. No answer at all
        # otherwise (python3 did not run, or printed nothing): the survey is of no use, the
        # probes ask tool by tool.
        live.finish(code in (124, 143), elapsed())
        if code in (126, 127):
            _PYTHON_CACHE[container_id] = False

    threading.Thread(
        target=timeline.in_context(work), name=f"survey-{container_id[:12]}", daemon=True
    ).start()
    return live
