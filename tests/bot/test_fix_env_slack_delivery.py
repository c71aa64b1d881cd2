"""fix-env in Slack when Slack misbehaves or replies are ephemeral, through the wire.

A repair changes the host first and tells Slack after: a Slack error mid-repair neither aborts
nor rolls it back (retried, then logged). With REPLY_EPHEMERAL=true the whole flow works
without one chat.update of an ephemeral message (Slack refuses those) and within five uses of
each response_url, as the double enforces."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from bot.subcommands.fix_env import APPLY, CANCEL, FIX, UNDO
from bot.subcommands.restart import RESTART_APPLY
from handlers import backup as backups
from handlers import fix_decide, fix_plan
from handlers.check import run_check
from tests.bot.fakes.slack_api import Call
from tests.rig.fake_ollama import FakeOllama
from tests.rig.incident import LLM_ID, files_state, incident_rows, rows_by_id
from tests.rig.scenes import (
    CONTAINER_URL,
    LOOPBACK_URL,
    incident_folder,
    incident_report,
    scene_of,
    settings_for,
)

OPERATOR = "UOPS"


def buttons(call: Call) -> dict[str, dict[str, Any]]:
    found = {}
    for block in call.params.get("blocks") or []:
        if block.get("type") == "actions":
            for element in block["elements"]:
                found[element["action_id"]] = element
    return found


def with_button(action_id: str) -> Any:
    return lambda call: action_id in buttons(call)


def text_of(call: Call) -> str:
    return str(call.params.get("text", "")) + json.dumps(call.params.get("blocks") or [])


def audit_line(bot: Any, command: str, timeout: float = 20.0) -> dict[str, Any]:
    """The first audit line of `command`, once the job wrote it (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in bot.audit() if line["command"] == command]
        if found or time.monotonic() > deadline:
            assert found, f"no audit line {command}: {bot.audit()}"
            return found[0]
        time.sleep(0.05)


