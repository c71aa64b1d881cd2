"""The watch, Home tab, history and /metrics through the running bot and the Slack double,
with scripted reports (no engine): what the bot posts, where, and in which shape. The same
paths against the real rig are in test_watch_rig.py."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bot.subcommands.logs import LOGS_ACTION
from handlers.results import Finding, Report, Status
from tests.bot.fakes.slack_api import block_problems

WATCH = "CWATCH"
FAST = {
    "watch_channel": WATCH,
    "watch_interval_floor": 0.2,
    "watch_interval": 0.3,
    "watch_fail_after": 2,
}
IDS = ("docker.engine", "dify.project", "ollama.host", "container.reach")


def make_report(bad: bool, latency: float = 12.0) -> Report:
    findings = []
    for fid in IDS:
        status = Status.FAIL if bad and fid in ("ollama.host", "container.reach") else Status.OK
        metrics = {"plugin_daemon_ms": latency, "slowest_ms": latency} if not bad else {}
        findings.append(
            Finding(
                fid,
                status,
                f"{fid} {'<refused> & down' if status is Status.FAIL else 'fine'}",
                detail="connect to 127.0.0.1:11434 refused" if status is Status.FAIL else "",
                remedy="Start Ollama" if status is Status.FAIL else "",
                service="plugin_daemon" if fid == "container.reach" else None,
                metrics=metrics if fid == "container.reach" else {},
            )
        )
    return Report(tuple(findings), 321, {"host": "h", "project": "dify"})


class Script:
    """A check whose answer the test switches: healthy or Ollama down."""

    def __init__(self) -> None:
        self.bad = False
        self.runs = 0
        self.lock = threading.Lock()

    def __call__(self, _settings: Any) -> Report:
        with self.lock:
            self.runs += 1
            return make_report(self.bad)

    def wait_runs(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        target = self.runs + count
        while self.runs < target and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.runs >= target, f"only {self.runs} runs"


def eventually(read, until=lambda value: bool(value) and len(value) > 1, timeout=5.0):
    """`read()` once `until` holds for it (or at the timeout, for the assertion to show)."""
    deadline = time.monotonic() + timeout
    value = read()
    while not until(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


def top_level(slack, channel=WATCH):
    return [
        c.params
        for c in slack.of("chat.postMessage")
        if c.params.get("channel") == channel and not c.params.get("thread_ts")
    ]


def in_thread(slack, ts, channel=WATCH):
    return [
        c.params
        for c in slack.of("chat.postMessage")
        if c.params.get("channel") == channel and c.params.get("thread_ts") == ts
    ]


def test_one_alert_then_recovery_in_its_thread_and_the_alert_edited(run_bot, slack):
    script = Script()
    bot = run_bot(check=script, **FAST)
    script.wait_runs(3)
    assert top_level(slack) == []  # healthy: silence
    script.bad = True
    alert = slack.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == WATCH)[0]
    blocks = alert.params["blocks"]
    assert block_problems(blocks) == []
    shown = json.dumps(blocks)
    assert "ollama.host" in shown and "container.reach" in shown
    assert "&lt;refused&gt; &amp; down" in shown and "<refused>" not in shown  # escaped
    buttons = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert LOGS_ACTION in buttons  # the registry's finding buttons (Logs here)
    script.wait_runs(4)
    assert len(top_level(slack)) == 1  # still failing: no second alert
    script.bad = False
    closed = slack.wait_for(
        "chat.postMessage", where=lambda c: "Recovered after" in str(c.params.get("text"))
    )[0]
    parent_ts = closed.params["thread_ts"]
    assert in_thread(slack, parent_ts)[-1] == closed.params
    slack.wait_for(
        "chat.update",
        where=lambda c: c.params["ts"] == parent_ts and "Resolved on local" in c.params["text"],
    )
    assert "on its own" in closed.params["text"]
    assert len(top_level(slack)) == 1
    assert eventually(lambda: [r.kind for r in bot.bot.history.alerts_since(0)]) == [
        "opened",
        "closed",
    ]


def test_mute_is_for_operators_audited_honoured_and_unmute_lets_the_alert_through(run_bot, slack):
    script = Script()
    bot = run_bot(check=script, operators=("UOPS",), **FAST)
    bot.command("mute 30m", user="UALICE")
    assert "Nobody" in json.dumps(slack.of("response_url")[-1:]) or bot.wait_audit(1)
    bot.command("mute 30m", user="UOPS")
    slack.wait_for("chat.postMessage", where=lambda c: "muted for 30 min" in c.params["text"])
    mutes = json.loads((bot.settings.state_path / "watch" / "mutes.json").read_text())
    assert mutes["mutes"][0]["by"] == "UOPS" and mutes["mutes"][0]["finding"] is None
    script.bad = True
    script.wait_runs(6)
    assert top_level(slack) == []  # muted: nothing
    bot.command("unmute", user="UOPS")
    slack.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == WATCH, timeout=10)
    audit = bot.audit()
    outcomes = [(line["user"], line["command"], line["outcome"]) for line in audit]
    assert ("UALICE", "mute", "denied") in outcomes
    assert ("UOPS", "mute", "ok") in outcomes and ("UOPS", "unmute", "ok") in outcomes
    actions = bot.bot.history.actions_between(0, time.time() + 1)
    assert [a.command for a in actions] == ["mute", "unmute"]


def test_bad_mute_arguments_get_the_usage(run_bot, slack):
    bot = run_bot(operators=("UOPS",))
    acked = []
    for text in ("mute", "mute forever", "mute 30m not-a-finding", "mute 30d", "mute 5m no.such"):
        response = bot.command(text, user="UOPS")
        if response.content:
            acked.append(response.json()["text"])
    # Shapes are refused in the ack; an id that looks right but is unknown after it.
    later = slack.wait_for("response_url")[0].params["text"]
    answers = [*acked, later]
    assert len(answers) == 5, answers
    assert all("mute DURATION [FINDING]" in a for a in answers)
    assert "unknown finding id `no.such`" in later
    assert not (bot.settings.state_path / "watch" / "mutes.json").exists()


def home_opened(bot, user="UALICE"):
    body = json.dumps(
        {
            "token": "legacy",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": f"EvHome{time.monotonic_ns()}",
            "event_time": int(time.time()),
            "event": {"type": "app_home_opened", "user": user, "channel": "D0001", "tab": "home"},
        }
    ).encode()
    return bot.post(body, "application/json")


def test_home_tab_published_on_open_and_again_when_the_state_changes(run_bot, slack):
    script = Script()
    bot = run_bot(check=script, **FAST)
    script.wait_runs(2)
    assert home_opened(bot).status_code == 200
    first = slack.wait_for("views.publish")[0].params
    assert first["user_id"] == "UALICE"
    view = first["view"]
    assert view["type"] == "home"
    text = json.dumps(view)
    assert "Host local" in text and "`container.reach`" in text and "No open alert" in text
    ids = [e["action_id"] for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert ids == ["dify-ollama:home:check", "dify-ollama:home:history"]
    script.bad = True
    published = slack.wait_for(
        "views.publish", where=lambda c: "Open alert" in json.dumps(c.params["view"]), timeout=10
    )
    assert published[-1].params["user_id"] == "UALICE"
    # The Home buttons: a check, then the history in a modal.
    bot.click("dify-ollama:home:history", json.dumps({"host": "local"}), channel="")
    modal = slack.wait_for("views.open")[0].params
    assert modal["view"]["type"] == "modal" and modal["trigger_id"] == "1.2.3"
    assert "1 incident" in json.dumps(modal["view"]) and "container.reach" in json.dumps(modal)
    bot.click("dify-ollama:home:check", json.dumps({"host": "local"}), channel="", action_ts="9")
    by_click = slack.wait_for("views.publish", where=lambda c: "(home)" in json.dumps(c.params))
    assert by_click[-1].params["user_id"] == "UALICE"


def test_metrics_route_in_http_mode_parses_with_prometheus_own_parser(run_bot, slack):
    script = Script()
    bot = run_bot(check=script, metrics_enabled=True, **FAST)
    script.wait_runs(2)
    script.bad = True
    slack.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == WATCH)
    base = bot.url.removesuffix("/slack/events")

    def scrape():
        response = bot.http.get(base + "/metrics")  # unsigned: Prometheus does not sign
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return {f.name: f for f in text_string_to_metric_families(response.text)}

    families = eventually(
        scrape, until=lambda f: f["dify_ollama_alerts_open"].samples[0].value == 2
    )
    status = {s.labels["finding"]: s.value for s in families["dify_ollama_finding_status"].samples}
    assert status["container.reach"] == 2 and status["docker.engine"] == 0
    latency = families["dify_ollama_probe_latency_seconds"].samples
    assert any(s.labels["probe"] == "plugin_daemon" and s.value == 0.012 for s in latency)
    duration = families["dify_ollama_check_duration_seconds"].samples
    assert any(s.name.endswith("_count") and s.value >= 3 for s in duration)
    assert families["dify_ollama_alerts_open"].samples[0].value == 2
    last = families["dify_ollama_last_successful_check_timestamp_seconds"].samples[0].value
    assert abs(last - time.time()) < 30


def test_metrics_are_off_unless_configured(run_bot):
    bot = run_bot()
    base = bot.url.removesuffix("/slack/events")
    assert bot.http.get(base + "/metrics").status_code != 200


def test_history_command_posts_the_timeline_and_uploads_a_png(run_bot, slack):
    script = Script()
    bot = run_bot(check=script)
    for bad in (False, True, True, False):
        script.bad = bad
        bot.bot.runtime.checks.get(None)
    bot.command("history 24h")
    answer = slack.wait_for(
        "chat.postMessage", where=lambda c: "History of the last 24h" in c.params["text"]
    )[0]
    assert "1 incident" in answer.params["text"]
    assert "container.reach" in json.dumps(answer.params["blocks"])
    complete = slack.wait_for("files.completeUploadExternal", timeout=30)[0].params
    assert complete["thread_ts"]
    png = slack.wait_for("upload")[0].raw
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
