"""`logs` through the running bot, at the wire: signed Slack requests in, the recording Web API
double out, a real engine with canary-logging containers behind. No secret in any payload or
uploaded file; every reply goes into the parent's thread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from bot.subcommands import load_registry
from bot.subcommands.logs import INLINE_MAX_LINES, LOGS_ACTION, logs_button, render
from handlers.logs import LogResult
from handlers.results import Finding, Report, Status
from tests.bot.conftest import sample_report
from tests.bot.fakes.slack_api import SlackApiDouble
from tests.rig.log_containers import Canaries, LogProject, assert_no_canary, printf_script


@pytest.fixture
def project(docker_engine: Any, tmp_path: Path) -> Iterator[LogProject]:
    """api logs every canary then 200 numbered lines; worker logs the canaries only."""
    made = LogProject(docker_engine, tmp_path / "dify", Canaries())
    try:
        canary_lines = [*made.canaries.log_lines(), r"\033[31mred\033[0m \377 done"]
        numbered = "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done"
        api = made.add("api", printf_script(made.canaries.log_lines(), f"{numbered}; sleep 600"))
        worker = made.add("worker", printf_script(canary_lines))
        made.wait_for_line(api, b"line 199")
        made.wait_for_line(worker, b"done")
        yield made
    finally:
        made.cleanup()


# The double numbers the messages it accepts; the parent is the first message of these tests.
FIRST_TS = "1700000000.000001"


def start(run_bot: Any, project: LogProject, **kwargs: Any) -> Any:
    return run_bot(
        docker_host=project.env["DOCKER_HOST"],
        dify_compose_project=project.name,
        dify_dir=project.dir,
        **kwargs,
    )


def everything_sent(slack: SlackApiDouble) -> str:
    """Every byte the bot sent to Slack (messages, updates, ephemerals, uploads), decoded."""
    raw = b"\n".join(call.raw for call in slack.calls)
    raw += b"\n".join(slack.uploads.values())
    text = raw.decode("utf-8", errors="replace")
    return text + "\n" + unquote_plus(text)


def wait_audit_outcome(bot: Any, command: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in bot.audit():
            if line["command"] == command:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no audit line for {command}")


@pytest.mark.docker
def test_short_log_goes_as_a_code_block_into_the_parents_thread(run_bot, project) -> None:
    bot = start(run_bot, project)
    assert bot.command("logs worker 20").status_code == 200
    parent, reply = (c.params for c in bot.slack.wait_for("chat.postMessage", 2, timeout=15))
    assert parent["text"] == "Logs: worker, last 20 lines, asked by <@UALICE>"
    assert parent.get("thread_ts") in (None, "")
    assert parent["channel"] == reply["channel"] == "COPS"
    assert reply["thread_ts"] == FIRST_TS
    code = reply["blocks"][0]["text"]["text"]
    assert code.startswith("```") and "Authorization: Bearer [REDACTED]" in code
    assert "red \ufffd done" in code and "\\u001b" not in str(reply)
    assert wait_audit_outcome(bot, "logs")["outcome"] == "ok"
    assert_no_canary(everything_sent(bot.slack), project.canaries)


@pytest.mark.docker
def test_long_log_is_uploaded_into_the_parents_thread(run_bot, project) -> None:
    bot = start(run_bot, project)
    bot.command("logs api 300")
    parent = bot.slack.wait_for("chat.postMessage", timeout=15)[0].params
    complete = bot.slack.wait_for("files.completeUploadExternal", timeout=15)[0].params
    assert parent.get("thread_ts") in (None, "") and complete["channel_id"] == "COPS"
    assert complete["thread_ts"] == FIRST_TS
    assert complete["files"][0]["title"].startswith("api, last 300 lines")
    uploaded = bot.slack.wait_for("upload")[0].raw.decode()
    assert uploaded.splitlines()[-1] == "line 199" and len(uploaded.splitlines()) == 208
    assert uploaded.count("[REDACTED]") >= 12
    assert len(bot.slack.of("chat.postMessage")) == 1  # the parent; the log is the snippet
    assert_no_canary(everything_sent(bot.slack), project.canaries)


@pytest.mark.docker
def test_mention_in_a_thread_answers_in_that_thread(run_bot, project) -> None:
    bot = start(run_bot, project)
    thread = "1700000100.000100"
    bot.mention("<@UBOT0001> logs api 200", ts="1700000100.000900", thread_ts=thread)
    complete = bot.slack.wait_for("files.completeUploadExternal", timeout=15)[0].params
    posts = bot.slack.of("chat.postMessage")
    assert posts and all(c.params["thread_ts"] == thread for c in posts)
    assert complete["thread_ts"] == thread
    assert posts[0].params["text"] == "Logs: api, last 200 lines, asked by <@UALICE>"
    bot.mention(
        "<@UBOT0001> logs worker 5", ts="1700000100.000950", thread_ts=thread, event_id="E2"
    )
    bot.slack.wait_for("chat.postMessage", 3, timeout=15)
    assert all(c.params["thread_ts"] == thread for c in bot.slack.of("chat.postMessage"))
    assert_no_canary(everything_sent(bot.slack), project.canaries)


@pytest.mark.docker
def test_logs_button_on_a_failing_finding_posts_into_the_report_thread(run_bot, project) -> None:
    report = Report(
        findings=(
            Finding("api.down", Status.FAIL, "api cannot reach Ollama", service="api"),
            Finding("host.ports", Status.FAIL, "port 80 is taken"),  # no service: no button
            Finding("worker.ok", Status.OK, "worker running", service="worker"),
        ),
        duration_ms=10,
    )
    bot = start(run_bot, project, check=lambda _s: report)
    bot.command("check")
    update = bot.slack.wait_for("chat.update", timeout=15)[0].params
    buttons = [e for b in update["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["action_id"] for b in buttons] == [LOGS_ACTION]
    bot.click(buttons[0]["action_id"], buttons[0]["value"], message_ts=update["ts"])
    complete = bot.slack.wait_for("files.completeUploadExternal", timeout=15)[0].params
    assert complete["thread_ts"] == update["ts"]
    replies = [c.params for c in bot.slack.of("chat.postMessage") if c.params.get("thread_ts")]
    assert replies and all(p["thread_ts"] == update["ts"] for p in replies)
    assert replies[0]["text"] == "Logs: api, last 100 lines, asked by <@UALICE>"
    assert wait_audit_outcome(bot, "logs:button")["outcome"] == "ok"
    assert_no_canary(everything_sent(bot.slack), project.canaries)


@pytest.mark.docker
def test_unknown_service_answer_lists_the_valid_ones(run_bot, project) -> None:
    bot = start(run_bot, project)
    bot.command("logs apii")
    answer = bot.slack.wait_for("chat.postMessage", timeout=15)[0].params
    assert "no service 'apii'" in answer["text"] and "api, worker" in answer["text"]
    assert len(bot.slack.of("chat.postMessage")) == 1  # no parent for a request that failed


@pytest.mark.parametrize("lines", ["0", "-1", "5001", "abc"])
def test_absurd_line_counts_answer_with_the_usage_at_once(run_bot, lines) -> None:
    bot = run_bot()
    answer = bot.command(f"logs api {lines}").json()
    assert "LINES" in answer["text"] and "Usage: `/dify-ollama logs" in answer["text"]
    assert bot.wait_audit(1)[0]["outcome"] == "usage"
    assert bot.slack.of("chat.postMessage") == []


def test_engine_down_is_explained_in_the_channel(run_bot) -> None:
    bot = run_bot(dify_compose_project="x")  # the fixture's docker_host is a missing socket
    bot.command("logs api 10")
    answer = bot.slack.wait_for("chat.postMessage", timeout=15)[0].params
    assert "does not exist" in answer["text"]


# --- rendering and the button maker (pure) ---------------------------------------------------
def _result(lines: int, width: int = 10, **extra: Any) -> LogResult:
    text = "\n".join(f"{i:0{width}d}" for i in range(lines))
    values: dict[str, Any] = {
        "service": "api",
        "container": "docker-api-1",
        "container_id": "abc",
        "state": "running",
        "project": "docker",
        "lines_requested": lines,
        "lines_fetched": lines,
        "lines_returned": lines,
        "text": text,
        "truncated": False,
        "redactions": 0,
    }
    values.update(extra)
    return LogResult(**values)


def test_render_inline_up_to_the_limits_then_upload() -> None:
    assert render(_result(INLINE_MAX_LINES), "<@U1>").upload is None
    assert render(_result(INLINE_MAX_LINES + 1), "<@U1>").upload is not None
    assert render(_result(30, width=90), "<@U1>").upload is not None  # > 2500 characters
    # Characters Slack would read as markup are escaped inside the code block.
    message = render(_result(1, text="<!channel> & ``` done", lines_returned=1), "<@U1>")
    assert message.reply_blocks is not None
    code = message.reply_blocks[0]["text"]["text"]
    assert "&lt;!channel&gt; &amp;" in code and code.count("```") == 2


def test_render_empty_and_notes() -> None:
    message = render(
        _result(0, text="", lines_returned=0, lines_fetched=0, state="exited", notes=("it died",)),
        "<@U1>",
    )
    assert message.upload is None and message.reply_text == "Nothing to show: it died"
    assert "it died" in str(message.parent_blocks)


def test_button_only_for_problem_findings_with_a_service() -> None:
    report = sample_report()
    assert logs_button(Finding("a", Status.FAIL, "x", service="api"), report) is not None
    assert logs_button(Finding("a", Status.WARN, "x", service="api"), report) is not None
    assert logs_button(Finding("a", Status.OK, "x", service="api"), report) is None
    assert logs_button(Finding("a", Status.FAIL, "x"), report) is None


def test_logs_module_is_registered() -> None:
    registry = load_registry()
    assert registry.subcommands["logs"].summary != "(not available yet)"
    assert LOGS_ACTION in registry.actions and logs_button in registry.finding_buttons
