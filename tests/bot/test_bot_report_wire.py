"""An oversized report through the wire: the double (Slack) accepts it; full text attached."""

from __future__ import annotations

from bot.subcommands import ACTION_PREFIX, Action, button, load_registry
from tests.bot.conftest import sample_report
from tests.bot.fakes.slack_api import block_problems


def test_oversized_report_is_posted_and_the_full_report_uploaded(run_bot):
    registry = load_registry()
    logs = ACTION_PREFIX + "test:logs"
    registry.add_action(Action(logs, mutating=False, run=lambda click, ctx: None))
    registry.add_finding_button(lambda f, r: button("Logs", logs, {"service": f.service}))
    report = sample_report(problems=120, passed=300, detail_chars=8000)
    bot = run_bot(check=lambda _s: report, registry=registry)
    bot.command("check")
    update = bot.slack.wait_for("chat.update")[0].params
    assert block_problems(update["blocks"]) == [] and len(update["blocks"]) <= 50
    complete = bot.slack.wait_for("files.completeUploadExternal")[0].params
    assert complete["channel_id"] == "COPS" and complete["thread_ts"] == update["ts"]
    uploaded = bot.slack.wait_for("upload")[0].raw.decode()
    lines = uploaded.splitlines()  # the terminal's report: one line per finding
    assert sum(line.startswith(("  FAIL  problem.", "  WARN  problem.")) for line in lines) == 120
    assert bot.wait_audit(1)[0]["outcome"] == "fail"


def test_button_from_report_answers_in_the_report_thread(run_bot):
    registry = load_registry()
    logs = ACTION_PREFIX + "test:logs"

    def show(click, ctx):
        ctx.upload_text(click.channel_id, click.thread_ts, f"{click.value['service']}.log", "lines")

    registry.add_action(Action(logs, mutating=False, run=show))
    registry.add_finding_button(lambda f, r: button("Logs", logs, {"service": f.service}))
    bot = run_bot(registry=registry)
    bot.command("check")
    update = bot.slack.wait_for("chat.update")[0].params
    element = next(
        e
        for b in update["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == logs
    )
    bot.click(element["action_id"], element["value"], message_ts=update["ts"])
    complete = bot.slack.wait_for("files.completeUploadExternal")[0].params
    assert complete["thread_ts"] == update["ts"]
    assert complete["files"][0]["title"] == "plugin_daemon.log"
    assert bot.slack.wait_for("upload")[0].raw == b"lines"
