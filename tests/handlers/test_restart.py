"""`restart` on the look-alike stack: only what changed is recreated, drift detected then
cleared, named services, --all, and the ways it fails without changing anything."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers import compose_binary, fix_apply, fix_plan, restart
from handlers.check import run_check
from handlers.mutation_lock import Busy
from handlers.pending import read_pending
from handlers.results import HandlerError, Status
from tests.rig.compose import compose_for
from tests.rig.fake_ollama import FakeOllama
from tests.rig.incident import container_ids, failing, fix_settings
from tests.rig.stack import DifyStack, compose_env, docker_host

pytestmark = pytest.mark.docker


def started_at(stack: DifyStack, service: str) -> str:
    container = stack.container(service)
    container.reload()
    return str(container.attrs["State"]["StartedAt"])


def set_env(stack: DifyStack, key: str, value: str) -> None:
    lines = stack.read_env().splitlines(keepends=True)
    out = [f"{key}={value}\n" if line.startswith(f"{key}=") else line for line in lines]
    stack.env_path.write_text("".join(out))


@pytest.fixture
def stack(restore_healthy_stack: DifyStack) -> DifyStack:
    return restore_healthy_stack


def test_drift_detected_survives_engine_restart_then_cleared(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    set_env(stack, "OPENAI_API_BASE", f"{session_ollama.container_url()}/v1/")
    report = run_check(settings)
    drift = report.finding("env.drift")
    assert drift is not None and drift.status is Status.FAIL and "OPENAI_API_BASE" in drift.detail

    stack.container("api").restart(timeout=1)  # what people try first: it re-reads nothing
    stack.wait_healthy(60, ["api"])
    assert "env.drift" in failing(run_check(settings))

    before = container_ids(stack)
    result = restart.apply_configuration(settings, user="me", source="cli")
    assert result.ready and result.mode == "apply"
    assert set(result.recreated) == {"api", "worker", "worker_beat", "plugin_daemon"}
    after = container_ids(stack)
    assert after["db_postgres"] == before["db_postgres"] and after["redis"] == before["redis"]
    assert any("up -d --no-deps" in c for c in result.commands)
    verified = run_check(settings)
    assert failing(verified) == set(), verified.to_json()


def test_nothing_changed_recreates_nothing(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    before = container_ids(stack)
    result = restart.apply_configuration(settings, user="me", source="cli")
    assert result.recreated == () and result.restarted == ()
    assert container_ids(stack) == before


def test_after_a_database_fix_the_callers_restart_even_if_unchanged(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    row = stack.initial_rows[0]
    stack.psql(
        "UPDATE provider_model_credentials SET encrypted_config = replace(encrypted_config, "
        f"'host.docker.internal', '127.0.0.1') WHERE id = '{row.id}'"
    )
    plan = fix_plan.make_plan(settings, run_check(settings))
    assert plan.db is not None and plan.env is None and plan.override is None
    fix_apply.apply_plan(settings, plan.id, user="me", source="cli")
    beat = started_at(stack, "worker_beat")
    before = container_ids(stack)
    result = restart.apply_configuration(settings, user="me", source="cli")
    assert set(result.restarted) == {"api", "worker", "plugin_daemon"}
    assert result.recreated == ()
    assert container_ids(stack) == before  # restarted in place: nothing else to apply
    assert started_at(stack, "worker_beat") == beat
    assert read_pending(settings, stack.dir) is None
    assert failing(run_check(settings)) == set()


def test_named_services_are_validated_and_restarted(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    api_started = started_at(stack, "api")
    with pytest.raises(HandlerError, match="unknown service nosuch; this project has: api"):
        restart.restart_services(settings, ["nosuch"], user="me", source="cli")
    assert started_at(stack, "api") == api_started
    worker_started = started_at(stack, "worker")
    result = restart.restart_services(settings, ["worker"], user="me", source="cli")
    assert [o.action for o in result.outcomes] == ["restarted"]
    assert started_at(stack, "worker") != worker_started
    assert started_at(stack, "api") == api_started


@pytest.mark.slow
def test_restart_all_is_down_and_up(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    before = container_ids(stack)
    result = restart.restart_all(settings, user="me", source="cli")
    assert result.ready and result.commands[0].endswith(" down")
    after = container_ids(stack)
    assert all(after[s] != before[s] for s in before)  # db and redis too: that is its cost
    stack.seed_redis_keys()
    assert failing(run_check(settings)) == set()


def test_missing_compose_is_a_clear_error_and_changes_nothing(
    stack: DifyStack,
    session_ollama: FakeOllama,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    set_env(stack, "OPENAI_API_BASE", f"{session_ollama.container_url()}/v1/")
    before = container_ids(stack)
    monkeypatch.setenv("PATH", str(tmp_path))  # neither docker nor docker-compose on it
    compose_binary.find_compose.cache_clear()
    try:
        with pytest.raises(HandlerError) as err:
            restart.apply_configuration(settings, user="me", source="cli")
        # the stack was made by v1 (labels); no Compose at all is found: the reason, the
        # command to run by hand, and nothing changed
        message = str(err.value)
        assert "created by Compose 1.29.2 (v1), which is not installed here" in message
        assert "found: no Compose" in message and "nothing was changed" in message
        assert f"docker-compose -p {stack.project} up -d --no-deps" in message
    finally:
        monkeypatch.undo()
        compose_binary.find_compose.cache_clear()
    assert container_ids(stack) == before


class SocketProxy:
    """A unix socket in front of the engine's: closing it is the engine going away."""

    def __init__(self, target: str, path: Path) -> None:
        self.target = target
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(64)
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self.lock:
                self.conns += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.server.close()
        self.path.unlink(missing_ok=True)
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.close()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[SocketProxy]:
    real = docker_host().removeprefix("unix://")
    made = SocketProxy(real, Path(tmp_path) / "engine.sock")
    yield made
    made.kill()


