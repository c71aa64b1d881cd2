"""An exec's output arrives whole, however the engine's bytes are cut into reads.

The engine's `101 UPGRADED` headers and the exec's first frames can reach the client in one
read (a loaded host, a socket proxy, an SSH forward); docker-py then drops those frames and the
exec looks like it printed nothing (docker/docker-py#3332). Tested at the wire with an engine
that speaks Docker's exec protocol and writes headers and frames in one piece, and with the
real engine behind a forwarder that coalesces its writes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socketserver
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from handlers import container_exec, dify_db, exec_stream, plugin_db
from handlers.results import HandlerError
from tests.rig.box import running_box
from tests.rig.socket_proxy import SocketProxy
from tests.rig.stack import BUSYBOX_IMAGE, PYTHON_ONLY_IMAGE

API = "1.44"
UPGRADE = (
    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
    b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
)


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


# --- the frame reader alone ------------------------------------------------------------------
def test_frames_are_split_by_stream_whatever_their_sizes() -> None:
    big = b"x" * 100_000
    wire = frame(1, b"out\n") + frame(2, b"err\n") + frame(1, big) + frame(1, b"")
    assert list(exec_stream.frames(io.BytesIO(wire))) == [(1, b"out\n"), (2, b"err\n"), (1, big)]
    assert exec_stream.collect(exec_stream.frames(io.BytesIO(wire))) == (b"out\n" + big, b"err\n")


def test_a_stream_cut_short_yields_what_came_and_ends() -> None:
    wire = frame(1, b"whole\n") + frame(1, b"cut short")[:-3]
    assert list(exec_stream.frames(io.BytesIO(wire))) == [(1, b"whole\n"), (1, b"cut sh")]
    half_header = frame(1, b"whole\n") + frame(1, b"next")[:5]
    assert list(exec_stream.frames(io.BytesIO(half_header))) == [(1, b"whole\n")]
    assert list(exec_stream.frames(io.BytesIO(b""))) == []


# --- a wire-level engine ---------------------------------------------------------------------
class ExecState:
    """What the wire-level engine answers: the exec's start (the upgrade and the frames written
    in `pieces`, by default all in one write), its exit code."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.exit_code = 0
        self.start_status = 101


class UnixEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer, ExecState):
    """Docker's exec endpoints on a Unix socket: create, start, inspect."""

    daemon_threads = True

    def __init__(self, path: Path) -> None:
        ExecState.__init__(self)
        super().__init__(str(path), EngineHandler)

    @property
    def base_url(self) -> str:
        return f"unix://{self.server_address}"


class TcpEngine(socketserver.ThreadingMixIn, socketserver.TCPServer, ExecState):
    """The same endpoints on loopback TCP (DOCKER_HOST=tcp://...)."""

    daemon_threads = True

    def __init__(self) -> None:
        ExecState.__init__(self)
        super().__init__(("127.0.0.1", 0), EngineHandler)

    @property
    def base_url(self) -> str:
        return f"tcp://127.0.0.1:{self.server_address[1]}"


ExecEngine = UnixEngine | TcpEngine


class EngineHandler(socketserver.StreamRequestHandler):
    server: UnixEngine | TcpEngine

    def handle(self) -> None:
        for _ in range(16):  # keep-alive: a few requests per connection, bounded
            line = self.rfile.readline(4096)
            if not line:
                return
            method, path, _ = line.decode().split(" ", 2)
            length = 0
            while (header := self.rfile.readline(4096)) not in (b"\r\n", b""):
                name, _, value = header.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.rfile.read(length)
            if method == "POST" and path.endswith("/exec"):
                self.reply(201, {"Id": "e1"})
            elif method == "POST" and path.endswith("/exec/e1/start"):
                if self.server.start_status != 101:
                    # the connection ends here: say so, or the client reuses it and is reset
                    self.reply(
                        self.server.start_status,
                        {"message": "No such exec instance: e1"},
                        close=True,
                    )
                    return
                for piece in self.server.pieces:
                    self.wfile.write(piece)
                    self.wfile.flush()
                    time.sleep(0.02)
                return  # the stream ends with the connection
            elif method == "GET" and path.endswith("/exec/e1/json"):
                self.reply(200, {"ExitCode": self.server.exit_code, "Running": False})
            else:
                self.reply(404, {"message": f"no route {path}"})

    def reply(self, status: int, body: object, close: bool = False) -> None:
        data = json.dumps(body).encode()
        ending = "Connection: close\r\n" if close else ""
        self.wfile.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{ending}"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        self.wfile.flush()


@pytest.fixture(params=["unix", "tcp"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ExecEngine]:
    server: ExecEngine = (
        UnixEngine(tmp_path / "engine.sock") if request.param == "unix" else TcpEngine()
    )
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    yield server
    server.shutdown()
    server.server_close()


def client_of(engine: ExecEngine) -> docker.DockerClient:
    return docker.DockerClient(base_url=engine.base_url, version=API)


def test_frames_in_the_same_read_as_the_upgrade_headers_are_kept(engine: ExecEngine) -> None:
    rows = b'{"table": "provider_models", "model": "qwen2.5:7b"}\n'
    engine.pieces = [UPGRADE + frame(1, rows) + frame(2, b"NOTICE: x\n") + frame(1, b"end\n")]
    with contextlib.closing(client_of(engine)) as client:
        result = container_exec.run(client, "c" * 64, ["psql"], timeout=5)
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        rows.decode() + "end\n",
        "NOTICE: x\n",
    )


