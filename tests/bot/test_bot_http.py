"""HTTP mode as Slack drives it: signed requests to the running server, replies at the wire."""

from __future__ import annotations

import json
import time

from tests.bot.conftest import sign


def test_bad_signature_is_401(run_bot):
    bot = run_bot()
    body = b"command=%2Fdify-ollama&text=help&user_id=U1&channel_id=C1"
    headers = {**sign(body), "Content-Type": "application/x-www-form-urlencoded"}
    headers["X-Slack-Signature"] = "v0=" + "0" * 64
    response = bot.http.post(bot.url, content=body, headers=headers)
    assert response.status_code == 401
    wrong_secret = {**sign(body, secret="f" * 32), "Content-Type": headers["Content-Type"]}
    assert bot.http.post(bot.url, content=body, headers=wrong_secret).status_code == 401
    assert [c.method for c in bot.slack.calls] == ["auth.test"]  # at startup only


def test_stale_timestamp_is_401(run_bot):
    bot = run_bot()
    body = b"command=%2Fdify-ollama&text=help&user_id=U1&channel_id=C1"
    old = int(time.time()) - 6 * 60
    headers = {**sign(body, timestamp=old), "Content-Type": "application/x-www-form-urlencoded"}
    assert bot.http.post(bot.url, content=body, headers=headers).status_code == 401


def test_help_and_empty_text_answer_in_the_ack(run_bot):
    bot = run_bot()
    for text in ("", "help", "  HELP "):
        response = bot.command(text)
        assert response.status_code == 200
        answer = response.json()
        assert "/dify-ollama check" in answer["text"]
        assert "logs" in answer["text"] and "fix-env" in answer["text"]
    lines = bot.wait_audit(3)
    assert [line["command"] for line in lines] == ["help"] * 3


def test_unknown_subcommand_and_bad_quotes_get_short_usage(run_bot):
    bot = run_bot()
    unknown = bot.command("frobnicate now").json()
    assert "Unknown subcommand `frobnicate`" in unknown["text"]
    assert "response_type" not in unknown or unknown["response_type"] == "ephemeral"
    quotes = bot.command('logs "api').json()
    assert "could not parse" in quotes["text"]
    args = bot.command("check --now").json()
    assert "Usage: `/dify-ollama check`" in args["text"]
    outcomes = [(line["command"], line["outcome"]) for line in bot.wait_audit(3)]
    assert outcomes == [("frobnicate", "unknown"), ("?", "usage"), ("check", "usage")]


def test_shell_metacharacters_are_only_words(run_bot, tmp_path):
    bot = run_bot()
    marker = tmp_path / "pwned"
    answer = bot.command(f"frob; touch {marker} $(touch {marker})").json()
    assert "Unknown subcommand `frob;`" in answer["text"]
    time.sleep(0.2)
    assert not marker.exists()
    assert bot.audit()[0]["args"] == ["touch", str(marker), "$(touch", f"{marker})"]


def test_check_posts_progress_then_the_report_in_place(run_bot):
    bot = run_bot()
    started = time.monotonic()
    response = bot.command("check")
    ack_ms = (time.monotonic() - started) * 1000
    assert response.status_code == 200 and response.content == b""
    assert ack_ms < 1000
    post = bot.slack.wait_for("chat.postMessage")[0]
    assert post.params["channel"] == "COPS"
    assert "Checking" in post.params["text"]
    update = bot.slack.wait_for("chat.update")[0]
    assert update.params["ts"] == "1700000000.000001"
    blocks = update.params["blocks"]
    assert blocks[0]["type"] == "header" and "1 problem" in blocks[0]["text"]["text"]
    body = json.dumps(blocks)
    assert "plugin_daemon cannot reach Ollama #0" in body
    assert "host.docker.internal:11434" in body  # the remedy
    assert "<@UALICE>" in json.dumps(blocks[-1])  # who asked, in the context line
    line = bot.wait_audit(1)[0]
    assert line["command"] == "check" and line["outcome"] == "fail" and line["user"] == "UALICE"
    assert line["source"] == "command" and line["duration_ms"] >= 0 and line["request_id"]


def test_reply_ephemeral_setting(run_bot):
    bot = run_bot(reply_ephemeral=True)
    bot.command("check")
    responses = bot.slack.wait_for("response_url", 2)
    assert all(r.params["response_type"] == "ephemeral" for r in responses)
    assert "Checking" in responses[0].params["text"]
    assert responses[1].params["blocks"][0]["type"] == "header"
    assert bot.slack.of("chat.postMessage") == []


def test_handler_crash_is_a_friendly_reply_with_an_error_id(run_bot, caplog):
    def broken(_settings):
        raise RuntimeError("secret detail xoxb-should-not-leak")

    bot = run_bot(check=broken)
    bot.command("check")
    update = bot.slack.wait_for("chat.update")[0]
    text = update.params["text"]
    assert "Something went wrong" in text and "error id" in text
    assert "secret detail" not in json.dumps(bot.slack.texts())
    line = bot.wait_audit(1)[0]
    assert line["outcome"] == "error" and line["request_id"] in text
    assert any(line["request_id"] in r.getMessage() for r in caplog.records)


def test_handler_error_message_is_shown(run_bot):
    from handlers.results import HandlerError

    def refused(_settings):
        raise HandlerError("Docker socket /var/run/docker.sock does not exist")

    bot = run_bot(check=refused)
    bot.command("check")
    text = bot.slack.wait_for("chat.update")[0].params["text"]
    assert "does not exist" in text and "error id" in text


def test_engine_unreachable_is_said_in_replies(run_bot):
    bot = run_bot(probe=lambda: "Docker socket /x does not exist. Start the engine.")
    bot.command("check")
    update = bot.slack.wait_for("chat.update")[0]
    assert "Docker engine unreachable" in json.dumps(update.params["blocks"])


def test_not_in_channel_tells_the_user_how_to_invite(run_bot, slack):
    slack.not_in_channel.add("CPRIV")
    bot = run_bot()
    bot.command("check", channel="CPRIV")
    response = slack.wait_for("response_url")[0]
    assert "/invite @dify-ollama" in response.params["text"]


def test_healthz_and_unknown_paths(run_bot):
    bot = run_bot(probe=None)  # the real engine probe, at a socket that does not exist
    base = bot.url.rsplit("/slack/events", 1)[0]
    health = bot.http.get(base + "/healthz")
    # the engine's socket does not exist here: the bot cannot do its job, and says why
    assert health.status_code == 503
    data = health.json()
    assert data["status"] == "fail" and data["mode"] == "http"
    assert data["slack"]["ok"] is True and data["engine"]["ok"] is False
    assert "/nonexistent/docker.sock" in data["engine"]["detail"]
    assert bot.http.head(base + "/healthz").content == b""
    assert bot.http.get(base + "/nope").status_code == 404
    big = b"x" * (2 * 1024 * 1024)
    assert bot.http.post(bot.url, content=big).status_code == 413
