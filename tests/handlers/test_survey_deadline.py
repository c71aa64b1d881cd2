"""A survey answers before its deadline even when python3 starts late in the container.

On a loaded host the interpreter of the survey exec can start a second late. Its requests
must still give up at the caller's time, so what they saw (a timeout, with its own evidence)
is printed before the exec is cut off, rather than lost: the check would then only say "no
answer within the check deadline" instead of naming a firewall or a hung Ollama. The late
start is real here: the container's Python runs a sitecustomize that sleeps.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from handlers import container_exec
from tests.rig.box import running_box
from tests.rig.stack import PYTHON_ONLY_IMAGE

pytestmark = pytest.mark.docker

LATE_START = 1.0  # seconds every python3 of the container sleeps before running anything
# Accepts and never answers: what a firewall that drops, or a hung Ollama, looks like.
HUNG_SERVER = (
    "import socket, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', 8080)); s.listen(16)\n"
    "held = [s.accept()[0] for _ in range(1000)]\n"
    "time.sleep(600)\n"
)


@pytest.fixture(scope="module")
def slow_python(docker_engine: docker.DockerClient) -> Iterator[Any]:
    server = ["python3", "-c", HUNG_SERVER]
    with running_box(docker_engine, PYTHON_ONLY_IMAGE, server, "survey-deadline") as box:
        data = io.BytesIO()
        body = f"import time\ntime.sleep({LATE_START})\n".encode()
        with tarfile.open(fileobj=data, mode="w") as tar:
            info = tarfile.TarInfo("sitecustomize.py")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        # Debian's python3 imports /etc/python3.11/sitecustomize.py (through a symlink in
        # its standard library, which comes first on sys.path): replace that one
        assert box.put_archive("/etc/python3.11", data.getvalue())
        began = time.monotonic()
        probe = box.exec_run(["python3", "-c", "pass"])
        assert probe.exit_code == 0 and time.monotonic() - began >= LATE_START, probe.output
        yield box


def test_late_interpreter_still_reports_its_timeouts_in_time(
    docker_engine: docker.DockerClient, slow_python: Any
) -> None:
    timeout = 2.0
    url = "http://127.0.0.1:8080/api/version"
    started = time.monotonic()
    live = container_exec.start_survey(
        docker_engine, slow_python.id, [url], timeout, direct=(url,), names=("localhost",)
    )
    assert live is not None
    answer = live.http(url)
    waited = time.monotonic() - started
    assert answer is not None
    # the request's own timeout, printed by the container: not the caller's stand-in for
    # an answer that never came ("no answer before the deadline")
    assert answer.error == "timeout", answer
    assert "no answer before the deadline" not in answer.error_text, answer
    assert "timed out" in answer.error_text, answer
    # and it came before the exec's own bound (timeout) cut the interpreter off
    assert waited < timeout + 0.5, waited
    resolved = live.resolution("localhost")
    assert resolved is not None and "127.0.0.1" in resolved.addresses, resolved
