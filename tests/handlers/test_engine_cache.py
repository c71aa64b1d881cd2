"""The bot's cache between checks: used while the engine's event stream is connected, never
stale: a recreated container is seen by the next check, and without the stream nothing is
served from the cache (the engine seen through a forwarder that can make it go away)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from handlers.check import run_check
from handlers.engine_cache import EngineCache
from handlers.results import Report, Status
from tests.rig.fake_ollama import FakeOllama
from tests.rig.socket_proxy import SocketProxy
from tests.rig.stack import DifyStack


def status_of(report: Report, finding_id: str) -> Status:
    found = report.finding(finding_id)
    assert found is not None
    return found.status


def wait_for(condition: object, limit: float = 15.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


# --- the events themselves (no engine) --------------------------------------------------------
def test_our_own_execs_and_archive_reads_do_not_invalidate() -> None:
    cache = EngineCache(Settings(docker_host="unix:///nonexistent.sock"))
    before = cache.invalidations
    for action in ("exec_create: python3 -c", "exec_start: psql", "exec_die", "archive-path"):
        cache.apply({"Type": "container", "Action": action, "id": "c" * 64})
    assert cache.invalidations == before
    for action in ("die", "start", "destroy", "rename", "health_status: unhealthy", "create"):
        cache.apply({"Type": "container", "Action": action, "id": "c" * 64})
    assert cache.invalidations == before + 6


def test_nothing_is_kept_while_not_connected() -> None:
    cache = EngineCache(Settings(docker_host="unix:///nonexistent.sock"))
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert [cache.remember("project", compute) for _ in range(3)] == [1, 2, 3]
    assert cache.hits == 0 and cache.connection() is None


def test_parses_are_kept_by_their_bytes() -> None:
    cache = EngineCache(Settings(docker_host="unix:///nonexistent.sock"))
    parses: list[str] = []

    def parse(text: str) -> str:
        parses.append(text)
        return text

    assert cache.parsed("env", b"A=1", lambda: parse("first")) == "first"
    assert cache.parsed("env", b"A=1", lambda: parse("again")) == "first"
    assert cache.parsed("env", b"A=2", lambda: parse("new")) == "new"
    assert parses == ["first", "new"]


# --- against the engine ------------------------------------------------------------------------
@pytest.fixture
def proxy() -> Iterator[SocketProxy]:
    target = os.environ.get("DOCKER_HOST", "").removeprefix("unix://")
    with SocketProxy(Path(f"/tmp/dify-ollama-proxy-{os.getpid()}.sock"), target) as forwarder:
        yield forwarder


def settings_via(proxy: SocketProxy, stack: DifyStack, ollama: FakeOllama) -> Settings:
    return Settings(
        dify_compose_project=stack.project,
        ollama_url=ollama.url,
        check_timeout=3,
        docker_host=proxy.docker_host,
    )


def change_openai_base(stack: DifyStack, value: str) -> None:
    text = stack.env_path.read_text()
    old = next(line for line in text.splitlines() if line.startswith("OPENAI_API_BASE="))
    stack.env_path.write_text(text.replace(old, f"OPENAI_API_BASE={value}"))


@pytest.mark.docker
def test_recreated_container_is_seen_by_the_next_cached_check(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama, proxy: SocketProxy
) -> None:
    stack = restore_healthy_stack
    settings = settings_via(proxy, stack, session_ollama)
    cache = EngineCache(settings).start()
    try:
        assert cache.wait_live(10)
        first = run_check(settings, cache=cache)
        assert status_of(first, "env.drift") is Status.OK, first.to_json()
        hits = cache.hits
        second = run_check(settings, cache=cache)
        assert cache.hits > hits  # engine, project, inspects and parses came from the cache
        assert [f.status for f in second.findings] == [f.status for f in first.findings]
        # .env changes, the containers still run with the old value: drift
        change_openai_base(stack, f"{session_ollama.container_url()}/v1/")
        drifted = run_check(settings, cache=cache)
        assert status_of(drifted, "env.drift") is Status.FAIL, drifted.to_json()
        old_ids = {s: stack.container(s).id for s in ("api", "worker", "plugin_daemon")}
        stack.recreate(["api", "worker", "worker_beat", "plugin_daemon"])
        assert {s: stack.container(s).id for s in old_ids} != old_ids
        # the next check sees the new containers (their environment), not the cached ones
        fresh = run_check(settings, cache=cache)
        assert status_of(fresh, "env.drift") is Status.OK, fresh.to_json()
        assert status_of(fresh, "container.reach") is Status.OK, fresh.to_json()
    finally:
        cache.close()


@pytest.mark.docker
def test_without_the_event_stream_nothing_comes_from_the_cache(
    restore_healthy_stack: DifyStack, session_ollama: FakeOllama, proxy: SocketProxy
) -> None:
    stack = restore_healthy_stack
    settings = settings_via(proxy, stack, session_ollama)
    cache = EngineCache(settings).start()
    try:
        assert cache.wait_live(10)
        assert status_of(run_check(settings, cache=cache), "docker.engine") is Status.OK
        # the engine goes away: the stream ends, the cache is disabled, the check says so
        proxy.stop()
        assert wait_for(lambda: not cache.live, 5)
        gone = run_check(settings, cache=cache)
        assert status_of(gone, "docker.engine") is Status.FAIL, gone.to_json()
        assert status_of(gone, "dify.project") is Status.SKIP
        # while it is away the stack changes; when it is back the cache starts over
        change_openai_base(stack, f"{session_ollama.container_url()}/v1/")
        stack.recreate(["api", "worker", "worker_beat", "plugin_daemon"])
        proxy.start()
        assert cache.wait_live(15)
        back = run_check(settings, cache=cache)
        assert status_of(back, "docker.engine") is Status.OK, back.to_json()
        assert status_of(back, "env.drift") is Status.OK, back.to_json()
        # a cut stream (the engine restarting) disables the cache until it reconnects
        hits = cache.hits
        proxy.drop_all()
        assert wait_for(lambda: not cache.live, 5)
        assert cache.connection() is None and cache.hits == hits
    finally:
        cache.close()
