"""Finding the engine and the Dify project, and explaining why that failed."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import pytest

from config.settings import Settings
from handlers.engine import explain, ping
from handlers.project import discover, normalize_project_name
from handlers.results import HandlerError
from tests.rig.stack import DifyStack


def test_missing_socket(tmp_path: Path) -> None:
    client, problem, _ = ping(Settings(docker_host=f"unix://{tmp_path}/docker.sock"))
    assert client is None and problem is not None
    assert problem.reason == "socket-missing" and "systemctl start docker" in problem.remedy


def test_socket_without_engine_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))  # the file exists, nothing listens: what a dead dockerd leaves
    server.close()
    client, problem, _ = ping(Settings(docker_host=f"unix://{path}"))
    assert client is None and problem is not None and problem.reason == "refused"


def test_tcp_engine_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the probe: nothing listens there
    _, problem, _ = ping(Settings(docker_host=f"tcp://127.0.0.1:{port}"))
    assert problem is not None and problem.reason == "refused"


def test_permission_denied_is_explained() -> None:
    exc = PermissionError(errno.EACCES, "Permission denied")
    problem = explain(ConnectionError(exc), "unix:///var/run/docker.sock")
    assert problem.reason == "permission-denied" and "docker` group" in problem.remedy


def test_hung_engine_times_out() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()  # accepts into the backlog, never answers
        port = s.getsockname()[1]
        _, problem, _ = ping(Settings(docker_host=f"tcp://127.0.0.1:{port}", check_timeout=1))
    assert problem is not None and problem.reason == "timeout"


def test_project_name_rule() -> None:
    assert normalize_project_name("Dify Docker.1") == "difydocker1"


def test_dify_dir_without_compose_file(tmp_path: Path) -> None:
    with pytest.raises(HandlerError, match=r"holds no docker-compose\.yaml"):
        discover(None, Settings(dify_dir=tmp_path))


def test_dify_dir_without_containers(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yaml").write_text("services: {}\n")
    project = discover(None, Settings(dify_dir=tmp_path))
    assert project.env_path == tmp_path.resolve() / ".env"
    assert project.name == normalize_project_name(tmp_path.name)
    assert project.containers == {}


@pytest.mark.docker
def test_found_by_folder_and_by_name(healthy_stack: DifyStack, docker_engine: object) -> None:
    settings = Settings(dify_dir=healthy_stack.dir, docker_host=os.environ["DOCKER_HOST"])
    client, _, _ = ping(settings)
    project = discover(client, settings)
    assert project.name == healthy_stack.project
    assert project.env_path == healthy_stack.env_path
    assert {"api", "worker", "plugin_daemon", "db_postgres", "redis"} <= set(project.containers)
    assert project.db_service == "db_postgres"
    by_name = discover(client, Settings(dify_compose_project=healthy_stack.project))
    assert by_name.working_dir == healthy_stack.dir
    with pytest.raises(HandlerError, match="no containers of compose project"):
        discover(client, Settings(dify_compose_project="no-such-project"))


def test_check_with_hung_engine_keeps_its_deadline() -> None:
    from handlers.check import run_check

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        settings = Settings(
            docker_host=f"tcp://127.0.0.1:{s.getsockname()[1]}",
            check_timeout=1,
            ollama_url="http://127.0.0.1:9",
        )
        report = run_check(settings)
    assert report.duration_ms <= 2000
    engine = report.finding("docker.engine")
    assert engine is not None and "did not answer in time" in engine.summary
