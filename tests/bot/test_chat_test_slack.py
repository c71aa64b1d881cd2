"""The report's "Chat test" button through the running bot, at the wire: signed Slack requests
in, the recording Web API double out, the look-alike Dify stack and the fake Ollama behind."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bot.subcommands.check import CHAT_ACTION, chat_buttons
from handlers.check import run_check
from handlers.results import Finding, Report, Status
from tests.bot.conftest import sample_report
from tests.rig.fake_ollama import FakeOllama
from tests.rig.stack import DifyStack, docker_host


def report_buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in blocks if b["type"] == "actions" for e in b["elements"]}


@pytest.mark.docker
def test_chat_test_button_answers_in_the_report_thread(
    run_bot: Any, healthy_stack: DifyStack, session_ollama: FakeOllama
) -> None:
    bot = run_bot(
        check=run_check,
        docker_host=docker_host(),
        dify_compose_project=healthy_stack.project,
        ollama_url=session_ollama.url,
        check_timeout=3,
    )
    bot.command("check")
    report = bot.slack.wait_for("chat.update", timeout=30)[0].params
    chat = report_buttons(report["blocks"])[CHAT_ACTION]
    assert chat["text"]["text"] == "Chat test"
    bot.click(CHAT_ACTION, chat["value"], message_ts=report["ts"], thread_ts=report["ts"])
    updates = bot.slack.wait_for("chat.update", 2, timeout=30)
    answer = updates[1].params
    waiting = [c.params for c in bot.slack.of("chat.postMessage") if c.params.get("thread_ts")]
    assert waiting and waiting[0]["thread_ts"] == report["ts"]
    assert "Chat test" in waiting[0]["text"] and "<@UALICE>" in waiting[0]["text"]
    assert answer["text"].startswith("Chat test: Dify can chat: llama3.2:latest answered")
    assert "`dify.chat`" in json.dumps(answer["blocks"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [x for x in bot.audit() if x["command"] == "check:chat-test"]
        if lines:
            break
        time.sleep(0.05)
    assert lines and lines[0]["outcome"] == "ok"


def test_no_chat_button_without_a_dify_project_or_after_a_chat() -> None:
    assert chat_buttons(sample_report()) == []  # no dify.project: nothing to chat from
    found = Finding("dify.project", Status.OK, "Dify project docker")
    assert [b["action_id"] for b in chat_buttons(Report((found,), 1))] == [CHAT_ACTION]
    chatted = Finding("dify.chat", Status.OK, "Dify can chat")
    assert chat_buttons(Report((found, chatted), 1)) == []
    down = Finding("dify.project", Status.FAIL, "no Dify project")
    assert chat_buttons(Report((down,), 1)) == []
