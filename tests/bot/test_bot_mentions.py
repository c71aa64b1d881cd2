"""App mentions: the way to ask inside a thread; answers go to that thread."""

from __future__ import annotations

from bot.subcommands import Invocation, Subcommand, load_registry


def _echo_registry(seen):
    registry = load_registry()

    def echo(invocation, ctx):
        seen.append(invocation)
        ctx.reply(f"echo {' '.join(invocation.args)}")

    registry.add_subcommand(Subcommand("echo", "echo WORDS", "test", mutating=False, run=echo))
    return registry


def test_mention_in_a_thread_answers_in_that_thread(run_bot):
    seen: list[Invocation] = []
    bot = run_bot(registry=_echo_registry(seen))
    response = bot.mention(
        "<@UBOT0001> echo worker 200", ts="1700000100.000200", thread_ts="1700000100.000100"
    )
    assert response.status_code == 200
    post = bot.slack.wait_for("chat.postMessage")[0].params
    assert post["thread_ts"] == "1700000100.000100" and post["text"] == "echo worker 200"
    assert seen[0].source == "mention" and seen[0].args == ("worker", "200")
    line = bot.wait_audit(1)[0]
    assert (line["source"], line["command"], line["args"]) == ("mention", "echo", ["worker", "200"])


def test_top_level_mention_opens_a_thread_under_itself(run_bot):
    seen: list[Invocation] = []
    bot = run_bot(registry=_echo_registry(seen))
    bot.mention("<@UBOT0001|dify-ollama> echo hi", ts="1700000100.000300")
    post = bot.slack.wait_for("chat.postMessage")[0].params
    assert post["thread_ts"] == "1700000100.000300"


def test_check_by_mention_posts_the_report_in_the_thread(run_bot):
    bot = run_bot()
    bot.mention("<@UBOT0001> check", thread_ts="1700000100.000100")
    post = bot.slack.wait_for("chat.postMessage")[0].params
    assert post["thread_ts"] == "1700000100.000100"
    update = bot.slack.wait_for("chat.update")[0].params
    assert update["blocks"][0]["type"] == "header"


def test_mention_help_unknown_and_usage_are_ephemeral_in_the_thread(run_bot):
    bot = run_bot()
    bot.mention("<@UBOT0001>", thread_ts="1700000100.000100", event_id="E1")
    bot.mention("<@UBOT0001> nope", thread_ts="1700000100.000100", event_id="E2")
    bot.mention("<@UBOT0001> check extra", thread_ts="1700000100.000100", event_id="E3")
    calls = bot.slack.wait_for("chat.postEphemeral", 3)
    texts = sorted(c.params["text"] for c in calls)
    assert all(c.params["thread_ts"] == "1700000100.000100" for c in calls)
    assert all(c.params["user"] == "UALICE" for c in calls)
    assert any("/dify-ollama check" in t for t in texts)
    assert any("Unknown subcommand `nope`" in t for t in texts)
    assert any("Usage: `/dify-ollama check`" in t for t in texts)


def test_retried_event_delivery_runs_once(run_bot):
    seen: list[Invocation] = []
    bot = run_bot(registry=_echo_registry(seen))
    bot.mention("<@UBOT0001> echo once", event_id="EvSame")
    bot.mention("<@UBOT0001> echo once", event_id="EvSame")
    bot.slack.wait_for("chat.postMessage")
    bot.wait_audit(1)
    assert len(seen) == 1


def test_mention_respects_channels(run_bot):
    bot = run_bot(allowed_channels=("COPS",))
    bot.mention("<@UBOT0001> check", channel="CRANDOM")
    refusal = bot.slack.wait_for("chat.postEphemeral")[0].params
    assert "ALLOWED_CHANNELS" in refusal["text"]
    assert bot.slack.of("chat.postMessage") == []
