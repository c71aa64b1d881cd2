"""A fake Ollama: a real HTTP server on the host speaking Ollama's wire format.

It listens on a real socket (127.0.0.1 or 0.0.0.0), so containers of the private engine reach it
through host.docker.internal exactly as they would reach Ollama, and every failure mode the
product diagnoses can be produced at runtime: down (connection refused), slow, hung (accepts and
never answers), bound to loopback only, model missing.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OLLAMA_VERSION = "0.12.3"
# firewalled: answers loopback clients, hangs everyone else (a host firewall dropping traffic
# from the Docker bridges: the host's curl works, containers time out).
MODES = ("up", "slow", "hung", "firewalled")


@dataclass(frozen=True)
class FakeModel:
    """One pulled model, as /api/tags lists it."""

    name: str
    size: int = 2_019_393_189
    loaded: bool = True
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    digest: str = "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72"

    def tag(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": "2025-09-30T10:12:44.123456789Z",
            "size": self.size,
            "digest": self.digest,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": self.family,
                "families": [self.family],
                "parameter_size": self.parameter_size,
                "quantization_level": self.quantization_level,
            },
        }

    def ps(self) -> dict[str, Any]:
        entry = self.tag()
        entry.pop("modified_at")
        expires = datetime.now(UTC) + timedelta(minutes=5)
        entry["expires_at"] = expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        entry["size_vram"] = self.size
        entry["context_length"] = 4096
        return entry


DEFAULT_MODELS = (FakeModel("llama3.2:latest"),)


def _as_model(m: FakeModel | str | dict[str, Any]) -> FakeModel:
    if isinstance(m, FakeModel):
        return m
    if isinstance(m, str):
        return FakeModel(m)
    return FakeModel(**m)


def _canonical(name: str) -> str:
    # Ollama resolves "llama3.2" to "llama3.2:latest".
    return name if ":" in name else f"{name}:latest"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], fake: FakeOllama) -> None:
        self.fake = fake
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conns_lock:
            self.conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def kill_connections(self) -> None:
        # Unblocks handler threads stuck in reads and tells clients the peer went away.
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "FakeOllama"
    sys_version = ""
    timeout = 5  # idle keep-alive connections do not pin a thread for long

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are recorded in FakeOllama.requests instead

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, json.dumps(obj).encode(), "application/json; charset=utf-8")

    def _body(self) -> dict[str, Any]:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _gate(self) -> bool:
        """Apply the current mode; False means: send nothing and drop the connection."""
        fake = self.server.fake
        fake._record(self.command, self.path, self.client_address[0])
        mode, delay = fake.mode, fake.delay
        remote = not self.client_address[0].startswith(("127.", "::1", "::ffff:127."))
        if mode == "hung" or (mode == "firewalled" and remote):
            fake._stop_event.wait()  # released by stop()/down(); never answers
            self.close_connection = True
            return False
        if mode == "slow" and fake._stop_event.wait(delay):
            self.close_connection = True
            return False
        return True

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._gate():
            return
        fake = self.server.fake
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
        elif path == "/api/version":
            self._json(200, {"version": fake.version})
        elif path == "/api/tags":
            self._json(200, {"models": [m.tag() for m in fake.models]})
        elif path == "/api/ps":
            self._json(200, {"models": [m.ps() for m in fake.models if m.loaded]})
        elif path == "/v1/models":
            data = [
                {"id": m.name, "object": "model", "created": 1759227164, "owned_by": "library"}
                for m in fake.models
            ]
            self._json(200, {"object": "list", "data": data})
        else:
            self._json(404, {"error": f"404 page not found: {path}"})

    def do_POST(self) -> None:
        body = self._body()
        if not self._gate():
            return
        fake = self.server.fake
        path = self.path.split("?", 1)[0]
        if path not in ("/api/chat", "/api/generate", "/api/embed", "/api/show"):
            self._json(404, {"error": f"404 page not found: {path}"})
            return
        name = str(body.get("model") or body.get("name") or "")
        model = fake.find_model(name)
        if model is None:
            self._json(404, {"error": f'model "{name}" not found, try pulling it first'})
            return
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if path == "/api/embed":
            self._json(200, {"model": model.name, "embeddings": [[0.1, 0.2, 0.3]]})
            return
        if path == "/api/show":
            self._json(200, {"details": model.tag()["details"], "model_info": {}})
            return
        final: dict[str, Any] = {
            "model": model.name,
            "created_at": now,
            "done": True,
            "done_reason": "stop",
            "total_duration": 123456789,
            "load_duration": 1234567,
            "prompt_eval_count": 10,
            "prompt_eval_duration": 1234567,
            "eval_count": 5,
            "eval_duration": 1234567,
        }
        text = "Hello from the fake Ollama."
        if path == "/api/chat":
            final["message"] = {"role": "assistant", "content": text}
        else:
            final["response"] = text
        if body.get("stream", True) is False:
            self._json(200, final)
            return
        # Ollama streams NDJSON by default: one chunk, then the final record.
        first = {"model": model.name, "created_at": now, "done": False}
        if path == "/api/chat":
            first["message"] = {"role": "assistant", "content": text}
            final["message"] = {"role": "assistant", "content": ""}
        else:
            first["response"] = text
            final["response"] = ""
        lines = (json.dumps(first) + "\n" + json.dumps(final) + "\n").encode()
        self._send(200, lines, "application/x-ndjson")


@dataclass
class Request:
    method: str
    path: str
    client: str
    at: float = field(default_factory=time.monotonic)


class FakeOllama:
    """A real HTTP server in a thread that looks like Ollama.

    FakeOllama(bind="127.0.0.1", port=0, models=["llama3.2:latest", FakeModel(...)]).
    start()/stop(), down()/up() (listening socket closed/reopened on the same port),
    set_mode("up"|"slow"|"hung", delay=...), set_models([...]), rebind("0.0.0.0").
    """

    def __init__(
        self,
        bind: str = "127.0.0.1",
        port: int = 0,
        models: Iterable[FakeModel | str | dict[str, Any]] | None = None,
        version: str = OLLAMA_VERSION,
    ) -> None:
        self.bind = bind
        self.port = port
        self.version = version
        self.models: list[FakeModel] = [
            _as_model(m) for m in (DEFAULT_MODELS if models is None else models)
        ]
        self.mode = "up"
        self.delay = 0.0
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()

    # -- properties -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """How the host reaches it (always loopback, whatever the bind address)."""
        return f"http://127.0.0.1:{self.port}"

    def container_url(self, host: str = "host.docker.internal") -> str:
        """How a container with host-gateway reaches it."""
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> FakeOllama:
        with self._lock:
            if self._server is not None:
                return self
            self._stop_event = threading.Event()
            server = _Server((self.bind, self.port), self)
            self.port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fake-ollama-{self.port}",
                daemon=True,
            )
            self._server, self._thread = server, thread
            thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is None:
                return
            self._stop_event.set()  # releases hung and slow handlers
            server.shutdown()
            server.server_close()  # the port now refuses connections
            server.kill_connections()
            if thread is not None:
                thread.join(timeout=5)

    def down(self) -> None:
        """Like Ollama being stopped: connections to the port are refused."""
        self.stop()

    def up(self) -> None:
        """Start again on the same port (and bind address)."""
        self.start()

    def rebind(self, bind: str) -> None:
        """Restart listening on another address, same port (e.g. OLLAMA_HOST=0.0.0.0)."""
        was_running = self.running
        self.stop()
        self.bind = bind
        if was_running:
            self.start()

    def set_mode(self, mode: str, delay: float = 2.0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if self.mode in ("hung", "firewalled") and mode != self.mode:
            # Let the currently hung requests go (they drop the connection without answer).
            old = self._stop_event
            self._stop_event = threading.Event()
            old.set()
        self.mode, self.delay = mode, delay

    def set_models(self, models: Iterable[FakeModel | str | dict[str, Any]]) -> None:
        self.models = [_as_model(m) for m in models]

    def find_model(self, name: str) -> FakeModel | None:
        want = _canonical(name) if name else ""
        for m in self.models:
            if _canonical(m.name) == want:
                return m
        return None

    def reset(self, bind: str | None = None) -> None:
        """Back to the healthy defaults (mode up, default models, given bind, running)."""
        self.set_mode("up")
        self.models = list(DEFAULT_MODELS)
        self.requests.clear()
        if bind is not None and bind != self.bind:
            self.rebind(bind)
        if not self.running:
            self.start()

    def _record(self, method: str, path: str, client: str) -> None:
        if len(self.requests) < 10_000:  # bounded: long benchmarks must not grow it forever
            self.requests.append(Request(method, path, client))

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.mode if self.running else "down"
        return f"FakeOllama(bind={self.bind!r}, port={self.port}, {state})"