def test_engine_down_mid_restart_is_a_clear_error_and_changes_nothing(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path, proxy: SocketProxy
) -> None:
    settings = fix_settings(
        stack, session_ollama, tmp_path / "state", docker_host=f"unix://{proxy.path}"
    )
    set_env(stack, "OPENAI_API_BASE", f"{session_ollama.container_url()}/v1/")
    env_before = stack.env_path.read_bytes()
    before = container_ids(stack)

    def engine_dies(text: str) -> None:
        if text.startswith("applying configuration"):
            proxy.kill()

    with pytest.raises(HandlerError) as err:
        restart.apply_configuration(settings, user="me", source="cli", progress=engine_dies)
    assert "up -d --no-deps" in str(err.value) and "failed" in str(err.value)
    assert container_ids(stack) == before
    assert stack.env_path.read_bytes() == env_before
    # and with no engine at all from the start:
    gone = fix_settings(stack, session_ollama, tmp_path / "s2", docker_host="unix:///nonexistent")
    with pytest.raises(HandlerError, match="Docker engine unreachable"):
        restart.apply_configuration(gone, user="me", source="cli")


def test_concurrent_mutating_requests_are_serialized(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    set_env(stack, "OPENAI_API_BASE", f"{session_ollama.container_url()}/v1/")
    stack.psql(
        "UPDATE provider_model_credentials SET encrypted_config = replace(encrypted_config, "
        f"'host.docker.internal', 'localhost') WHERE id = '{stack.initial_rows[0].id}'"
    )
    plan = fix_plan.make_plan(settings, run_check(settings))
    assert plan.db is not None
    inside = threading.Event()
    release = threading.Event()
    outcome: dict[str, Any] = {}

    def slow_progress(text: str) -> None:
        if text.startswith("applying configuration"):
            inside.set()
            release.wait(30)

    def first() -> None:
        try:
            outcome["first"] = restart.apply_configuration(
                settings, user="UALICE", source="slack", progress=slow_progress
            )
        except Exception as exc:  # reported below
            outcome["first"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(60)
        with pytest.raises(Busy) as err:
            restart.restart_services(settings, ["worker"], user="bob@host", source="cli")
        assert "`restart (apply configuration)` started by UALICE at " in str(err.value)
        with pytest.raises(Busy):
            fix_apply.apply_plan(settings, plan.id, user="bob@host", source="cli")
    finally:
        release.set()
        thread.join(120)
    assert isinstance(outcome["first"], restart.RestartResult), outcome["first"]
    # one after the other, both go through (the refused plan was not used up)
    fix_apply.apply_plan(settings, plan.id, user="bob@host", source="cli")
    restart.restart_services(settings, ["worker"], user="bob@host", source="cli")


def test_compose_sees_none_of_the_callers_environment(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compose prefers the caller's environment over .env: the bot's must not leak in."""
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:1/leaked")
    monkeypatch.setenv("COMPOSE_PROFILES", "nothing")
    set_env(stack, "OPENAI_API_BASE", f"{session_ollama.container_url()}/v1/")
    restart.apply_configuration(settings, user="me", source="cli")
    env = stack.container("api").attrs["Config"]["Env"]
    assert f"OPENAI_API_BASE={session_ollama.container_url()}/v1/" in env
    assert os.environ["OPENAI_API_BASE"].endswith("/leaked")


def test_a_stack_recreated_partly_by_another_compose_is_refused_not_half_recreated(
    stack: DifyStack, session_ollama: FakeOllama, tmp_path: Path
) -> None:
    """Someone recreated worker with Compose v2 in a stack v1 made: no single Compose can
    reproduce both, so restart names the mix and the command, and recreates nothing."""
    settings = fix_settings(stack, session_ollama, tmp_path / "state")
    v2 = compose_for("v2")
    done = v2.run(
        [
            "-p",
            stack.project,
            "--project-directory",
            str(stack.dir),
            "up",
            "-d",
            "--no-deps",
            "--force-recreate",
            "worker",
        ],
        cwd=stack.dir,
        env=compose_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    set_env(stack, "OPENAI_API_BASE", f"{session_ollama.container_url()}/v1/")
    before = container_ids(stack) | {"worker": stack.container("worker").id}
    with pytest.raises(HandlerError) as err:
        restart.apply_configuration(settings, user="me", source="cli")
    message = str(err.value)
    assert "created by different Compose flavours" in message
    assert "worker: Compose 2.40.3" in message and "api: Compose 1.29.2" in message
    assert "nothing was changed" in message and "up -d --no-deps" in message
    assert container_ids(stack) | {"worker": stack.container("worker").id} == before
