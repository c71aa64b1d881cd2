"""Who may do what: channels, operators (users and user groups), buttons re-authorized per click."""

from __future__ import annotations

import json
import threading

import pytest

from bot.subcommands import ACTION_PREFIX, Action, Subcommand, button, load_registry

ZAP = ACTION_PREFIX + "test:zap"


@pytest.fixture
def ran():
    return []


@pytest.fixture
def registry(ran):
    registry = load_registry()

    def zap(invocation, ctx):
        ran.append(("zap", invocation.user_id, invocation.args))
        ctx.reply("zapped", [{"type": "actions", "elements": [button("Again", ZAP, {"n": 1})]}])
        return "ok"

    def on_click(click, ctx):
        ran.append(("click", click.user_id, click.value))
        ctx.post(click.channel_id, "clicked", thread_ts=click.thread_ts)

    registry.add_subcommand(Subcommand("zap", "zap [N]", "test", mutating=True, run=zap))
    registry.add_action(Action(ZAP, mutating=True, run=on_click, command="zap:again"))
    return registry


@pytest.fixture
def bot(run_bot, registry, slack):
    slack.usergroups = {"SOPSGRP": ["UGROUPIE"]}
    return run_bot(
        registry=registry, operators=("UOPS", "SOPSGRP"), allowed_channels=("COPS", "CWAR")
    )


def test_operator_user_runs_a_mutating_command(bot, ran):
    assert bot.command("zap 3", user="UOPS").content == b""
    bot.slack.wait_for("chat.postMessage")
    assert ran == [("zap", "UOPS", ("3",))]
    assert bot.wait_audit(1)[0]["outcome"] == "ok"


def test_group_member_is_an_operator_and_the_lookup_is_cached(bot, ran):
    bot.command("zap", user="UGROUPIE")
    bot.command("zap", user="UGROUPIE")
    bot.slack.wait_for("chat.postMessage", 2)
    assert [r[1] for r in ran] == ["UGROUPIE", "UGROUPIE"]
    assert len(bot.slack.of("usergroups.users.list")) == 1


def test_other_user_is_refused_a_mutating_command(bot, ran):
    bot.command("zap", user="URANDOM")
    refusal = bot.slack.wait_for("response_url")[0].params
    assert "Only operators" in refusal["text"] and refusal["response_type"] == "ephemeral"
    assert ran == []
    assert bot.wait_audit(1)[0]["outcome"] == "denied"


def test_operator_is_refused_outside_allowed_channels(bot, ran):
    answer = bot.command("zap", user="UOPS", channel="CRANDOM", channel_name="random").json()
    assert "ALLOWED_CHANNELS" in answer["text"]
    line = bot.wait_audit(1)[0]
    assert (line["outcome"], line["channel"]) == ("denied", "CRANDOM")
    assert ran == []


def test_read_only_commands_follow_the_channel_rule_only(bot):
    bot.command("check", user="URANDOM")
    bot.slack.wait_for("chat.update")
    answer = bot.command("check", user="UOPS", channel="CRANDOM").json()
    assert "ALLOWED_CHANNELS" in answer["text"]
    # The check's line is written when its run returns, which may be after the denial's.
    outcomes = {line["user"]: line["outcome"] for line in bot.wait_audit(2)}
    assert outcomes == {"URANDOM": "fail", "UOPS": "denied"}


def test_empty_operators_says_how_to_configure(run_bot, registry, ran):
    bot = run_bot(registry=registry, operators=())
    answer = bot.command("zap", user="UOPS").json()
    assert "Nobody may run changing commands yet" in answer["text"]
    assert "OPERATORS=" in answer["text"]
    assert ran == []


def test_group_lookup_failure_fails_closed(run_bot, registry, ran, slack):
    slack.failing["usergroups.users.list"] = "missing_scope"
    bot = run_bot(registry=registry, operators=("SOPSGRP",))
    bot.command("zap", user="UGROUPIE")
    assert "Only operators" in slack.wait_for("response_url")[0].params["text"]
    assert ran == []


