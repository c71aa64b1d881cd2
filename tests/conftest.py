"""Shared fixtures: the private Docker engine, a fake Ollama on the host, look-alike Dify stacks.

Nothing here touches the engine at import or collection time, so `pytest -m "not docker"` runs
with no engine at all. Tests that need the engine request `docker_engine` (directly or through
the stack fixtures) and are marked `@pytest.mark.docker`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    # `from tests.rig... import ...` works however pytest was launched (venv script or -m).
    sys.path.insert(0, str(_ROOT))

# Assertion helpers shared by several test modules live in the rig: give their asserts pytest's
# detailed failure messages too (must run before they are first imported).
pytest.register_assert_rewrite("tests.rig.log_containers")

from tests.rig.fake_ollama import FakeOllama  # noqa: E402
from tests.rig.stack import DifyStack, docker_host  # noqa: E402
from tests.rig.stack import healthy_stack as healthy_stack_of  # noqa: E402

ENGINE_HINT = "run `scripts/test-engine up` (then export the DOCKER_HOST it prints)"


def pytest_configure(config: Any) -> None:
    """The product under test sees Compose v2 installed, as users have it (Debian's v1 stays
    on PATH): scripts/install-test-deps puts the plugin in a folder of its own unless CI makes
    it the machine's, and the docker CLI finds it there only through DOCKER_CONFIG."""
    from tests.rig.compose import SYSTEM_PLUGIN_DIRS, v2_plugin_dir

    plugin_dir = v2_plugin_dir()
    if "DOCKER_CONFIG" not in os.environ and str(plugin_dir) not in SYSTEM_PLUGIN_DIRS:
        os.environ["DOCKER_CONFIG"] = str(plugin_dir.parent)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """A docker.DockerClient for DOCKER_HOST (default: the private test engine's socket).

    Fails (never skips) when the engine does not answer: a skipped docker suite looks green.
    """
    import docker

    host = docker_host()
    os.environ.setdefault("DOCKER_HOST", host)  # product code under test reads it too
    try:
        client = docker.DockerClient(base_url=host, timeout=30)
        client.ping()
    except Exception as e:
        pytest.fail(
            f"Docker engine at {host} is unreachable ({type(e).__name__}: {e}); {ENGINE_HINT}",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    """A fresh fake Ollama bound to 0.0.0.0 (reachable from containers), stopped after."""
    with FakeOllama(bind="0.0.0.0") as fake:
        yield fake


@pytest.fixture
def dify_stack_factory(
    docker_engine: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., DifyStack]]:
    """make(**DifyStack kwargs) -> an unstarted DifyStack; every one is torn down at the end.

    Call `.up()` on it (waits until healthy). Teardown runs even when the test failed.
    """
    made: list[DifyStack] = []

    def make(**kwargs: Any) -> DifyStack:
        kwargs.setdefault("client", docker_engine)
        stack = DifyStack(tmp_path_factory.mktemp("dify"), **kwargs)
        made.append(stack)
        return stack

    yield make
    errors = []
    for stack in made:
        try:
            stack.down()
        except Exception as e:  # keep tearing the others down
            errors.append(f"{stack.project}: {e}")
    if errors:
        pytest.fail("stack teardown failed: " + "; ".join(errors), pytrace=False)


@pytest.fixture(scope="session")
def session_ollama() -> Iterator[FakeOllama]:
    """The fake Ollama behind `healthy_stack` (0.0.0.0, one model). Reset it after mutating."""
    with FakeOllama(bind="0.0.0.0") as fake:
        yield fake


@pytest.fixture(scope="session")
def healthy_stack(
    docker_engine: Any, session_ollama: FakeOllama, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DifyStack]:
    """A shared stack in the healthy state: host-gateway override on the model callers, rows
    pointing at the session fake Ollama through host.docker.internal:<port>, OPENAI_API_BASE
    set to http://host.docker.internal:<port>/v1.

    Tests that change it must use `restore_healthy_stack` (or call `.restore()` themselves).
    """
    url = session_ollama.container_url()
    with healthy_stack_of(tmp_path_factory.mktemp("healthy"), url, client=docker_engine) as stack:
        yield stack.up()


@pytest.fixture
def restore_healthy_stack(
    healthy_stack: DifyStack, session_ollama: FakeOllama
) -> Iterator[DifyStack]:
    """`healthy_stack` for a test that mutates it: files, containers, rows, Redis keys and the
    fake Ollama are put back afterwards (pass or fail)."""
    yield healthy_stack
    session_ollama.reset(bind="0.0.0.0")
    healthy_stack.restore()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Wall time of bringing up each rig layout (tests/rig/test_layouts.py), when it ran."""
    layouts = sys.modules.get("tests.rig.test_layouts")
    times = getattr(layouts, "UP_TIMES", None)
    if times:
        terminalreporter.write_sep("-", "rig layouts: compose up until healthy")
        for name, seconds in times.items():
            terminalreporter.write_line(f"{name}: {seconds:.1f} s")
