"""`dify-ollama serve` as a process with the watch and metrics on: Socket Mode serves /metrics
on METRICS_PORT, HTTP mode on PORT; an unreachable engine is one alert, and restarting the
bot does not post it again."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.bot.conftest import SIGNING_SECRET
from tests.bot.fakes.slack_api import APP_TOKEN, BOT_TOKEN
from tests.bot.fakes.socket_mode_server import SocketModeServer
from tests.bot.server.test_bot_serve_process import free_port, serve_env, start, stop

WATCH = {
    "WATCH_CHANNEL": "CWATCH",
    "WATCH_INTERVAL_FLOOR": "0.5",
    "WATCH_INTERVAL": "1",
    "CHECK_TIMEOUT": "1",
}


def scrape(url: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2, trust_env=False) as client:
        while True:
            try:
                response = client.get(url)
                if response.status_code == 200 and "dify_ollama_finding_status{" in response.text:
                    return {f.name: f for f in text_string_to_metric_families(response.text)}
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no metrics at {url}")
            time.sleep(0.2)


def watch_posts(slack) -> list[dict]:
    return [c.params for c in slack.of("chat.postMessage") if c.params.get("channel") == "CWATCH"]


def test_socket_mode_metrics_port_and_one_engine_alert_across_a_restart(tmp_path, slack):
    ws = SocketModeServer().start()
    slack.ws_url = ws.url
    port = free_port()
    env = serve_env(tmp_path, slack, SLACK_APP_TOKEN=APP_TOKEN, METRICS_PORT=str(port), **WATCH)
    proc = start([], env, tmp_path)
    try:
        families = scrape(f"http://127.0.0.1:{port}/metrics")
        status = {
            s.labels["finding"]: s.value for s in families["dify_ollama_finding_status"].samples
        }
        assert status["docker.engine"] == 2 and status["dify.project"] == 3  # fail, skip
        alert = slack.wait_for(
            "chat.postMessage", where=lambda c: c.params["channel"] == "CWATCH", timeout=20
        )[0]
        assert "docker.engine" in alert.params["text"]  # (no Ollama at :9 either)
        time.sleep(4)  # several more runs, engine still down: silence
        assert len(watch_posts(slack)) == 1
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output
    assert APP_TOKEN not in output and BOT_TOKEN not in output
    proc = start([], env, tmp_path)  # the bot restarts
    try:
        scrape(f"http://127.0.0.1:{port}/metrics")
        time.sleep(4)
        assert len(watch_posts(slack)) == 1, [p["text"] for p in watch_posts(slack)]
    finally:
        stop(proc)
        ws.stop()


def test_http_mode_serves_metrics_on_port_unsigned_when_enabled(tmp_path, slack):
    port = free_port()
    env = serve_env(tmp_path, slack, METRICS_ENABLED="true", **WATCH)
    proc = start(["--host", "127.0.0.1", "--port", str(port)], env, tmp_path)
    try:
        families = scrape(f"http://127.0.0.1:{port}/metrics")
        assert families["dify_ollama_check_duration_seconds"].samples
        with httpx.Client(timeout=2, trust_env=False) as client:
            unsigned = client.post(f"http://127.0.0.1:{port}/slack/events", content=b"{}")
        assert unsigned.status_code == 401  # Slack's path still needs a signature
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output
    assert SIGNING_SECRET not in output