def test_button_clicks_are_authorized_again_for_whoever_clicks(bot, ran):
    value = json.dumps({"n": 1})
    bot.click(ZAP, value, user="UOPS", message_ts="1700000000.000009")
    bot.slack.wait_for("chat.postMessage")
    assert ran == [("click", "UOPS", {"n": 1})]
    post = bot.slack.of("chat.postMessage")[0].params
    assert post["thread_ts"] == "1700000000.000009"  # answers in the message's thread

    bot.click(ZAP, value, user="URANDOM", action_ts="2.0")  # someone else clicks the same button
    bot.click(ZAP, value, user="UOPS", channel="CRANDOM", action_ts="3.0")
    texts = sorted(r.params["text"] for r in bot.slack.wait_for("response_url", 2))
    assert "Only operators" in texts[0] and "ALLOWED_CHANNELS" in texts[1]
    assert len(ran) == 1
    lines = bot.wait_audit(3)
    assert sorted((x["command"], x["user"], x["channel"], x["outcome"]) for x in lines) == [
        ("zap:again", "UOPS", "COPS", "ok"),
        ("zap:again", "UOPS", "CRANDOM", "denied"),
        ("zap:again", "URANDOM", "COPS", "denied"),
    ]
    assert lines[0]["args"] == ['{"n":1}'] and lines[0]["source"] == "action"


def test_double_click_runs_once(bot, ran):
    value = json.dumps({"n": 1})
    bot.click(ZAP, value, user="UOPS")
    bot.click(ZAP, value, user="UOPS")  # the same delivery again (same action_ts)
    bot.slack.wait_for("chat.postMessage")
    bot.wait_audit(1)
    assert len(ran) == 1


def test_unknown_button(bot):
    bot.click(ACTION_PREFIX + "gone", "{}", user="UOPS")
    text = bot.slack.wait_for("response_url")[0].params["text"]
    assert "not handled" in text


def test_audit_lines_and_audit_channel(run_bot, registry):
    bot = run_bot(registry=registry, operators=("UOPS",), audit_channel="CAUDIT")
    bot.command("zap 1", user="UOPS")
    bot.command("help", user="UX")
    echoes = bot.slack.wait_for(
        "chat.postMessage", 2, where=lambda c: c.params.get("channel") == "CAUDIT"
    )
    assert any("`zap 1`" in e.params["text"] for e in echoes)
    lines = bot.wait_audit(2)
    assert {tuple(sorted(line)) for line in lines} == {
        tuple(
            sorted(
                [
                    "time",
                    "request_id",
                    "user",
                    "channel",
                    "source",
                    "command",
                    "args",
                    "outcome",
                    "duration_ms",
                ]
            )
        )
    }
    assert oct(bot.settings.audit_path.stat().st_mode & 0o777) == "0o600"


def test_concurrent_audit_lines_stay_whole(run_bot):
    bot = run_bot()
    statuses = []
    threads = [
        threading.Thread(target=lambda: statuses.append(bot.command("help").status_code))
        for _ in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 20
    lines = bot.wait_audit(20, timeout=10)
    assert len(lines) == 20 and {line["command"] for line in lines} == {"help"}


def test_tokens_typed_as_arguments_never_reach_the_audit_trail(bot, ran):
    typed = "xoxb-1234567890-abcdefghijkl"
    bot.command(f"zap {typed} Bearer abcdef0123456789abcdef", user="UOPS")
    bot.slack.wait_for("chat.postMessage")
    line = bot.wait_audit(1)[0]  # read back from the AUDIT_LOG file
    assert typed not in json.dumps(line)
    assert "[REDACTED]" in " ".join(line["args"])


@pytest.mark.parametrize("text", ["help", "", "--help", "frobnicate", "check now", 'logs "api'])
def test_help_usage_and_unknown_are_refused_outside_allowed_channels(run_bot, text):
    """Outside ALLOWED_CHANNELS the bot answers nothing but the refusal: no command list, no
    usage, and never the engine's status (which names the host's Docker socket)."""
    bot = run_bot(allowed_channels=("COPS",), probe=lambda: "socket /var/run/docker.sock is gone")
    bot.bot.runtime.engine.refresh()
    answer = bot.command(text, channel="CRANDOM", channel_name="random").json()
    assert answer["text"].startswith(":no_entry:") and "ALLOWED_CHANNELS" in answer["text"]
    assert "docker.sock" not in json.dumps(answer) and "/dify-ollama" not in json.dumps(answer)
    bot.mention(f"<@UBOT0001> {text}", channel="CRANDOM", event_id=f"Ev-{len(text)}")
    ephemeral = bot.slack.wait_for("chat.postEphemeral")[0].params
    assert ephemeral["text"].startswith(":no_entry:") and "docker.sock" not in json.dumps(ephemeral)
    assert {line["outcome"] for line in bot.wait_audit(2)} == {"denied"}
    # the same text in an allowed channel is answered as before
    inside = bot.command(text or "help", channel="COPS").json()
    assert not inside["text"].startswith(":no_entry:")
