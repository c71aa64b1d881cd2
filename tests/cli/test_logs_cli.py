"""`dify-ollama logs` as a user runs it: a real subprocess, real exit codes, a real engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rig.cli_process import run_cli
from tests.rig.log_containers import Canaries, LogProject, assert_no_canary, printf_script


@pytest.fixture
def project(docker_engine: Any, tmp_path: Path) -> Iterator[LogProject]:
    made = LogProject(docker_engine, tmp_path, Canaries())
    try:
        lines = [*made.canaries.log_lines(), r"\033[32mgreen\033[0m done"]
        api = made.add("api", printf_script(lines))
        made.add("worker", "sleep 600")
        made.wait_for_line(api, b"done")
        yield made
    finally:
        made.cleanup()


@pytest.mark.docker
def test_terminal_output_has_no_secret(project: LogProject) -> None:
    proc = run_cli("logs", "api", "100", env=project.env)
    assert proc.returncode == 0, proc.stderr
    assert_no_canary(proc.stdout + proc.stderr, project.canaries)
    assert proc.stdout.count("[REDACTED]") >= 12
    assert proc.stdout.endswith("green done\n") and "\x1b" not in proc.stdout
    assert "secrets redacted" in proc.stderr  # the summary goes to stderr, stdout is the log


@pytest.mark.docker
def test_number_alone_is_lines_of_the_default_service(project: LogProject) -> None:
    proc = run_cli("logs", "2", env=project.env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "green done" and len(proc.stdout.splitlines()) == 2


@pytest.mark.docker
def test_grep_and_since(project: LogProject) -> None:
    proc = run_cli("logs", "api", "100", "--grep", "GREEN", "--since", "1h", env=project.env)
    assert proc.returncode == 0 and proc.stdout == "green done\n"


@pytest.mark.docker
def test_unknown_service_is_a_usage_error_listing_the_valid_ones(project: LogProject) -> None:
    proc = run_cli("logs", "apii", "10", env=project.env)
    assert proc.returncode == 2
    assert "no service 'apii'" in proc.stderr and "api, worker" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.docker
def test_silent_container_is_empty_with_a_note(project: LogProject) -> None:
    proc = run_cli("logs", "worker", env=project.env)
    assert proc.returncode == 0 and proc.stdout == ""
    assert "has written nothing to its log" in proc.stderr


@pytest.mark.parametrize("lines", ["0", "-1", "5001", "abc"])
def test_absurd_line_counts_exit_2(lines: str) -> None:
    proc = run_cli("logs", "api", lines, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert proc.returncode == 2 and "LINES" in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--since", "soon"), "--since"), (("--grep", ""), "--grep"), (("a", "1", "x"), "")],
)
def test_other_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    proc = run_cli("logs", *args, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert proc.returncode == 2 and message in proc.stderr


def test_engine_down_exits_1(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path}/docker.sock", "DIFY_COMPOSE_PROJECT": "x"}
    proc = run_cli("logs", "api", "10", env=env)
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr and proc.stdout == ""


@pytest.mark.docker
def test_json_output_is_one_redacted_object(project: LogProject) -> None:
    proc = run_cli("logs", "api", "100", "--json", env=project.env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # what describes the log is in the object
    assert_no_canary(proc.stdout, project.canaries)
    data = json.loads(proc.stdout)
    assert data["service"] == "api" and data["state"] == "running"
    assert data["lines"][-1] == "green done" and data["lines_returned"] == len(data["lines"])
    assert data["redactions"] >= 12 and sum("[REDACTED]" in x for x in data["lines"]) >= 1
    assert "text" not in data and data["description"].startswith("api, last 100 lines")
    unknown = run_cli("logs", "apii", "--json", env=project.env)
    assert unknown.returncode == 2 and unknown.stdout == "" and "no service" in unknown.stderr
