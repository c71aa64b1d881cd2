"""`/dify-ollama logs` with the arguments that used to escape as exceptions (issue 11): the
usage, only to the requester, at once; nothing posted in the channel. A real bot on loopback,
signed requests, the Slack API double (no engine needed: parsing comes first)."""

from __future__ import annotations

import pytest

DIGITS = "9" * 1000  # the slash command text is capped at 2000 characters


@pytest.mark.parametrize(
    "text",
    [
        "logs --since 99999999999d",
        "logs --since 0001-01-01",
        f"logs --since {DIGITS}d",
        f"logs api {DIGITS}",
        f"logs {DIGITS}",
        "logs api -s 1969-01-01",
    ],
)
def test_hostile_logs_arguments_answer_with_the_usage(run_bot, text: str) -> None:
    bot = run_bot()
    answer = bot.command(text).json()
    assert "Usage: `/dify-ollama logs" in answer["text"]
    assert answer.get("response_type", "ephemeral") == "ephemeral"
    assert DIGITS not in answer["text"]
    assert bot.wait_audit(1)[0]["outcome"] == "usage"
    assert bot.slack.of("chat.postMessage") == []