def test_frames_cut_anywhere_are_put_back_together(engine: ExecEngine) -> None:
    wire = UPGRADE + frame(1, b"first\n") + frame(2, b"warn\n") + frame(1, b"second\n")
    # every cut lands somewhere else: inside the headers, a frame header, a payload
    engine.pieces = [wire[i : i + 7] for i in range(0, len(wire), 7)]
    engine.exit_code = 3
    with contextlib.closing(client_of(engine)) as client:
        result = container_exec.run(client, "c" * 64, ["sh"], timeout=5)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "first\nsecond\n", "warn\n")


def test_an_engine_refusing_the_start_is_an_error_not_empty_output(engine: ExecEngine) -> None:
    engine.start_status = 404
    with contextlib.closing(client_of(engine)) as client:
        result = container_exec.run(client, "c" * 64, ["psql"], timeout=5)
        with pytest.raises(docker.errors.NotFound, match="No such exec instance"):
            list(exec_stream.start(client.api, "e1", 5))
    assert result.exit_code not in (0, None)
    assert "No such exec instance" in result.stderr


# --- the real engine behind a forwarder that coalesces its writes ----------------------------
@pytest.fixture(scope="module")
def coalescing_engine(docker_engine: docker.DockerClient) -> Iterator[docker.DockerClient]:
    engine_path = os.environ["DOCKER_HOST"].removeprefix("unix://")
    path = Path(f"/tmp/dify-ollama-coalesce-{os.getpid()}.sock")
    with SocketProxy(path, engine_path, coalesce=0.15) as forwarder:
        client = docker.DockerClient(
            base_url=forwarder.docker_host, version=docker_engine.api.api_version, timeout=30
        )
        with contextlib.closing(client):
            yield client


@pytest.fixture(scope="module")
def python_box(docker_engine: docker.DockerClient) -> Iterator[str]:
    sleeper = ["python3", "-c", "import time; time.sleep(600)"]
    with running_box(docker_engine, PYTHON_ONLY_IMAGE, sleeper, "exec-stream") as box:
        yield str(box.id)


@pytest.mark.docker
def test_real_engine_output_survives_a_coalescing_forwarder(
    coalescing_engine: docker.DockerClient, python_box: str
) -> None:
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)"
    for _ in range(5):
        result = container_exec.run(coalescing_engine, python_box, ["python3", "-c", script], 10)
        assert (result.exit_code, result.stdout, result.stderr) == (4, "out\n", "err\n")
    # and what the forwarder did is what loses frames: docker-py's own reader comes back
    # without the output that arrived with the headers
    created = coalescing_engine.api.exec_create(python_box, ["echo", "hello"])
    out, _err = coalescing_engine.api.exec_start(created["Id"], demux=True)
    assert out in (None, b""), "docker-py kept the frames: is docker/docker-py#3332 fixed?"


@pytest.mark.docker
def test_survey_answers_arrive_through_a_coalescing_forwarder(
    coalescing_engine: docker.DockerClient, python_box: str
) -> None:
    live = container_exec.start_survey(coalescing_engine, python_box, [], 5.0, names=("localhost",))
    assert live is not None
    answer = live.resolution("localhost")
    assert answer is not None and "127.0.0.1" in answer.addresses, answer


# --- rows (and plugins) are "none" only when the database client got to the end -------------
ROW = (
    '{"table": "provider_models", "id": "1", "tenant_id": "t", "provider": "ollama", '
    '"model": "qwen2.5:7b", "model_type": "llm", "name": null, "config": "{}"}'
)


@pytest.fixture(scope="module")
def shell_box(docker_engine: docker.DockerClient) -> Iterator[Any]:
    with running_box(docker_engine, BUSYBOX_IMAGE, ["sleep", "600"], "exec-stream") as box:
        yield box


def put_client(box: Any, name: str, script: str) -> None:
    """A stand-in database client at /bin/NAME (a shell script; the image's PATH is /bin)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        body = script.encode()
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(body), 0o755
        tar.addfile(info, io.BytesIO(body))
    assert box.put_archive("/bin", data.getvalue())


@pytest.mark.docker
@pytest.mark.parametrize("client_name", ["psql", "mysql"])
def test_database_output_cut_short_is_an_error_not_no_rows(
    docker_engine: docker.DockerClient, shell_box: Any, client_name: str
) -> None:
    def database() -> dify_db.DifyDatabase:
        if client_name == "psql":
            return dify_db.PostgresInContainer(docker_engine, shell_box.id, "postgres", "dify")
        return dify_db.MysqlInContainer(docker_engine, shell_box.id, "root", "dify", ("pw",))

    tables = "tables:2\n" if client_name == "mysql" else ""
    # exit 0 after one row, nothing on stderr: what a client whose output was lost looks like
    put_client(shell_box, client_name, f"#!/bin/sh\nprintf '%s\\n' '{tables}{ROW}'\n")
    with pytest.raises(HandlerError, match="output ended before the last query"):
        database().read_rows(5)
    dialect = "postgresql" if client_name == "psql" else "mysql"
    plugins = plugin_db.PluginDatabase("db", shell_box.id, dialect, "dify_plugin", "root", "pw")
    with pytest.raises(HandlerError, match="output ended before the last query"):
        plugin_db.read_installations(docker_engine, plugins, 5)  # not "not installed"
    # the same client reaching its end: the row is read, and no rows is a real "none"
    put_client(
        shell_box, client_name, f"#!/bin/sh\nprintf '%s\\n' '{tables}{ROW}' {dify_db.END_MARK}\n"
    )
    assert [r.model for r in database().read_rows(5)] == ["qwen2.5:7b"]
    assert len(plugin_db.read_installations(docker_engine, plugins, 5)) == 1
    put_client(shell_box, client_name, f"#!/bin/sh\nprintf '{tables}%s\\n' {dify_db.END_MARK}\n")
    assert database().read_rows(5) == []
