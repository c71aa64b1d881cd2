"""fix-env and restart in Slack, through the wire (signed requests in, Web API double out).

The canonical incident goes check -> Fix -> Apply -> Restart -> verified healthy on the
look-alike stack; the other tests need no engine: authorization, confirmation, busy host."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bot.subcommands.fix_env import APPLY, CANCEL, FIX, UNDO
from bot.subcommands.restart import RESTART_ALL, RESTART_APPLY
from handlers import backup as backups
from handlers.check import run_check
from handlers.mutation_lock import MutationLock
from tests.bot.conftest import sample_report
from tests.bot.fakes.slack_api import Call
from tests.rig.fake_ollama import FakeOllama
from tests.rig.incident import LLM_ID, files_state, incident_rows, rows_by_id

OPERATOR = "UOPS"


def buttons(call: Call) -> dict[str, dict[str, Any]]:
    found = {}
    for block in call.params.get("blocks") or []:
        if block.get("type") == "actions":
            for element in block["elements"]:
                found[element["action_id"]] = element
    return found


def with_button(action_id: str):
    return lambda call: action_id in buttons(call)


def ephemerals(bot: Any) -> list[str]:
    calls = bot.slack.of("response_url") + bot.slack.of("chat.postEphemeral")
    return [str(c.params.get("text", "")) for c in calls]


def wait_ephemeral(bot: Any, needle: str, timeout: float = 10.0) -> str:
    bot.slack.wait_for(
        "response_url", where=lambda c: needle in str(c.params.get("text", "")), timeout=timeout
    )
    return next(t for t in ephemerals(bot) if needle in t)


# --- the three clicks, on the real engine ---------------------------------------------------
@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize(
    ("release", "compose"),
    [("1.13.3", "v1"), ("1.15.0", "v2")],
    ids=["1.13.3-v1", "1.15.0-v2"],
)
def test_incident_check_fix_apply_restart_verified_in_three_clicks(
    run_bot: Any, dify_stack_factory: Any, session_ollama: FakeOllama, release: str, compose: str
) -> None:
    stack = dify_stack_factory(
        env_overrides={"OPENAI_API_BASE": f"http://127.0.0.1:{session_ollama.port}/v1"},
        ollama_rows=incident_rows(session_ollama, release),
        release=release,
        compose=compose,
    ).up(timeout=120)
    bot = run_bot(
        check=run_check,
        operators=(OPERATOR,),
        dify_compose_project=stack.project,
        docker_host=os.environ["DOCKER_HOST"],
        ollama_url=session_ollama.url,
        check_timeout=3,
        fix_ollama_url=f"{session_ollama.container_url()}/v1",
        fix_ollama_base_url=session_ollama.container_url(),
    )
    slack = bot.slack
    before_files, before_rows = files_state(stack), rows_by_id(stack)

    bot.command("check", user=OPERATOR)
    report = slack.wait_for("chat.update", where=with_button(FIX), timeout=30)[0]
    report_ts = report.params["ts"]
    assert sum(e == FIX for e in buttons(report)) == 1

    # click 1: Fix -> the plan, in the report's thread
    fix = buttons(report)[FIX]
    bot.click(FIX, fix["value"], user=OPERATOR, message_ts=report_ts, action_ts="1.1")
    plan_msg = slack.wait_for("chat.update", where=with_button(APPLY), timeout=60)[0]
    plan_ts = plan_msg.params["ts"]
    posted = next(c for c in slack.of("chat.postMessage") if c.params.get("thread_ts") == report_ts)
    assert posted is not None
    apply_button = buttons(plan_msg)[APPLY]
    assert "Dify's database" in apply_button["confirm"]["text"]["text"]
    assert CANCEL in buttons(plan_msg)
    plan_text = json.dumps(plan_msg.params["blocks"])
    assert LLM_ID in plan_text and "Writes Dify's database" in plan_text
    assert "difyai123456" not in " ".join(slack.texts())  # secrets masked everywhere

    # somebody else clicks Apply: refused, nothing changes
    bot.click(
        APPLY,
        apply_button["value"],
        user="UEVE",
        message_ts=plan_ts,
        thread_ts=report_ts,
        action_ts="1.2",
    )
    assert wait_ephemeral(bot, "OPERATORS").startswith(":no_entry:")
    assert files_state(stack) == before_files and rows_by_id(stack) == before_rows

    # click 2: Apply (after Slack's confirmation dialog) -- clicked twice by accident
    bot.click(
        APPLY,
        apply_button["value"],
        user=OPERATOR,
        message_ts=plan_ts,
        thread_ts=report_ts,
        action_ts="2.1",
    )
    bot.click(
        APPLY,
        apply_button["value"],
        user=OPERATOR,
        message_ts=plan_ts,
        thread_ts=report_ts,
        action_ts="2.2",
    )
    applied = slack.wait_for("chat.postMessage", where=with_button(RESTART_APPLY), timeout=60)[0]
    assert applied.params["thread_ts"] == report_ts
    assert "fix-env applied by <@UOPS>" in applied.params["text"]
    assert UNDO in buttons(applied)
    # the second click did nothing; it was told why (still running, or already done)
    bot.slack.wait_for("response_url", count=2)
    second = ephemerals(bot)[-1]
    assert "already" in second or "`fix-env apply` started by <@UOPS>" in second, second
    assert len([b for b in backups.iter_backups(bot.settings.backup_path)]) == 1
    assert rows_by_id(stack)[LLM_ID]["base_url"] == session_ollama.container_url()
    assert stack.redis_keys() == ["rig:unrelated"]
    assert any(
        c.params.get("ts") == plan_ts and "Applied by" in json.dumps(c.params.get("blocks"))
        for c in slack.of("chat.update")
    )  # progress and outcome edited into the plan message itself

    # click 3: Restart affected services -> progress in place, then the re-check
    restart_button = buttons(applied)[RESTART_APPLY]
    bot.click(
        RESTART_APPLY,
        restart_button["value"],
        user=OPERATOR,
        message_ts="1700000000.900001",
        thread_ts=report_ts,
        action_ts="3.1",
    )
    verdict = slack.wait_for(
        "chat.postMessage",
        where=lambda c: "Verified: no failing finding" in str(c.params.get("text")),
        timeout=180,
    )[0]
    assert verdict.params["thread_ts"] == report_ts
    live = [c for c in slack.of("chat.update") if "Applying configuration" in str(c.params)]
    assert live, "restart progress was not edited in place"
    assert run_check(bot.settings).exit_code == 0

    clicks = [a for a in bot.audit() if a.get("source") == "action" and a["user"] == OPERATOR]
    outcomes = {a["command"]: a["outcome"] for a in clicks}
    assert outcomes["fix-env:fix"] == "planned"
    assert outcomes["restart:apply"] == "ok"
    assert "applied" in {a["outcome"] for a in clicks if a["command"] == "fix-env:apply"}

    # and Undo puts everything back, byte for byte
    undo = buttons(applied)[UNDO]
    bot.click(
        UNDO,
        undo["value"],
        user=OPERATOR,
        message_ts="1700000000.900001",
        thread_ts=report_ts,
        action_ts="4.1",
    )
    slack.wait_for(
        "chat.update",
        where=lambda c: "Undone by <@UOPS>" in str(c.params.get("text")),
        timeout=60,
    )
    assert files_state(stack) == before_files and rows_by_id(stack) == before_rows
    assert "difyai123456" not in " ".join(slack.texts())


# --- no engine needed ---------------------------------------------------------------------
@pytest.mark.parametrize("action_id", [FIX, APPLY, CANCEL, UNDO, RESTART_APPLY, RESTART_ALL])
def test_unauthorized_clicks_are_refused_and_audited(run_bot: Any, action_id: str) -> None:
    bot = run_bot(operators=(OPERATOR,))
    bot.click(action_id, json.dumps({"plan": "abc", "backup": "b"}), user="UEVE")
    text = wait_ephemeral(bot, "OPERATORS")
    assert text.startswith(":no_entry:")
    [line] = bot.wait_audit(1)
    assert line["outcome"] == "denied" and line["user"] == "UEVE"
    assert bot.slack.of("chat.postMessage") == []


def test_non_operators_cannot_ask_for_a_plan_or_a_restart(run_bot: Any) -> None:
    bot = run_bot(operators=(OPERATOR,))
    for command in ("fix-env", "restart", "fix-env undo"):
        answer = bot.command(command, user="UEVE")
        assert "OPERATORS" in answer.json()["text"]
    assert bot.slack.of("chat.postMessage") == []


def test_restart_all_needs_the_danger_confirmation(run_bot: Any) -> None:
    bot = run_bot(operators=(OPERATOR,))
    assert bot.command("restart --all", user=OPERATOR).content == b""
    [asked] = bot.slack.wait_for("chat.postMessage", where=with_button(RESTART_ALL))
    element = buttons(asked)[RESTART_ALL]
    assert element["style"] == "danger" and "confirm" in element
    assert "db and redis included" in element["confirm"]["text"]["text"]
    answer = bot.command("restart --all api", user=OPERATOR).json()["text"]
    assert "--all` takes no service names" in answer


def test_usage_errors_answer_at_once(run_bot: Any) -> None:
    bot = run_bot(operators=(OPERATOR,))
    assert "fix-env | fix-env undo" in bot.command("fix-env now", user=OPERATOR).json()["text"]
    assert "unknown option" in bot.command("restart --force", user=OPERATOR).json()["text"]


def test_a_busy_host_says_what_runs_and_who_started_it(run_bot: Any) -> None:
    bot = run_bot(operators=(OPERATOR,))
    with MutationLock(bot.settings.state_path).hold("fix-env apply", "alice@host", "cli"):
        bot.click(RESTART_APPLY, "{}", user=OPERATOR)
        text = wait_ephemeral(bot, "in progress")
    assert "`fix-env apply` started by `alice@host`" in text
    assert bot.slack.of("chat.postMessage") == []


def test_one_fix_button_per_report_on_a_fixable_failure(run_bot: Any) -> None:
    bot = run_bot(check=lambda _s: sample_report(problems=4))
    bot.command("check")
    update = bot.slack.wait_for("chat.update")[0]
    fixes = [
        e
        for block in update.params["blocks"]
        if block["type"] == "actions"
        for e in block["elements"]
        if e["action_id"] == FIX
    ]
    assert len(fixes) == 1 and json.loads(fixes[0]["value"]) == {"f": "problem.0"}


def test_cancel_of_an_unknown_plan_is_a_clear_error(run_bot: Any, tmp_path: Path) -> None:
    bot = run_bot(operators=(OPERATOR,))
    bot.click(CANCEL, json.dumps({"plan": "0123456789ab"}), user=OPERATOR)
    bot.slack.wait_for(
        "chat.postMessage", where=lambda c: "unknown on this host" in str(c.params.get("text"))
    )


def test_fix_env_undo_offers_the_latest_backup_behind_a_confirmation(
    run_bot: Any, tmp_path: Path
) -> None:
    bot = run_bot(operators=(OPERATOR,))
    env = tmp_path / "dify" / ".env"
    env.parent.mkdir()
    env.write_text("OPENAI_API_BASE=http://127.0.0.1:11434/v1\n")
    made = backups.create_backup(
        bot.settings.backup_path,
        project="docker",
        dify_dir=env.parent,
        user=OPERATOR,
        operation="fix-env",
        files=[("env", env)],
    )
    bot.command("fix-env undo", user=OPERATOR)
    [asked] = bot.slack.wait_for("chat.postMessage", where=with_button(UNDO))
    element = buttons(asked)[UNDO]
    assert json.loads(element["value"]) == {"backup": made.id}
    assert element["style"] == "danger" and "confirm" in element
    assert "<@UOPS>" in asked.params["text"]
