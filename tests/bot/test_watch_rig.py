"""The watch end to end on the real rig: a look-alike Dify stack on the private engine, the fake
Ollama on the host, the real `check`, the running bot and the Slack Web API double.

Short intervals (WATCH_INTERVAL_FLOOR lowered for tests; users keep the 10 s minimum).
`dify.secrets` warns on the rig (Dify's default secrets) from the start: it is muted first,
as an on-call would mute a known warning, which also shows a mute holding for a whole test.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from handlers.check import run_check
from handlers.probes import FINDING_IDS, ON_REQUEST
from handlers.watch_store import add_mute
from tests.bot.test_watch_bot import home_opened, in_thread, top_level
from tests.rig.dropping_proxy import UnixProxy

pytestmark = [pytest.mark.docker, pytest.mark.slow]

WATCH = "CWATCH"
INTERVAL = 2.0
CHECK_TIMEOUT = 2.0
DEADLINE = CHECK_TIMEOUT + 1.0  # a check's report arrives within this


def until(predicate: Callable[[], Any], timeout: float, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@pytest.fixture
def watch_bot(run_bot, restore_healthy_stack, session_ollama, tmp_path):
    stack = restore_healthy_stack

    def start(**overrides: Any):
        settings: dict[str, Any] = {
            "watch_channel": WATCH,
            "watch_interval_floor": 0.5,
            "watch_interval": INTERVAL,
            "watch_fail_after": 2,
            "check_timeout": CHECK_TIMEOUT,
            "docker_host": os.environ.get("DOCKER_HOST"),
            "dify_compose_project": stack.project,
            "dify_dir": stack.dir,
            "ollama_url": session_ollama.url,
            "operators": ("UOPS",),
            "metrics_enabled": True,
            **overrides,
        }
        return run_bot(check=run_check, **settings)

    add_mute(tmp_path / "state", "dify.secrets", time.time() + 3600, "UOPS", time.time())
    return start


def runs(bot) -> int:
    return len(bot.bot.history.checks_since(0))


def wait_runs(bot, count: int) -> None:
    target = runs(bot) + count
    assert until(lambda: runs(bot) >= target, count * (INTERVAL + DEADLINE) + 10), runs(bot)


def alert_of(slack) -> dict[str, Any]:
    alerts = top_level(slack)
    assert len(alerts) == 1, [a.get("text") for a in alerts]
    return alerts[0]


def parent_ts(slack, alert: dict[str, Any]) -> str:
    """The ts the double gave the alert (the watch threads everything under it and edits it)."""
    threads = [
        c.params["thread_ts"]
        for c in slack.of("chat.postMessage")
        if c.params.get("channel") == WATCH and c.params.get("thread_ts")
    ]
    updates = [c.params["ts"] for c in slack.of("chat.update") if c.params["channel"] == WATCH]
    return (threads or updates or [""])[0]


def test_ollama_stopped_one_alert_recovery_in_its_thread_across_a_bot_restart(
    watch_bot, session_ollama, slack
):
    bot = watch_bot()
    wait_runs(bot, 2)
    assert top_level(slack) == []  # healthy (dify.secrets muted): silence

    session_ollama.down()
    stopped = time.monotonic()
    assert until(lambda: top_level(slack), 2 * INTERVAL + 2 * DEADLINE + 10)
    took = time.monotonic() - stopped
    print(f"\nalert {took:.1f} s after Ollama stopped (interval {INTERVAL:g} s)")
    assert took <= 2 * INTERVAL + 2 * DEADLINE + 2
    alert = alert_of(slack)
    shown = json.dumps(alert["blocks"])
    for finding in ("ollama.host", "container.reach"):  # ollama.bind may join a run later
        assert finding in shown
    assert "dify.secrets" not in shown  # muted
    assert "refused" in shown and "Start Ollama" in shown  # evidence and remedy

    # The Home tab shows the open alert.
    home_opened(bot, "UOPS")
    home = slack.wait_for(
        "views.publish", where=lambda c: "Open alert" in json.dumps(c.params["view"])
    )
    assert "container.reach" in json.dumps(home[-1].params["view"])

    # The bot restarts: the alert continues, nothing is posted twice.
    bot.bot.shutdown()
    bot = watch_bot()
    wait_runs(bot, 3)
    alert_of(slack)

    session_ollama.up()
    closed = until(
        lambda: [
            c.params
            for c in slack.of("chat.postMessage")
            if "Recovered after" in str(c.params.get("text"))
        ],
        3 * INTERVAL + 3 * DEADLINE + 10,
    )
    assert closed, [c.params.get("text") for c in slack.of("chat.postMessage")]
    ts = closed[0]["thread_ts"]
    assert "on its own" in closed[0]["text"]
    slack.wait_for(
        "chat.update",
        where=lambda c: c.params["ts"] == ts and "Resolved" in c.params["text"],
    )
    assert len(in_thread(slack, ts)) >= 1
    alert_of(slack)

    # History from both processes: one incident, with Ollama's findings.
    bot.command("history 24h")
    answer = slack.wait_for(
        "chat.postMessage", where=lambda c: "History of the last 24h" in c.params["text"]
    )[0]
    assert "1 incident" in answer.params["text"]
    assert "container.reach" in json.dumps(answer.params["blocks"])
    png = slack.wait_for("upload", timeout=30)[0].raw
    assert png.startswith(b"\x89PNG") and len(png) > 10_000

    # /metrics after the recovery.
    base = bot.url.removesuffix("/slack/events")
    families = {
        f.name: f for f in text_string_to_metric_families(bot.http.get(base + "/metrics").text)
    }
    status = {s.labels["finding"]: s.value for s in families["dify_ollama_finding_status"].samples}
    assert status["container.reach"] == 0 and status["dify.secrets"] == 1
    # Every finding a plain check reports (the chat test runs only when asked for).
    assert status["ollama.models"] == 0
    assert set(status) == set(FINDING_IDS) - ON_REQUEST
    latency = {
        s.labels["probe"]: s.value for s in families["dify_ollama_probe_latency_seconds"].samples
    }
    assert 0 < latency["plugin_daemon"] < CHECK_TIMEOUT


def test_flapping_for_a_minute_is_one_alert(watch_bot, session_ollama, slack):
    bot = watch_bot()
    wait_runs(bot, 1)
    deadline = time.monotonic() + 60
    toggles = 0
    while time.monotonic() < deadline and toggles < 40:
        session_ollama.down() if toggles % 2 == 0 else session_ollama.up()
        toggles += 1
        time.sleep(3.0)
    session_ollama.up()
    alert = alert_of(slack)
    ts = parent_ts(slack, alert)
    lines = [p["text"] for p in in_thread(slack, ts)]
    print(f"\n{toggles} toggles in 60 s: 1 alert, {len(lines)} thread lines: {lines}")
    assert sum("is flapping" in line for line in lines) == 1  # once
    assert not any("changed" in line for line in lines)  # each bounce only edits the alert
    assert len(lines) <= 4  # flapping, and the findings that joined
    flaps = until(lambda: [c for c in slack.of("chat.update") if "flap" in json.dumps(c.params)], 5)
    assert flaps  # the count lives in the alert


def test_mute_holds_back_the_alert_and_unmute_lets_it_through(watch_bot, session_ollama, slack):
    bot = watch_bot()
    wait_runs(bot, 1)
    bot.command("mute 30m", user="UOPS")
    slack.wait_for("chat.postMessage", where=lambda c: "muted for 30 min" in c.params["text"])
    session_ollama.down()
    wait_runs(bot, 4)
    assert top_level(slack) == []
    bot.command("unmute", user="UOPS")
    assert until(lambda: top_level(slack), 2 * INTERVAL + 2 * DEADLINE + 10)
    assert [line["outcome"] for line in bot.audit() if line["command"] == "unmute"] == ["ok"]


@pytest.fixture
def engine_proxy() -> Iterator[UnixProxy]:
    folder = Path(tempfile.mkdtemp(prefix="dow"))  # short: a socket path has 108 bytes
    target = os.environ.get("DOCKER_HOST", "unix:///run/dify-ollama-test-engine/docker.sock")
    proxy = UnixProxy(target, folder / "engine.sock").start()
    yield proxy
    proxy.drop()
    shutil.rmtree(folder, ignore_errors=True)


def test_engine_restart_adds_to_the_open_alert_never_a_duplicate(
    watch_bot, session_ollama, slack, engine_proxy
):
    bot = watch_bot(docker_host=engine_proxy.url)
    wait_runs(bot, 1)
    assert until(lambda: bot.bot.watch.events.connected.is_set(), 10)
    session_ollama.down()
    assert until(lambda: top_level(slack), 2 * INTERVAL + 2 * DEADLINE + 10)
    alert = alert_of(slack)
    engine_proxy.drop()  # the engine "restarts": gone ...
    ts = until(lambda: parent_ts(slack, alert), 10)
    assert until(
        lambda: any("docker.engine" in p["text"] for p in in_thread(slack, ts)),
        3 * INTERVAL + 3 * DEADLINE + 10,
    ), [p["text"] for p in in_thread(slack, ts)]
    wait_runs(bot, 2)
    engine_proxy.restore()  # ... and back
    assert until(
        lambda: any(
            "docker.engine" in p["text"] and "recovered" in p["text"] for p in in_thread(slack, ts)
        ),
        3 * INTERVAL + 3 * DEADLINE + 15,
    ), [p["text"] for p in in_thread(slack, ts)]
    assert until(lambda: bot.bot.watch.events.connected.is_set(), 40)  # the stream reopened
    wait_runs(bot, 2)
    alert_of(slack)  # still the one alert: container.reach never alerted twice
    texts = [p["text"] for p in in_thread(slack, ts)]
    assert sum("docker.engine" in t for t in texts) == 2, texts  # down once, back once


def test_an_engine_event_triggers_a_check_at_once(watch_bot, restore_healthy_stack, slack):
    bot = watch_bot(watch_interval=60.0, watch_fail_after=1)
    wait_runs(bot, 1)
    assert until(lambda: bot.bot.watch.events.connected.is_set(), 10)
    restore_healthy_stack.stop("api")
    stopped = time.monotonic()
    events = until(
        lambda: [c for c in bot.bot.history.checks_since(0) if c.trigger.startswith("watch:event")],
        15,
    )
    took = time.monotonic() - stopped
    print(f"\nevent-triggered check recorded {took:.1f} s after `docker stop api`")
    assert events and "api" in events[0].trigger
    assert until(lambda: top_level(slack), 10)
    assert "dify.containers" in json.dumps(alert_of(slack)["blocks"])
