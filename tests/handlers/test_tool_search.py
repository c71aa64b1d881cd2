"""Which tools an exec can run by name: looked for (by the engine's stat, no exec) in the
folders of the container's PATH, the folders the exec itself searches; a busybox image with
PATH=/bin needs 4 stats instead of 24, and a program outside PATH, which an exec cannot run by
name, is not counted as there. A real container of the private engine."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from handlers import container_exec
from tests.rig.box import running_box
from tests.rig.stack import BUSYBOX_IMAGE


def test_the_folders_are_path_s_in_order_else_the_engine_s_default() -> None:
    assert container_exec.search_dirs("/bin") == ("/bin",)
    assert container_exec.search_dirs("/opt/venv/bin/:/usr/bin::relative:/usr/bin") == (
        "/opt/venv/bin",
        "/usr/bin",
    )
    assert container_exec.search_dirs(None) == container_exec.BIN_DIRS
    assert container_exec.search_dirs("") == container_exec.BIN_DIRS
    assert container_exec.search_dirs("relative:also") == container_exec.BIN_DIRS
    assert len(container_exec.search_dirs(":".join(f"/d{i}" for i in range(100)))) == 16


@pytest.fixture(scope="module")
def box(docker_engine: docker.DockerClient) -> Iterator[Any]:
    """busybox (wget, no curl, no python3) with PATH=/bin, and a `curl` and a `python3`
    program in /opt/tools, outside PATH."""
    sleeper = ["sleep", "120"]
    environment = {"PATH": "/bin"}
    with running_box(docker_engine, BUSYBOX_IMAGE, sleeper, "tool-search", environment) as box:
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            for name in ("opt/tools/curl", "opt/tools/python3"):
                info = tarfile.TarInfo(name)
                body = b"#!/bin/sh\necho outside\n"
                info.size, info.mode = len(body), 0o755
                tar.addfile(info, io.BytesIO(body))
        assert box.put_archive("/", data.getvalue())
        yield box
        container_exec.forget(box.id)


def _fresh(box: Any) -> str:
    container_exec.forget(box.id)  # each question asked anew, not from the last one's cache
    return str(box.id)


@pytest.mark.docker
def test_only_what_path_reaches_is_found(docker_engine: docker.DockerClient, box: Any) -> None:
    assert container_exec.find_tools(docker_engine, _fresh(box), "/bin") == {"wget"}
    assert not container_exec.has_python(docker_engine, _fresh(box), "/bin")


@pytest.mark.docker
def test_a_folder_on_path_is_searched_whatever_it_is(
    docker_engine: docker.DockerClient, box: Any
) -> None:
    path = "/bin:/opt/tools"
    assert container_exec.find_tools(docker_engine, _fresh(box), path) == {
        "wget",
        "curl",
        "python3",
    }
    assert container_exec.has_python(docker_engine, _fresh(box), path)
    # and an exec by name really runs it, as the stat promised
    exit_code, output = box.exec_run(["curl"], environment={"PATH": path})
    assert (exit_code, output.strip()) == (0, b"outside")
