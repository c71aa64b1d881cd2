"""An oversized report through the wire: the double (Slack) accepts it; full text attached."""

from __future__ import annotations

import json

from bot.subcommands import ACTION_PREFIX, Action, button, load_registry
from tests.bot.conftest import sample_report
from tests.bot.fakes.slack_api import block_problems, text_length

text_size = text_length


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


def test_the_double_refuses_what_slack_refuses(run_bot):
    """The limits the next tests rely on are real in the double: 50 blocks, 3000 characters a
    section, and the texts of all blocks together (msg_blocks_too_long)."""
    from slack_sdk.errors import SlackApiError

    bot = run_bot()
    client = bot.bot.runtime.client
    sections = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2900}}] * 4
    for blocks, error in (
        (sections, "msg_blocks_too_long"),  # 11,600 characters in 4 valid sections
        ([{"type": "divider"}] * 51, "invalid_blocks"),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}], "invalid_blocks"),
    ):
        try:
            client.chat_postMessage(channel="COPS", text="t", blocks=blocks)
        except SlackApiError as exc:
            assert exc.response["error"] == error
        else:
            raise AssertionError(f"the double accepted {error}")


def test_a_report_over_slacks_total_text_limit_is_a_summary_plus_the_file(run_bot):
    """16 problems with 2,800 characters of evidence each: every section is valid and there
    are far fewer than 50 blocks, but together they are ~45,000 characters."""
    report = sample_report(problems=16, passed=3, detail_chars=2800)
    bot = run_bot(check=lambda _s: report)
    bot.command("check")
    update = bot.slack.wait_for("chat.update")[0].params
    assert text_size(update["blocks"]) <= 10_000 and block_problems(update["blocks"]) == []
    shown = json.dumps(update["blocks"])
    assert "plugin_daemon cannot reach Ollama #0" in shown  # the first problems in full view
    uploaded = bot.slack.wait_for("upload")[0].raw.decode()
    assert uploaded.count("refused") > 16 * 40  # all evidence, in the attached report
    assert bot.slack.of("chat.postMessage")[0].params["text"].startswith(":hourglass")


def test_a_plan_of_any_size_keeps_its_buttons(tmp_path):
    """Long previews, instructions and unfixed findings: the plan's message stays within the
    limits and still carries Apply and Cancel; `plan_fits` says to attach the whole plan."""
    from bot.subcommands.fix_env import APPLY, CANCEL, plan_fits, render_plan
    from handlers import fix_decide
    from handlers.fix_model import Instruction
    from tests.rig.scenes import incident_folder, incident_report, scene_of, settings_for

    settings = settings_for(incident_folder(tmp_path), tmp_path / "state")
    plan = fix_decide.plan(scene_of(settings), incident_report(), settings)
    assert plan.env is not None and plan_fits(plan)
    plan.env.preview = "+OPENAI_API_BASE=x\n" * 400
    if plan.override is not None:
        plan.override.preview = "+  extra_hosts: [x]\n" * 400
    plan.instructions = [Instruction("ollama.bind", f"step {i}", "y" * 4000) for i in range(6)]
    plan.unfixed = [f"finding {i}: " + "z" * 200 for i in range(60)]
    _text, blocks = render_plan(plan, "<@UOPS>", note=":x: " + "n" * 5000)
    assert block_problems(blocks) == [] and text_size(blocks) <= 10_000
    ids = {e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]}
    assert {APPLY, CANCEL} <= ids
    assert not plan_fits(plan)