# --- Slack fails while the host changes ----------------------------------------------------------
@pytest.mark.docker
def test_slack_errors_during_a_repair_neither_abort_nor_roll_it_back(
    run_bot: Any, docker_engine: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The private engine without Dify containers: DIFY_DIR names a look-alike folder, so
    fix-env plans and applies file changes only (fast, nothing started)."""
    folder = incident_folder(tmp_path)
    env = folder / ".env"
    before = env.read_bytes()
    bot = run_bot(
        check=lambda _s: incident_report(),
        operators=(OPERATOR,),
        dify_dir=folder,
        docker_host=os.environ["DOCKER_HOST"],
        fix_ollama_url=f"{CONTAINER_URL}/v1",
        fix_ollama_base_url=CONTAINER_URL,
    )
    slack = bot.slack
    bot.command("fix-env", user=OPERATOR)
    plan_msg = slack.wait_for("chat.update", where=with_button(APPLY), timeout=30)[0]

    # Slack goes bad: every edit fails, and the next two posts fail with a transient error
    slack.failing["chat.update"] = "internal_error"
    slack.fail_next("chat.postMessage", "service_unavailable", times=2)
    caplog.set_level(logging.INFO)
    bot.click(
        APPLY,
        buttons(plan_msg)[APPLY]["value"],
        user=OPERATOR,
        message_ts=plan_msg.params["ts"],
        action_ts="9.1",
    )
    # two transient failures, then the result got through (the double records every attempt)
    applied = slack.wait_for(
        "chat.postMessage", count=3, where=with_button(RESTART_APPLY), timeout=30
    )
    assert audit_line(bot, "fix-env:apply")["outcome"] == "applied"
    assert audit_line(bot, "fix-env:applied")["changed"] >= 1
    assert len(slack.of("chat.postMessage")) == 4  # the plan's progress line, then 3 attempts
    assert f"OPENAI_API_BASE={CONTAINER_URL}/v1".encode() in env.read_bytes()
    [made] = list(backups.iter_backups(bot.settings.backup_path))
    assert made.state == "applied"  # not rolled back
    assert "given up (the host work it reports stands)" in caplog.text
    assert "retrying" in caplog.text

    # Undo with every edit failing: the files are restored all the same
    bot.click(
        UNDO,
        buttons(applied[0])[UNDO]["value"],
        user=OPERATOR,
        message_ts="1700000000.800001",
        action_ts="9.2",
    )
    assert audit_line(bot, "fix-env:undo")["outcome"] == "undone"
    assert env.read_bytes() == before


# --- REPLY_EPHEMERAL ------------------------------------------------------------------------------
def test_cancel_of_an_ephemeral_plan_replaces_it_through_the_response_url(
    run_bot: Any, tmp_path: Path
) -> None:
    bot = run_bot(operators=(OPERATOR,), reply_ephemeral=True)
    settings = settings_for(incident_folder(tmp_path), bot.settings.state_path)
    plan = fix_decide.plan(scene_of(settings), incident_report(), settings)
    fix_plan.save_plan(bot.settings, plan)
    bot.click(
        CANCEL,
        json.dumps({"plan": plan.id}),
        user=OPERATOR,
        message_ts="1700000000.700001",
        ephemeral=True,
        action_ts="7.1",
    )
    [replaced] = bot.slack.wait_for("response_url", where=lambda c: "Cancelled by" in text_of(c))
    assert replaced.params["replace_original"] is True
    assert replaced.params["_url"].endswith("/click-7.1")
    assert bot.slack.of("chat.update") == [] and bot.slack.of("chat.postMessage") == []
    assert fix_plan.load_plan(bot.settings, plan.id).state == "cancelled"
    assert bot.wait_audit(1)[0]["outcome"] == "cancelled"


@pytest.mark.docker
@pytest.mark.slow
def test_the_whole_fix_flow_in_ephemeral_mode(
    run_bot: Any, dify_stack_factory: Any, session_ollama: FakeOllama
) -> None:
    """check -> Fix -> Apply -> Restart -> verified, every answer only the operator sees."""
    stack = dify_stack_factory(
        env_overrides={"OPENAI_API_BASE": f"http://127.0.0.1:{session_ollama.port}/v1"},
        ollama_rows=incident_rows(session_ollama),
    ).up()
    bot = run_bot(
        check=run_check,
        operators=(OPERATOR,),
        reply_ephemeral=True,
        dify_compose_project=stack.project,
        docker_host=os.environ["DOCKER_HOST"],
        ollama_url=session_ollama.url,
        check_timeout=3,
        fix_ollama_url=f"{session_ollama.container_url()}/v1",
        fix_ollama_base_url=session_ollama.container_url(),
    )
    slack = bot.slack

    bot.command("check", user=OPERATOR)
    report = slack.wait_for("response_url", where=with_button(FIX), timeout=30)[0]
    assert report.params["replace_original"] is True  # replaced the "Checking…" line

    bot.click(
        FIX,
        buttons(report)[FIX]["value"],
        user=OPERATOR,
        message_ts="1700000000.100001",
        ephemeral=True,
        action_ts="1.1",
    )
    plan = slack.wait_for("response_url", where=with_button(APPLY), timeout=60)[0]
    assert plan.params["response_type"] == "ephemeral"

    bot.click(
        APPLY,
        buttons(plan)[APPLY]["value"],
        user=OPERATOR,
        message_ts="1700000000.100002",
        ephemeral=True,
        action_ts="2.1",
    )
    applied = slack.wait_for("response_url", where=with_button(RESTART_APPLY), timeout=60)[0]
    assert "fix-env applied by <@UOPS>" in applied.params["text"]
    edited = [
        c
        for c in slack.of("response_url")
        if c.params["_url"].endswith("/click-2.1") and c.params.get("replace_original")
    ]
    assert any("Applied by" in text_of(c) for c in edited)  # the plan itself shows the outcome
    assert rows_by_id(stack)[LLM_ID]["base_url"] == session_ollama.container_url()

    bot.click(
        RESTART_APPLY,
        buttons(applied)[RESTART_APPLY]["value"],
        user=OPERATOR,
        message_ts="1700000000.100003",
        ephemeral=True,
        action_ts="3.1",
    )
    slack.wait_for(
        "response_url", where=lambda c: "Verified: no failing finding" in text_of(c), timeout=180
    )
    assert run_check(bot.settings).exit_code == 0

    # nothing went to the channel, nothing asked Slack to edit an ephemeral message, and no
    # response_url was used more than Slack allows
    assert slack.of("chat.postMessage") == [] and slack.of("chat.update") == []
    assert max(slack.url_uses.values()) <= 5, slack.url_uses
    audit_line(bot, "restart:apply")
    outcomes = {a["command"]: a["outcome"] for a in bot.audit() if a.get("source") == "action"}
    assert outcomes == {
        "fix-env:fix": "planned",
        "fix-env:apply": "applied",
        "restart:apply": "ok",
    }
    assert files_state(stack)[".env"] is not None
    assert LOOPBACK_URL not in (stack.env_path.read_text())


# --- a bot killed mid-request -------------------------------------------------------------------
KILLED_FIX = (
    "import sys, time; from pathlib import Path; from handlers.mutation_lock import once\n"
    "with once(Path(sys.argv[1]), sys.argv[2], 'fix-env plan', 'UOPS', 'slack'):\n"
    "    print('running', flush=True); time.sleep(60)\n"
)


@pytest.mark.docker
def test_a_fix_button_works_again_after_the_bot_was_killed_while_planning(
    run_bot: Any, docker_engine: Any, tmp_path: Path
) -> None:
    """The bot died between recording "planning" for a report and posting the plan: the next
    click on that report's Fix button posts the plan instead of "already running" forever."""
    import subprocess
    import sys

    folder = incident_folder(tmp_path)
    bot = run_bot(
        check=lambda _s: incident_report(),
        operators=(OPERATOR,),
        dify_dir=folder,
        docker_host=os.environ["DOCKER_HOST"],
        fix_ollama_url=f"{CONTAINER_URL}/v1",
        fix_ollama_base_url=CONTAINER_URL,
    )
    report_ts = "1700000000.500001"
    key = f"fixplan:COPS:{report_ts}"
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_FIX, str(bot.settings.state_path), key],
        cwd=root,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"running\n"
    finally:
        child.kill()
        child.wait(10)
    bot.click(FIX, json.dumps({"f": "env.file"}), user=OPERATOR, message_ts=report_ts)
    bot.slack.wait_for("chat.update", where=with_button(APPLY), timeout=30)
    assert audit_line(bot, "fix-env:fix")["outcome"] == "planned"
